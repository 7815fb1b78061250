//! Streamed results: past the first 256 KiB an answer is committed and written as
//! the rows come, so its end — the counts, `truncated`, or an error that struck
//! after the first rows — is in the closing part of the body (and, for CSV, in
//! trailers). A client that goes away mid-stream gives the connection back.

use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

use crate::common::*;

/// Rows of about 500 bytes, so that a thousand of them are past the held-back
/// first 256 KiB; the row numbered `fail_at` fails with a division by zero.
fn failing_at_row_1000() -> &'static str {
    "SELECT g, repeat('x', 500) AS pad, 1 / (1000 - g) AS boom FROM generate_series(1, 2000) g"
}

/// Posts `body` to execute with `accept`, returning status, headers' content type
/// and the whole body as text.
async fn execute_as(app: &TestApp, token: &str, body: &Value, accept: &str) -> (u16, String) {
    let response = app
        .client
        .post(app.url("/api/database/execute"))
        .bearer_auth(token)
        .header("accept", accept)
        .json(body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

#[tokio::test]
async fn a_result_past_max_result_bytes_is_streamed_and_ends_truncated() {
    let app = TestApp::spawn_with(|config| config.max_result_bytes = 1024 * 1024).await;
    let token = app.token_for(&pg_body("test")).await;
    let body = json!({
        "sql": "SELECT g, repeat('y', 1000) AS pad FROM generate_series(1, 100000) g",
        "maxRows": 100000,
    });

    let (status, text) = execute_as(&app, &token, &body, "application/json").await;
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_str(&text).expect("a whole JSON document");
    assert_eq!(answer["truncated"], true, "{}", &text[text.len() - 200..]);
    let rows = answer["rowCount"].as_u64().expect("rowCount");
    assert_eq!(answer["data"].as_array().map(Vec::len), Some(rows as usize));
    assert!((500..1100).contains(&rows), "{rows} rows of 1 kB in 1 MiB");
    assert!(text.len() <= 1024 * 1024 + 4096, "{} bytes", text.len());

    let (status, text) = execute_as(&app, &token, &body, "application/x-ndjson").await;
    assert_eq!(status, 200);
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    let last = lines.last().expect("an ending line");
    assert_eq!(last["truncated"], true);
    assert_eq!(last["rowCount"].as_u64(), Some(lines.len() as u64 - 2));
}

#[tokio::test]
async fn a_streamed_csv_carries_its_counts_as_trailers() {
    let app = TestApp::spawn_with(|config| config.max_result_bytes = 1024 * 1024).await;
    let token = app.token_for(&pg_body("test")).await;
    let request = axum::http::Request::post("/api/database/execute")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("accept", "text/csv")
        .body(Body::from(
            json!({
                "sql": "SELECT g, repeat('z', 1000) AS pad FROM generate_series(1, 100000) g",
                "maxRows": 100000,
            })
            .to_string(),
        ))
        .expect("request");
    let response = querygate::app(app.state.clone())
        .oneshot(request)
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["trailer"].to_str().ok(),
        Some("x-row-count, x-truncated")
    );
    let collected = response.into_body().collect().await.expect("body");
    let trailers = collected.trailers().cloned().expect("trailers");
    let text = String::from_utf8(collected.to_bytes().to_vec()).expect("utf-8");
    let records = text.lines().count() - 1;
    assert_eq!(trailers["x-truncated"], "true");
    assert_eq!(trailers["x-row-count"], records.to_string().as_str());
}

#[tokio::test]
async fn an_error_after_the_first_rows_ends_each_format_with_the_error_marker() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&pg_body("test")).await;
    let body = json!({ "sql": failing_at_row_1000(), "maxRows": 5000 });

    let (status, text) = execute_as(&app, &token, &body, "application/json").await;
    assert_eq!(status, 200, "committed before the failure");
    let answer: Value = serde_json::from_str(&text).expect("still a whole JSON document");
    assert_eq!(answer["error"]["code"], "sql_error", "{}", answer["error"]);
    assert_eq!(answer["rowCount"], 999);
    assert_eq!(answer["data"].as_array().map(Vec::len), Some(999));
    assert_eq!(answer["truncated"], false);

    let (status, text) = execute_as(&app, &token, &body, "application/x-ndjson").await;
    assert_eq!(status, 200);
    let last: Value = serde_json::from_str(text.lines().last().expect("lines")).expect("json");
    assert_eq!(last["error"]["code"], "sql_error");
    assert_eq!(last["rowCount"], 999);
    assert_eq!(text.lines().count(), 1 + 999 + 1);

    let (status, text) = execute_as(&app, &token, &body, "text/csv").await;
    assert_eq!(status, 200);
    let last = text.lines().last().expect("lines");
    assert!(last.starts_with("#querygate-error,sql_error,"), "{last}");
    assert!(last.contains("division by zero"), "{last}");
    assert_eq!(text.lines().count(), 1 + 999 + 1);
}

#[tokio::test]
async fn mariadb_and_sqlite_report_a_late_error_the_same_way() {
    let app = TestApp::spawn().await;
    app.sqlite_fixture("late", "sqlite_schema.sql").await;
    let cases = [
        (
            mysql_body("test"),
            // A scalar subquery that yields two rows only on row 1000.
            "SELECT seq, REPEAT('x', 500) AS pad, \
             (SELECT 1 FROM seq_1_to_2 s WHERE t.seq = 1000) AS boom FROM seq_1_to_2000 t",
        ),
        (
            sqlite_body("late"),
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 2000) \
             SELECT n, printf('%.500c', 'x') AS pad, \
             CASE WHEN n = 1000 THEN abs(-9223372036854775807 - 1) END AS boom FROM g",
        ),
    ];
    for (connect, sql) in cases {
        let token = app.token_for(&connect).await;
        let body = json!({ "sql": sql, "maxRows": 5000 });
        let (status, text) = execute_as(&app, &token, &body, "application/json").await;
        assert_eq!(status, 200, "{connect}: {}", &text[..text.len().min(300)]);
        let answer: Value = serde_json::from_str(&text).expect("a whole JSON document");
        assert_eq!(
            answer["error"]["code"], "sql_error",
            "{connect}: {}",
            answer["error"]
        );
        assert_eq!(answer["rowCount"], 999, "{connect}");
    }
}

/// Reads the status line and some body of a streamed answer on a raw socket, then
/// hangs up.
async fn start_and_hang_up(app: &TestApp, token: &str, sql: &str) {
    let body = json!({ "sql": sql, "maxRows": 10_000_000 }).to_string();
    let mut socket = tokio::net::TcpStream::connect(app.address)
        .await
        .expect("connect");
    let request = format!(
        "POST /api/database/execute HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.expect("send");
    let mut seen = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    while seen.len() < 512 * 1024 {
        let read = socket.read(&mut buffer).await.expect("read");
        assert!(read > 0, "the answer ended early");
        seen.extend_from_slice(&buffer[..read]);
    }
    assert!(seen.starts_with(b"HTTP/1.1 200"), "streaming had begun");
    drop(socket);
}

#[tokio::test]
async fn a_client_that_hangs_up_mid_stream_leaves_no_transaction_open() {
    let app = TestApp::spawn_with(|config| config.pool_max_connections = 1).await;
    let token = app.token_for(&pg_body("test")).await;
    let (_, answer) = app.sql(&token, "SELECT pg_backend_pid() AS pid").await;
    let pid = answer["data"][0]["pid"].as_i64().expect("pid");

    start_and_hang_up(
        &app,
        &token,
        "SELECT g, repeat('x', 300) AS pad FROM generate_series(1, 50000000) g",
    )
    .await;
    let busy =
        format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {pid} AND state <> 'idle'");
    eventually("the backend ended its transaction", || async {
        pg_admin_scalar(&busy).await == 0
    })
    .await;
    // One pooled connection: it was given back (or replaced), so this runs.
    let (status, answer) = app.sql(&token, "SELECT 1 AS one").await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn a_mariadb_client_that_hangs_up_mid_stream_leaves_no_transaction_open() {
    let app = TestApp::spawn_with(|config| config.pool_max_connections = 1).await;
    let token = app.token_for(&mysql_body("test")).await;
    let (_, answer) = app.sql(&token, "SELECT CONNECTION_ID() AS id").await;
    let id = answer["data"][0]["id"].as_i64().expect("id");

    start_and_hang_up(
        &app,
        &token,
        "SELECT seq, REPEAT('x', 300) AS pad FROM seq_1_to_50000000",
    )
    .await;
    let busy = format!(
        "SELECT (SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = {id}) \
         + (SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {id} AND COMMAND <> 'Sleep')"
    );
    eventually("the session ended its transaction", || async {
        mysql_admin_scalar(&busy).await == 0
    })
    .await;
    let (status, answer) = app.sql(&token, "SELECT 1 AS one").await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn a_mariadb_result_cut_at_max_rows_stops_the_statement_on_the_server() {
    let app = TestApp::spawn_with(|config| config.statement_timeout_ms = 120_000).await;
    let token = app.token_for(&mysql_body("test")).await;
    let body = json!({
        "sql": "SELECT seq, 'qg-cut-marker' AS m FROM seq_1_to_2000000000",
        "maxRows": 10,
        "timeoutMs": 120_000,
    });
    // Reading the unread rest to its end would last until the statement's own
    // limit (two minutes): the answer must not wait for it.
    let answer = tokio::time::timeout(Duration::from_secs(20), app.execute(&token, &body))
        .await
        .expect("answered without reading the rest of the result");
    let (status, answer) = read(answer).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["truncated"], true);
    // The unread rest is not read to its end: the statement is stopped.
    let running = "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                   WHERE INFO LIKE '%qg-cut-marker%' AND ID <> CONNECTION_ID()";
    eventually("the statement stopped", || async {
        mysql_admin_scalar(running).await == 0
    })
    .await;
}
