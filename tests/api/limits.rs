//! One client cannot take the instance: connections and requests are capped,
//! slow clients are cut off, and the instance keeps serving everyone else.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::process::ServerProcess;
use crate::common::*;

#[tokio::test]
async fn requests_over_the_cap_are_overloaded_while_health_is_served_and_ready_says_so() {
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
    for path in ["/api/health", "/health"] {
        assert_eq!(app.get(path, None).await.status(), 200, "{path}");
    }
    // Readiness tells a load balancer to send requests elsewhere meanwhile.
    let (status, body) = read(app.get("/api/ready", None).await).await;
    assert_error(status, &body, 503, "overloaded");
    assert_eq!(slow.await.expect("join").status(), 200);
    assert_eq!(app.get("/api/ready", None).await.status(), 200);
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

/// Opens a connection from `ip` and sends a request head announcing a body of
/// 1,000,000 bytes, and the body's first byte.
async fn dribbler(address: std::net::SocketAddr, ip: &str) -> Option<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind(format!("{ip}:0").parse().ok()?).ok()?;
    let mut stream = tokio::time::timeout(Duration::from_secs(5), socket.connect(address))
        .await
        .ok()?
        .ok()?;
    stream
        .write_all(b"POST /api/database/connect HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{")
        .await
        .ok()?;
    Some(stream)
}

#[tokio::test]
async fn a_dribbled_body_is_cut_at_the_total_body_time_however_slowly_it_trickles() {
    let app = TestApp::spawn_with(|config| config.http_body_timeout_ms = 1_000).await;
    let mut stream = dribbler(app.address, "127.0.0.1").await.expect("connected");
    // One byte every 200 ms would keep an idle timer of 1 s alive for ever; the
    // body's total time ends it. The whole body would take 55 hours.
    let mut answer = Vec::new();
    let cut = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let mut buffer = [0u8; 4096];
            tokio::select! {
                read = stream.read(&mut buffer) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => answer.extend_from_slice(&buffer[..n]),
                },
                () = tokio::time::sleep(Duration::from_millis(200)) => {
                    if stream.write_all(b" ").await.is_err() {
                        return;
                    }
                }
            }
        }
    })
    .await;
    assert!(cut.is_ok(), "the dribbled body was never cut off");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
}

#[tokio::test]
async fn slow_bodies_from_two_addresses_hold_no_place_a_third_address_needs() {
    // The defaults (512 places, 256 connections per address), bodies cut at 5 s
    // so that the dribblers come back during the run.
    let app = TestApp::spawn_with(|config| config.http_body_timeout_ms = 5_000).await;
    let address = app.address;
    let dribblers = tokio::spawn(async move {
        let mut streams = Vec::new();
        for ip in ["127.0.0.2", "127.0.0.3"] {
            for _ in 0..256 {
                streams.extend(dribbler(address, ip).await);
            }
        }
        let opened = streams.len();
        // Each sends one more byte every second, reconnecting when cut off.
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            for (i, stream) in streams.iter_mut().enumerate() {
                if stream.write_all(b" ").await.is_err() {
                    let ip = if i < 256 { "127.0.0.2" } else { "127.0.0.3" };
                    if let Some(fresh) = dribbler(address, ip).await {
                        *stream = fresh;
                    }
                }
            }
        }
        opened
    });
    let third = reqwest::Client::builder()
        .local_address("127.0.0.4".parse::<std::net::IpAddr>().ok())
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let mut answered = 0;
    while !dribblers.is_finished() {
        let status = third.get(app.url("/api/database/status")).send().await;
        assert!(
            status.as_ref().is_ok_and(|r| r.status() == 200),
            "a third address waited or was refused: {status:?}"
        );
        answered += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        dribblers.await.expect("dribblers"),
        512,
        "every dribbler connected"
    );
    assert!(
        answered >= 40,
        "the third address was served throughout ({answered})"
    );
    assert_eq!(app.get("/api/ready", None).await.status(), 200);
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
