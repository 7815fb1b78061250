//! What querygate refuses on its own before an engine sees a client's text.
//!
//! Read-only is the engines' job (see [`crate::db::execute`]); nothing here
//! decides it. This is defence in depth for what a read-only transaction does not
//! stop, because it acts outside the transaction: other sessions
//! (`pg_terminate_backend`, `KILL`), the server's files and programs (`COPY … TO
//! PROGRAM`, `lo_export`, `pg_read_file`, `INTO OUTFILE`, `LOAD_FILE`), its
//! configuration (`pg_reload_conf`, `SET GLOBAL`), code loading (`LOAD`, `DO`,
//! `INSTALL PLUGIN`), replication and statistics, two-phase transactions that
//! outlive the session, writes that ignore the transaction (`heap_force_kill`,
//! `brin_summarize_range`, `ANALYZE`), session state that survives the cleanup
//! (`dblink_connect`, `pg_replication_origin_session_setup`, MariaDB's `SET
//! ROLE`), and functions that run SQL given as text (`query_to_xml`,
//! `ts_rewrite`, `dblink`, `crosstab`, `xpath_table`), through which any of these
//! could be reached. Most need privileges a least-privileged role lacks
//! (docs/security.md, which says how the lists were derived); the list holds
//! whatever role the client brings.
//!
//! Names are matched as words outside strings and comments, as each engine reads
//! them ([`crate::db::sql_text`]), quoted identifiers included
//! (`"pg_terminate_backend"(1)`); forms that would hide a word from that match
//! are refused outright: PostgreSQL's Unicode-escaped identifiers (`U&"…"`) and
//! MySQL's executable comments (`/*! … */`, `/*M! … */`).

use crate::db::sql_error::SqlError;
use crate::db::sql_text::{self, Dialect};
use crate::error::ErrorCode;

/// PostgreSQL functions with effects beyond the transaction, or that run text.
const PG_FUNCTIONS: &[&str] = &[
    // Other sessions and the server process.
    "PG_TERMINATE_BACKEND",
    "PG_CANCEL_BACKEND",
    "PG_SIGNAL_BACKEND",
    "PG_RELOAD_CONF",
    "PG_ROTATE_LOGFILE",
    "PG_ROTATE_LOGFILE_OLD",
    "PG_PROMOTE",
    "PG_SWITCH_WAL",
    "PG_CREATE_RESTORE_POINT",
    "PG_BACKUP_START",
    "PG_BACKUP_STOP",
    "PG_START_BACKUP",
    "PG_STOP_BACKUP",
    "PG_WAL_REPLAY_PAUSE",
    "PG_WAL_REPLAY_RESUME",
    "PG_LOG_BACKEND_MEMORY_CONTEXTS",
    // Replication: slots and origins (origin session state survives DISCARD ALL).
    "PG_CREATE_PHYSICAL_REPLICATION_SLOT",
    "PG_CREATE_LOGICAL_REPLICATION_SLOT",
    "PG_DROP_REPLICATION_SLOT",
    "PG_COPY_PHYSICAL_REPLICATION_SLOT",
    "PG_COPY_LOGICAL_REPLICATION_SLOT",
    "PG_REPLICATION_SLOT_ADVANCE",
    "PG_LOGICAL_SLOT_GET_CHANGES",
    "PG_LOGICAL_SLOT_GET_BINARY_CHANGES",
    "PG_LOGICAL_EMIT_MESSAGE",
    // Statistics.
    "PG_STAT_STATEMENTS_RESET",
    // Server files.
    "PG_READ_FILE",
    "PG_READ_FILE_OLD",
    "PG_READ_BINARY_FILE",
    "PG_STAT_FILE",
    "PG_FILE_WRITE",
    "PG_FILE_RENAME",
    "PG_FILE_UNLINK",
    "PG_FILE_SYNC",
    "PG_LOGDIR_LS",
    "LO_IMPORT",
    "LO_EXPORT",
    "LO_UNLINK",
    "LO_CREATE",
    "LO_CREAT",
    "LO_FROM_BYTEA",
    "LO_PUT",
    "LOWRITE",
    "AUTOPREWARM_DUMP_NOW",
    "AUTOPREWARM_START_WORKER",
    // Writes that ignore the read-only transaction and survive its rollback.
    "HEAP_FORCE_KILL",
    "HEAP_FORCE_FREEZE",
    "PG_TRUNCATE_VISIBILITY_MAP",
    "BRIN_SUMMARIZE_NEW_VALUES",
    "BRIN_SUMMARIZE_RANGE",
    "BRIN_DESUMMARIZE_RANGE",
    "GIN_CLEAN_PENDING_LIST",
    // SQL given as text, run by the function.
    "QUERY_TO_XML",
    "QUERY_TO_XMLSCHEMA",
    "QUERY_TO_XML_AND_XMLSCHEMA",
    "CURSOR_TO_XML",
    "CURSOR_TO_XMLSCHEMA",
    "TS_STAT",
    "TS_REWRITE",
    "CONNECTBY",
    "XPATH_TABLE",
    "PG_BACKGROUND_LAUNCH",
];

/// Prefixes of PostgreSQL function families refused whole: every `dblink*`
/// (another session, not read-only, that survives the cleanup), `crosstab*`
/// (runs text), `pg_ls_*` (server directories), `pg_stat_reset*`, and
/// `pg_replication_origin_*`.
const PG_FUNCTION_PREFIXES: &[&str] = &[
    "DBLINK",
    "CROSSTAB",
    "PG_LS_",
    "PG_STAT_RESET",
    "PG_REPLICATION_ORIGIN_",
];

/// PostgreSQL statements with effects beyond the transaction, or that a read
/// API never needs and that hold exclusive locks while they run.
const PG_STATEMENTS: &[&str] = &[
    "COPY",
    "DO",
    "LOAD",
    "CHECKPOINT",
    "ANALYZE",
    "ANALYSE",
    "REINDEX",
    "CLUSTER",
    "LOCK",
];

/// The words of `EXPLAIN`'s options, which come before the statement it plans.
const EXPLAIN_OPTIONS: &[&str] = &[
    "EXPLAIN",
    "ANALYZE",
    "ANALYSE",
    "VERBOSE",
    "COSTS",
    "SETTINGS",
    "BUFFERS",
    "WAL",
    "TIMING",
    "SUMMARY",
    "FORMAT",
    "TEXT",
    "XML",
    "JSON",
    "YAML",
    "TRUE",
    "FALSE",
    "ON",
    "OFF",
    "0",
    "1",
    "QUERY",
    "PLAN",
    "GENERIC_PLAN",
    "EXTENDED",
    "PARTITIONS",
];

/// MySQL/MariaDB functions that reach files, run programs or wait on replication.
const MYSQL_FUNCTIONS: &[&str] = &[
    "LOAD_FILE",
    "SYS_EXEC",
    "SYS_EVAL",
    "SYS_GET",
    "SYS_SET",
    "MASTER_POS_WAIT",
    "MASTER_GTID_WAIT",
    "SOURCE_POS_WAIT",
];

/// MySQL/MariaDB statements with effects beyond the session, or that run SQL
/// given as text (`EXECUTE IMMEDIATE`, `PREPARE … FROM`).
const MYSQL_STATEMENTS: &[&str] = &[
    "LOAD",
    "KILL",
    "SHUTDOWN",
    "FLUSH",
    "RESET",
    "PURGE",
    "CHANGE",
    "STOP",
    "INSTALL",
    "UNINSTALL",
    "CACHE",
    "BINLOG",
    "GRANT",
    "REVOKE",
    "RESTART",
    "CLONE",
    "BACKUP",
    "EXECUTE",
    "PREPARE",
];

/// Checks `sql` for an engine read as `dialect`.
pub(crate) fn check(dialect: Dialect, sql: &str) -> Result<(), SqlError> {
    if sql.contains('\0') {
        // A NUL ends the text for SQLite's parser while the rest is still there,
        // and is never valid SQL elsewhere.
        return Err(SqlError::refused(
            ErrorCode::SqlSyntaxError,
            "the statement contains a NUL character",
        ));
    }
    match dialect {
        Dialect::Postgres => postgres(sql),
        Dialect::Mysql(_) => mysql(sql, dialect),
        Dialect::Sqlite => sqlite(sql),
    }
}

fn refused(what: impl std::fmt::Display) -> SqlError {
    SqlError::refused(
        ErrorCode::SqlReadOnlyViolation,
        format!("{what} is not allowed through querygate"),
    )
}

/// The statement's kind: its first word, or behind `EXPLAIN` and its options,
/// the first word of the statement it plans.
fn kind(words: &[String]) -> &str {
    let mut words = words.iter().map(String::as_str);
    match words.next() {
        Some("EXPLAIN") => words.find(|w| !EXPLAIN_OPTIONS.contains(w)).unwrap_or(""),
        Some(first) => first,
        None => "",
    }
}

fn postgres(sql: &str) -> Result<(), SqlError> {
    let upper = sql.to_ascii_uppercase();
    if upper.contains("U&\"") {
        return Err(refused("a Unicode-escaped identifier (U&\"…\")"));
    }
    let words = sql_text::words(sql, Dialect::Postgres);
    let kind = kind(&words);
    if PG_STATEMENTS.contains(&kind) {
        return Err(refused(kind));
    }
    let two_phase = words.windows(2).any(|w| {
        matches!(
            (w[0].as_str(), w[1].as_str()),
            ("PREPARE", "TRANSACTION") | ("COMMIT" | "ROLLBACK", "PREPARED")
        )
    });
    if two_phase {
        return Err(refused("a two-phase transaction"));
    }
    // A family is matched by prefix only in a name a function could have: a
    // quoted alias may hold any text after the prefix.
    let denied = |word: &&String| {
        PG_FUNCTIONS.contains(&word.as_str())
            || (PG_FUNCTION_PREFIXES.iter().any(|p| word.starts_with(p))
                && word
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$'))
    };
    if let Some(function) = words.iter().find(denied) {
        return Err(refused(format_args!(
            "the function {}",
            function.to_ascii_lowercase()
        )));
    }
    Ok(())
}

fn mysql(sql: &str, dialect: Dialect) -> Result<(), SqlError> {
    if sql.contains("/*!") || sql.to_ascii_uppercase().contains("/*M!") {
        return Err(refused("an executable comment (/*! … */)"));
    }
    let words = sql_text::words(sql, dialect);
    let kind = kind(&words);
    let second = words.get(1).map_or("", String::as_str);
    if MYSQL_STATEMENTS.contains(&kind) || (kind == "START" && second != "TRANSACTION") {
        return Err(refused(kind));
    }
    if kind == "SET" {
        if let Some(scope) = words
            .iter()
            .find(|w| matches!(w.as_str(), "GLOBAL" | "PERSIST" | "PERSIST_ONLY"))
        {
            return Err(refused(format_args!("SET {scope}")));
        }
        // MariaDB keeps a role across the connection reset. (`SET @role = 1`
        // names a variable: the second token is not a word.)
        let leading = sql_text::leading_words(sql, dialect, 2);
        if let Some(scope) = leading
            .get(1)
            .filter(|w| matches!(w.as_str(), "ROLE" | "DEFAULT"))
        {
            return Err(refused(format_args!("SET {scope}")));
        }
    }
    if words
        .windows(2)
        .any(|w| w[0] == "INTO" && matches!(w[1].as_str(), "OUTFILE" | "DUMPFILE"))
    {
        return Err(refused("writing a file (INTO OUTFILE)"));
    }
    if let Some(function) = words.iter().find(|w| MYSQL_FUNCTIONS.contains(&w.as_str())) {
        return Err(refused(format_args!(
            "the function {}",
            function.to_ascii_lowercase()
        )));
    }
    Ok(())
}

/// SQLite would prepare every statement of the text; `ATTACH`/`VACUUM` can create
/// or open files on the server, and some pragmas change the whole process. The
/// authorizer of `db::sqlite` refuses the same again inside the engine.
fn sqlite(sql: &str) -> Result<(), SqlError> {
    let statements = sql_text::split(sql, Dialect::Sqlite);
    if statements.len() > 1 {
        return Err(SqlError::refused(
            ErrorCode::SqlMultipleStatements,
            format!("found {} statements", statements.len()),
        ));
    }
    let words = statements
        .first()
        .map(|s| sql_text::leading_words(s, Dialect::Sqlite, 4))
        .unwrap_or_default();
    match kind(&words) {
        kind @ ("ATTACH" | "DETACH" | "VACUUM") => Err(SqlError::refused(
            ErrorCode::SqlReadOnlyViolation,
            format!("{kind} can create or open files on the server"),
        )),
        "PRAGMA" => Err(SqlError::refused(
            ErrorCode::SqlReadOnlyViolation,
            "PRAGMA statements are not allowed; read pragmas with the pragma_*() table functions, \
             e.g. SELECT * FROM pragma_table_info('t')",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::db::params::Engine;

    fn code(engine: Engine, sql: &str) -> Option<ErrorCode> {
        check(Dialect::of(engine), sql).err().map(|e| e.code())
    }

    #[test]
    fn postgres_side_effects_are_refused_however_they_are_written() {
        for sql in [
            "SELECT pg_terminate_backend(123)",
            r#"SELECT "pg_terminate_backend"(123)"#,
            "select PG_CATALOG.pg_reload_conf()",
            "SELECT lo_export(1, '/tmp/x')",
            "COPY (SELECT 1) TO PROGRAM 'true'",
            "copy t to '/tmp/x'",
            "DO $$ BEGIN PERFORM 1; END $$",
            "SELECT query_to_xml('select 1', true, true, '')",
            r#"SELECT U&"pg\005fterminate_backend"(1)"#,
            "PREPARE TRANSACTION 'x'",
            "EXPLAIN ANALYZE SELECT pg_read_file('/etc/passwd')",
        ] {
            assert_eq!(
                code(Engine::Postgresql, sql),
                Some(ErrorCode::SqlReadOnlyViolation),
                "{sql}"
            );
        }
    }

    #[test]
    fn functions_that_run_text_or_write_past_the_transaction_are_refused() {
        for sql in [
            "SELECT ts_rewrite('a'::tsquery, 'SELECT 1')",
            "SELECT * FROM crosstab2('select 1')",
            "SELECT dblink_get_result('c')",
            "SELECT xpath_table('id', 'x', 't', '/a', 'true')",
            "SELECT heap_force_kill('t'::regclass, ARRAY['(0,1)'::tid])",
            "SELECT brin_summarize_range('i', 0)",
            "SELECT pg_ls_logicalsnapdir()",
            "SELECT pg_replication_origin_session_setup('o')",
            "SELECT pg_read_file_old('/etc/passwd', 0, 1)",
            "SELECT autoprewarm_dump_now()",
            "ANALYZE t",
            "analyse t",
            "REINDEX TABLE t",
            "LOCK TABLE t",
        ] {
            assert_eq!(
                code(Engine::Postgresql, sql),
                Some(ErrorCode::SqlReadOnlyViolation),
                "{sql}"
            );
        }
        // EXPLAIN ANALYZE of a query is a query; a family name inside a quoted
        // alias is not a call.
        assert_eq!(
            code(
                Engine::Postgresql,
                "EXPLAIN (ANALYZE, FORMAT JSON) SELECT 1"
            ),
            None
        );
        assert_eq!(
            code(
                Engine::Postgresql,
                r#"SELECT 1 AS "pg_ls_dir() is refused""#
            ),
            None
        );
    }

    #[test]
    fn mysql_statements_that_outlive_the_reset_or_run_text_are_refused() {
        for sql in [
            "SET ROLE r",
            "SET DEFAULT ROLE r FOR u",
            "BACKUP STAGE START",
            "BACKUP LOCK t",
            "EXECUTE IMMEDIATE 'SELECT 1'",
            "PREPARE s FROM 'SELECT 1'",
            "SELECT MASTER_POS_WAIT('f', 4)",
            "SELECT 1--1, LOAD_FILE('/etc/hostname')",
        ] {
            assert_eq!(
                code(Engine::Mysql, sql),
                Some(ErrorCode::SqlReadOnlyViolation),
                "{sql}"
            );
        }
        assert_eq!(code(Engine::Mysql, "SET @role = 1"), None);
    }

    #[test]
    fn names_in_strings_and_comments_are_not_calls() {
        for sql in [
            "SELECT 'pg_terminate_backend' AS name",
            "SELECT 1 -- pg_reload_conf()",
            "SELECT $$copy$$",
            "SELECT copy_count FROM t",
        ] {
            assert_eq!(code(Engine::Postgresql, sql), None, "{sql}");
        }
    }

    #[test]
    fn mysql_side_effects_are_refused() {
        for sql in [
            "SELECT LOAD_FILE('/etc/passwd')",
            "SELECT 1 INTO OUTFILE '/tmp/x'",
            "SELECT 1 /*!, LOAD_FILE('/etc/passwd') */",
            "SET GLOBAL max_connections = 1",
            "SET @@global.max_connections = 1",
            "KILL 12",
            "START SLAVE",
            "LOAD DATA INFILE '/etc/passwd' INTO TABLE t",
            "INSTALL PLUGIN x SONAME 'x.so'",
        ] {
            assert_eq!(
                code(Engine::Mysql, sql),
                Some(ErrorCode::SqlReadOnlyViolation),
                "{sql}"
            );
        }
        assert_eq!(code(Engine::Mysql, "START TRANSACTION"), None);
        assert_eq!(code(Engine::Mysql, "SELECT 'load_file' AS f"), None);
    }

    #[test]
    fn a_refused_set_names_its_scope() {
        for (sql, scope) in [
            ("SET GLOBAL max_connections = 1", "SET GLOBAL"),
            ("SET PERSIST max_connections = 1", "SET PERSIST"),
            ("SET PERSIST_ONLY max_connections = 1", "SET PERSIST_ONLY"),
        ] {
            let error = check(Dialect::of(Engine::Mysql), sql).expect_err(sql);
            assert!(error.to_string().contains(scope), "{sql}: {error}");
        }
    }

    #[test]
    fn nul_bytes_are_refused_everywhere() {
        for engine in [Engine::Postgresql, Engine::Mysql, Engine::Sqlite] {
            assert_eq!(code(engine, "SELECT 1\0"), Some(ErrorCode::SqlSyntaxError));
        }
    }
}
