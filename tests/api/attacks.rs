//! Our own attack list: ways to change data or server state, to read the
//! server's files, or to exhaust the server, through `execute` and
//! `generate-sql`, on every engine. Every attack names the exact status and code
//! it must answer (200 for one that runs harmlessly); afterwards the data is
//! unchanged and the next request on the same pooled connection sees nothing the
//! attack left behind. Every failing attack of an engine is reported in one run.

use serde_json::{Value, json};

use crate::common::fake_model::{FakeModel, reply};
use crate::common::*;
use crate::read_only::assert_events_unchanged;

/// The exact answer an attack must get: status and code (`""` for a 200).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Answer(u16, &'static str);

const RUNS: Answer = Answer(200, "");
const READ_ONLY: Answer = Answer(403, "sql_read_only_violation");
const SQL_ERROR: Answer = Answer(400, "sql_error");
const SYNTAX: Answer = Answer(400, "sql_syntax_error");
const SECOND: Answer = Answer(400, "sql_multiple_statements");
const TIMEOUT: Answer = Answer(408, "sql_timeout");

/// An attack, and a statement that must then answer `expected` (first row's
/// first column, or `{"error": code}` for a refusal) on the same connection.
struct Attack {
    sql: &'static str,
    answer: Answer,
    after: Option<(&'static str, Value)>,
}

const fn attack(sql: &'static str, answer: Answer) -> Attack {
    Attack {
        sql,
        answer,
        after: None,
    }
}

fn leaves(sql: &'static str, answer: Answer, check: &'static str, expected: Value) -> Attack {
    Attack {
        sql,
        answer,
        after: Some((check, expected)),
    }
}

/// The data as the fixture wrote it, or what differs.
async fn events_unchanged(app: &TestApp, token: &str, table: &str) -> Result<(), String> {
    let (status, body) = app
        .sql(token, &format!("SELECT id, note FROM {table} ORDER BY id"))
        .await;
    let expected = json!([{"id": 1, "note": "drop table events"}, {"id": 2, "note": "delete me"}, {"id": 3, "note": null}]);
    if status == 200 && body["data"] == expected {
        Ok(())
    } else {
        Err(format!("the data changed: {status} {body}"))
    }
}

/// What attack `attack` left wrong, if anything.
async fn try_attack(
    app: &TestApp,
    token: &str,
    table: &str,
    attack: &Attack,
) -> Result<(), String> {
    let body = json!({"sql": attack.sql, "timeoutMs": 2000});
    let (status, answer) = read(app.execute(token, &body).await).await;
    let code = answer["code"].as_str().unwrap_or_default();
    if status.as_u16() != attack.answer.0 || code != attack.answer.1 {
        return Err(format!(
            "answered {status} {code:?}, expected {:?}: {answer}",
            attack.answer
        ));
    }
    if let Some((check, expected)) = &attack.after {
        let (status, answer) = app.sql(token, check).await;
        let value = match expected.get("error") {
            Some(_) => json!({"error": answer["code"]}),
            None if status == 200 => answer["data"][0]
                .as_object()
                .and_then(|row| row.values().next().cloned())
                .unwrap_or(Value::Null),
            None => answer,
        };
        if &value != expected {
            return Err(format!("then {check} gave {value}, expected {expected}"));
        }
    }
    events_unchanged(app, token, table).await
}

async fn run_attacks(app: &TestApp, token: &str, table: &str, attacks: &[Attack]) {
    assert!(attacks.len() >= 30, "at least 30 attacks per engine");
    let mut failures = Vec::new();
    for attack in attacks {
        if let Err(problem) = try_attack(app, token, table, attack).await {
            failures.push(format!("{}: {problem}", attack.sql));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} attacks failed:\n{}",
        failures.len(),
        attacks.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn postgres_attacks_are_refused_or_bounded_and_leave_nothing_behind() {
    pg_fixture("postgres_readonly.sql").await;
    let app = TestApp::spawn_with(|config| config.pool_max_connections = 1).await;
    let token = app.token_for(&pg_body("test")).await;
    let attacks = [
        attack("INSERT INTO qg_ro_fx.events (id) VALUES (9)", READ_ONLY),
        attack("UPDATE qg_ro_fx.events SET note = 'x'", READ_ONLY),
        attack("DELETE FROM qg_ro_fx.events", READ_ONLY),
        attack("TRUNCATE qg_ro_fx.events", READ_ONLY),
        attack("DROP TABLE qg_ro_fx.events", READ_ONLY),
        attack("CREATE TABLE qg_ro_fx.created (a int)", READ_ONLY),
        attack("CREATE TEMP TABLE scratch AS SELECT 1 AS a", READ_ONLY),
        attack(
            "ALTER TABLE qg_ro_fx.events ADD COLUMN extra int",
            READ_ONLY,
        ),
        attack("CREATE EXTENSION IF NOT EXISTS dblink", READ_ONLY),
        attack(
            "WITH gone AS (DELETE FROM qg_ro_fx.events RETURNING *) SELECT * FROM gone",
            READ_ONLY,
        ),
        attack("SELECT * FROM qg_ro_fx.events FOR UPDATE", READ_ONLY),
        attack("SELECT nextval('qg_ro_fx.counter')", READ_ONLY),
        attack("SELECT setval('qg_ro_fx.counter', 100)", READ_ONLY),
        attack("COPY qg_ro_fx.events TO '/tmp/qg_copy_out'", READ_ONLY),
        attack(
            "COPY (SELECT 1) TO PROGRAM 'touch /tmp/qg_pwned'",
            READ_ONLY,
        ),
        attack(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
            READ_ONLY,
        ),
        attack("SELECT pg_cancel_backend(1)", READ_ONLY),
        attack("SELECT pg_reload_conf()", READ_ONLY),
        attack("SELECT lo_import('/etc/passwd')", READ_ONLY),
        attack("SELECT lo_export(1, '/tmp/qg_lo_out')", READ_ONLY),
        attack("SELECT pg_read_file('/etc/passwd')", READ_ONLY),
        attack(
            "SELECT * FROM dblink('dbname=test', 'DELETE FROM qg_ro_fx.events') AS t(x text)",
            READ_ONLY,
        ),
        attack("DO $$ BEGIN DELETE FROM qg_ro_fx.events; END $$", READ_ONLY),
        attack(
            "SELECT query_to_xml('DELETE FROM qg_ro_fx.events', true, true, '')",
            READ_ONLY,
        ),
        attack(r#"SELECT U&"pg_terminate_backend"(1)"#, READ_ONLY),
        // Comments and quotes read as PostgreSQL reads them.
        attack(
            "SELECT /* /* */ '*/ pg_read_file('/etc/hostname') --'",
            READ_ONLY,
        ),
        attack(
            "SELECT /* /* /* */ */ */ pg_read_file('/etc/hostname')",
            READ_ONLY,
        ),
        attack(
            "SELECT 1 AS a -- c\r, pg_read_file('/etc/hostname') AS b",
            READ_ONLY,
        ),
        attack(
            "SELECT 1 AS x$$$, pg_read_file('/etc/hostname') AS y$$",
            READ_ONLY,
        ),
        attack(
            "SELECT $€$ ' $€$, pg_read_file('/etc/hostname') --'",
            READ_ONLY,
        ),
        attack(
            "SELECT pg_read_file_old('/etc/hostname', 0, 100)",
            READ_ONLY,
        ),
        // Functions that run SQL text, or write despite READ ONLY.
        attack(
            "SELECT ts_rewrite('a'::tsquery, 'SELECT ''a''::tsquery, (pg_'||'reload_conf())::text::tsquery')",
            READ_ONLY,
        ),
        attack(
            "SELECT lo_export(lo_from_bytea(0, 'x'), '/tmp/qg_lo_export')",
            READ_ONLY,
        ),
        attack("ANALYZE qg_ro_fx.events", READ_ONLY),
        attack("PREPARE TRANSACTION 'qg'", READ_ONLY),
        attack("LOAD 'plpgsql'", READ_ONLY),
        attack("SELECT txid_current()", RUNS),
        attack("VACUUM qg_ro_fx.events", SQL_ERROR),
        attack("SELECT 1; DELETE FROM qg_ro_fx.events", SECOND),
        leaves(
            "PREPARE qg_left AS SELECT 1",
            RUNS,
            "SELECT count(*) FROM pg_prepared_statements",
            json!(0),
        ),
        leaves(
            "SELECT pg_advisory_lock(7)",
            RUNS,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'",
            json!(0),
        ),
        // The statement fails after taking the lock: the server skips the rest of
        // its part of the flight, but the cleanup is a part of its own.
        leaves(
            "SELECT pg_advisory_lock(9), 1 / (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 42)",
            SQL_ERROR,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'",
            json!(0),
        ),
        leaves(
            "DECLARE qg_c CURSOR WITH HOLD FOR SELECT 1",
            RUNS,
            "SELECT count(*) FROM pg_cursors WHERE name = 'qg_c'",
            json!(0),
        ),
        leaves(
            "LISTEN qg_channel",
            RUNS,
            "SELECT count(*) FROM pg_listening_channels()",
            json!(0),
        ),
        leaves(
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
            RUNS,
            "SELECT current_setting('default_transaction_read_only')",
            json!("on"),
        ),
        leaves(
            "SELECT set_config('default_transaction_read_only', 'off', false)",
            RUNS,
            "SELECT current_setting('default_transaction_read_only')",
            json!("on"),
        ),
        leaves(
            "SET statement_timeout = 0",
            RUNS,
            "SELECT current_setting('statement_timeout')",
            json!("30s"),
        ),
        leaves(
            "SET ROLE qg_secret",
            RUNS,
            "SELECT current_user::text",
            json!("postgres"),
        ),
        attack(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
            TIMEOUT,
        ),
        attack(
            "SELECT count(*) FROM generate_series(1, 100000) a, generate_series(1, 100000) b",
            TIMEOUT,
        ),
        attack("SELECT pg_sleep(60)", TIMEOUT),
        attack("SELECT repeat('x', 300000000)", SQL_ERROR),
    ];
    run_attacks(&app, &token, "qg_ro_fx.events", &attacks).await;
    for file in [
        "/tmp/qg_pwned",
        "/tmp/qg_copy_out",
        "/tmp/qg_lo_out",
        "/tmp/qg_lo_export",
    ] {
        assert!(!std::path::Path::new(file).exists(), "{file} was written");
    }
    assert_eq!(
        pg_admin_scalar("SELECT count(*) FROM pg_prepared_xacts").await,
        0,
        "no two-phase transaction outlives its session"
    );
}

#[tokio::test]
async fn mysql_attacks_are_refused_or_bounded_and_leave_nothing_behind() {
    mysql_fixture("mysql_readonly.sql").await;
    let app = TestApp::spawn_with(|config| config.pool_max_connections = 1).await;
    let token = app.token_for(&mysql_body("qg_ro_fx")).await;
    let attacks = [
        attack("INSERT INTO events (id) VALUES (9)", READ_ONLY),
        attack("UPDATE events SET note = 'x'", READ_ONLY),
        attack("DELETE FROM events", READ_ONLY),
        attack("REPLACE INTO events (id) VALUES (1)", READ_ONLY),
        attack("DROP TABLE events", READ_ONLY),
        attack("TRUNCATE TABLE events", READ_ONLY),
        attack("CREATE TABLE created (a INT)", READ_ONLY),
        attack("ALTER TABLE events ADD COLUMN extra INT", READ_ONLY),
        attack("RENAME TABLE events TO renamed", READ_ONLY),
        attack("CREATE TEMPORARY TABLE scratch (a INT)", READ_ONLY),
        attack(
            "SET STATEMENT tx_read_only = 0 FOR UPDATE events SET note = 'x'",
            READ_ONLY,
        ),
        attack("SELECT LOAD_FILE('/etc/passwd')", READ_ONLY),
        attack(
            "SELECT * FROM events INTO OUTFILE '/tmp/qg_outfile'",
            READ_ONLY,
        ),
        attack(
            "LOAD DATA INFILE '/etc/passwd' INTO TABLE events",
            READ_ONLY,
        ),
        attack("SET GLOBAL max_connections = 1", READ_ONLY),
        attack("KILL CONNECTION_ID()", READ_ONLY),
        attack("SHUTDOWN", READ_ONLY),
        attack("FLUSH TABLES", READ_ONLY),
        attack("SELECT 1 /*!, LOAD_FILE('/etc/passwd') */", READ_ONLY),
        attack(
            "SELECT 1 /*M!100000 , LOAD_FILE('/etc/passwd') */",
            READ_ONLY,
        ),
        // `--` is a comment only before white space: these are `1 - -1`.
        attack("SELECT 1--1, LOAD_FILE('/etc/hostname')", READ_ONLY),
        attack("SELECT 1--1 INTO OUTFILE '/tmp/qg_outfile_dash'", READ_ONLY),
        attack(
            "SELECT 1--1 INTO DUMPFILE '/tmp/qg_dumpfile_dash'",
            READ_ONLY,
        ),
        attack("SET ROLE NONE", READ_ONLY),
        attack("BACKUP STAGE START", READ_ONLY),
        attack("EXECUTE IMMEDIATE 'SELECT 1'", READ_ONLY),
        attack("PREPARE qg_stmt FROM 'SELECT 1'", READ_ONLY),
        attack("INSTALL PLUGIN qg SONAME 'qg.so'", READ_ONLY),
        attack("GRANT ALL ON *.* TO 'qg_secret'@'localhost'", READ_ONLY),
        attack("CREATE USER 'qg_new'@'localhost'", READ_ONLY),
        attack("XA START 'qg'", SQL_ERROR),
        attack("SELECT 1; DELETE FROM events", SECOND),
        leaves(
            "SET @qg_marker = 42",
            RUNS,
            "SELECT @qg_marker",
            Value::Null,
        ),
        leaves(
            "SET SESSION TRANSACTION READ WRITE",
            RUNS,
            "SELECT @@tx_read_only",
            json!(1),
        ),
        leaves(
            "SET SESSION max_statement_time = 0",
            RUNS,
            "SELECT @@max_statement_time",
            json!(30.0),
        ),
        leaves(
            "SET SESSION sql_mode = ''",
            RUNS,
            "SELECT @@sql_mode = @@global.sql_mode",
            json!(1),
        ),
        leaves(
            "SET NAMES latin1",
            RUNS,
            "SELECT @@character_set_client",
            json!("utf8mb4"),
        ),
        leaves(
            "SET time_zone = '+05:00'",
            RUNS,
            "SELECT @@time_zone",
            json!("+00:00"),
        ),
        leaves("USE mysql", RUNS, "SELECT DATABASE()", json!("qg_ro_fx")),
        leaves(
            "SELECT GET_LOCK('qg_lock', 0)",
            RUNS,
            "SELECT IS_FREE_LOCK('qg_lock')",
            json!(1),
        ),
        leaves(
            "HANDLER events OPEN",
            RUNS,
            "HANDLER events READ FIRST",
            json!({"error": "sql_error"}),
        ),
        leaves(
            "LOCK TABLES events READ",
            RUNS,
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE LIKE '%lock%'",
            json!(0),
        ),
        attack("SELECT SLEEP(60)", TIMEOUT),
        // MariaDB stops recursion itself (max_recursive_iterations).
        attack(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c",
            RUNS,
        ),
        attack(
            "SELECT COUNT(*) FROM seq_1_to_100000 a, seq_1_to_100000 b",
            TIMEOUT,
        ),
        attack("SELECT b FROM qg_big_fx.big", SQL_ERROR),
    ];
    run_attacks(&app, &token, "events", &attacks).await;
    for file in [
        "/tmp/qg_outfile",
        "/tmp/qg_outfile_dash",
        "/tmp/qg_dumpfile_dash",
    ] {
        assert!(!std::path::Path::new(file).exists(), "{file} was written");
    }
    assert_ne!(
        mysql_admin_scalar("SELECT @@global.max_connections").await,
        1
    );
    // The handler and the table lock are gone: another session may write.
    mysql_admin_execute("UPDATE qg_ro_fx.events SET note = note WHERE id = 1").await;
}

#[tokio::test]
async fn sqlite_attacks_are_refused_or_bounded_and_leave_nothing_behind() {
    let app = TestApp::spawn_with(|config| config.pool_max_connections = 1).await;
    app.sqlite_fixture("ro_fx", "sqlite_readonly.sql").await;
    let token = app.token_for(&sqlite_body("ro_fx")).await;
    let attacks = [
        attack("INSERT INTO events (id) VALUES (9)", READ_ONLY),
        attack("UPDATE events SET note = 'x'", READ_ONLY),
        attack("DELETE FROM events", READ_ONLY),
        attack("DROP TABLE events", READ_ONLY),
        attack("CREATE TABLE created (a INT)", READ_ONLY),
        attack("ALTER TABLE events ADD COLUMN extra INT", READ_ONLY),
        attack("CREATE INDEX qg_idx ON events (note)", READ_ONLY),
        attack("CREATE VIEW qg_view AS SELECT 1", READ_ONLY),
        attack(
            "CREATE TRIGGER qg_trg AFTER INSERT ON events BEGIN SELECT 1; END",
            SECOND,
        ),
        attack("REPLACE INTO events (id) VALUES (1)", READ_ONLY),
        attack("ATTACH DATABASE '/tmp/qg_attached.db' AS other", READ_ONLY),
        attack("DETACH DATABASE main", READ_ONLY),
        attack("VACUUM", READ_ONLY),
        attack("VACUUM INTO '/tmp/qg_vacuum.db'", READ_ONLY),
        attack("PRAGMA user_version = 7", READ_ONLY),
        attack("PRAGMA writable_schema = ON", READ_ONLY),
        attack("PRAGMA journal_mode = DELETE", READ_ONLY),
        attack("PRAGMA hard_heap_limit = 1", READ_ONLY),
        attack("PRAGMA soft_heap_limit = 1", READ_ONLY),
        attack("PRAGMA temp_store_directory = '/tmp'", READ_ONLY),
        attack("EXPLAIN PRAGMA soft_heap_limit = 1", READ_ONLY),
        attack("SELECT * FROM pragma_user_version(7)", SQL_ERROR),
        attack("SELECT load_extension('/tmp/qg_ext.so')", READ_ONLY),
        attack("SELECT fts3_tokenizer('simple')", READ_ONLY),
        attack("ANALYZE", READ_ONLY),
        // With nothing to rebuild REINDEX writes nothing; with indexes it is refused.
        attack("REINDEX", RUNS),
        attack("BEGIN IMMEDIATE", READ_ONLY),
        attack("SELECT 1; DELETE FROM events", SECOND),
        attack(r"SELECT 'a\'; DELETE FROM events", SECOND),
        attack("SELECT 1\u{0}", SYNTAX),
        leaves(
            "CREATE TEMP TABLE scratch AS SELECT 1 AS a",
            READ_ONLY,
            "SELECT count(*) FROM temp.sqlite_schema",
            json!(0),
        ),
        attack(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
            TIMEOUT,
        ),
        attack(
            "SELECT count(*) FROM events a, events b, events c, events d, events e, events f, events g, events h, events i, events j, events k, events l, events m, events n, events o, events p, events q, events r, events s, events t",
            TIMEOUT,
        ),
        attack("SELECT zeroblob(300000000)", SQL_ERROR),
        attack("SELECT randomblob(300000000)", SQL_ERROR),
        // SQLite's printf gives NULL rather than a string over the length limit.
        leaves(
            "SELECT printf('%.*c', 300000000, 'x') AS p",
            RUNS,
            "SELECT 1",
            json!(1),
        ),
    ];
    run_attacks(&app, &token, "events", &attacks).await;
    for file in ["/tmp/qg_attached.db", "/tmp/qg_vacuum.db"] {
        assert!(!std::path::Path::new(file).exists(), "{file} was written");
    }
}

#[tokio::test]
async fn attacks_written_by_the_model_are_refused_as_unsafe() {
    pg_fixture("postgres_readonly.sql").await;
    let statements = [
        "DELETE FROM qg_ro_fx.events",
        "WITH gone AS (DELETE FROM qg_ro_fx.events RETURNING *) SELECT * FROM gone",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
        "SELECT query_to_xml('DELETE FROM qg_ro_fx.events', true, true, '')",
        "SELECT 1; DROP TABLE qg_ro_fx.events",
    ];
    for execute in [false, true] {
        let model = FakeModel::start(statements.iter().map(|s| reply(s)).collect()).await;
        let base_url = model.base_url.clone();
        let app = TestApp::spawn_with(move |config| {
            config.openai_base_url = Some(base_url);
        })
        .await;
        let token = app.token_for(&pg_body("test")).await;
        for sql in statements {
            let response = app
                .post_json(
                    "/api/generate-sql",
                    &json!({"userQuery": "do something", "execute": execute}),
                    Some(&token),
                )
                .await;
            let (status, answer) = read(response).await;
            assert_error(status, &answer, 422, "ai_unsafe_sql");
            assert!(answer["details"]["sql"].is_string(), "{sql}: {answer}");
        }
        assert_events_unchanged(&app, &token, "qg_ro_fx.events").await;
    }
}
