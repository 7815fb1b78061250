//! The one audited door for SQL written by a client.
//!
//! # Threat model
//!
//! A client holds valid credentials (they are in its token) and sends arbitrary
//! text. querygate promises that text runs as **exactly one statement, read-only,
//! within a time limit, returning a bounded number of rows**, and that nothing it
//! does outlives the request on a pooled connection. The promise is kept by the
//! engines themselves, never by looking for keywords:
//!
//! - PostgreSQL: a `READ ONLY` transaction with `SET LOCAL statement_timeout`, one
//!   user statement per transaction (so `SET TRANSACTION READ WRITE` cannot precede
//!   a write), sent through the extended protocol, which refuses a second
//!   statement; always rolled back. The rollback also releases session advisory
//!   locks, and a connection on which the client ran `PREPARE` or `DEALLOCATE` is
//!   closed instead of returned (what a rollback does not undo).
//! - MySQL/MariaDB: the *session* is made read-only (DDL commits implicitly and
//!   would escape a read-only transaction), then a `READ ONLY` transaction with the
//!   engine's statement time limit; the statement goes through the binary protocol,
//!   which refuses a second statement. Because a user's `SET SESSION …`, user
//!   variables or temporary tables would outlive the request, the connection is
//!   closed afterwards instead of returned to the pool; a statement still running at
//!   the deadline is stopped with `KILL QUERY`.
//! - SQLite: the file is opened read-only with `query_only`; sqlx would run every
//!   `;`-separated statement, so the text is split by SQLite's lexical rules first
//!   and a second statement refused; `ATTACH`, `DETACH` and `VACUUM` (which can
//!   create or open files on the server) and `PRAGMA` (some change the whole
//!   process) are refused; a progress handler interrupts the statement at the
//!   deadline; the connection is closed afterwards.
//! - Everywhere: a NUL character is refused, and the whole work (setup, statement,
//!   cleanup) is bounded by the statement's limit plus a grace period.
//!
//! Rows are read one past the cap and no further, and within `MAX_RESULT_BYTES`; a
//! connection whose result was not read to the end is closed rather than returned
//! (the next user would otherwise wait while it drains). Read-only holds for this
//! session: extensions such as dblink, or functions that need superuser rights,
//! act with the connecting role's privileges, so deployments should connect with
//! least-privileged roles. This module is the only place that wraps client text in
//! `AssertSqlSafe`.

mod bind;
mod mysql;
mod postgres;
pub mod sql_text;
mod sqlite;

use std::time::{Duration, Instant};

use futures_util::{Stream, TryStreamExt};
use serde_json::Value;

use crate::db::DbPool;
use crate::db::sql_error::SqlError;

/// What to run and within which limits.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    /// The client's SQL.
    pub sql: String,
    /// Bind parameters (JSON scalars; arrays and objects are bound as JSON text).
    pub params: Vec<Value>,
    /// Rows returned at most.
    pub max_rows: usize,
    /// Statement time limit.
    pub timeout: Duration,
    /// 64-bit integer columns as strings.
    pub bigint_as_string: bool,
    /// Approximate size of the rows' JSON at most; rows past it are left out and
    /// the result marked truncated.
    pub max_result_bytes: usize,
}

/// One result column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// As the engine names it (duplicates possible).
    pub name: String,
    /// The engine's type name.
    pub type_name: String,
}

/// A statement's result.
#[derive(Debug, Clone)]
pub struct QueryOutput {
    /// Columns in order.
    pub columns: Vec<Column>,
    /// Rows, each with one JSON value per column.
    pub rows: Vec<Vec<Value>>,
    /// More rows existed than `max_rows`.
    pub truncated: bool,
    /// Time spent running the statement and reading its rows.
    pub elapsed: Duration,
}

/// Runs `request` on `pool`, read-only.
pub async fn execute(
    pool: &DbPool,
    server_version: &str,
    request: &ExecRequest,
) -> Result<QueryOutput, SqlError> {
    refuse_nul(&request.sql)?;
    match pool {
        DbPool::Postgres(pool) => postgres::execute(pool, request).await,
        DbPool::Mysql(pool) => {
            let mariadb = server_version.starts_with("MariaDB");
            mysql::execute(pool, mariadb, request).await
        }
        DbPool::Sqlite(pool) => sqlite::execute(pool, request).await,
    }
}

/// Plans `sql` read-only without running it, so that the engine reports syntax and
/// name errors; refuses with `sql_read_only_violation` a plan that would write
/// (PostgreSQL: a `ModifyTable` node, such as a writable CTE; SQLite: an
/// `OpenWrite` instruction). Used to check generated SQL that is not executed.
pub async fn validate(
    pool: &DbPool,
    server_version: &str,
    sql: &str,
    timeout: Duration,
) -> Result<(), SqlError> {
    refuse_nul(sql)?;
    // Only queries can be explained. SHOW, DESCRIBE and EXPLAIN itself write
    // nothing; any other kind of statement is not a query at all.
    match sql_text::first_word(sql).as_str() {
        "SELECT" | "WITH" | "VALUES" | "TABLE" => {}
        "SHOW" | "DESCRIBE" | "DESC" | "EXPLAIN" => return Ok(()),
        other => {
            return Err(SqlError::refused(
                crate::error::ErrorCode::SqlReadOnlyViolation,
                format!("{other} is not a query"),
            ));
        }
    }
    // Every validate path closes its connection afterwards, so cutting it short
    // leaves nothing behind.
    let check = async {
        match pool {
            DbPool::Postgres(pool) => postgres::validate(pool, sql, timeout).await,
            DbPool::Mysql(pool) => {
                mysql::validate(pool, server_version.starts_with("MariaDB"), sql, timeout).await
            }
            DbPool::Sqlite(pool) => sqlite::validate(pool, sql, timeout).await,
        }
    };
    tokio::time::timeout(overall_limit(timeout), check)
        .await
        .unwrap_or_else(|_| Err(SqlError::timeout()))
}

/// A NUL character ends the text for SQLite's parser while the rest is still
/// there (sqlx then loops on it forever) and is never valid SQL elsewhere.
fn refuse_nul(sql: &str) -> Result<(), SqlError> {
    if sql.contains('\0') {
        return Err(SqlError::refused(
            crate::error::ErrorCode::SqlSyntaxError,
            "the statement contains a NUL character",
        ));
    }
    Ok(())
}

/// Rows read from a stream, and why reading stopped.
struct Collected<R> {
    rows: Vec<R>,
    /// Stopped at the cap with rows left unread.
    truncated: bool,
}

enum StreamStop {
    /// The deadline passed while reading.
    Deadline,
    /// The engine reported an error.
    Failed(sqlx::Error),
}

/// Reads at most `max_rows + 1` rows (the extra one only to learn that more exist)
/// before `deadline`.
async fn collect<R, S>(
    mut stream: S,
    max_rows: usize,
    deadline: Instant,
) -> Result<Collected<R>, StreamStop>
where
    S: Stream<Item = Result<R, sqlx::Error>> + Unpin,
{
    let mut rows = Vec::new();
    loop {
        let next = tokio::time::timeout_at(deadline.into(), stream.try_next())
            .await
            .map_err(|_| StreamStop::Deadline)?
            .map_err(StreamStop::Failed)?;
        match next {
            None => {
                return Ok(Collected {
                    rows,
                    truncated: false,
                });
            }
            Some(_) if rows.len() == max_rows => {
                return Ok(Collected {
                    rows,
                    truncated: true,
                });
            }
            Some(row) => rows.push(row),
        }
    }
}

/// Binds the client's parameters, runs the statement and reads its rows within the
/// row cap and the client-side deadline; returns the outcome and the time it took.
async fn run_statement<DB>(
    conn: &mut DB::Connection,
    request: &ExecRequest,
    persistent: bool,
) -> (Result<Collected<DB::Row>, StreamStop>, Duration)
where
    DB: sqlx::Database + sqlx::database::HasStatementCache,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'q> bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> f64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> sqlx::types::Json<Value>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let started = Instant::now();
    let sql = sqlx::AssertSqlSafe(request.sql.clone());
    let query = bind::all(sqlx::query::<DB>(sql), &request.params).persistent(persistent);
    let deadline = client_deadline(started, request.timeout);
    let outcome = collect(query.fetch(&mut *conn), request.max_rows, deadline).await;
    (outcome, started.elapsed())
}

/// The limit on everything one statement's work may take, setup and cleanup
/// included: a database that goes silent mid-request must not hold a request (and
/// a pooled connection) until TCP gives up.
fn overall_limit(timeout: Duration) -> Duration {
    timeout + Duration::from_secs(5)
}

/// The client-side deadline: the engine's own limit plus a grace period, so the
/// engine normally cancels first and reports it.
fn client_deadline(started: Instant, timeout: Duration) -> Instant {
    started + timeout + Duration::from_millis(1_000)
}

/// Milliseconds for engine settings, at least 1.
fn timeout_ms(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// The columns of a result: from its first row, or, for an empty result, by
/// preparing the statement (nothing runs).
async fn result_columns<DB, R>(
    first: Option<&R>,
    conn: &mut DB::Connection,
    sql: &str,
    to_column: impl Fn(&DB::Column) -> Column,
) -> Result<Vec<Column>, sqlx::Error>
where
    DB: sqlx::Database,
    R: sqlx::Row<Database = DB>,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    use sqlx::Statement as _;
    if let Some(row) = first {
        return Ok(row.columns().iter().map(&to_column).collect());
    }
    let statement = sqlx::Executor::prepare(
        &mut *conn,
        sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(sql.to_owned())),
    )
    .await?;
    Ok(statement.columns().iter().map(&to_column).collect())
}

/// The output from collected rows, their columns (engine type names) and a row
/// converter.
fn finish<R>(
    collected: &Collected<R>,
    columns: Vec<Column>,
    elapsed: Duration,
    max_bytes: usize,
    convert: impl Fn(&R, &[String]) -> Vec<Value>,
) -> QueryOutput {
    let types: Vec<String> = columns.iter().map(|c| c.type_name.clone()).collect();
    let mut rows = Vec::with_capacity(collected.rows.len());
    let mut bytes = 0;
    let mut over_budget = false;
    for row in &collected.rows {
        let values = convert(row, &types);
        bytes += values.iter().map(json_size).sum::<usize>();
        if bytes > max_bytes {
            over_budget = true;
            break;
        }
        rows.push(values);
    }
    QueryOutput {
        columns: columns
            .into_iter()
            .map(|c| Column {
                type_name: display_type(&c.type_name),
                ..c
            })
            .collect(),
        rows,
        truncated: collected.truncated || over_budget,
        elapsed,
    }
}

/// About the size of a value's JSON text, without writing it.
fn json_size(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 20,
        Value::String(s) => s.len() + 2,
        Value::Array(items) => 2 + items.iter().map(|v| json_size(v) + 1).sum::<usize>(),
        Value::Object(map) => {
            2 + map
                .iter()
                .map(|(k, v)| k.len() + 4 + json_size(v))
                .sum::<usize>()
        }
    }
}

/// A result column's name and engine type.
fn column_of<C: sqlx::Column>(column: &C) -> Column {
    use sqlx::TypeInfo as _;
    Column {
        name: column.name().to_owned(),
        type_name: column.type_info().name().to_owned(),
    }
}

/// The engine type name as clients see it: built-in upper-case names in lower case,
/// user-defined names (enums, domains) as they are.
fn display_type(name: &str) -> String {
    if name.bytes().any(|b| b.is_ascii_lowercase()) {
        name.to_owned()
    } else {
        name.to_ascii_lowercase()
    }
}
