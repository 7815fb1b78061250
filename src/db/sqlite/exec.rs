//! A client's statement on SQLite (see the module docs), and SQLite's errors in
//! the API's vocabulary.

use std::time::Instant;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode as Sqlite};
use serde_json::Value;
use tokio::runtime::Handle;

use super::values;
use super::{LitePool, deadline_handler};
use crate::db::error::DbError;
use crate::db::execute::ExecRequest;
use crate::db::rows::{Column, RowSink};
use crate::db::sql_error::{EngineError, SqlError};
use crate::db::values::{Render, display_type};
use crate::error::ErrorCode;

/// Rows read before the columns are announced, so that an expression column
/// (which has no declared type) can be named by the storage class of its values.
const TYPE_PROBE_ROWS: usize = 64;

impl LitePool {
    /// Runs `request` read-only on a blocking thread, streaming rows into `sink`;
    /// `Ok(truncated)`.
    pub(crate) async fn execute(
        &self,
        request: &ExecRequest,
        sink: &mut RowSink,
    ) -> Result<bool, SqlError> {
        let permit = self.permit().await?;
        let (path, max_row_bytes) = (std::sync::Arc::clone(&self.path), self.max_row_bytes);
        let (request, handle) = (request.clone(), Handle::current());
        let mut moved = sink.take();
        let work = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let outcome = match super::open(&path, max_row_bytes) {
                Ok(conn) => run(&conn, &request, &mut moved, &handle, max_row_bytes),
                Err(error) => Err(connect_error(&error).into()),
            };
            (outcome, moved)
        });
        let (outcome, returned) = work.await.map_err(|error| {
            tracing::error!(%error, "a SQLite statement's thread failed");
            SqlError::refused(ErrorCode::SqlError, "the statement could not be completed")
        })?;
        *sink = returned;
        outcome
    }

    /// Checks `sql` without running it: SQLite compiles it (so syntax and name
    /// errors come from SQLite) and a program that opens a table for writing is
    /// refused.
    pub(crate) async fn validate(&self, request: &ExecRequest) -> Result<(), SqlError> {
        let (sql, timeout, max_row_bytes) =
            (request.sql.clone(), request.timeout, self.max_row_bytes);
        self.blocking(move |conn| {
            deadline_handler(conn, Instant::now() + timeout);
            let fail = |e: &rusqlite::Error| statement_error(e, &sql, max_row_bytes);
            let mut program = conn
                .prepare(&format!("EXPLAIN {sql}"))
                .map_err(|e| fail(&e))?;
            let mut rows = program.query([]).map_err(|e| fail(&e))?;
            while let Some(row) = rows.next().map_err(|e| fail(&e))? {
                if row.get_ref(1).ok().and_then(|v| v.as_str().ok()) == Some("OpenWrite") {
                    return Err(SqlError::refused(
                        ErrorCode::SqlReadOnlyViolation,
                        "the statement's program writes to the database",
                    ));
                }
            }
            Ok(())
        })
        .await?
    }
}

fn run(
    conn: &Connection,
    request: &ExecRequest,
    sink: &mut RowSink,
    handle: &Handle,
    max_row_bytes: usize,
) -> Result<bool, SqlError> {
    let fail = |e: &rusqlite::Error| statement_error(e, &request.sql, max_row_bytes);
    deadline_handler(conn, Instant::now() + request.timeout);
    sink.restart_clock();
    let mut statement = conn.prepare(&request.sql).map_err(|e| fail(&e))?;
    let declared: Vec<(String, Option<String>)> = statement
        .columns()
        .iter()
        .map(|c| (c.name().to_owned(), c.decl_type().map(str::to_owned)))
        .collect();
    let params = rusqlite::params_from_iter(request.params.iter().map(values::param));
    let mut rows = statement.query(params).map_err(|e| fail(&e))?;
    let render = Render {
        bigint_as_string: request.bigint_as_string,
    };
    let mut probe: Vec<Vec<Value>> = Vec::new();
    let mut storage: Vec<Option<&'static str>> = vec![None; declared.len()];
    let mut announced = false;
    let mut count = 0;
    loop {
        let row = match rows.next() {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(e) => return Err(fail(&e)),
        };
        count += 1;
        if count > request.max_rows {
            announce(
                sink,
                &declared,
                &storage,
                &mut probe,
                handle,
                &mut announced,
            )?;
            return Ok(true);
        }
        let mut values = Vec::with_capacity(declared.len());
        for (i, class) in storage.iter_mut().enumerate() {
            let raw = row.get_ref(i).unwrap_or(ValueRef::Null);
            if class.is_none() {
                *class = values::storage_class(raw);
            }
            values.push(values::value(raw, render));
        }
        if announced {
            if handle.block_on(sink.row(values)).is_err() {
                return Ok(false);
            }
        } else {
            probe.push(values);
            if probe.len() >= TYPE_PROBE_ROWS {
                announce(
                    sink,
                    &declared,
                    &storage,
                    &mut probe,
                    handle,
                    &mut announced,
                )?;
            }
        }
    }
    announce(
        sink,
        &declared,
        &storage,
        &mut probe,
        handle,
        &mut announced,
    )?;
    Ok(false)
}

/// Sends the columns (an undeclared one named by the first non-null value's
/// storage class), then the rows read so far.
fn announce(
    sink: &mut RowSink,
    declared: &[(String, Option<String>)],
    storage: &[Option<&'static str>],
    probe: &mut Vec<Vec<Value>>,
    handle: &Handle,
    announced: &mut bool,
) -> Result<(), SqlError> {
    if *announced {
        return Ok(());
    }
    *announced = true;
    let columns = declared
        .iter()
        .zip(storage)
        .map(|((name, declared), seen)| Column {
            name: name.clone(),
            type_name: display_type(
                declared
                    .as_deref()
                    .filter(|d| !d.is_empty())
                    .or(*seen)
                    .unwrap_or("NULL"),
            ),
        })
        .collect();
    if sink.columns(columns).is_err() {
        return Ok(());
    }
    for row in probe.drain(..) {
        if handle.block_on(sink.row(row)).is_err() {
            break;
        }
    }
    Ok(())
}

/// A failure while opening the file.
pub(crate) fn connect_error(error: &rusqlite::Error) -> DbError {
    match error.sqlite_error_code() {
        Some(Sqlite::CannotOpen | Sqlite::NotADatabase) => DbError::DatabaseNotFound,
        Some(Sqlite::PermissionDenied | Sqlite::AuthorizationForStatementDenied) => {
            DbError::AccessDenied
        }
        Some(Sqlite::DatabaseBusy | Sqlite::DatabaseLocked) => DbError::Timeout,
        _ => DbError::Protocol,
    }
}

/// A statement's failure, classified.
pub(crate) fn statement_error(
    error: &rusqlite::Error,
    sql: &str,
    max_row_bytes: usize,
) -> SqlError {
    let (code, extended, message) = match error {
        rusqlite::Error::SqliteFailure(failure, message) => (
            failure.code,
            failure.extended_code,
            message.clone().unwrap_or_else(|| failure.to_string()),
        ),
        rusqlite::Error::SqlInputError {
            error, msg, offset, ..
        } => {
            let position = usize::try_from(*offset)
                .ok()
                .map(|o| sql.get(..o).map_or(o, |s| s.chars().count()) + 1);
            return classified(
                error.code,
                error.extended_code,
                msg.clone(),
                position,
                max_row_bytes,
            );
        }
        rusqlite::Error::MultipleStatement => {
            let count =
                crate::db::sql_text::statement_count(sql, crate::db::sql_text::Dialect::Sqlite);
            return SqlError::refused(
                ErrorCode::SqlMultipleStatements,
                format!("found {} statements", count.max(2)),
            );
        }
        rusqlite::Error::InvalidParameterCount(given, expected) => {
            return SqlError::refused(
                ErrorCode::SqlError,
                format!(
                    "the statement expects {expected} parameter(s) but {given} were given in `params`"
                ),
            );
        }
        other => return SqlError::refused(ErrorCode::SqlError, other.to_string()),
    };
    classified(code, extended, message, None, max_row_bytes)
}

fn classified(
    code: Sqlite,
    extended: i32,
    message: String,
    position: Option<usize>,
    max_row_bytes: usize,
) -> SqlError {
    if code == Sqlite::TooBig {
        return SqlError::row_too_large(max_row_bytes);
    }
    let lower = message.to_ascii_lowercase();
    let kind = match code {
        Sqlite::ReadOnly => ErrorCode::SqlReadOnlyViolation,
        Sqlite::OperationInterrupted => ErrorCode::SqlTimeout,
        Sqlite::AuthorizationForStatementDenied => ErrorCode::SqlReadOnlyViolation,
        _ if lower.contains("no such table") => ErrorCode::SqlTableNotFound,
        _ if lower.contains("no such column") => ErrorCode::SqlColumnNotFound,
        _ if lower.contains("syntax error")
            || lower.contains("incomplete input")
            || lower.contains("unrecognized token") =>
        {
            ErrorCode::SqlSyntaxError
        }
        _ => ErrorCode::SqlError,
    };
    EngineError {
        code: kind,
        message,
        engine_code: Some(extended.to_string()),
        position,
        hint: None,
        detail: None,
    }
    .into()
}
