//! SQLite: a read-only, `query_only` connection, one statement, interrupted at the
//! deadline by a progress handler, closed afterwards.

use std::time::Instant;

use sqlx::sqlite::SqlitePool;
use sqlx::{AssertSqlSafe, Row};

use super::sql_text::{self, Dialect};
use super::{
    Column, ExecRequest, QueryOutput, StreamStop, column_of, finish, result_columns, run_statement,
};
use crate::db::params::Engine;
use crate::db::sql_error::{self, SqlError};
use crate::db::values::{self, Render};
use crate::error::ErrorCode;

/// How many virtual machine instructions run between two deadline checks.
const PROGRESS_OPS: i32 = 1_000;

/// What SQLite itself cannot be asked: sqlx would run every statement of the text,
/// and `ATTACH`/`VACUUM` can create or open files on the server.
fn lexical_check(sql: &str) -> Result<(), SqlError> {
    let statements = sql_text::split(sql, Dialect::Sqlite);
    if statements.len() > 1 {
        return Err(SqlError::refused(
            ErrorCode::SqlMultipleStatements,
            format!("found {} statements", statements.len()),
        ));
    }
    // The statement's own kind, behind any EXPLAIN [QUERY PLAN]: pragmas take
    // effect when prepared, so explaining one is running it.
    let words = statements
        .first()
        .map(|s| sql_text::leading_words(s, 4))
        .unwrap_or_default();
    let kind = words
        .iter()
        .find(|w| !matches!(w.as_str(), "EXPLAIN" | "QUERY" | "PLAN"))
        .map_or("", String::as_str);
    match kind {
        "ATTACH" | "DETACH" | "VACUUM" => Err(SqlError::refused(
            ErrorCode::SqlReadOnlyViolation,
            format!("{kind} can create or open files on the server"),
        )),
        // Some pragmas change the whole process (heap limits, the temporary
        // directory), beyond this connection; reads use the pragma_*() functions.
        "PRAGMA" => Err(SqlError::refused(
            ErrorCode::SqlReadOnlyViolation,
            "PRAGMA statements are not allowed; read pragmas with the pragma_*() table functions, \
             e.g. SELECT * FROM pragma_table_info('t')",
        )),
        _ => Ok(()),
    }
}

pub(super) async fn validate(
    pool: &SqlitePool,
    sql: &str,
    timeout: std::time::Duration,
) -> Result<(), SqlError> {
    lexical_check(sql)?;
    let classify = |error: &sqlx::Error| sql_error::classify(Engine::Sqlite, error, sql);
    let mut conn = pool.acquire().await.map_err(|e| classify(&e))?;
    conn.close_on_drop();
    let deadline = Instant::now() + timeout;
    conn.lock_handle()
        .await
        .map_err(|e| classify(&e))?
        .set_progress_handler(PROGRESS_OPS, move || Instant::now() < deadline);
    let program = sqlx::query(AssertSqlSafe(format!("EXPLAIN {sql}")))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| classify(&e))?;
    let opcodes: Vec<String> = program
        .iter()
        .filter_map(|row| row.try_get::<String, _>(1).ok())
        .collect();
    if opcodes.iter().any(|op| op == "OpenWrite") {
        return Err(SqlError::refused(
            ErrorCode::SqlReadOnlyViolation,
            "the statement's program writes to the database",
        ));
    }
    Ok(())
}

pub(super) async fn execute(
    pool: &SqlitePool,
    request: &ExecRequest,
) -> Result<QueryOutput, SqlError> {
    lexical_check(&request.sql)?;
    let classify = |error: &sqlx::Error| sql_error::classify(Engine::Sqlite, error, &request.sql);
    let mut conn = pool.acquire().await.map_err(|e| classify(&e))?;
    let limit = super::overall_limit(request.timeout);
    let outcome = tokio::time::timeout(limit, run(&mut conn, request)).await;
    outcome.unwrap_or_else(|_| {
        conn.close_on_drop();
        Err(SqlError::timeout())
    })
}

async fn run(
    conn: &mut sqlx::pool::PoolConnection<sqlx::Sqlite>,
    request: &ExecRequest,
) -> Result<QueryOutput, SqlError> {
    let classify = |error: &sqlx::Error| sql_error::classify(Engine::Sqlite, error, &request.sql);
    // Temporary tables and pragmas a statement leaves behind must not reach the
    // next request: this connection is closed after use.
    conn.close_on_drop();
    let started = Instant::now();
    let engine_deadline = started + request.timeout;
    conn.lock_handle()
        .await
        .map_err(|e| classify(&e))?
        .set_progress_handler(PROGRESS_OPS, move || Instant::now() < engine_deadline);

    let (outcome, elapsed) = run_statement::<sqlx::Sqlite>(&mut **conn, request, false).await;
    let collected = match outcome {
        Ok(collected) => collected,
        Err(StreamStop::Deadline) => return Err(SqlError::timeout()),
        Err(StreamStop::Failed(error)) => return Err(classify(&error)),
    };

    let columns = result_columns(collected.rows.first(), &mut **conn, &request.sql, column_of)
        .await
        .map_err(|e| classify(&e))?;
    // An expression column has no declared type; its first value's storage class
    // says more than "null".
    let columns: Vec<Column> = columns
        .into_iter()
        .enumerate()
        .map(|(i, column)| match column.type_name.as_str() {
            "NULL" => {
                let seen = collected.rows.iter().find_map(|row| {
                    let raw = row.try_get_raw(i).ok()?;
                    (!sqlx::ValueRef::is_null(&raw))
                        .then(|| sqlx::TypeInfo::name(&*sqlx::ValueRef::type_info(&raw)).to_owned())
                });
                Column {
                    type_name: seen.unwrap_or(column.type_name),
                    ..column
                }
            }
            _ => column,
        })
        .collect();
    let render = Render {
        bigint_as_string: request.bigint_as_string,
    };
    Ok(finish(
        &collected,
        columns,
        elapsed,
        request.max_result_bytes,
        |row, types| values::sqlite::row(row, types.len(), render),
    ))
}
