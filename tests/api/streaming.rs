//! Streamed results: past the first 256 KiB an answer is committed and written as
//! the rows come, so its end — the counts, `truncated`, or an error that struck
//! after the first rows — is in the closing part of the body (and, for CSV, in
//! trailers). An error after the first rows also aborts the transfer, so that no
//! client takes the result for a whole one. CSV and NDJSON exports have their own
//! caps, and every answer says in its headers which row cap applied. A client
//! that goes away mid-stream gives the connection back.

use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

use crate::common::*;

/// Rows of about 500 bytes, so that a thousand of them are past the held-back
/// first 256 KiB; the row numbered 1000 fails with a division by zero.
fn failing_at_row_1000() -> &'static str {
    "SELECT g, repeat('x', 500) AS pad, 1 / (1000 - g) AS boom FROM generate_series(1, 2000) g"
}

/// What a client reading a whole answer got.
struct Received {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
    /// The transfer failed before its end (the server aborted it).
    aborted: bool,
}

/// Posts `body` to execute with `accept` and reads the answer to its end, or to
/// the failure of its transfer.
async fn execute_as(app: &TestApp, token: &str, body: &Value, accept: &str) -> Received {
    let mut response = app
        .client
        .post(app.url("/api/database/execute"))
        .bearer_auth(token)
        .header("accept", accept)
        .json(body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut bytes = Vec::new();
    let aborted = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    let text = String::from_utf8(bytes).expect("utf-8");
    Received {
        status,
        headers,
        text,
        aborted,
    }
}

fn header<'a>(received: &'a Received, name: &str) -> Option<&'a str> {
    received.headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn a_result_past_max_result_bytes_is_streamed_and_ends_truncated() {
    let app = TestApp::spawn_with(|config| {
        config.max_result_bytes = 1024 * 1024;
        config.max_export_bytes = 1024 * 1024;
    })
    .await;
    let token = app.token_for(&pg_body("test")).await;
    let body = json!({
        "sql": "SELECT g, repeat('y', 1000) AS pad FROM generate_series(1, 100000) g",
        "maxRows": 100000,
    });

    let got = execute_as(&app, &token, &body, "application/json").await;
    assert_eq!((got.status, got.aborted), (200, false));
    let text = got.text;
    let answer: Value = serde_json::from_str(&text).expect("a whole JSON document");
    assert_eq!(answer["truncated"], true, "{}", &text[text.len() - 200..]);
    let rows = answer["rowCount"].as_u64().expect("rowCount");
    assert_eq!(answer["data"].as_array().map(Vec::len), Some(rows as usize));
    assert!((500..1100).contains(&rows), "{rows} rows of 1 kB in 1 MiB");
    assert!(text.len() <= 1024 * 1024 + 4096, "{} bytes", text.len());

    let got = execute_as(&app, &token, &body, "application/x-ndjson").await;
    assert_eq!((got.status, got.aborted), (200, false));
    let lines: Vec<Value> = got
        .text
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    let last = lines.last().expect("an ending line");
    assert_eq!(last["truncated"], true);
    assert_eq!(last["rowCount"].as_u64(), Some(lines.len() as u64 - 2));
}

#[tokio::test]
async fn a_streamed_csv_carries_its_counts_as_trailers_and_its_truncation_in_the_body() {
    let app = TestApp::spawn_with(|config| config.max_export_bytes = 1024 * 1024).await;
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
    let last = text.lines().last().expect("lines");
    let records = text.lines().count() - 2;
    assert!(
        last.starts_with(&format!("#querygate-truncated,{records},")),
        "the body says it was cut short: {last}"
    );
    assert!(last.contains("x-row-limit"), "{last}");
    assert_eq!(trailers["x-truncated"], "true");
    assert_eq!(trailers["x-row-count"], records.to_string().as_str());
}

#[tokio::test]
async fn an_error_after_the_first_rows_is_written_then_aborts_the_transfer_in_each_format() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&pg_body("test")).await;
    let body = json!({ "sql": failing_at_row_1000(), "maxRows": 5000 });

    let got = execute_as(&app, &token, &body, "application/json").await;
    assert_eq!(got.status, 200, "committed before the failure");
    assert!(got.aborted, "the transfer fails");
    let answer: Value = serde_json::from_str(&got.text).expect("still a whole JSON document");
    assert_eq!(answer["error"]["code"], "sql_error", "{}", answer["error"]);
    assert_eq!(answer["rowCount"], 999);
    assert_eq!(answer["data"].as_array().map(Vec::len), Some(999));
    assert_eq!(answer["truncated"], false);

    let got = execute_as(&app, &token, &body, "application/x-ndjson").await;
    assert_eq!((got.status, got.aborted), (200, true));
    let last: Value = serde_json::from_str(got.text.lines().last().expect("lines")).expect("json");
    assert_eq!(last["error"]["code"], "sql_error");
    assert_eq!(last["rowCount"], 999);
    assert_eq!(got.text.lines().count(), 1 + 999 + 1);

    let got = execute_as(&app, &token, &body, "text/csv").await;
    assert_eq!((got.status, got.aborted), (200, true));
    let last = got.text.lines().last().expect("lines");
    assert!(last.starts_with("#querygate-error,sql_error,"), "{last}");
    assert!(last.contains("division by zero"), "{last}");
    assert_eq!(got.text.lines().count(), 1 + 999 + 1);

    // A result that ends well is not aborted.
    let whole =
        json!({ "sql": "SELECT g, repeat('x', 500) AS pad FROM generate_series(1, 2000) g" });
    let got = execute_as(&app, &token, &whole, "text/csv").await;
    assert_eq!((got.status, got.aborted), (200, false));
    assert_eq!(got.text.lines().count(), 1 + 2000);
}

#[tokio::test]
async fn an_aborted_http1_body_lacks_its_last_chunk_after_the_marker() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&pg_body("test")).await;
    let body = json!({ "sql": failing_at_row_1000(), "maxRows": 5000 }).to_string();
    let mut socket = tokio::net::TcpStream::connect(app.address)
        .await
        .expect("connect");
    let request = format!(
        "POST /api/database/execute HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
         accept: text/csv\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.expect("send");
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), socket.read_to_end(&mut seen))
        .await
        .expect("the server closes the connection")
        .expect("read");
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 200"), "{}", &text[..100]);
    assert!(text.contains("transfer-encoding: chunked"));
    assert!(
        text.contains("#querygate-error,sql_error,"),
        "the marker arrived"
    );
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "no last chunk: {:?}",
        &text[text.len().saturating_sub(80)..]
    );
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
        for accept in ["application/json", "text/csv"] {
            let got = execute_as(&app, &token, &body, accept).await;
            assert_eq!(
                (got.status, got.aborted),
                (200, true),
                "{connect} {accept}: {}",
                &got.text[..got.text.len().min(300)]
            );
            if accept == "text/csv" {
                let last = got.text.lines().last().expect("lines");
                assert!(last.starts_with("#querygate-error,sql_error,"), "{last}");
                continue;
            }
            let answer: Value = serde_json::from_str(&got.text).expect("a whole JSON document");
            assert_eq!(
                answer["error"]["code"], "sql_error",
                "{connect}: {}",
                answer["error"]
            );
            assert_eq!(answer["rowCount"], 999, "{connect}");
        }
    }
}

#[tokio::test]
async fn an_export_returns_every_row_it_asks_for_past_max_rows_and_headers_say_the_cap() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&pg_body("test")).await;
    let body = json!({
        "sql": "SELECT g FROM generate_series(1, 100000) g",
        "maxRows": 100000,
    });

    let got = execute_as(&app, &token, &body, "text/csv").await;
    assert_eq!((got.status, got.aborted), (200, false));
    assert_eq!(got.text.lines().count(), 1 + 100_000, "every row");
    assert_eq!(got.text.lines().last(), Some("100000"));
    assert_eq!(header(&got, "x-row-limit"), Some("100000"));
    assert_eq!(header(&got, "x-row-limit-lowered-from"), None);

    let got = execute_as(&app, &token, &body, "application/x-ndjson").await;
    assert_eq!(got.text.lines().count(), 1 + 100_000 + 1);

    // JSON answers stop at MAX_ROWS (10,000 by default), and say so.
    let got = execute_as(&app, &token, &body, "application/json").await;
    assert_eq!((got.status, got.aborted), (200, false));
    let answer: Value = serde_json::from_str(&got.text).expect("json");
    assert_eq!(answer["rowCount"], 10_000);
    assert_eq!(answer["truncated"], true);
    assert_eq!(header(&got, "x-row-limit"), Some("10000"));
    assert_eq!(header(&got, "x-row-limit-lowered-from"), Some("100000"));

    // Without maxRows, JSON gets 1,000 rows and an export every row.
    let all = json!({ "sql": "SELECT g FROM generate_series(1, 100000) g" });
    let got = execute_as(&app, &token, &all, "application/json").await;
    assert_eq!(header(&got, "x-row-limit"), Some("1000"));
    let got = execute_as(&app, &token, &all, "text/csv").await;
    assert_eq!(got.text.lines().count(), 1 + 100_000);
    assert_eq!(header(&got, "x-row-limit"), Some("1000000"));
}

#[tokio::test]
async fn an_export_past_max_export_rows_ends_with_the_truncated_record_and_says_the_cap() {
    let app = TestApp::spawn_with(|config| config.max_export_rows = 50_000).await;
    let token = app.token_for(&pg_body("test")).await;
    let asked = json!({
        "sql": "SELECT g FROM generate_series(1, 60000) g",
        "maxRows": 60000,
    });
    let got = execute_as(&app, &token, &asked, "text/csv").await;
    assert_eq!((got.status, got.aborted), (200, false));
    assert_eq!(header(&got, "x-row-limit"), Some("50000"));
    assert_eq!(header(&got, "x-row-limit-lowered-from"), Some("60000"));
    let lines: Vec<&str> = got.text.lines().collect();
    assert_eq!(lines.len(), 1 + 50_000 + 1);
    assert!(
        lines[lines.len() - 1].starts_with("#querygate-truncated,50000,"),
        "{}",
        lines[lines.len() - 1]
    );

    // A small truncated CSV (sent whole) says it in its body too, and its headers.
    let small = json!({ "sql": "SELECT g FROM generate_series(1, 10) g", "maxRows": 3 });
    let got = execute_as(&app, &token, &small, "text/csv").await;
    assert_eq!(header(&got, "x-truncated"), Some("true"));
    assert_eq!(header(&got, "x-row-count"), Some("3"));
    let lines: Vec<&str> = got.text.lines().collect();
    assert_eq!(lines[..4], ["g", "1", "2", "3"]);
    assert!(
        lines[4].starts_with("#querygate-truncated,3,"),
        "{}",
        lines[4]
    );
    assert_eq!(lines.len(), 5);
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
