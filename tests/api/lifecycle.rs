//! An instance says who it is on every answer, tells a load balancer when it is
//! ready, and drains on SIGTERM without failing a request in flight.

use std::time::Duration;

use serde_json::json;

use crate::common::process::ServerProcess;
use crate::common::*;

#[tokio::test]
async fn every_kind_of_answer_says_which_instance_served_it() {
    let app = TestApp::spawn_with(|config| {
        config.instance = Some("qg-test-instance-7".into());
        config.max_body_bytes = 64;
    })
    .await;
    let token = app.token_for(&sqlite_body("demo")).await;
    let client = &app.client;
    let responses = vec![
        app.get("/api/health", None).await,
        app.get("/api/ready", None).await,
        app.get("/no/such/route", None).await,
        client
            .delete(app.url("/api/health"))
            .send()
            .await
            .expect("405"),
        app.get("/api/database/schema", None).await,
        app.get("/api/database/schema", Some("not-a-token")).await,
        app.connect(&json!({"dbType": "nope"})).await,
        client
            .post(app.url("/api/database/connect"))
            .header("content-type", "application/json")
            .body("x".repeat(1000))
            .send()
            .await
            .expect("413"),
        app.execute(&token, &json!({"sql": "SELECT 1"})).await,
        app.execute(&token, &json!({"sql": "DELETE FROM customers"}))
            .await,
        client
            .request(reqwest::Method::OPTIONS, app.url("/api/database/execute"))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .send()
            .await
            .expect("preflight"),
    ];
    for response in responses {
        let (status, url) = (response.status(), response.url().path().to_owned());
        assert_eq!(
            response
                .headers()
                .get("x-served-by")
                .map(|v| v.to_str().expect("ascii")),
            Some("qg-test-instance-7"),
            "{status} {url}"
        );
    }
}

#[tokio::test]
async fn the_instance_name_falls_back_to_the_host_name() {
    let app = TestApp::spawn().await;
    let response = app.get("/api/health", None).await;
    let name = response.headers()["x-served-by"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(!name.is_empty());
    assert_eq!(name, querygate::lifecycle::instance_name(None));
}

#[tokio::test]
async fn sigterm_turns_the_instance_not_ready_refuses_new_connections_and_finishes_the_request_in_flight()
 {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = ServerProcess::start(
        &dir.path().join("sqlite"),
        &dir.path().join("keys"),
        &[
            ("QUERYGATE_KEYS", KEY_A),
            ("SHUTDOWN_GRACE_MS", "15000"),
            ("HTTP_HEADER_TIMEOUT_MS", "3000"),
        ],
    );
    let kept_alive = reqwest::Client::new();
    let token = {
        let response = kept_alive
            .post(server.url("/api/database/connect"))
            .json(&pg_body("test"))
            .send()
            .await
            .expect("connect");
        let body: serde_json::Value = response.json().await.expect("json");
        body["token"].as_str().expect("token").to_owned()
    };
    let ready = kept_alive
        .get(server.url("/api/ready"))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status(), 200);

    // A request in flight when SIGTERM arrives, on a connection of its own.
    let (url, bearer) = (server.url("/api/database/execute"), token.clone());
    let in_flight = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .bearer_auth(bearer)
            .json(&json!({"sql": "SELECT pg_sleep(2) /* qg-drain-marker */, 1 AS done"}))
            .send()
            .await
            .expect("in flight")
    });
    let running = "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%qg-drain-marker%' AND pid <> pg_backend_pid()";
    tokio::time::timeout(Duration::from_secs(10), async {
        while pg_admin_scalar(running).await == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the statement started");

    server.terminate();
    // The kept-alive connection still gets an answer: not ready, and close.
    let mut answer = None;
    for _ in 0..200 {
        let response = kept_alive
            .get(server.url("/api/ready"))
            .send()
            .await
            .expect("ready after SIGTERM");
        if response.status() == 503 {
            answer = Some(response);
            break;
        }
        tokio::task::yield_now().await;
    }
    let response = answer.expect("ready turned 503");
    assert_eq!(response.headers()["connection"], "close");
    let (status, body) = read(response).await;
    assert_error(status, &body, 503, "not_ready");
    // A new connection is refused at once.
    let fresh = reqwest::Client::new()
        .get(server.url("/api/health"))
        .send()
        .await;
    assert!(
        fresh.is_err(),
        "a new connection was accepted while draining"
    );

    let response = in_flight.await.expect("join");
    let (status, body) = read(response).await;
    assert_eq!(status, 200, "the request in flight finished: {body}");
    assert_eq!(body["data"][0]["done"], 1);
    assert_eq!(
        server.wait_exit(Duration::from_secs(15)),
        Some(0),
        "exit code"
    );
}

#[tokio::test]
async fn one_worker_thread_serves_every_engine_and_drains_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = ServerProcess::start(
        &dir.path().join("sqlite"),
        &dir.path().join("keys"),
        &[("QUERYGATE_KEYS", KEY_A), ("TOKIO_WORKER_THREADS", "1")],
    );
    assert!(
        server.logs().contains("threads=1") || server.logs().contains(r#""threads":1"#),
        "the start-up log names one thread: {}",
        server.logs()
    );
    let client = reqwest::Client::new();
    for body in [pg_body("test"), mysql_body("test"), sqlite_body("demo")] {
        let token = server.token_for(&body).await;
        let response = client
            .post(server.url("/api/database/execute"))
            .bearer_auth(&token)
            .json(&json!({"sql": "SELECT 1 AS one"}))
            .send()
            .await
            .expect("execute");
        let (status, answer) = read(response).await;
        assert_eq!(status, 200, "{body}: {answer}");
        assert_eq!(answer["rowCount"], 1, "{body}: {answer}");
    }
    server.terminate();
    assert_eq!(server.wait_exit(Duration::from_secs(20)), Some(0));
}

#[test]
fn a_worker_thread_count_that_is_not_one_to_1024_is_refused_at_start() {
    for value in ["0", "-1", "two", "1025", ""] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_querygate"))
            .env_clear()
            .env("TOKIO_WORKER_THREADS", value)
            .env("PORT", "0")
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{value:?} was accepted");
        assert!(
            stderr.contains("--worker-threads") && !stderr.contains("panicked"),
            "{value:?}: {stderr}"
        );
    }
}
