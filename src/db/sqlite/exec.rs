//! A client's statement on SQLite (see the module docs), and SQLite's errors in
//! the API's vocabulary.

use std::time::Instant;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode as Sqlite};
use serde_json::Value;
use tokio::runtime::Handle;

use super::values;
use super::{LitePool, StopFlag, deadline_handler};
use crate::db::budget::OverBudget;
use crate::db::error::DbError;
use crate::db::execute::ExecRequest;
use crate::db::rows::{Column, HungUp, RowSink};
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
        let stop = std::sync::Arc::new(StopFlag::default());
        let _listed = request
            .tag
            .as_deref()
            .map(|tag| self.running.enter(tag, &stop));
        let hangup = sink.hangup();
        let (request, handle, thread_stop) = (
            request.clone(),
            Handle::current(),
            std::sync::Arc::clone(&stop),
        );
        let mut moved = sink.take();
        let work = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let outcome = match super::open(&path, max_row_bytes) {
                Ok(conn) => run(
                    &conn,
                    &request,
                    &mut moved,
                    &handle,
                    (max_row_bytes, &thread_stop),
                ),
                Err(error) => Err(connect_error(&error).into()),
            };
            (outcome, moved)
        });
        let (outcome, returned) = stop_on_hangup(work, &hangup, &stop)
            .await
            .map_err(|error| {
                tracing::error!(%error, "a SQLite statement's thread failed");
                SqlError::refused(ErrorCode::SqlError, "the statement could not be completed")
            })?;
        *sink = returned;
        match outcome {
            Err(error) if stop.cancelled() && error.code() == ErrorCode::SqlTimeout => {
                Err(SqlError::cancelled())
            }
            other => other,
        }
    }

    /// Runs a batch (see [`crate::db::batch`]) in one read transaction on one
    /// connection, ending each step's sink as its statement ends; the batch's
    /// limit is shared by its statements.
    pub(crate) async fn batch(
        &self,
        request: &crate::db::batch::BatchRequest,
        steps: &mut [crate::db::batch::Step],
    ) -> Result<(), SqlError> {
        let permit = self.permit().await?;
        let (path, max_row_bytes) = (std::sync::Arc::clone(&self.path), self.max_row_bytes);
        let stop = std::sync::Arc::new(StopFlag::default());
        let _listed = request
            .tag
            .as_deref()
            .map(|tag| self.running.enter(tag, &stop));
        let Some(hangup) = steps.first().map(|step| step.sink.hangup()) else {
            return Ok(());
        };
        let mut moved: Vec<(ExecRequest, RowSink)> = steps
            .iter_mut()
            .map(|step| (step.request.clone(), step.sink.take()))
            .collect();
        let (handle, thread_stop, limit) = (
            Handle::current(),
            std::sync::Arc::clone(&stop),
            request.timeout,
        );
        let work = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = super::open(&path, max_row_bytes).map_err(|e| connect_error(&e))?;
            // A read transaction: every statement reads the same snapshot.
            conn.execute_batch("BEGIN")
                .map_err(|e| statement_error(&e, "", max_row_bytes))?;
            let deadline = Instant::now() + limit;
            for (statement, sink) in &mut moved {
                let left = deadline.saturating_duration_since(Instant::now());
                let outcome = if left.is_zero() {
                    Err(SqlError::timeout())
                } else {
                    let request = ExecRequest {
                        timeout: left,
                        ..statement.clone()
                    };
                    run(
                        &conn,
                        &request,
                        sink,
                        &handle,
                        (max_row_bytes, &thread_stop),
                    )
                };
                let outcome = match outcome {
                    Err(error)
                        if thread_stop.cancelled() && error.code() == ErrorCode::SqlTimeout =>
                    {
                        Err(SqlError::cancelled())
                    }
                    other => other,
                };
                handle.block_on(sink.end(outcome));
            }
            let _ = conn.execute_batch("COMMIT");
            Ok::<(), SqlError>(())
        });
        stop_on_hangup(work, &hangup, &stop)
            .await
            .map_err(|error| {
                tracing::error!(%error, "a SQLite batch's thread failed");
                SqlError::refused(ErrorCode::SqlError, "the batch could not be completed")
            })?
    }

    /// Stops the statement tagged `tag` if it runs on this file on this
    /// instance (SQLite's statements run in this process); whether one did.
    pub(crate) fn cancel(&self, tag: &str) -> bool {
        self.running.cancel(tag)
    }

    /// Checks `sql` without running it: SQLite compiles it (so syntax and name
    /// errors come from SQLite) and a program that opens a table for writing is
    /// refused.
    pub(crate) async fn validate(&self, request: &ExecRequest) -> Result<(), SqlError> {
        let (sql, timeout, max_row_bytes) =
            (request.sql.clone(), request.timeout, self.max_row_bytes);
        self.blocking(move |conn| {
            deadline_handler(conn, Instant::now() + timeout, None);
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

/// Awaits a statement's blocking `work`; a client that goes away first sets
/// `stop`, which SQLite's progress handler reads, and the work ends soon after.
async fn stop_on_hangup<T>(
    work: tokio::task::JoinHandle<T>,
    hangup: &tokio_util::sync::CancellationToken,
    stop: &StopFlag,
) -> Result<T, tokio::task::JoinError> {
    tokio::pin!(work);
    tokio::select! {
        biased;
        done = &mut work => done,
        () = hangup.cancelled() => {
            stop.hang_up();
            work.await
        }
    }
}

/// Runs `request` on `conn` on the blocking thread, streaming rows into `sink`;
/// `Ok(truncated)`.
fn run(
    conn: &Connection,
    request: &ExecRequest,
    sink: &mut RowSink,
    handle: &Handle,
    (max_row_bytes, stop): (usize, &std::sync::Arc<StopFlag>),
) -> Result<bool, SqlError> {
    let fail = |e: &rusqlite::Error| statement_error(e, &request.sql, max_row_bytes);
    deadline_handler(
        conn,
        Instant::now() + request.timeout,
        Some(std::sync::Arc::clone(stop)),
    );
    sink.restart_clock();
    let mut statement = conn.prepare(&request.sql).map_err(|e| fail(&e))?;
    let declared = statement
        .columns()
        .iter()
        .map(|c| (c.name().to_owned(), c.decl_type().map(str::to_owned)))
        .collect();
    let params = rusqlite::params_from_iter(request.params.iter().map(values::param));
    let mut rows = statement.query(params).map_err(|e| fail(&e))?;
    let render = Render {
        bigint_as_string: request.bigint_as_string,
    };
    let mut probe = Probe::new(declared, sink, handle);
    let mut count = 0;
    while let Some(row) = rows.next().map_err(|e| fail(&e))? {
        count += 1;
        if count > request.max_rows {
            probe.announce();
            return Ok(true);
        }
        match probe.row(row, render) {
            Ok(()) => {}
            Err(Cut::HungUp) => return Ok(false),
            Err(Cut::Over(over)) => {
                probe.announce();
                return over.outcome();
            }
        }
    }
    probe.announce();
    Ok(false)
}

/// Why reading rows stopped early.
enum Cut {
    /// The reader went away.
    HungUp,
    /// A value would break the decode budget.
    Over(OverBudget),
}

/// The rows of a statement on their way to the sink: the first
/// [`TYPE_PROBE_ROWS`] are held back until the columns are announced, so that an
/// undeclared column can be named by the storage class of its first non-null
/// value.
struct Probe<'a> {
    /// Each column's name and declared type.
    declared: Vec<(String, Option<String>)>,
    /// Each column's storage class, once a non-null value showed it.
    storage: Vec<Option<&'static str>>,
    /// Rows read before the columns were announced.
    held: Vec<Vec<Value>>,
    announced: bool,
    sink: &'a mut RowSink,
    handle: &'a Handle,
}

impl<'a> Probe<'a> {
    fn new(
        declared: Vec<(String, Option<String>)>,
        sink: &'a mut RowSink,
        handle: &'a Handle,
    ) -> Self {
        Self {
            storage: vec![None; declared.len()],
            declared,
            held: Vec::new(),
            announced: false,
            sink,
            handle,
        }
    }

    /// Reads `row`, then sends it, or holds it back while the columns are not
    /// announced yet; `Err` when the reader went away or a value is over the
    /// decode budget.
    fn row(&mut self, row: &rusqlite::Row<'_>, render: Render) -> Result<(), Cut> {
        let mut values = Vec::with_capacity(self.declared.len());
        let budget = self.sink.start_row();
        for (i, class) in self.storage.iter_mut().enumerate() {
            let raw = row.get_ref(i).unwrap_or(ValueRef::Null);
            if class.is_none() {
                *class = values::storage_class(raw);
            }
            values.push(values::value(raw, render, budget).map_err(Cut::Over)?);
        }
        if self.announced {
            return self
                .handle
                .block_on(self.sink.row(values))
                .map_err(|HungUp| Cut::HungUp);
        }
        self.held.push(values);
        if self.held.len() >= TYPE_PROBE_ROWS {
            self.announce();
        }
        Ok(())
    }

    /// Sends the columns (an undeclared one named by the first non-null value's
    /// storage class), then the rows held back; only the first call does.
    fn announce(&mut self) {
        if self.announced {
            return;
        }
        self.announced = true;
        let columns = self
            .declared
            .iter()
            .zip(&self.storage)
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
        if self.sink.columns(columns).is_err() {
            return;
        }
        for row in self.held.drain(..) {
            if self.handle.block_on(self.sink.row(row)).is_err() {
                break;
            }
        }
    }
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
        Sqlite::ReadOnly | Sqlite::AuthorizationForStatementDenied => {
            ErrorCode::SqlReadOnlyViolation
        }
        Sqlite::OperationInterrupted => ErrorCode::SqlTimeout,
        // The authorizer's refusal of a function (`load_extension`) comes back as
        // a plain error at prepare time, not as SQLITE_AUTH.
        _ if lower.starts_with("not authorized") => ErrorCode::SqlReadOnlyViolation,
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
