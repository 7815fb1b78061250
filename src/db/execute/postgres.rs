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
    // Our own text, with an integer: the transaction is read-only before the client's
    // statement is even parsed, and the server cancels it at the limit.
    let setup = format!(
        "BEGIN READ ONLY; SET LOCAL statement_timeout = {}",
        timeout_ms(request.timeout)
    );
    sqlx::raw_sql(AssertSqlSafe(setup))
        .execute(&mut *conn)
        .await
        .map_err(|e| classify(&e))?;

    // Prepared as a named, cached statement: sqlx looks up unknown types (enums,
    // domains) between parsing and executing, which would replace an unnamed one.
    let (outcome, elapsed) = run_statement::<sqlx::Postgres>(&mut conn, request, true).await;
    let collected = match outcome {
        Ok(collected) => collected,
        Err(StreamStop::Deadline) => {
            // The server did not cancel in time; closing the socket ends the backend's
            // work and keeps a half-read connection out of the pool.
            conn.close_on_drop();
            return Err(SqlError::timeout());
        }
        Err(StreamStop::Failed(error)) => {
            rollback(&mut conn).await;
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
        rollback(&mut conn).await;
    }

    let render = Render {
        bigint_as_string: request.bigint_as_string,
    };
    let columns = result_columns(collected.rows.first(), &mut *conn, &request.sql, column_of)
        .await
        .map_err(|e| classify(&e))?;
    Ok(finish(&collected, columns, elapsed, |row, types| {
        values::postgres::row(row, types, render)
    }))
}

pub(super) async fn validate(
    pool: &PgPool,
    sql: &str,
    timeout: std::time::Duration,
) -> Result<(), SqlError> {
    let classify = |error: &sqlx::Error| sql_error::classify(Engine::Postgresql, error, sql);
    let mut conn = pool.acquire().await.map_err(|e| classify(&e))?;
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
/// advisory locks are released, and a connection on which the client ran `PREPARE`
/// is closed rather than returned. A connection that cannot even do that is closed.
async fn rollback(conn: &mut sqlx::pool::PoolConnection<sqlx::Postgres>) {
    const CLEANUP: &str = "ROLLBACK; SELECT pg_advisory_unlock_all(), \
         EXISTS (SELECT 1 FROM pg_prepared_statements WHERE from_sql) AS prepared";
    let prepared = sqlx::raw_sql(CLEANUP)
        .fetch_optional(&mut **conn)
        .await
        .ok()
        .flatten()
        .and_then(|row| sqlx::Row::try_get::<bool, _>(&row, "prepared").ok());
    if prepared != Some(false) {
        conn.close_on_drop();
    }
}
