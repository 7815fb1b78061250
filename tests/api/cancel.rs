//! Stopping a running statement: `POST /api/database/cancel` from any instance
//! sharing the keys (the database finds the statement by its tag), and a client
//! that hangs up. Either way the statement stops at the database at once, its
//! session ends clean and the pooled connection serves the next request.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::common::*;

/// The statement each case runs: long enough that only a cancel ends it early.
const SLEEP_PG: &str = "SELECT pg_sleep(30) AS qg_cancel_marker";
const SLEEP_MY: &str = "SELECT SLEEP(30) AS qg_cancel_marker";

/// Starts `body` on `app` in the background; the answer's status and body.
fn start(app: &TestApp, token: &str, body: Value) -> tokio::task::JoinHandle<(u16, Value)> {
    let (client, url, token) = (
        app.client.clone(),
        app.url("/api/database/execute"),
        token.to_owned(),
    );
    tokio::spawn(async move {
        let response = client
            .post(url)
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request");
        let (status, body) = read(response).await;
        (status.as_u16(), body)
    })
}

/// Statements still running on the server that carry the marker.
async fn running(engine: &str) -> i64 {
    if engine == "postgresql" {
        pg_admin_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE query LIKE '%qg_cancel_marker%' AND state = 'active' AND pid <> pg_backend_pid()",
        )
        .await
    } else {
        mysql_admin_scalar(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
             WHERE INFO LIKE '%qg_cancel_marker%' AND ID <> CONNECTION_ID()",
        )
        .await
    }
}

async fn cancel(app: &TestApp, token: &str, query_id: &str) -> (u16, Value) {
    let response = app
        .post_json(
            "/api/database/cancel",
            &json!({ "queryId": query_id }),
            Some(token),
        )
        .await;
    let (status, body) = read(response).await;
    (status.as_u16(), body)
}

async fn backend(app: &TestApp, token: &str, engine: &str) -> i64 {
    let sql = if engine == "postgresql" {
        "SELECT pg_backend_pid() AS id"
    } else {
        "SELECT CONNECTION_ID() AS id"
    };
    let (status, answer) = app.sql(token, sql).await;
    assert_eq!(status, 200, "{answer}");
    answer["data"][0]["id"].as_i64().expect("id")
}

#[tokio::test]
async fn a_statement_started_on_one_instance_is_cancelled_through_another() {
    // Two instances with the same keys and no shared store.
    let a = TestApp::spawn_with(|config| config.pool_max_connections = 1).await;
    let b = TestApp::spawn().await;
    for (connect, sleep) in [(pg_body("test"), SLEEP_PG), (mysql_body("test"), SLEEP_MY)] {
        let engine = connect["dbType"].as_str().expect("engine").to_owned();
        let token = a.token_for(&connect).await;
        let before = backend(&a, &token, &engine).await;
        let query_id = format!("{engine}-9f1c2d");
        let answer = start(&a, &token, json!({ "sql": sleep, "queryId": query_id }));
        eventually("the statement runs", || async {
            running(&engine).await == 1
        })
        .await;

        let (status, body) = cancel(&b, &token, &query_id).await;
        assert_eq!(status, 200, "{engine}: {body}");
        assert_eq!(
            body,
            json!({"success": true, "queryId": query_id, "cancelled": true})
        );

        // Well before the statement's own 30 s: the bound only keeps a failure short.
        let (status, body) = tokio::time::timeout(Duration::from_secs(10), answer)
            .await
            .expect("answered once cancelled")
            .expect("task");
        assert_error(
            axum::http::StatusCode::from_u16(status).expect("status"),
            &body,
            409,
            "sql_cancelled",
        );
        // The answer comes first; the session's cleanup follows it.
        eventually("nothing left running", || async {
            running(&engine).await == 0
        })
        .await;
        // The one pooled connection ended its session clean and serves again.
        assert_eq!(backend(&a, &token, &engine).await, before, "{engine}");
    }
}

#[tokio::test]
async fn only_the_same_chain_can_cancel_and_an_unknown_id_is_not_found() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&pg_body("test")).await;
    let answer = start(
        &app,
        &token,
        json!({ "sql": SLEEP_PG, "queryId": "report-42" }),
    );
    eventually("the statement runs", || async {
        running("postgresql").await == 1
    })
    .await;

    // Other credentials, and another connect with the same ones: another chain.
    let mut other_role = pg_body("test");
    other_role["username"] = json!(SECRET_USER);
    other_role["password"] = json!(SECRET_PASSWORD);
    let strangers = [
        app.token_for(&other_role).await,
        app.token_for(&pg_body("test")).await,
    ];
    for stranger in &strangers {
        let (status, body) = cancel(&app, stranger, "report-42").await;
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("query_not_found")),
            "{body}"
        );
    }
    let (status, body) = cancel(&app, &token, "report-43").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("query_not_found")),
        "{body}"
    );
    assert_eq!(running("postgresql").await, 1, "still running");

    let (status, _) = cancel(&app, &token, "report-42").await;
    assert_eq!(status, 200);
    let (status, body) = answer.await.expect("task");
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("sql_cancelled"))
    );
}

#[tokio::test]
async fn a_query_id_must_be_plain_and_cancel_needs_one() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&sqlite_body("demo")).await;
    for bad in [json!(""), json!("a b"), json!("x".repeat(129)), json!("é")] {
        let (status, body) = read(
            app.execute(&token, &json!({ "sql": "SELECT 1", "queryId": bad }))
                .await,
        )
        .await;
        assert_error(status, &body, 400, "validation_failed");
        assert_eq!(body["details"]["field"], "queryId");
    }
    let response = app
        .post_json("/api/database/cancel", &json!({}), Some(&token))
        .await;
    let (status, body) = read(response).await;
    assert_error(status, &body, 400, "validation_failed");
    let response = app
        .post_json("/api/database/cancel", &json!({ "queryId": "q" }), None)
        .await;
    let (status, body) = read(response).await;
    assert_error(status, &body, 401, "token_missing");
}

#[tokio::test]
async fn sqlite_statements_are_cancelled_on_the_instance_that_runs_them() {
    let a = TestApp::spawn().await;
    let b = TestApp::spawn().await;
    let token = a.token_for(&sqlite_body("demo")).await;
    // Counts forever, until its limit or a cancel.
    let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
                   SELECT count(*) FROM c";
    let answer = start(
        &a,
        &token,
        json!({ "sql": endless, "queryId": "lite-1", "timeoutMs": 30_000 }),
    );
    let mut cancelled = false;
    for _ in 0..200 {
        // Another instance does not run it.
        let (status, _) = cancel(&b, &token, "lite-1").await;
        assert_eq!(status, 404);
        let (status, _) = cancel(&a, &token, "lite-1").await;
        if status == 200 {
            cancelled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(cancelled, "found on the instance running it");
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), answer)
        .await
        .expect("answered once cancelled")
        .expect("task");
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("sql_cancelled")),
        "{body}"
    );
}

#[tokio::test]
async fn a_client_that_hangs_up_frees_the_backend_at_once() {
    let app = TestApp::spawn_with(|config| {
        config.pool_max_connections = 1;
        config.statement_timeout_ms = 120_000;
    })
    .await;
    for (connect, sleep) in [(pg_body("test"), SLEEP_PG), (mysql_body("test"), SLEEP_MY)] {
        let engine = connect["dbType"].as_str().expect("engine").to_owned();
        let token = app.token_for(&connect).await;
        let before = backend(&app, &token, &engine).await;
        let body = json!({ "sql": sleep }).to_string();
        let mut socket = tokio::net::TcpStream::connect(app.address)
            .await
            .expect("connect");
        let request = format!(
            "POST /api/database/execute HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(request.as_bytes()).await.expect("send");
        eventually("the statement runs", || async {
            running(&engine).await == 1
        })
        .await;
        drop(socket);
        // `eventually` gives up after 15 s, half the statement's own 30 s.
        eventually(
            "the statement stopped when the client went away",
            || async { running(&engine).await == 0 },
        )
        .await;
        assert_eq!(
            backend(&app, &token, &engine).await,
            before,
            "{engine}: reused"
        );
    }
}
