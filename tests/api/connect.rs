//! `POST /api/database/connect` against the real PostgreSQL and MariaDB of this
//! machine and the demo SQLite: the success shape, and each failure code produced
//! by a really failing connection.

use crate::common::*;
use serde_json::json;

fn assert_token_shape(body: &serde_json::Value, db_type: &str, database: &str) {
    assert_eq!(body["success"], true);
    assert_eq!(body["tokenType"], "Bearer");
    assert_eq!(body["expiresIn"], 3600);
    assert_eq!(body["dbType"], db_type);
    assert_eq!(body["database"], database);
    let token = body["token"].as_str().expect("token");
    assert_eq!(token.split('.').count(), 3, "a compact JWS");
    let expires_at = body["expiresAt"].as_str().expect("expiresAt");
    assert!(
        chrono::DateTime::parse_from_rfc3339(expires_at).is_ok(),
        "{expires_at}"
    );
}

#[tokio::test]
async fn postgres_connect_returns_a_token_and_the_server_version() {
    let app = TestApp::spawn().await;
    let (status, body) = read(app.connect(&pg_body("test")).await).await;
    assert_eq!(status, 200, "{body}");
    assert_token_shape(&body, "postgresql", "test");
    assert_eq!(body["host"], "127.0.0.1");
    assert!(
        body["serverVersion"]
            .as_str()
            .expect("version")
            .starts_with("PostgreSQL ")
    );
}

#[tokio::test]
async fn mysql_connect_returns_a_token_and_the_server_version() {
    let app = TestApp::spawn().await;
    let (status, body) = read(app.connect(&mysql_body("test")).await).await;
    assert_eq!(status, 200, "{body}");
    assert_token_shape(&body, "mysql", "test");
    let version = body["serverVersion"].as_str().expect("version");
    assert!(
        version.starts_with("MariaDB ") || version.starts_with("MySQL "),
        "{version}"
    );
}

#[tokio::test]
async fn sqlite_demo_connect_works_without_any_setup() {
    let app = TestApp::spawn().await;
    let (status, body) = read(app.connect(&sqlite_body("demo")).await).await;
    assert_eq!(status, 200, "{body}");
    assert_token_shape(&body, "sqlite", "demo");
    assert_eq!(body["host"], serde_json::Value::Null);
    assert!(
        body["serverVersion"]
            .as_str()
            .expect("version")
            .starts_with("SQLite ")
    );
}

#[tokio::test]
async fn aliases_and_string_ports_are_accepted() {
    let app = TestApp::spawn().await;
    let mut body = pg_body("test");
    body["dbType"] = json!("postgres");
    body["port"] = json!("5432");
    let (status, answer) = read(app.connect(&body).await).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["dbType"], "postgresql");
    let mut body = mysql_body("test");
    body["dbType"] = json!("mariadb");
    let (status, answer) = read(app.connect(&body).await).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["dbType"], "mysql");
}

#[tokio::test]
async fn password_role_connects_with_the_right_password() {
    let app = TestApp::spawn().await;
    for mut body in [pg_body("test"), mysql_body("test")] {
        body["username"] = json!(SECRET_USER);
        body["password"] = json!(SECRET_PASSWORD);
        let (status, answer) = read(app.connect(&body).await).await;
        assert_eq!(status, 200, "{answer}");
    }
}

#[tokio::test]
async fn wrong_password_is_db_access_denied_without_echoing_it() {
    let app = TestApp::spawn().await;
    for mut body in [pg_body("test"), mysql_body("test")] {
        body["username"] = json!(SECRET_USER);
        body["password"] = json!("wrong-password-4711");
        let (status, answer) = read(app.connect(&body).await).await;
        assert_error(status, &answer, 400, "db_access_denied");
        assert_eq!(
            answer["error"],
            "Access denied. Check the user name and password."
        );
        assert!(!answer.to_string().contains("wrong-password-4711"));
    }
}

#[tokio::test]
async fn unknown_database_is_db_database_not_found() {
    let app = TestApp::spawn().await;
    for body in [
        pg_body("no_such_db_qg"),
        mysql_body("no_such_db_qg"),
        sqlite_body("no_such_db_qg"),
    ] {
        let (status, answer) = read(app.connect(&body).await).await;
        assert_error(status, &answer, 400, "db_database_not_found");
    }
}

#[tokio::test]
async fn closed_port_is_db_connection_refused() {
    let app = TestApp::spawn().await;
    for mut body in [pg_body("test"), mysql_body("test")] {
        body["port"] = json!(closed_port());
        let (status, answer) = read(app.connect(&body).await).await;
        assert_error(status, &answer, 502, "db_connection_refused");
    }
}

#[tokio::test]
async fn unresolvable_host_is_db_host_not_found() {
    let app = TestApp::spawn().await;
    for mut body in [pg_body("test"), mysql_body("test")] {
        body["host"] = json!("no-such-host.invalid");
        let (status, answer) = read(app.connect(&body).await).await;
        assert_error(status, &answer, 502, "db_host_not_found");
    }
}

#[tokio::test]
async fn server_that_never_answers_is_db_timeout() {
    let app = TestApp::spawn_with(|config| config.db_connect_timeout_ms = 500).await;
    let port = silent_server().await;
    for mut body in [pg_body("test"), mysql_body("test")] {
        body["port"] = json!(port);
        let started = std::time::Instant::now();
        let (status, answer) = read(app.connect(&body).await).await;
        assert_error(status, &answer, 504, "db_timeout");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "no hang"
        );
    }
}

#[tokio::test]
async fn tls_required_but_refused_is_db_tls_failed() {
    let app = TestApp::spawn().await;
    // MariaDB here has TLS off; PostgreSQL has a self-signed certificate that
    // verify-full cannot trust.
    let mut mysql = mysql_body("test");
    mysql["ssl"] = json!("require");
    let mut pg = pg_body("test");
    pg["ssl"] = json!("verify-full");
    for body in [mysql, pg] {
        let (status, answer) = read(app.connect(&body).await).await;
        assert_error(status, &answer, 502, "db_tls_failed");
    }
}

#[tokio::test]
async fn denied_network_is_db_host_forbidden() {
    let app = TestApp::spawn_with(|config| {
        config.db_denied_networks = vec!["127.0.0.0/8".parse().expect("net")];
    })
    .await;
    let (status, answer) = read(app.connect(&pg_body("test")).await).await;
    assert_error(status, &answer, 403, "db_host_forbidden");
}

#[tokio::test]
async fn sqlite_paths_uris_and_memory_are_validation_failures() {
    let app = TestApp::spawn().await;
    for database in [
        "../etc/passwd",
        "/etc/passwd",
        ":memory:",
        "file:demo?mode=rw",
        "a/b",
    ] {
        let (status, answer) = read(app.connect(&sqlite_body(database)).await).await;
        assert_error(status, &answer, 400, "validation_failed");
        assert_eq!(answer["details"]["field"], "database", "{database}");
    }
}

#[tokio::test]
async fn production_denies_loopback_and_link_local_and_a_denied_list_only_adds() {
    for extra in [vec![], vec!["10.0.0.0/8".parse().expect("net")]] {
        let app = TestApp::spawn_with(|config| {
            config.environment = querygate::config::Environment::Production;
            config.db_denied_networks = extra.clone();
        })
        .await;
        for host in [
            "127.0.0.1",
            "localhost",
            "0.0.0.0",
            "169.254.169.254",
            "::1",
        ] {
            let mut body = pg_body("test");
            body["host"] = json!(host);
            let (status, answer) = read(app.connect(&body).await).await;
            assert_error(status, &answer, 403, "db_host_forbidden");
        }
    }
}

/// A listener on another loopback address that counts the connections it accepts.
async fn tripwire(ip: &str) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&hits);
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    (port, hits)
}

#[tokio::test]
async fn every_form_of_a_forbidden_address_is_refused_before_any_packet_in_every_mode() {
    let (port, hits) = tripwire("127.0.0.2").await;
    let metadata = [
        "169.254.169.254",
        "::ffff:169.254.169.254",
        "::ffff:a9fe:a9fe",
        "2852039166",
        "0251.0376.0251.0376",
        "0xa9fea9fe",
        "169.254.43518",
        "fe80::1",
        "fd00:ec2::254",
        "100.100.100.200",
        "0.0.0.0",
        "0",
        "::",
        "224.0.0.1",
        "255.255.255.255",
    ];
    // 127.0.0.2, written every way the resolver accepts: refused in production,
    // and the listener there must never see a connection.
    let loopback = [
        "127.0.0.2",
        "2130706434",
        "0x7f000002",
        "0177.0.0.2",
        "127.0.2",
        "::ffff:127.0.0.2",
    ];
    for production in [false, true] {
        for extra in [vec![], vec!["10.0.0.0/8".parse().expect("net")]] {
            let app = TestApp::spawn_with(|config| {
                if production {
                    config.environment = querygate::config::Environment::Production;
                }
                config.db_denied_networks = extra.clone();
            })
            .await;
            let forbidden = metadata
                .iter()
                .chain(if production { &loopback[..] } else { &[] });
            for host in forbidden {
                for engine in [pg_body("test"), mysql_body("test")] {
                    let mut body = engine;
                    body["host"] = json!(host);
                    body["port"] = json!(port);
                    let (status, answer) = read(app.connect(&body).await).await;
                    assert_error(status, &answer, 403, "db_host_forbidden");
                }
            }
        }
    }
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a forbidden address was dialled"
    );
}

#[tokio::test]
async fn names_that_resolve_to_forbidden_addresses_are_refused_in_every_mode() {
    let (port, hits) = tripwire("127.0.0.2").await;
    let dns = crate::common::dns::DnsServer::start(
        [
            (
                "metadata.test".to_owned(),
                vec!["169.254.169.254".parse().expect("ip")],
            ),
            (
                "loop.test".to_owned(),
                vec!["127.0.0.2".parse().expect("ip")],
            ),
        ]
        .into(),
    )
    .await;
    for production in [false, true] {
        let app = TestApp::spawn_with(|config| {
            config.db_dns_servers = vec![dns.address];
            if production {
                config.environment = querygate::config::Environment::Production;
            }
        })
        .await;
        let hosts: &[&str] = if production {
            &["metadata.test", "loop.test"]
        } else {
            &["metadata.test"]
        };
        for host in hosts {
            let mut body = pg_body("test");
            body["host"] = json!(host);
            body["port"] = json!(port);
            let (status, answer) = read(app.connect(&body).await).await;
            assert_error(status, &answer, 403, "db_host_forbidden");
        }
    }
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_name_whose_next_answer_is_denied_never_reaches_the_denied_address_in_any_tls_mode() {
    // Listeners on a denied address, on the databases' ports.
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for port in [5432, 3306] {
        let listener = tokio::net::TcpListener::bind(("127.0.0.3", port))
            .await
            .expect("bind 127.0.0.3");
        let counter = std::sync::Arc::clone(&hits);
        tokio::spawn(async move {
            while listener.accept().await.is_ok() {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
    }
    let cases = [
        (pg_body("test"), "disable", "SELECT pg_sleep(0.1), 1 AS one"),
        (pg_body("test"), "prefer", "SELECT pg_sleep(0.1), 1 AS one"),
        (pg_body("test"), "require", "SELECT pg_sleep(0.1), 1 AS one"),
        (mysql_body("test"), "disable", "SELECT SLEEP(0.1), 1 AS one"),
        (mysql_body("test"), "prefer", "SELECT SLEEP(0.1), 1 AS one"),
    ];
    for (mut body, ssl, sql) in cases {
        // The first answer is the database's address; every later one the denied one.
        let name = format!(
            "rebind-{}-{ssl}.test",
            body["dbType"].as_str().expect("type")
        );
        let dns = crate::common::dns::DnsServer::start(
            [(
                name.clone(),
                vec![
                    "127.0.0.1".parse().expect("ip"),
                    "127.0.0.3".parse().expect("ip"),
                ],
            )]
            .into(),
        )
        .await;
        let app = TestApp::spawn_with(|config| {
            config.db_dns_servers = vec![dns.address];
            config.db_denied_networks = vec!["127.0.0.3/32".parse().expect("net")];
            config.pool_max_connections = 4;
        })
        .await;
        body["host"] = json!(name);
        body["ssl"] = json!(ssl);
        let token = app.token_for(&body).await;
        // Enough statements at once that the pool opens more connections.
        let requests = (0..8).map(|_| app.sql(&token, sql));
        for (status, answer) in futures_util::future::join_all(requests).await {
            assert_eq!(status, 200, "{ssl}: {answer}");
        }
        let (status, answer) = read(app.status(Some(&token), true).await).await;
        assert_eq!(status, 200, "{ssl}: {answer}");
        assert_eq!(
            dns.a_queries(&name),
            1,
            "{ssl}: the name was resolved again"
        );
        assert_eq!(
            hits.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "{ssl}: the denied address was reached"
        );
    }
}

#[tokio::test]
async fn a_refused_host_names_its_rule_in_the_log_and_never_in_the_answer() {
    let sqlite = tempfile::tempdir().expect("tmp");
    let keys = tempfile::tempdir().expect("tmp");
    let server = crate::common::process::ServerProcess::start(
        sqlite.path(),
        keys.path(),
        &[
            ("QUERYGATE_ENV", "production"),
            ("QUERYGATE_KEYS", KEY_A),
            ("DB_DENIED_NETWORKS", "10.0.0.0/8"),
        ],
    );
    let client = reqwest::Client::new();
    let cases = [
        ("127.0.0.1", "127.0.0.0/8, loopback, denied in production"),
        (
            "169.254.169.254",
            "the built-in denied network 169.254.0.0/16",
        ),
        ("10.1.2.3", "DB_DENIED_NETWORKS entry 10.0.0.0/8"),
    ];
    let mut answers = Vec::new();
    for (host, _) in cases {
        let mut body = pg_body("test");
        body["host"] = json!(host);
        let response = client
            .post(server.url("/api/database/connect"))
            .json(&body)
            .send()
            .await
            .expect("connect");
        let (status, answer) = read(response).await;
        assert_error(status, &answer, 403, "db_host_forbidden");
        answers.push(answer.to_string());
    }
    let logs = server.stop();
    for ((host, rule), answer) in cases.iter().zip(&answers) {
        assert!(
            logs.contains(rule),
            "the log names the rule refusing {host}: {logs}"
        );
        assert!(!answer.contains(rule), "the answer stays generic: {answer}");
        assert!(!answer.contains("DB_"), "{answer}");
    }
}
