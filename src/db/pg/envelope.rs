//! The read-only envelope around a client's statement, in one round trip.
//!
//! One write carries the whole envelope in the extended protocol, ended by a
//! single `Sync`, so the server flushes its answers once (it flushes at every
//! `ReadyForQuery`):
//!
//! 1. `BEGIN READ ONLY`. The server works through the messages in order, so the
//!    transaction is read-only before the client's text is parsed. The server
//!    cancels the statement at its limit: every session starts with the server's
//!    default `statement_timeout`, and a request that asks for another adds
//!    `SET LOCAL statement_timeout = N`. (Every session also starts with
//!    `default_transaction_read_only = on`, so even a transaction that failed to
//!    begin would be read-only.)
//! 2. The client's statement — Parse (unnamed, which refuses a second
//!    statement), Bind, Describe, Execute with a row limit of `maxRows + 1`.
//! 3. `ROLLBACK`, `DISCARD ALL`, `Sync`: the transaction ends, and everything a
//!    session can keep is dropped (prepared statements, cursors, advisory locks,
//!    `LISTEN`, settings, temporary tables), so nothing outlives the request on a
//!    pooled connection. `DISCARD ALL` refuses to run inside a transaction block
//!    or after another statement of the same pipelined transaction; after
//!    `ROLLBACK` it starts a transaction of its own.
//!
//! A statement that fails makes the server skip everything up to the `Sync`,
//! the cleanup included: the client gets its answer at once, and the cleanup
//! follows in a flight of its own before the connection serves anyone else.
//!
//! A pooled connection that turns out dead before the server acknowledged anything
//! of the request is replaced and the request sent once more; once anything came
//! back, a failure is the answer (the statement may have run).

use std::time::{Duration, Instant};

use postgres_protocol::message::frontend;
use serde_json::Value;

use super::answers::{Stop, finish, finish_setup, read_statement};
use super::bind;
use super::conn::{PgConn, WireError};
use super::errors::{statement_error, wire_error};
use super::types::Types;
use crate::db::execute::ExecRequest;
use crate::db::rows::RowSink;
use crate::db::sql_error::SqlError;
use crate::error::ErrorCode;

/// How one attempt ended.
pub(crate) enum Attempt<T> {
    Done(Result<T, SqlError>),
    /// The connection failed before the server acknowledged anything: safe to
    /// send again on a fresh connection.
    Retry(SqlError),
}

/// Queues the envelope around `sql`: `Ok(n)`, the number of setup commands
/// whose completions come before the statement's answers.
fn queue(conn: &mut PgConn, request: &ExecRequest, max_rows: i32) -> Result<usize, SqlError> {
    conn.queue_text_statement("BEGIN READ ONLY", &[])
        .map_err(encode_error)?;
    let setup = 1 + queue_settings(conn, request.timeout, request.tag.as_deref())?;
    queue_statement(conn, &request.sql, &request.params, max_rows)?;
    queue_cleanup(conn).map_err(encode_error)?;
    Ok(setup)
}

/// Queues the transaction's settings: `statement_timeout` when the request asks
/// for another limit than the session's, `application_name` set to the tag of
/// a statement the client named (`pg_stat_activity` shows it, and `cancel`
/// finds the statement by it). `SET LOCAL`: both end with the transaction.
/// The number of commands queued.
pub(super) fn queue_settings(
    conn: &mut PgConn,
    timeout: Duration,
    tag: Option<&str>,
) -> Result<usize, SqlError> {
    let mut queued = 0;
    if timeout != conn.session.statement_timeout {
        let ms = super::startup::timeout_ms(timeout);
        conn.queue_text_statement(&format!("SET LOCAL statement_timeout = {ms}"), &[])
            .map_err(encode_error)?;
        queued += 1;
    }
    if let Some(tag) = tag {
        // The tag is `qg_` and hex digits: nothing to quote.
        conn.queue_text_statement(&format!("SET LOCAL application_name = '{tag}'"), &[])
            .map_err(encode_error)?;
        queued += 1;
    }
    Ok(queued)
}

/// Queues a client's statement: Parse (unnamed), Bind, Describe, Execute.
pub(super) fn queue_statement(
    conn: &mut PgConn,
    sql: &str,
    params: &[Value],
    max_rows: i32,
) -> Result<(), SqlError> {
    let out = &mut conn.out;
    let types: Vec<u32> = params.iter().map(bind::param_type).collect();
    frontend::parse("", sql, types, out).map_err(encode_error)?;
    bind::queue_bind(params, out)?;
    frontend::describe(b'P', "", out).map_err(encode_error)?;
    frontend::execute("", max_rows, out).map_err(encode_error)
}

/// Queues `ROLLBACK`, `DISCARD ALL` and the `Sync` that ends the flight.
pub(super) fn queue_cleanup(conn: &mut PgConn) -> std::io::Result<()> {
    conn.queue_text_statement("ROLLBACK", &[])?;
    conn.queue_text_statement("DISCARD ALL", &[])?;
    conn.queue_sync();
    Ok(())
}

pub(super) fn encode_error(_: std::io::Error) -> SqlError {
    SqlError::refused(
        ErrorCode::SqlError,
        "the statement is too long to send to PostgreSQL",
    )
}

/// Runs `request` on `conn`, streaming rows into `sink`; `Ok(truncated)`.
///
/// Not to be dropped half-way on a pooled connection: a flight cut short leaves
/// the connection `Busy` (never pooled again, so nothing leaks to the next user,
/// but the session is lost). `execute` spawns the work that holds it instead.
pub(crate) async fn run(
    conn: &mut PgConn,
    request: &ExecRequest,
    sink: &mut RowSink,
    types: &Types,
) -> Attempt<bool> {
    let max_rows = i32::try_from(request.max_rows.saturating_add(1)).unwrap_or(0);
    let setup = match queue(conn, request, max_rows) {
        Ok(setup) => setup,
        Err(error) => {
            conn.out.clear();
            conn.mark_broken();
            return Attempt::Done(Err(error));
        }
    };
    if let Err(error) = conn.flush().await {
        return Attempt::Retry(wire_error(&error));
    }
    sink.restart_clock();
    let sent = Instant::now();
    let hangup = sink.hangup();
    let (address, key) = (conn.address, conn.backend_key);
    let answers = read_answers(conn, (setup, sent), request, sink, types);
    let flight = await_flight(answers, &hangup, (address, key), sent + request.timeout);
    let Some(attempt) = flight.await else {
        conn.mark_broken();
        return Attempt::Done(Err(SqlError::timeout()));
    };
    attempt
}

/// Awaits a flight's `answers`. Everything a flight answers arrives within its
/// `limit` and a second: past it, the server did not cancel in time, so
/// querygate asks it to and answers `None` (the caller never reuses the
/// half-read connection). A client that goes away first gets its statement
/// cancelled at once ([`cancel_on_hangup`]).
pub(super) async fn await_flight<T>(
    answers: impl Future<Output = T>,
    hangup: &tokio_util::sync::CancellationToken,
    (address, key): (std::net::SocketAddr, Option<(i32, i32)>),
    limit: Instant,
) -> Option<T> {
    let deadline = limit + Duration::from_secs(1);
    let answers = cancel_on_hangup(answers, hangup, address, key);
    let answered = tokio::time::timeout_at(deadline.into(), answers).await.ok();
    if answered.is_none()
        && let Some(key) = key
    {
        tokio::spawn(super::startup::cancel(address, key));
    }
    answered
}

/// PostgreSQL answers `57014` both when the statement reached its time limit and
/// when a cancel request stopped it (in words that depend on the server's
/// language). One that ended before its limit was cancelled.
pub(super) fn cancel_or_timeout(error: SqlError, sent: Instant, limit: Duration) -> SqlError {
    if error.code() == ErrorCode::SqlTimeout && sent.elapsed() < limit {
        SqlError::cancelled()
    } else {
        error
    }
}

/// Awaits `answers`; if the client goes away first, asks the server (a
/// `CancelRequest` on a connection of its own) to stop the statement and goes
/// on reading: the statement ends with an error, the rest of the flight (or the
/// cleanup after it) runs as usual, and the connection stays poolable.
async fn cancel_on_hangup<T>(
    answers: impl Future<Output = T>,
    hangup: &tokio_util::sync::CancellationToken,
    address: std::net::SocketAddr,
    key: Option<(i32, i32)>,
) -> T {
    tokio::pin!(answers);
    tokio::select! {
        biased;
        outcome = &mut answers => return outcome,
        () = hangup.cancelled() => {}
    }
    if let Some(key) = key {
        tokio::spawn(super::startup::cancel(address, key));
    }
    answers.await
}

/// Reads the envelope's answers: the setup's, the statement's (streamed into
/// `sink`), then the cleanup's.
async fn read_answers(
    conn: &mut PgConn,
    (setup, sent): (usize, Instant),
    request: &ExecRequest,
    sink: &mut RowSink,
    types: &Types,
) -> Attempt<bool> {
    match finish_setup(conn, setup).await {
        Ok(Ok(())) => {}
        Ok(Err(fields)) => {
            conn.mark_broken();
            return Attempt::Done(Err(statement_error(fields, &request.sql)));
        }
        Err(error) => return early_failure(conn, &error),
    }
    let outcome = read_statement(conn, request, sink, types)
        .await
        .map_err(|stop| match stop {
            Stop::Sql(error) => Stop::Sql(cancel_or_timeout(error, sent, request.timeout)),
            other => other,
        });
    if let Err(Stop::Sql(error)) = &outcome {
        if !conn.is_broken() {
            // The server skipped the rest of the flight, cleanup included: the
            // client has its answer while the cleanup makes a round trip.
            sink.end(Err(error.clone())).await;
            clean_up_after_failure(conn).await;
        }
    } else if !conn.is_broken() {
        end_envelope(conn).await;
    }
    Attempt::Done(outcome.map_err(|stop| match stop {
        Stop::Sql(error) => error,
        Stop::Wire(error) => wire_error(&error),
        Stop::HungUp => SqlError::refused(ErrorCode::SqlError, "the client went away"),
    }))
}

/// A failure before the statement's results: retry when the server said nothing
/// at all, or only that it was ending this session (nothing of the flight ran).
pub(super) fn early_failure<T>(conn: &PgConn, error: &WireError) -> Attempt<T> {
    let retry = matches!(error, WireError::Ending { .. }) || !conn.answered();
    let error = wire_error(error);
    if retry {
        Attempt::Retry(error)
    } else {
        Attempt::Done(Err(error))
    }
}

/// The end of the envelope (`ROLLBACK`, then `DISCARD ALL`); any surprise
/// closes the connection instead of pooling it.
pub(super) async fn end_envelope(conn: &mut PgConn) {
    match finish(conn).await {
        Ok(Ok(())) => {}
        Ok(Err(fields)) => {
            tracing::warn!(code = %fields.code, "PostgreSQL session cleanup failed; closing the connection");
            conn.mark_broken();
        }
        Err(_) => conn.mark_broken(),
    }
}

/// After a failed statement: the cleanup the server skipped, in a flight of its own.
async fn clean_up_after_failure(conn: &mut PgConn) {
    if queue_cleanup(conn).is_err() || conn.flush().await.is_err() {
        conn.mark_broken();
        return;
    }
    end_envelope(conn).await;
}
