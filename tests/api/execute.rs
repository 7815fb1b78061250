//! `POST /api/database/execute`: row caps, time limits, parameters, layouts, CSV
//! and validation.

use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn row_cap_reads_one_past_and_reports_truncated() {
    let app = TestApp::spawn().await;
    for (connect, sql) in [
        (
            pg_body("test"),
            "SELECT g FROM generate_series(1, 100000) g",
        ),
        (mysql_body("test"), "SELECT seq FROM seq_1_to_100000"),
        (
            sqlite_body("demo"),
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 100000) SELECT x FROM c",
        ),
    ] {
        let token = app.token_for(&connect).await;
        let (status, body) = read(
            app.execute(&token, &json!({"sql": sql, "maxRows": 10}))
                .await,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["rowCount"], 10);
        assert_eq!(body["truncated"], true);
        assert_eq!(body["data"].as_array().expect("data").len(), 10);
        // The pool stays usable after a half-read result.
        let (status, body) = app.sql(&token, "SELECT 1 AS one").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"], json!([{"one": 1}]));
    }
}

#[tokio::test]
async fn exactly_max_rows_rows_is_not_truncated() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&pg_body("test")).await;
    let body = json!({"sql": "SELECT g FROM generate_series(1, 5) g", "maxRows": 5});
    let (_, answer) = read(app.execute(&token, &body).await).await;
    assert_eq!(answer["rowCount"], 5);
    assert_eq!(answer["truncated"], false);
}

#[tokio::test]
async fn max_rows_above_the_server_maximum_is_lowered_to_it() {
    let app = TestApp::spawn_with(|config| config.max_rows = 3).await;
    let token = app.token_for(&sqlite_body("demo")).await;
    let body = json!({"sql": "SELECT customerNumber FROM customers", "maxRows": 1000000});
    let (status, answer) = read(app.execute(&token, &body).await).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["rowCount"], 3);
    assert_eq!(answer["truncated"], true);
}

/// Runs `sql` with a 300 ms limit and asserts a prompt 408 `sql_timeout`.
async fn assert_times_out(app: &TestApp, token: &str, sql: &str) {
    let started = Instant::now();
    let body = json!({"sql": sql, "timeoutMs": 300});
    let (status, answer) = read(app.execute(token, &body).await).await;
    assert_error(status, &answer, 408, "sql_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered promptly"
    );
}

#[tokio::test]
async fn postgres_and_mariadb_timeouts_cancel_the_statement_on_the_server() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            pg_body("test"),
            "SELECT pg_sleep(30) /* qg-timeout-marker-pg */",
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%qg-timeout-marker-pg%' AND pid <> pg_backend_pid()",
        ),
        (
            mysql_body("test"),
            "SELECT SLEEP(30) AS s, 'qg-timeout-marker-my' AS m FROM seq_1_to_2",
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE '%qg-timeout-marker-my%' AND ID <> CONNECTION_ID()",
        ),
    ];
    for (connect, sql, running) in cases {
        let token = app.token_for(&connect).await;
        assert_times_out(&app, &token, sql).await;
        let still = if connect["dbType"] == "postgresql" {
            pg_admin_scalar(running).await
        } else {
            mysql_admin_scalar(running).await
        };
        assert_eq!(still, 0, "the statement still runs on the server: {sql}");
    }
}

#[tokio::test]
async fn postgres_sessions_start_with_the_server_limit_and_keep_it() {
    // No timeoutMs: the limit is the session's own, set when it started.
    let app = TestApp::spawn_with(|config| {
        config.statement_timeout_ms = 300;
        config.pool_max_connections = 1;
    })
    .await;
    let token = app.token_for(&pg_body("test")).await;
    let (status, answer) = app.sql(&token, "SELECT pg_sleep(30)").await;
    assert_error(status, &answer, 408, "sql_timeout");
    for lift in [
        "SET statement_timeout = 0",
        "SELECT set_config('statement_timeout', '0', false)",
    ] {
        let (status, answer) = app.sql(&token, lift).await;
        assert_eq!(status, 200, "{answer}");
        // The same (only) pooled session: the lifted limit did not outlive its request.
        let (status, answer) = app.sql(&token, "SELECT pg_sleep(30)").await;
        assert_error(status, &answer, 408, "sql_timeout");
    }
}

#[tokio::test]
async fn sqlite_timeout_interrupts_a_runaway_query() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&sqlite_body("demo")).await;
    let sql =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
    assert_times_out(&app, &token, sql).await;
}

#[tokio::test]
async fn parameters_are_bound_not_spliced() {
    let app = TestApp::spawn().await;
    for (connect, sql) in [
        (
            pg_body("test"),
            "SELECT $1::text AS t, $2::int8 AS i, $3::float8 AS f, $4::bool AS b, $5::text AS n",
        ),
        (
            mysql_body("test"),
            "SELECT ? AS t, ? AS i, ? AS f, ? AS b, ? AS n",
        ),
        (
            sqlite_body("demo"),
            "SELECT ?1 AS t, ?2 AS i, ?3 AS f, ?4 AS b, ?5 AS n",
        ),
    ] {
        let token = app.token_for(&connect).await;
        let params = json!(["'; DROP TABLE x; --", 42, 1.25, true, null]);
        let (status, body) = read(
            app.execute(&token, &json!({"sql": sql, "params": params}))
                .await,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let row = &body["data"][0];
        assert_eq!(row["t"], "'; DROP TABLE x; --");
        assert_eq!(row["i"], 42);
        assert_eq!(row["f"], 1.25);
        assert!(
            row["b"] == json!(true) || row["b"] == json!(1),
            "{}",
            row["b"]
        );
        assert_eq!(row["n"], Value::Null);
    }
}

#[tokio::test]
async fn another_engines_placeholder_style_gets_a_hint_naming_this_ones() {
    let app = TestApp::spawn().await;
    for (connect, sql, params, code, style) in [
        (
            pg_body("test"),
            "SELECT ? AS a",
            json!([1]),
            "sql_syntax_error",
            "$1, $2",
        ),
        (
            pg_body("test"),
            "SELECT ?::int AS a",
            json!([]),
            "sql_syntax_error",
            "$1, $2",
        ),
        (
            mysql_body("test"),
            "SELECT $1 AS a",
            json!([1]),
            "sql_column_not_found",
            "write ? for each",
        ),
        (
            mysql_body("test"),
            "SELECT a FROM (SELECT 1 AS a) t WHERE a = $1",
            json!([]),
            "sql_column_not_found",
            "write ? for each",
        ),
    ] {
        let token = app.token_for(&connect).await;
        let (status, body) = read(
            app.execute(&token, &json!({"sql": sql, "params": params}))
                .await,
        )
        .await;
        assert_error(status, &body, 400, code);
        let hint = body["details"]["hint"].as_str().unwrap_or_default();
        assert!(hint.contains(style), "{sql} on {connect}: {body}");
    }
    // The right style, or a `?` inside a string, gets no such hint.
    let token = app.token_for(&pg_body("test")).await;
    let (status, body) = read(
        app.execute(
            &token,
            &json!({"sql": "SELECT '?' AS a FROM nowhere_at_all"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["details"].get("hint").is_none(), "{body}");
}

#[tokio::test]
async fn arrays_layout_keeps_duplicate_column_names() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&pg_body("test")).await;
    let response = app
        .client
        .post(app.url("/api/database/execute?format=arrays"))
        .bearer_auth(&token)
        .json(&json!({"sql": "SELECT 1 AS a, 2 AS a"}))
        .send()
        .await
        .expect("request");
    let (status, body) = read(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["columns"], json!(["a", "a"]));
    assert_eq!(body["rows"], json!([[1, 2]]));
    assert!(body.get("data").is_none());
}

#[tokio::test]
async fn csv_is_served_on_accept_text_csv() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&pg_body("test")).await;
    let response = app
        .client
        .post(app.url("/api/database/execute"))
        .bearer_auth(&token)
        .header("accept", "text/csv")
        .json(&json!({"sql": "SELECT 1 AS id, 'a,b \"c\"' AS name, NULL::text AS empty, '{\"k\": 1}'::jsonb AS j"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/csv")
    );
    assert_eq!(response.headers()["x-row-count"], "1");
    let text = response.text().await.expect("body");
    assert_eq!(
        text,
        "id,name,empty,j\n1,\"a,b \"\"c\"\"\",,\"{\"\"k\"\":1}\"\n"
    );
}

#[tokio::test]
async fn csv_cells_that_a_spreadsheet_would_run_are_neutralised_unless_raw_is_asked() {
    let app = TestApp::spawn().await;
    let sql = "SELECT '=HYPERLINK(''http://x'')' AS \"=f\", '+1+1' AS p, '-2' AS m, '@SUM(A1)' AS a, \
               chr(9) || 'x' AS t, -2 AS n, 'a=1' AS plain";
    for (engine, connect) in [
        ("PostgreSQL", pg_body("test")),
        ("MariaDB", mysql_body("test")),
    ] {
        let token = app.token_for(&connect).await;
        let sql = if engine == "MariaDB" {
            sql.replace("chr(9) || 'x'", "CONCAT(CHAR(9 USING utf8mb4), 'x')")
                .replace('"', "`")
        } else {
            sql.to_owned()
        };
        let mut texts = Vec::new();
        for query in ["", "?csv=raw"] {
            let response = app
                .client
                .post(app.url(&format!("/api/database/execute{query}")))
                .bearer_auth(&token)
                .header("accept", "text/csv")
                .json(&json!({ "sql": sql }))
                .send()
                .await
                .expect("request");
            assert_eq!(response.status(), 200, "{engine}");
            texts.push(response.text().await.expect("body"));
        }
        assert_eq!(
            texts[0],
            "'=f,p,m,a,t,n,plain\n'=HYPERLINK('http://x'),'+1+1,-2,'@SUM(A1),'\tx,-2,a=1\n",
            "{engine}, safe by default"
        );
        assert_eq!(
            texts[1], "=f,p,m,a,t,n,plain\n=HYPERLINK('http://x'),+1+1,-2,@SUM(A1),\tx,-2,a=1\n",
            "{engine}, raw on request"
        );
    }
    let token = app.token_for(&pg_body("test")).await;
    let response = app
        .client
        .post(app.url("/api/database/execute?csv=formulas"))
        .bearer_auth(&token)
        .header("accept", "text/csv")
        .json(&json!({"sql": "SELECT 1"}))
        .send()
        .await
        .expect("request");
    let (status, body) = read(response).await;
    assert_error(status, &body, 400, "validation_failed");
}

#[tokio::test]
async fn empty_results_still_name_their_columns() {
    let app = TestApp::spawn().await;
    for connect in [pg_body("test"), mysql_body("test"), sqlite_body("demo")] {
        let token = app.token_for(&connect).await;
        let (status, body) = app.sql(&token, "SELECT 1 AS a, 'x' AS b WHERE 1 = 0").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["columns"], json!(["a", "b"]));
        assert_eq!(body["rowCount"], 0);
        assert_eq!(body["data"], json!([]));
    }
}

#[tokio::test]
async fn response_has_the_designed_shape() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&sqlite_body("demo")).await;
    let (status, body) = app
        .sql(
            &token,
            "SELECT customerNumber AS id, customerName AS name FROM customers ORDER BY 1 LIMIT 1",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["columns"], json!(["id", "name"]));
    assert_eq!(body["columnTypes"][0]["name"], "id");
    assert!(body["columnTypes"][0]["type"].is_string());
    assert_eq!(body["rowCount"], 1);
    assert_eq!(body["truncated"], false);
    assert!(chrono::DateTime::parse_from_rfc3339(body["executedAt"].as_str().expect("at")).is_ok());
    assert!(body["elapsedMs"].is_number());
    let keys: Vec<&String> = body["data"][0].as_object().expect("row").keys().collect();
    assert_eq!(keys, ["id", "name"], "object keys keep the column order");
}

#[tokio::test]
async fn invalid_execute_requests_name_the_field() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&sqlite_body("demo")).await;
    for (body, field) in [
        (json!({}), "sql"),
        (json!({"sql": "   "}), "sql"),
        (json!({"sql": 5}), "sql"),
        (json!({"sql": "select 1", "maxRows": 0}), "maxRows"),
        (json!({"sql": "select 1", "maxRows": -5}), "maxRows"),
        (json!({"sql": "select 1", "timeoutMs": 0}), "timeoutMs"),
        (json!({"sql": "select 1", "params": "x"}), "params"),
        (
            json!({"sql": "select 1", "bigintAsString": "yes"}),
            "bigintAsString",
        ),
    ] {
        let (status, answer) = read(app.execute(&token, &body).await).await;
        assert_error(status, &answer, 400, "validation_failed");
        assert_eq!(answer["details"]["field"], field, "{body}");
    }
    let response = app
        .client
        .post(app.url("/api/database/execute?format=xml"))
        .bearer_auth(&token)
        .json(&json!({"sql": "select 1"}))
        .send()
        .await
        .expect("request");
    let (status, answer) = read(response).await;
    assert_error(status, &answer, 400, "validation_failed");
}

#[tokio::test]
async fn database_errors_carry_the_engine_code_and_position() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&pg_body("test")).await;
    let (status, body) = app.sql(&token, "SELECT * FROM no_such_table_qg").await;
    assert_error(status, &body, 400, "sql_table_not_found");
    assert_eq!(body["details"]["engineCode"], "42P01");
    assert_eq!(body["details"]["position"], 15);
    let (status, body) = app.sql(&token, "SELECT 1/0").await;
    assert_error(status, &body, 400, "sql_error");
    assert_eq!(body["details"]["engineCode"], "22012");
    assert!(
        !body.to_string().contains("127.0.0.1"),
        "no connection parameters in errors"
    );
}

#[tokio::test]
async fn mariadb_statement_that_lifts_its_own_limit_is_killed_at_the_deadline() {
    // One pooled connection, held by the runaway statement: the kill needs its own.
    let app = TestApp::spawn_with(|config| config.pool_max_connections = 1).await;
    let token = app.token_for(&mysql_body("test")).await;
    let sql =
        "SET STATEMENT max_statement_time = 0 FOR SELECT SLEEP(30) AS s, 'qg-kill-marker' AS m";
    assert_times_out(&app, &token, sql).await;
    let running = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE '%qg-kill-marker%' AND ID <> CONNECTION_ID()";
    tokio::time::timeout(Duration::from_secs(5), async {
        while mysql_admin_scalar(running).await > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the statement was killed on the server");
}

#[tokio::test]
async fn results_stop_at_the_byte_budget_and_say_truncated() {
    let app = TestApp::spawn_with(|config| config.max_result_bytes = 64 * 1024).await;
    let token = app.token_for(&pg_body("test")).await;
    let body = json!({"sql": "SELECT g, repeat('x', 10000) AS pad FROM generate_series(1, 100) g", "maxRows": 100});
    let (status, answer) = read(app.execute(&token, &body).await).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["truncated"], true);
    let rows = answer["rowCount"].as_u64().expect("count");
    assert!((1..10).contains(&rows), "{rows} rows of 10 kB within 64 kB");
}
