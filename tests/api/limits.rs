//! One client cannot take the instance: connections and requests are capped,
//! slow clients are cut off, and the instance keeps serving everyone else.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::process::ServerProcess;
use crate::common::*;

#[tokio::test]
async fn requests_over_the_cap_are_overloaded_while_health_is_always_served() {
    let app = TestApp::spawn_with(|config| config.max_concurrent_requests = 1).await;
    let token = app.token_for(&pg_body("test")).await;
    let (client, url, bearer) = (
        app.client.clone(),
        app.url("/api/database/execute"),
        token.clone(),
    );
    let slow = tokio::spawn(async move {
        client
            .post(url)
            .bearer_auth(bearer)
            .json(&json!({"sql": "SELECT pg_sleep(1) /* qg-overload-marker */"}))
            .send()
            .await
            .expect("slow")
    });
    let running = "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%qg-overload-marker%' AND pid <> pg_backend_pid()";
    tokio::time::timeout(Duration::from_secs(10), async {
        while pg_admin_scalar(running).await == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the slow statement started");
    let response = app.get("/api/database/status", None).await;
    assert_eq!(response.headers()["retry-after"], "1");
    let (status, body) = read(response).await;
    assert_error(status, &body, 503, "overloaded");
    for path in ["/api/health", "/health", "/api/ready"] {
        assert_eq!(app.get(path, None).await.status(), 200, "{path}");
    }
    assert_eq!(slow.await.expect("join").status(), 200);
    assert_eq!(
        app.get("/api/database/status", None).await.status(),
        200,
        "the place was given back"
    );
}

#[tokio::test]
async fn a_body_that_never_arrives_is_a_request_timeout() {
    let app = TestApp::spawn_with(|config| config.http_body_timeout_ms = 300).await;
    let mut stream = tokio::net::TcpStream::connect(app.address)
        .await
        .expect("connect");
    stream
        .write_all(b"POST /api/database/connect HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"db")
        .await
        .expect("write");
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer))
        .await
        .expect("answered")
        .expect("read");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
}

/// Opens `count` connections from `ip` that each send part of a request head and
/// then one more header line now and then, never finishing.
async fn slow_clients(address: std::net::SocketAddr, count: usize) -> Vec<tokio::net::TcpStream> {
    let mut streams = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.1:0".parse().expect("local"))
            .expect("bind");
        match tokio::time::timeout(Duration::from_secs(5), socket.connect(address)).await {
            Ok(Ok(mut stream)) => {
                let _ = stream
                    .write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
                    .await;
                streams.push(stream);
            }
            _ => break,
        }
    }
    streams
}

#[tokio::test]
async fn slow_header_clients_are_cut_off_and_cannot_starve_anyone_else() {
    ensure_databases();
    let dir = tempfile::tempdir().expect("tempdir");
    // A low open-file limit that the server cannot raise, as on the host that
    // ran out of descriptors.
    let server = ServerProcess::start_limited(
        &dir.path().join("sqlite"),
        &dir.path().join("keys"),
        &[
            ("QUERYGATE_KEYS", KEY_A),
            ("HTTP_HEADER_TIMEOUT_MS", "2000"),
            ("MAX_CONNECTIONS_PER_CLIENT", "400"),
            ("RUST_LOG", "info"),
        ],
        Some(1024),
    );
    let address: std::net::SocketAddr = server
        .base_url
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    let mut slow = slow_clients(address, 1500).await;
    assert!(
        slow.len() >= 1000,
        "the client opened its connections: {}",
        slow.len()
    );

    // Another client, from another address, keeps being served within a second.
    let other = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse().expect("ip")))
        .timeout(Duration::from_secs(1))
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    for round in 0..20 {
        let response = other.get(server.url("/api/health")).send().await;
        assert!(
            response.as_ref().is_ok_and(|r| r.status() == 200),
            "health failed in round {round}: {response:?}"
        );
        for stream in slow.iter_mut().step_by(50) {
            let _ = stream.write_all(b"X-Slow: 1\r\n").await;
        }
    }

    // Every slow connection is closed by the server after the header timeout.
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        for stream in &mut slow {
            let mut buffer = [0u8; 1024];
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "slow connections were left open");
    let logs = server.stop();
    assert!(
        !logs.contains("accept failed"),
        "the accept loop failed: {logs}"
    );
}

#[tokio::test]
async fn giant_values_are_refused_before_they_are_read_and_the_server_stays_responsive() {
    ensure_databases();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(
        &dir.path().join("sqlite"),
        &dir.path().join("keys"),
        &[
            ("QUERYGATE_KEYS", KEY_A),
            ("POOL_MAX_CONNECTIONS", "8"),
            ("RUST_LOG", "info"),
        ],
    );
    let client = reqwest::Client::new();
    let cases = [
        (pg_body("test"), "SELECT repeat('x', 300000000) AS big"),
        (sqlite_body("demo"), "SELECT zeroblob(300000000) AS big"),
        (
            mysql_body("qg_big_fx"),
            "SELECT b AS big FROM big WHERE id = 1",
        ),
    ];
    let mut tokens = Vec::new();
    for (connect, _) in &cases {
        let token = server.token_for(connect).await;
        // Warm the pool and the allocator with an ordinary statement.
        let warm = client
            .post(server.url("/api/database/execute"))
            .bearer_auth(&token)
            .json(&json!({"sql": "SELECT 1 AS one"}))
            .send()
            .await
            .expect("warm");
        assert_eq!(warm.status(), 200);
        tokens.push(token);
    }
    let before = server.peak_memory();
    for ((_, sql), token) in cases.iter().zip(&tokens) {
        // Four at once, while another client checks that the server answers.
        let giants = (0..4).map(|_| {
            client
                .post(server.url("/api/database/execute"))
                .bearer_auth(token)
                .json(&json!({"sql": sql}))
                .send()
        });
        let health = async {
            let quick = reqwest::Client::builder()
                .timeout(Duration::from_secs(1))
                .build()
                .expect("client");
            for _ in 0..10 {
                let answer = quick.get(server.url("/api/health")).send().await;
                assert!(
                    answer.is_ok_and(|a| a.status() == 200),
                    "health did not answer within 1 s"
                );
                tokio::task::yield_now().await;
            }
        };
        let (answers, ()) = tokio::join!(futures_util::future::join_all(giants), health);
        for answer in answers {
            let (status, body) = read(answer.expect("answer")).await;
            assert_error(status, &body, 400, "sql_error");
            assert!(
                body["error"]
                    .as_str()
                    .expect("message")
                    .contains("MAX_ROW_BYTES"),
                "{sql}: {body}"
            );
        }
    }
    let growth = server.peak_memory().saturating_sub(before);
    assert!(
        growth < 100 * 1024 * 1024,
        "peak memory grew by {} MB",
        growth / 1024 / 1024
    );
    // Every pool still serves.
    for token in &tokens {
        let answer = client
            .post(server.url("/api/database/execute"))
            .bearer_auth(token)
            .json(&json!({"sql": "SELECT 2 AS two"}))
            .send()
            .await
            .expect("after");
        assert_eq!(answer.status(), 200);
    }
}

#[tokio::test]
async fn value_bombs_from_the_real_postgresql_are_refused_in_bounded_memory() {
    ensure_databases();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(
        &dir.path().join("sqlite"),
        &dir.path().join("keys"),
        &[("QUERYGATE_KEYS", KEY_A), ("RUST_LOG", "info")],
    );
    let client = reqwest::Client::new();
    let token = server.token_for(&pg_body("test")).await;
    // A few bytes on the wire each, gigabytes once decoded without a budget.
    let bombs = [
        "SELECT array_fill(1e131071::numeric, ARRAY[30000]) AS bomb",
        "SELECT ('[' || repeat('[],', 2000000) || '[]]')::json AS bomb",
        "SELECT ('[' || repeat('[],', 2000000) || '[]]')::jsonb AS bomb",
        "SELECT array_fill(NULL::int, ARRAY[2000000]) AS bomb",
    ];
    for sql in bombs {
        let before = server.reset_peak_memory();
        let answer = client
            .post(server.url("/api/database/execute"))
            .bearer_auth(&token)
            .json(&json!({"sql": sql}))
            .send()
            .await
            .expect("answer");
        let (status, body) = read(answer).await;
        assert_error(status, &body, 400, "sql_error");
        assert!(
            body["error"]
                .as_str()
                .unwrap_or_default()
                .contains("MAX_ROW_BYTES"),
            "{sql}: {body}"
        );
        let growth = server.peak_memory().saturating_sub(before);
        assert!(
            growth < 100 * 1024 * 1024,
            "{sql}: peak memory grew by {} MB",
            growth / 1024 / 1024
        );
    }
    let after = client
        .post(server.url("/api/database/execute"))
        .bearer_auth(&token)
        .json(&json!({"sql": "SELECT 2 AS two"}))
        .send()
        .await
        .expect("after");
    assert_eq!(after.status(), 200, "the pool serves on");
}
