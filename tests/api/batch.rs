//! `POST /api/database/batch`: several statements in one read-only snapshot,
//! each with its own result or error, in order; one flight on PostgreSQL.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::proxy::CountingProxy;
use crate::common::*;

async fn batch(app: &TestApp, token: &str, body: &Value) -> (u16, Value) {
    let response = app
        .post_json("/api/database/batch", body, Some(token))
        .await;
    let (status, body) = read(response).await;
    (status.as_u16(), body)
}

#[tokio::test]
async fn three_statements_one_failing_answer_three_entries_in_order_on_every_engine() {
    let app = TestApp::spawn().await;
    for (connect, param) in [
        (pg_body("test"), "$1::int"),
        (mysql_body("test"), "?"),
        (sqlite_body("demo"), "?"),
    ] {
        let token = app.token_for(&connect).await;
        let body = json!({ "statements": [
            { "sql": "SELECT 1 AS one" },
            { "sql": "SELECT * FROM qg_no_such_table" },
            { "sql": format!("SELECT {param} AS two"), "params": [2] },
        ]});
        let (status, answer) = batch(&app, &token, &body).await;
        assert_eq!(status, 200, "{connect}: {answer}");
        let results = answer["results"].as_array().expect("results");
        assert_eq!(results.len(), 3, "{answer}");
        assert_eq!(results[0]["data"], json!([{ "one": 1 }]), "{connect}");
        assert_eq!(results[0]["success"], true);
        assert_eq!(results[1]["success"], false);
        assert_eq!(results[1]["code"], "sql_table_not_found", "{connect}");
        assert_eq!(results[2]["data"], json!([{ "two": 2 }]), "{connect}");
        assert!(answer["elapsedMs"].is_number() && answer["executedAt"].is_string());
    }
}

/// Rows of the snapshot table, counted by the admin connection.
async fn count_rows(engine: &str) -> i64 {
    if engine == "postgresql" {
        pg_admin_scalar("SELECT count(*) FROM qg_batch_snapshot").await
    } else {
        mysql_admin_scalar("SELECT COUNT(*) FROM test.qg_batch_snapshot").await
    }
}

#[tokio::test]
async fn every_statement_of_a_batch_reads_one_snapshot() {
    pg_admin_execute(
        "test",
        "CREATE TABLE IF NOT EXISTS qg_batch_snapshot (id int); DELETE FROM qg_batch_snapshot",
    )
    .await;
    mysql_admin_execute("CREATE TABLE IF NOT EXISTS test.qg_batch_snapshot (id INT) ENGINE=InnoDB")
        .await;
    mysql_admin_execute("DELETE FROM test.qg_batch_snapshot").await;
    let app = TestApp::spawn().await;
    for (connect, table, sleep, running) in [
        (
            pg_body("test"),
            "qg_batch_snapshot",
            "SELECT pg_sleep(2) AS qg_snapshot_marker",
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%qg_snapshot_marker%' \
             AND state = 'active' AND pid <> pg_backend_pid()",
        ),
        (
            mysql_body("test"),
            "test.qg_batch_snapshot",
            "SELECT SLEEP(2) AS qg_snapshot_marker",
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
             WHERE INFO LIKE '%qg_snapshot_marker%' AND ID <> CONNECTION_ID()",
        ),
    ] {
        let engine = connect["dbType"].as_str().expect("engine").to_owned();
        let token = app.token_for(&connect).await;
        let count = format!("SELECT count(*) AS n FROM {table}");
        let body = json!({ "statements": [
            { "sql": count }, { "sql": sleep }, { "sql": count },
        ]});
        let (client, url) = (app.client.clone(), app.url("/api/database/batch"));
        let token_for_task = token.clone();
        let answer = tokio::spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(token_for_task)
                .json(&body)
                .send()
                .await
                .expect("request");
            read(response).await
        });
        // While the middle statement sleeps, another session commits a row.
        let is_pg = engine == "postgresql";
        eventually("the batch sleeps", || async {
            if is_pg {
                pg_admin_scalar(running).await == 1
            } else {
                mysql_admin_scalar(running).await == 1
            }
        })
        .await;
        let before = count_rows(&engine).await;
        if is_pg {
            pg_admin_execute("test", "INSERT INTO qg_batch_snapshot VALUES (1)").await;
        } else {
            mysql_admin_execute("INSERT INTO test.qg_batch_snapshot VALUES (1)").await;
        }
        assert_eq!(count_rows(&engine).await, before + 1, "committed");
        let (status, answer) = answer.await.expect("task");
        assert_eq!(status, 200, "{answer}");
        let first = &answer["results"][0]["data"][0]["n"];
        let last = &answer["results"][2]["data"][0]["n"];
        assert_eq!(first.as_i64(), Some(before), "{engine}: {answer}");
        assert_eq!(first, last, "{engine}: the commit between them is not seen");
    }
}

#[tokio::test]
async fn a_postgres_batch_of_three_is_one_flight() {
    let proxy = CountingProxy::start(5432).await;
    let app = TestApp::spawn_with(|config| config.pool_max_connections = 1).await;
    let mut body = pg_body("test");
    body["port"] = json!(proxy.port);
    let token = app.token_for(&body).await;
    let (status, _) = app.sql(&token, "SELECT 1").await;
    assert_eq!(status, 200);
    let mark = proxy.flights().len();
    let (status, answer) = batch(
        &app,
        &token,
        &json!({ "statements": [
            { "sql": "SELECT 1 AS a" },
            { "sql": "SELECT 1 / 0 AS b" },
            { "sql": "SELECT 3 AS c" },
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"][1]["code"], "sql_error", "{answer}");
    assert_eq!(answer["results"][2]["data"], json!([{ "c": 3 }]));
    let flights = proxy.since(mark);
    assert_eq!(flights.len(), 1, "one flight: {flights:?}");
}

#[tokio::test]
async fn a_batch_streams_as_ndjson_statement_by_statement() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&pg_body("test")).await;
    let response = app
        .client
        .post(app.url("/api/database/batch"))
        .bearer_auth(&token)
        .header("accept", "application/x-ndjson")
        .json(&json!({ "statements": [
            { "sql": "SELECT g FROM generate_series(1, 3) g" },
            { "sql": "SELEC 1" },
        ]}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let text = response.text().await.expect("body");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 1 + 3 + 1 + 1 + 1, "{text}");
    assert_eq!(lines[0]["statement"], 0);
    assert_eq!(lines[0]["columns"], json!(["g"]));
    assert_eq!(lines[1], json!([1]));
    assert_eq!(lines[4]["rowCount"], 3);
    assert_eq!(lines[5]["statement"], 1);
    assert_eq!(lines[5]["error"]["code"], "sql_syntax_error");
    assert_eq!(lines[6]["results"], 2);
}

#[tokio::test]
async fn the_rows_of_a_batch_share_one_size_budget() {
    let app = TestApp::spawn_with(|config| config.max_result_bytes = 64 * 1024).await;
    let token = app.token_for(&pg_body("test")).await;
    let wide = "SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, 100) g";
    let (status, answer) = batch(
        &app,
        &token,
        &json!({ "statements": [{ "sql": wide }, { "sql": wide }, { "sql": "SELECT 1 AS after" }] }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let results = &answer["results"];
    let first = results[0]["rowCount"].as_u64().expect("rows");
    assert!(
        first < 100 && results[0]["truncated"] == true,
        "{}",
        results[0]["rowCount"]
    );
    assert_eq!(results[1]["rowCount"], 0);
    assert_eq!(results[1]["truncated"], true);
    assert_eq!(results[2]["truncated"], true, "nothing left for rows");
}

#[tokio::test]
async fn a_named_batch_can_be_cancelled() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&pg_body("test")).await;
    let (client, url, bearer) = (
        app.client.clone(),
        app.url("/api/database/batch"),
        token.clone(),
    );
    let answer = tokio::spawn(async move {
        let response = client
            .post(url)
            .bearer_auth(bearer)
            .json(&json!({ "queryId": "dash-7", "statements": [
                { "sql": "SELECT 1 AS quick" },
                { "sql": "SELECT pg_sleep(30) AS qg_batch_cancel_marker" },
            ]}))
            .send()
            .await
            .expect("request");
        read(response).await
    });
    eventually("the batch sleeps", || async {
        pg_admin_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%qg_batch_cancel_marker%' \
             AND state = 'active' AND pid <> pg_backend_pid()",
        )
        .await
            == 1
    })
    .await;
    let response = app
        .post_json(
            "/api/database/cancel",
            &json!({ "queryId": "dash-7" }),
            Some(&token),
        )
        .await;
    assert_eq!(response.status(), 200);
    let (status, answer) = tokio::time::timeout(Duration::from_secs(10), answer)
        .await
        .expect("answered once cancelled")
        .expect("task");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"][0]["data"], json!([{ "quick": 1 }]));
    assert_eq!(answer["results"][1]["code"], "sql_cancelled", "{answer}");
}

#[tokio::test]
async fn malformed_batches_are_validation_failures() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&sqlite_body("demo")).await;
    let many: Vec<Value> = (0..33).map(|_| json!({ "sql": "SELECT 1" })).collect();
    for (body, field) in [
        (json!({}), "statements"),
        (json!({ "statements": [] }), "statements"),
        (json!({ "statements": many }), "statements"),
        (
            json!({ "statements": [{ "sql": "SELECT 1" }, { "sql": " " }] }),
            "statements[1].sql",
        ),
        (
            json!({ "statements": [{ "sql": "SELECT 1" }], "maxRows": 0 }),
            "maxRows",
        ),
        (
            json!({ "statements": [{ "sql": "SELECT 1" }], "queryId": "a b" }),
            "queryId",
        ),
    ] {
        let (status, answer) = batch(&app, &token, &body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["code"], "validation_failed", "{answer}");
        assert_eq!(answer["details"]["field"], field, "{answer}");
    }
    let (status, answer) = batch(
        &app,
        &token,
        &json!({ "statements": [{ "sql": "SELECT 1", "param": [] }] }),
    )
    .await;
    assert_eq!(status, 400, "an unknown field of a statement: {answer}");
}
