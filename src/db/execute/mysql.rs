//! MySQL / MariaDB: a read-only session and transaction with the engine's statement
//! time limit; the connection is closed afterwards (see the module docs).

use sqlx::AssertSqlSafe;
use sqlx::mysql::MySqlPool;

use super::{
    Column, ExecRequest, QueryOutput, StreamStop, finish, result_columns, run_statement, timeout_ms,
};
use crate::db::params::Engine;
use crate::db::sql_error::{self, SqlError};
use crate::db::values::{self, Render};

/// A result column; text with a binary (`_bin`) collation is text, not bytes.
///
/// sqlx names a column from its BINARY flag, which MySQL also sets for `_bin`
/// collations (MariaDB's JSON is `LONGTEXT COLLATE utf8mb4_bin`). Only collation 63
/// (`binary`) means bytes; sqlx exposes the collation only through `Debug`.
fn mysql_column(column: &sqlx::mysql::MySqlColumn) -> Column {
    use sqlx::{Column as _, TypeInfo as _};
    let info = column.type_info();
    let binary = format!("{info:?}").contains("collation: Collation(63)");
    let name = match info.name() {
        "BLOB" if !binary => "TEXT",
        "TINYBLOB" if !binary => "TINYTEXT",
        "MEDIUMBLOB" if !binary => "MEDIUMTEXT",
        "LONGBLOB" if !binary => "LONGTEXT",
        "VARBINARY" if !binary => "VARCHAR",
        "BINARY" if !binary => "CHAR",
        other => other,
    };
    Column {
        name: column.name().to_owned(),
        type_name: name.to_owned(),
    }
}

pub(super) async fn validate(
    pool: &MySqlPool,
    mariadb: bool,
    sql: &str,
    timeout: std::time::Duration,
) -> Result<(), SqlError> {
    let classify = |error: &sqlx::Error| sql_error::classify(Engine::Mysql, error, sql);
    let mut conn = pool.acquire().await.map_err(|e| classify(&e))?;
    conn.close_on_drop();
    sqlx::raw_sql(AssertSqlSafe(session_setup(mariadb, timeout)))
        .execute(&mut *conn)
        .await
        .map_err(|e| classify(&e))?;
    let plan = sqlx::query(AssertSqlSafe(format!("EXPLAIN {sql}")))
        .persistent(false)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| classify(&e))?;
    // EXPLAIN names the kind of each step; a data-changing one means the statement writes.
    let writes = plan.iter().any(|row| {
        sqlx::Row::try_get::<String, _>(row, "select_type")
            .is_ok_and(|kind| matches!(kind.as_str(), "INSERT" | "UPDATE" | "DELETE" | "REPLACE"))
    });
    if writes {
        return Err(SqlError::refused(
            crate::error::ErrorCode::SqlReadOnlyViolation,
            "the statement's plan modifies data",
        ));
    }
    Ok(())
}

/// `KILL QUERY` for the statement running on connection `id`, bounded in time;
/// a failure leaves nothing worse than before.
async fn kill_query(pool: &MySqlPool, id: u64) {
    // A connection of its own, outside the pool's limit: the pool may be full of
    // exactly the statements that need stopping.
    let kill = async {
        let options = pool.connect_options();
        let mut other = <sqlx::MySqlConnection as sqlx::Connection>::connect_with(&options).await?;
        let killed = sqlx::raw_sql(AssertSqlSafe(format!("KILL QUERY {id}")))
            .execute(&mut other)
            .await;
        let _ = sqlx::Connection::close(other).await;
        killed
    };
    if let Err(error) = tokio::time::timeout(std::time::Duration::from_secs(5), kill)
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut))
    {
        tracing::warn!(%error, "could not cancel a MySQL statement past its deadline");
    }
}

/// A read-only session and transaction with the engine's statement time limit.
fn session_setup(mariadb: bool, timeout: std::time::Duration) -> String {
    let ms = timeout_ms(timeout);
    let limit = if mariadb {
        format!(
            "SET SESSION max_statement_time = {}.{:03}",
            ms / 1000,
            ms % 1000
        )
    } else {
        format!("SET SESSION max_execution_time = {ms}")
    };
    // The session, not only the transaction, is read-only: DDL commits implicitly
    // and would otherwise run outside the transaction.
    format!("SET SESSION TRANSACTION READ ONLY; {limit}; START TRANSACTION READ ONLY")
}

pub(super) async fn execute(
    pool: &MySqlPool,
    mariadb: bool,
    request: &ExecRequest,
) -> Result<QueryOutput, SqlError> {
    let classify = |error: &sqlx::Error| sql_error::classify(Engine::Mysql, error, &request.sql);
    let mut conn = pool.acquire().await.map_err(|e| classify(&e))?;
    let limit = super::overall_limit(request.timeout);
    let outcome = tokio::time::timeout(limit, run(&mut conn, pool, mariadb, request)).await;
    outcome.unwrap_or_else(|_| {
        conn.close_on_drop();
        Err(SqlError::timeout())
    })
}

async fn run(
    conn: &mut sqlx::pool::PoolConnection<sqlx::MySql>,
    pool: &MySqlPool,
    mariadb: bool,
    request: &ExecRequest,
) -> Result<QueryOutput, SqlError> {
    let classify = |error: &sqlx::Error| sql_error::classify(Engine::Mysql, error, &request.sql);
    // Whatever happens below, this connection never serves another request.
    conn.close_on_drop();
    let setup = format!(
        "{}; SELECT CONNECTION_ID()",
        session_setup(mariadb, request.timeout)
    );
    let connection_id = sqlx::raw_sql(AssertSqlSafe(setup))
        .fetch_optional(&mut **conn)
        .await
        .map_err(|e| classify(&e))?
        .and_then(|row| sqlx::Row::try_get::<u64, _>(&row, 0).ok());

    let (outcome, elapsed) = run_statement::<sqlx::MySql>(&mut **conn, request, false).await;
    let collected = match outcome {
        Ok(collected) => collected,
        Err(StreamStop::Deadline) => {
            // The engine's own limit did not stop it (a statement can lift it for
            // itself with SET STATEMENT … FOR): stop it from another connection,
            // since closing this one would leave it running on the server.
            if let Some(id) = connection_id {
                kill_query(pool, id).await;
            }
            return Err(SqlError::timeout());
        }
        Err(StreamStop::Failed(error)) => return Err(classify(&error)),
    };

    let render = Render {
        bigint_as_string: request.bigint_as_string,
    };
    let columns = result_columns(
        collected.rows.first(),
        &mut **conn,
        &request.sql,
        mysql_column,
    )
    .await
    .map_err(|e| classify(&e))?;
    Ok(finish(
        &collected,
        columns,
        elapsed,
        request.max_result_bytes,
        |row, types| values::mysql::row(row, types, render),
    ))
}
