//! PostgreSQL: one statement in a `READ ONLY` transaction with `statement_timeout`.

use sqlx::AssertSqlSafe;
use sqlx::postgres::PgPool;

use super::{
    ExecRequest, QueryOutput, StreamStop, column_of, finish, result_columns, run_statement,
    timeout_ms,
};
use crate::db::params::Engine;
use crate::db::sql_error::{self, SqlError};
use crate::db::values::{self, Render};

pub(super) async fn execute(pool: &PgPool, request: &ExecRequest) -> Result<QueryOutput, SqlError> {
    let classify =
        |error: &sqlx::Error| sql_error::classify(Engine::Postgresql, error, &request.sql);
    let mut conn = pool.acquire().await.map_err(|e| classify(&e))?;
    let limit = super::overall_limit(request.timeout);
    let outcome = tokio::time::timeout(limit, run(&mut conn, request)).await;
    outcome.unwrap_or_else(|_| {
        conn.close_on_drop();
        Err(SqlError::timeout())
    })
}

async fn run(
    conn: &mut sqlx::pool::PoolConnection<sqlx::Postgres>,
    request: &ExecRequest,
) -> Result<QueryOutput, SqlError> {
    let classify =
        |error: &sqlx::Error| sql_error::classify(Engine::Postgresql, error, &request.sql);
    // Our own text, with an integer: the transaction is read-only before the client's
    // statement is even parsed, and the server cancels it at the limit.
    let setup = format!(
        "BEGIN READ ONLY; SET LOCAL statement_timeout = {}",
        timeout_ms(request.timeout)
    );
    sqlx::raw_sql(AssertSqlSafe(setup))
        .execute(&mut **conn)
        .await
        .map_err(|e| classify(&e))?;

    // Prepared as a named, cached statement: sqlx looks up unknown types (enums,
    // domains) between parsing and executing, which would replace an unnamed one.
    let (outcome, elapsed) = run_statement::<sqlx::Postgres>(&mut **conn, request, true).await;
    let collected = match outcome {
        Ok(collected) => collected,
        Err(StreamStop::Deadline) => {
            // The server did not cancel in time; closing the socket ends the backend's
            // work and keeps a half-read connection out of the pool.
            conn.close_on_drop();
            return Err(SqlError::timeout());
        }
        Err(StreamStop::Failed(error)) => {
            rollback(conn).await;
            if is_missing_prepared_statement(&error) {
                // The client ran DEALLOCATE: this connection's statement cache is stale.
                conn.close_on_drop();
            }
            return Err(classify(&error));
        }
    };
    if collected.truncated {
        conn.close_on_drop();
    } else {
        rollback(conn).await;
    }

    let render = Render {
        bigint_as_string: request.bigint_as_string,
    };
    let columns = result_columns(collected.rows.first(), &mut **conn, &request.sql, column_of)
        .await
        .map_err(|e| classify(&e))?;
    Ok(finish(
        &collected,
        columns,
        elapsed,
        request.max_result_bytes,
        |row, types| values::postgres::row(row, types, render),
    ))
}

pub(super) async fn validate(
    pool: &PgPool,
    sql: &str,
    timeout: std::time::Duration,
) -> Result<(), SqlError> {
    let classify = |error: &sqlx::Error| sql_error::classify(Engine::Postgresql, error, sql);
    let mut conn = pool.acquire().await.map_err(|e| classify(&e))?;
    // Validation is rare (generated SQL); closing the connection afterwards lets
    // the caller bound the whole check with a plain timeout.
    conn.close_on_drop();
    let setup = format!(
        "BEGIN READ ONLY; SET LOCAL statement_timeout = {}",
        timeout_ms(timeout)
    );
    sqlx::raw_sql(AssertSqlSafe(setup))
        .execute(&mut *conn)
        .await
        .map_err(|e| classify(&e))?;
    let plan = sqlx::query_scalar::<_, serde_json::Value>(AssertSqlSafe(format!(
        "EXPLAIN (FORMAT JSON) {sql}"
    )))
    .persistent(false)
    .fetch_one(&mut *conn)
    .await;
    rollback(&mut conn).await;
    let plan = plan.map_err(|e| classify(&e))?;
    if plan.to_string().contains(r#""Node Type":"ModifyTable""#) {
        return Err(SqlError::refused(
            crate::error::ErrorCode::SqlReadOnlyViolation,
            "the statement's plan modifies data",
        ));
    }
    Ok(())
}

fn is_missing_prepared_statement(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("26000"))
}

/// Ends the transaction and removes what a rollback leaves behind: session
/// advisory locks are released; a connection is closed rather than returned when
/// the client created prepared statements (`PREPARE`) or removed sqlx's own
/// (`DEALLOCATE`, which would make the next cached statement fail), or when the
/// cleanup itself fails.
async fn rollback(conn: &mut sqlx::pool::PoolConnection<sqlx::Postgres>) {
    const CLEANUP: &str = "ROLLBACK; SELECT pg_advisory_unlock_all(), \
         count(*) FILTER (WHERE from_sql) AS client_prepared, \
         count(*) FILTER (WHERE NOT from_sql) AS protocol_prepared \
         FROM pg_prepared_statements";
    let counts = sqlx::raw_sql(CLEANUP)
        .fetch_optional(&mut **conn)
        .await
        .ok()
        .flatten()
        .and_then(|row| {
            let client = sqlx::Row::try_get::<i64, _>(&row, "client_prepared").ok()?;
            let protocol = sqlx::Row::try_get::<i64, _>(&row, "protocol_prepared").ok()?;
            Some((client, protocol))
        });
    let cached =
        i64::try_from(sqlx::Connection::cached_statements_size(&**conn)).unwrap_or(i64::MAX);
    if counts != Some((0, cached)) {
        conn.close_on_drop();
    }
}
