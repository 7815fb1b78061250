//! PostgreSQL: one statement in a `READ ONLY` transaction with `statement_timeout`.

use std::time::Instant;

use sqlx::postgres::PgPool;
use sqlx::{AssertSqlSafe, Executor, Row, Statement};

use super::{
    Column, ExecRequest, QueryOutput, StreamStop, client_deadline, collect, column_of,
    display_type, timeout_ms,
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

    let started = Instant::now();
    // Prepared as a named, cached statement: sqlx looks up unknown types (enums,
    // domains) between parsing and executing, which would replace an unnamed one.
    let query = super::bind::all(
        sqlx::query(AssertSqlSafe(request.sql.clone())),
        &request.params,
    );
    let deadline = client_deadline(started, request.timeout);
    let outcome = collect(query.fetch(&mut *conn), request.max_rows, deadline).await;
    let elapsed = started.elapsed();
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
    let columns: Vec<Column> = match collected.rows.first() {
        Some(row) => row.columns().iter().map(column_of).collect(),
        None => (&mut *conn)
            .prepare(sqlx::SqlSafeStr::into_sql_str(AssertSqlSafe(
                request.sql.clone(),
            )))
            .await
            .map_err(|e| classify(&e))?
            .columns()
            .iter()
            .map(column_of)
            .collect(),
    };
    let types: Vec<String> = columns.iter().map(|c| c.type_name.clone()).collect();
    let rows = collected
        .rows
        .iter()
        .map(|row| values::postgres::row(row, &types, render))
        .collect();
    Ok(QueryOutput {
        columns: columns
            .into_iter()
            .map(|c| Column {
                type_name: display_type(&c.type_name),
                ..c
            })
            .collect(),
        rows,
        truncated: collected.truncated,
        elapsed,
    })
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

/// Ends the transaction. A connection that cannot even roll back is closed.
async fn rollback(conn: &mut sqlx::pool::PoolConnection<sqlx::Postgres>) {
    if sqlx::raw_sql("ROLLBACK")
        .execute(&mut **conn)
        .await
        .is_err()
    {
        conn.close_on_drop();
    }
}
