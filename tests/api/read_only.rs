//! Read-only is enforced by each engine: every kind of write is refused and the
//! data is unchanged afterwards; reads that merely look like writes work.

use crate::common::*;
use serde_json::json;

pub(crate) async fn assert_refused(app: &TestApp, token: &str, sql: &str, codes: &[&str]) {
    let (status, body) = app.sql(token, sql).await;
    let code = body["code"].as_str().unwrap_or_default();
    assert!(
        codes.contains(&code),
        "{sql}: expected {codes:?}, got {status} {body}"
    );
    assert!(status == 403 || status == 400, "{sql}: {status}");
}

pub(crate) async fn assert_events_unchanged(app: &TestApp, token: &str, table: &str) {
    let (status, body) = app
        .sql(token, &format!("SELECT id, note FROM {table} ORDER BY id"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"],
        json!([{"id": 1, "note": "drop table events"}, {"id": 2, "note": "delete me"}, {"id": 3, "note": null}])
    );
}

const READ_ONLY: &[&str] = &["sql_read_only_violation"];
const SECOND: &[&str] = &["sql_multiple_statements"];

#[tokio::test]
async fn postgres_refuses_every_write_and_keeps_the_data() {
    pg_fixture("postgres_readonly.sql").await;
    let app = TestApp::spawn().await;
    let token = app.token_for(&pg_body("test")).await;
    let t = "qg_ro_fx.events";
    for sql in [
        format!("INSERT INTO {t} (id) VALUES (9)"),
        format!("UPDATE {t} SET note = 'x'"),
        format!("DELETE FROM {t}"),
        format!("DROP TABLE {t}"),
        format!("TRUNCATE {t}"),
        "CREATE TABLE qg_ro_fx.created (a int)".to_owned(),
        format!("ALTER TABLE {t} ADD COLUMN extra int"),
        format!("WITH gone AS (DELETE FROM {t} RETURNING *) SELECT * FROM gone"),
        format!("SELECT * FROM {t} FOR UPDATE"),
        "SELECT nextval('qg_ro_fx.counter')".to_owned(),
    ] {
        assert_refused(&app, &token, &sql, READ_ONLY).await;
    }
    assert_refused(&app, &token, &format!("SELECT 1; DELETE FROM {t}"), SECOND).await;
    // A transaction switch is a statement of its own and ends with the request.
    let (status, _) = app.sql(&token, "SET TRANSACTION READ WRITE").await;
    assert!(status == 200 || status.is_client_error());
    assert_refused(&app, &token, &format!("DELETE FROM {t}"), READ_ONLY).await;
    assert_events_unchanged(&app, &token, t).await;
}

#[tokio::test]
async fn mysql_refuses_every_write_including_ddl_and_keeps_the_data() {
    mysql_fixture("mysql_readonly.sql").await;
    let app = TestApp::spawn().await;
    let token = app.token_for(&mysql_body("qg_ro_fx")).await;
    for sql in [
        "INSERT INTO events (id) VALUES (9)",
        "UPDATE events SET note = 'x'",
        "DELETE FROM events",
        "REPLACE INTO events (id) VALUES (1)",
        "DROP TABLE events",
        "TRUNCATE TABLE events",
        "CREATE TABLE created (a INT)",
        "ALTER TABLE events ADD COLUMN extra INT",
        "RENAME TABLE events TO renamed",
    ] {
        assert_refused(&app, &token, sql, READ_ONLY).await;
    }
    assert_refused(&app, &token, "SELECT 1; DELETE FROM events", SECOND).await;
    assert_events_unchanged(&app, &token, "events").await;
    assert_eq!(
        mysql_admin_scalar("SELECT COUNT(*) FROM qg_ro_fx.events").await,
        3
    );
    assert_eq!(
        mysql_admin_scalar(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'qg_ro_fx'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn mysql_session_settings_do_not_outlive_the_request() {
    mysql_fixture("mysql_readonly.sql").await;
    let app = TestApp::spawn_with(|config| config.pool_max_connections = 1).await;
    let token = app.token_for(&mysql_body("qg_ro_fx")).await;
    let (status, body) = app.sql(&token, "SET SESSION TRANSACTION READ WRITE").await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app.sql(&token, "SET @qg_marker = 42").await;
    assert_eq!(status, 200);
    let (_, body) = app.sql(&token, "SELECT @qg_marker AS marker").await;
    assert_eq!(
        body["data"][0]["marker"],
        serde_json::Value::Null,
        "user variable leaked: {body}"
    );
    assert_refused(&app, &token, "DELETE FROM events", READ_ONLY).await;
    assert_events_unchanged(&app, &token, "events").await;
}

#[tokio::test]
async fn sqlite_refuses_every_write_and_keeps_the_data() {
    let app = TestApp::spawn().await;
    app.sqlite_fixture("ro_fx", "sqlite_readonly.sql").await;
    let token = app.token_for(&sqlite_body("ro_fx")).await;
    for sql in [
        "INSERT INTO events (id) VALUES (9)",
        "UPDATE events SET note = 'x'",
        "DELETE FROM events",
        "DROP TABLE events",
        "CREATE TABLE created (a INT)",
        "ALTER TABLE events ADD COLUMN extra INT",
        "WITH gone AS (SELECT id FROM events) DELETE FROM events WHERE id IN (SELECT id FROM gone)",
        "ATTACH DATABASE '/tmp/qg_attached.db' AS other",
        "VACUUM INTO '/tmp/qg_vacuum.db'",
        "PRAGMA user_version = 7",
    ] {
        assert_refused(&app, &token, sql, READ_ONLY).await;
    }
    assert_refused(&app, &token, "SELECT 1; DELETE FROM events", SECOND).await;
    assert_refused(&app, &token, r"SELECT 'a\'; DELETE FROM events", SECOND).await;
    assert!(!std::path::Path::new("/tmp/qg_attached.db").exists());
    assert!(!std::path::Path::new("/tmp/qg_vacuum.db").exists());
    assert_events_unchanged(&app, &token, "events").await;
}

#[tokio::test]
async fn sqlite_temporary_tables_do_not_outlive_the_request() {
    let app = TestApp::spawn_with(|config| config.pool_max_connections = 1).await;
    let token = app.token_for(&sqlite_body("demo")).await;
    let (status, body) = app
        .sql(&token, "CREATE TEMP TABLE scratch AS SELECT 1 AS a")
        .await;
    assert!(status == 200 || status == 403, "{body}");
    let (status, body) = app.sql(&token, "SELECT * FROM temp.scratch").await;
    assert_error(status, &body, 400, "sql_table_not_found");
}

#[tokio::test]
async fn reads_that_look_like_writes_work_on_every_engine() {
    pg_fixture("postgres_readonly.sql").await;
    mysql_fixture("mysql_readonly.sql").await;
    let app = TestApp::spawn().await;
    app.sqlite_fixture("ro_fx", "sqlite_readonly.sql").await;
    for (body, table) in [
        (pg_body("test"), "qg_ro_fx.events"),
        (mysql_body("qg_ro_fx"), "events"),
        (sqlite_body("ro_fx"), "events"),
    ] {
        let token = app.token_for(&body).await;
        let sql = format!(
            "SELECT created_at, updated_at, 'drop table events; delete from x' AS lit FROM {table} WHERE note LIKE '%drop%'"
        );
        let (status, answer) = app.sql(&token, &sql).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["rowCount"], 1);
        assert_eq!(answer["data"][0]["lit"], "drop table events; delete from x");
        assert_eq!(
            answer["columns"],
            json!(["created_at", "updated_at", "lit"])
        );
    }
}

#[tokio::test]
async fn postgres_session_leftovers_do_not_outlive_the_request() {
    let app = TestApp::spawn_with(|config| config.pool_max_connections = 1).await;
    let token = app.token_for(&pg_body("test")).await;
    let (status, body) = app.sql(&token, "SELECT pg_advisory_lock(424242)").await;
    assert_eq!(status, 200, "{body}");
    let free = pg_admin_scalar(
        "SELECT (CASE WHEN pg_try_advisory_lock(424242) THEN (SELECT 1 FROM (SELECT pg_advisory_unlock(424242)) u) ELSE 0 END)::int8",
    )
    .await;
    assert_eq!(free, 1, "the advisory lock outlived its request");
    let (status, body) = app.sql(&token, "PREPARE qg_leftover AS SELECT 1").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.sql(&token, "EXECUTE qg_leftover").await;
    assert_error(status, &body, 400, "sql_error");
}

#[tokio::test]
async fn validate_refuses_statements_that_would_write() {
    pg_fixture("postgres_readonly.sql").await;
    mysql_fixture("mysql_readonly.sql").await;
    let app = TestApp::spawn().await;
    let timeout = std::time::Duration::from_secs(5);
    let cases = [
        (
            pg_body("test"),
            "WITH gone AS (DELETE FROM qg_ro_fx.events RETURNING id) SELECT * FROM gone",
        ),
        (mysql_body("qg_ro_fx"), "DELETE FROM events WHERE id = 1"),
    ];
    for (connect, sql) in cases {
        let token = app.token_for(&connect).await;
        let params = app
            .state
            .tokens
            .verify(&token)
            .expect("token")
            .params
            .clone();
        let request = app.state.limits.request(
            sql.to_owned(),
            Vec::new(),
            app.state
                .limits
                .row_cap(querygate::db::Delivery::Answer, None),
            Some(timeout.as_millis() as u64),
            false,
        );
        let result = app.state.db.validate(&params, &request).await;
        assert!(
            matches!(
                &result,
                Err(querygate::db::sql_error::SqlError::Statement(error))
                    if error.code == querygate::error::ErrorCode::SqlReadOnlyViolation
            ),
            "{sql}: {result:?}"
        );
        assert_events_unchanged(
            &app,
            &token,
            if sql.contains("qg_ro_fx.") {
                "qg_ro_fx.events"
            } else {
                "events"
            },
        )
        .await;
    }
}

#[tokio::test]
async fn sqlite_refuses_pragmas_and_nul_bytes_and_keeps_working() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&sqlite_body("demo")).await;
    for sql in [
        "PRAGMA hard_heap_limit = 1",
        "EXPLAIN PRAGMA soft_heap_limit = 1",
        "explain query plan pragma temp_store_directory = '/tmp'",
    ] {
        assert_refused(&app, &token, sql, READ_ONLY).await;
    }
    let started = std::time::Instant::now();
    let (status, body) = app.sql(&token, "SELECT 1\u{0}").await;
    assert_error(status, &body, 400, "sql_syntax_error");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let (status, body) = app
        .sql(
            &token,
            "SELECT count(*) AS n FROM pragma_table_info('customers')",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"][0]["n"].as_i64().unwrap_or_default() > 5);
}

#[tokio::test]
async fn nul_bytes_are_refused_on_every_engine() {
    let app = TestApp::spawn().await;
    for connect in [pg_body("test"), mysql_body("test")] {
        let token = app.token_for(&connect).await;
        let (status, body) = app.sql(&token, "SELECT 1\u{0}").await;
        assert_error(status, &body, 400, "sql_syntax_error");
    }
}

#[tokio::test]
async fn postgres_connections_are_reused_and_deallocate_all_breaks_no_later_request() {
    let app = TestApp::spawn_with(|config| config.pool_max_connections = 1).await;
    let token = app.token_for(&pg_body("test")).await;
    let mut pids = Vec::new();
    for _ in 0..3 {
        let (status, body) = app.sql(&token, "SELECT pg_backend_pid() AS pid").await;
        assert_eq!(status, 200, "{body}");
        pids.push(body["data"][0]["pid"].clone());
    }
    assert!(
        pids.windows(2).all(|w| w[0] == w[1]),
        "an ordinary statement closed its connection: {pids:?}"
    );
    let (status, body) = app.sql(&token, "DEALLOCATE ALL").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.sql(&token, "SELECT pg_backend_pid() AS pid").await;
    assert_eq!(
        status, 200,
        "the statement cached before DEALLOCATE still works: {body}"
    );
}
