//! The policy reads SQL the way each engine does: generated statements full of
//! quote and comment edge cases are put to the real PostgreSQL and MariaDB and to
//! querygate, and where the engine tells where a call stands, querygate must
//! agree.
//!
//! Each statement carries a probe, a call placed at the top level or inside a
//! string, comment or quoted name. The engine is asked with a function that does
//! not exist (`qg_probe()`): "function does not exist" means the engine read the
//! probe as code, success means it read it as text. querygate is asked with a
//! denied function called with no argument (`pg_ls_dir()`, `load_file()`, which
//! do not exist in that form, so nothing runs whatever happens): a refusal naming
//! that function means querygate read it as code. A call the engine runs and
//! querygate misses is a bypass; a call in text that querygate refuses is a
//! misreading too.

use crate::common::*;
use proptest::prop_oneof;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;

/// Where the probe goes before each engine reads the statement.
const PROBE: &str = "PROBE";

#[derive(Clone, Copy)]
enum Engine {
    Postgres,
    Mariadb,
}

impl Engine {
    /// The denied function querygate must find, with no arguments.
    fn denied(self) -> &'static str {
        match self {
            Self::Postgres => "pg_ls_dir",
            Self::Mariadb => "load_file",
        }
    }
}

/// What may stand inside a string, comment or quoted name.
fn content(engine: Engine) -> impl Strategy<Value = String> {
    // The openers, closers and the probe come several times: a boundary read
    // differently shows only where a closer and the probe meet.
    let mut atoms = vec![
        "'", "'", "''", "\\", "\\'", "*/", "*/", "*/", "/*", "/*", "--", "-- ", "\"", "\"\"", "\n",
        "\r", "é", "€", " ", ",", "x", "1", PROBE, PROBE, PROBE,
    ];
    match engine {
        Engine::Postgres => atoms.extend(["$$", "$t$", "$€$", "E'", "$"]),
        Engine::Mariadb => atoms.extend(["#", "`", "``", "/*!", "--\t"]),
    }
    proptest::collection::vec(proptest::sample::select(atoms), 0..8).prop_map(|a| a.concat())
}

/// One item of the select list: a literal, a commented literal, a named
/// literal, or the probe itself.
fn item(engine: Engine) -> impl Strategy<Value = String> {
    let wrappers: Vec<(&str, &str)> = match engine {
        Engine::Postgres => vec![
            ("'", "'"),
            ("E'", "'"),
            ("U&'", "'"),
            ("$$", "$$"),
            ("$t$", "$t$"),
            ("$€$", "$€$"),
            ("1 /*", "*/"),
            ("1 /* /*", "*/ */"),
            ("1 /* /*", "*/"),
            ("1 /*", "*/ */"),
            ("1 --", "\n"),
            ("1 --", "\r"),
            ("1 AS \"", "\""),
            ("1 AS x$", "$"),
        ],
        Engine::Mariadb => vec![
            ("'", "'"),
            ("\"", "\""),
            ("1 /*", "*/"),
            ("1 -- ", "\n"),
            ("1 --", "\n"),
            ("1 #", "\n"),
            ("1 AS `", "`"),
            ("1--", ""),
        ],
    };
    let wrapped = (proptest::sample::select(wrappers), content(engine))
        .prop_map(|((open, close), inner)| format!("{open}{inner}{close}"));
    prop_oneof![
        3 => wrapped,
        1 => proptest::strategy::Just(PROBE.to_owned()),
        1 => proptest::strategy::Just("2".to_owned()),
    ]
}

fn statement(engine: Engine) -> impl Strategy<Value = String> {
    proptest::collection::vec(item(engine), 1..5)
        .prop_map(|items| format!("SELECT {}", items.join(", ")))
        .prop_filter("a probe somewhere", |sql| sql.contains(PROBE))
}

/// How the engine read the probe.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    Code,
    Text,
    /// Another error: the statement says nothing about the probe.
    Unclear,
}

async fn postgres_reads(client: &tokio_postgres::Client, sql: &str) -> Read {
    match client.query(&sql.replace(PROBE, "qg_probe()"), &[]).await {
        Ok(_) => Read::Text,
        Err(error) => match error.as_db_error() {
            // Exactly the probe: a name that merely ends in it (`€qg_probe`) is
            // another function.
            Some(db)
                if db.code() == &tokio_postgres::error::SqlState::UNDEFINED_FUNCTION
                    && db
                        .message()
                        .starts_with("function qg_probe() does not exist") =>
            {
                Read::Code
            }
            _ => Read::Unclear,
        },
    }
}

async fn mariadb_reads(conn: &mut mysql_async::Conn, sql: &str) -> Read {
    use mysql_async::prelude::Queryable;
    match conn.exec_drop(sql.replace(PROBE, "qg_probe()"), ()).await {
        Ok(()) => Read::Text,
        // ER_SP_DOES_NOT_EXIST: FUNCTION test.qg_probe does not exist.
        Err(mysql_async::Error::Server(error))
            if error.code == 1305 && error.message.contains("FUNCTION test.qg_probe does not") =>
        {
            Read::Code
        }
        Err(_) => Read::Unclear,
    }
}

/// Runs `cases` generated statements on `engine`; every disagreement, and how
/// many statements were decisive each way.
async fn differential(engine: Engine, cases: usize) {
    let app = TestApp::spawn().await;
    let token = match engine {
        Engine::Postgres => app.token_for(&pg_body("test")).await,
        Engine::Mariadb => app.token_for(&mysql_body("test")).await,
    };
    let pg = match engine {
        Engine::Postgres => {
            let (client, connection) = tokio_postgres::connect(
                "host=127.0.0.1 port=5432 user=postgres dbname=test",
                tokio_postgres::NoTls,
            )
            .await
            .expect("postgres");
            tokio::spawn(connection);
            Some(client)
        }
        Engine::Mariadb => None,
    };
    let mut my = match engine {
        Engine::Mariadb => Some(
            mysql_async::Conn::from_url("mysql://root@127.0.0.1:3306/test")
                .await
                .expect("mariadb"),
        ),
        Engine::Postgres => None,
    };
    let strategy = statement(engine);
    let mut runner = TestRunner::deterministic();
    let (mut code, mut text, mut failures) = (0, 0, Vec::new());
    for _ in 0..cases {
        let sql = strategy
            .new_tree(&mut runner)
            .expect("a statement")
            .current();
        let engine_read = match (&pg, &mut my) {
            (Some(client), _) => postgres_reads(client, &sql).await,
            (_, Some(conn)) => mariadb_reads(conn, &sql).await,
            _ => Read::Unclear,
        };
        let probe = format!("{}()", engine.denied());
        let (status, body) = app.sql(&token, &sql.replace(PROBE, &probe)).await;
        let message = body["error"].as_str().unwrap_or_default();
        let refused = status == 403 && message.contains(engine.denied());
        // Refused outright for another reason (an executable comment anywhere):
        // the answer says nothing about the probe.
        let engine_read = if status == 403 && !refused {
            Read::Unclear
        } else {
            engine_read
        };
        match (engine_read, refused) {
            (Read::Code, true) => code += 1,
            (Read::Text, false) => text += 1,
            (Read::Code, false) => failures.push(format!("bypass: {sql:?}")),
            (Read::Text, true) => failures.push(format!("text refused as a call: {sql:?}")),
            (Read::Unclear, _) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} statements read differently:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The corpus must test both ways, or it tests nothing.
    assert!(
        code >= cases / 10 && text >= cases / 20,
        "decisive: {code} calls, {text} texts of {cases}"
    );
}

#[tokio::test]
async fn postgres_and_querygate_read_generated_statements_alike() {
    ensure_databases();
    differential(Engine::Postgres, 1_000).await;
}

#[tokio::test]
async fn mariadb_and_querygate_read_generated_statements_alike() {
    ensure_databases();
    differential(Engine::Mariadb, 1_000).await;
}

#[tokio::test]
async fn the_known_bypasses_are_refused_on_the_real_servers() {
    let app = TestApp::spawn().await;
    let pg = app.token_for(&pg_body("test")).await;
    let my = app.token_for(&mysql_body("test")).await;
    let cases = [
        (&pg, "SELECT /* /* */ '*/ pg_read_file('/etc/hostname') --'"),
        (
            &pg,
            "SELECT 1 AS a -- c\r, pg_read_file('/etc/hostname') AS b",
        ),
        (
            &pg,
            "SELECT 1 AS x$$$, pg_read_file('/etc/hostname') AS y$$",
        ),
        (&pg, "SELECT $€$ ' $€$, pg_read_file('/etc/hostname') --'"),
        (&pg, "SELECT pg_read_file_old('/etc/hostname', 0, 100)"),
        (
            &pg,
            "SELECT ts_rewrite('a'::tsquery, 'SELECT ''a''::tsquery, (pg_'||'reload_conf())::text::tsquery')",
        ),
        (
            &pg,
            "SELECT lo_export(lo_from_bytea(0, 'x'), '/tmp/qg_lexing_probe')",
        ),
        (&pg, "ANALYZE pg_class"),
        (&my, "SELECT 1--1, LOAD_FILE('/etc/hostname')"),
        (&my, "SELECT 1--1 INTO OUTFILE '/tmp/qg_lexing_outfile'"),
        (&my, "SELECT 1--1 INTO DUMPFILE '/tmp/qg_lexing_dumpfile'"),
        (&my, "SELECT 1 /*! , LOAD_FILE('/etc/hostname') */"),
        (&my, "SET ROLE NONE"),
        (
            &my,
            "EXECUTE IMMEDIATE CONCAT('SELECT LOAD_', 'FILE(''/etc/hostname'')')",
        ),
    ];
    let mut failures = Vec::new();
    for (token, sql) in cases {
        let (status, body) = app.sql(token, sql).await;
        if status != 403 || body["code"] != "sql_read_only_violation" {
            failures.push(format!("{sql}: {status} {body}"));
        }
    }
    for file in [
        "/tmp/qg_lexing_probe",
        "/tmp/qg_lexing_outfile",
        "/tmp/qg_lexing_dumpfile",
    ] {
        if std::path::Path::new(file).exists() {
            failures.push(format!("{file} was written"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn odd_unicode_statements_never_get_a_5xx_on_any_engine() {
    let app = TestApp::spawn().await;
    let tokens = [
        app.token_for(&pg_body("test")).await,
        app.token_for(&mysql_body("test")).await,
        app.token_for(&sqlite_body("demo")).await,
    ];
    let mut statements: Vec<String> = [
        "Xë",
        "$ë",
        "__main__ë񿯩𕐱,ÓÖ¾VÛl",
        "SELECT 1 AS café",
        "SELECT '€' -- é\r, 1",
        "SELECT $€$ é $€$",
        "\u{feff}SELECT 1",
        "SELECT 1 /* 🦀 */",
    ]
    .map(str::to_owned)
    .to_vec();
    let strategy = "\\PC{1,40}";
    let mut runner = TestRunner::deterministic();
    for _ in 0..60 {
        statements.push(strategy.new_tree(&mut runner).expect("text").current());
    }
    let mut failures = Vec::new();
    for token in &tokens {
        for sql in &statements {
            let (status, body) = app.sql(token, sql).await;
            if status.is_server_error() {
                failures.push(format!("{sql:?}: {status} {body}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
