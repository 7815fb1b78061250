//! A read-only batch in one flight (see [`crate::db::batch`]).
//!
//! One write carries, in order:
//!
//! 1. `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`, the settings of the
//!    request ([`super::envelope::queue_settings`]) and `SAVEPOINT qg_batch`;
//! 2. for each statement: `ROLLBACK TO SAVEPOINT qg_batch` (from the second on),
//!    the statement (Parse, Bind, Describe, Execute with `maxRows + 1`), and a
//!    `Sync`. A failing statement makes the server skip only to its own `Sync`;
//!    the rollback to the savepoint that follows clears the failure, and the
//!    transaction — with the snapshot its first statement took — goes on;
//! 3. `ROLLBACK`, `DISCARD ALL`, `Sync`, as after every statement.
//!
//! The server flushes at each `Sync`, so each statement's result streams as it
//! comes. The whole batch is bounded by its limit plus a second: past it, the
//! server is asked to cancel and the connection is never reused.

use std::time::{Duration, Instant};

use super::answers::{Stop, finish, finish_setup, read_statement};
use super::conn::PgConn;
use super::envelope::{
    Attempt, await_flight, cancel_or_timeout, early_failure, encode_error, end_envelope,
    queue_cleanup, queue_settings, queue_statement,
};
use super::errors::{statement_error, wire_error};
use super::types::Types;
use crate::db::batch::{BatchRequest, Step};
use crate::db::sql_error::SqlError;

/// Queues the whole batch; the number of setup commands answered before the
/// first statement.
fn queue(conn: &mut PgConn, request: &BatchRequest, steps: &[Step]) -> Result<usize, SqlError> {
    conn.queue_text_statement("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", &[])
        .map_err(encode_error)?;
    let settings = queue_settings(conn, request.timeout, request.tag.as_deref())?;
    conn.queue_text_statement("SAVEPOINT qg_batch", &[])
        .map_err(encode_error)?;
    for (i, step) in steps.iter().enumerate() {
        if i > 0 {
            conn.queue_text_statement("ROLLBACK TO SAVEPOINT qg_batch", &[])
                .map_err(encode_error)?;
        }
        let rows = i32::try_from(step.request.max_rows.saturating_add(1)).unwrap_or(0);
        queue_statement(conn, &step.request.sql, &step.request.params, rows)?;
        conn.queue_sync();
    }
    queue_cleanup(conn).map_err(encode_error)?;
    Ok(2 + settings)
}

/// Runs the batch on `conn`, ending each step's sink as its statement ends.
/// Not to be dropped half-way (as [`super::envelope::run`]).
pub(crate) async fn run(
    conn: &mut PgConn,
    request: &BatchRequest,
    steps: &mut [Step],
    types: &Types,
) -> Attempt<()> {
    let setup = match queue(conn, request, steps) {
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
    let sent = Instant::now();
    let Some(hangup) = steps.first().map(|step| step.sink.hangup()) else {
        return Attempt::Done(Ok(()));
    };
    let (address, key) = (conn.address, conn.backend_key);
    let answers = read_answers(conn, setup, steps, types, sent, request.timeout);
    let flight = await_flight(answers, &hangup, (address, key), sent + request.timeout);
    let Some(attempt) = flight.await else {
        conn.mark_broken();
        return Attempt::Done(Err(SqlError::timeout()));
    };
    attempt
}

async fn read_answers(
    conn: &mut PgConn,
    setup: usize,
    steps: &mut [Step],
    types: &Types,
    sent: Instant,
    limit: Duration,
) -> Attempt<()> {
    match finish_setup(conn, setup).await {
        Ok(Ok(())) => {}
        Ok(Err(fields)) => {
            conn.mark_broken();
            return Attempt::Done(Err(statement_error(fields, "")));
        }
        Err(error) => return early_failure(conn, &error),
    }
    for (i, step) in steps.iter_mut().enumerate() {
        if i > 0 {
            match finish_setup(conn, 1).await {
                Ok(Ok(())) => {}
                Ok(Err(fields)) => {
                    conn.mark_broken();
                    return Attempt::Done(Err(statement_error(fields, "")));
                }
                Err(error) => return Attempt::Done(Err(wire_error(&error))),
            }
        }
        step.sink.restart_clock();
        let outcome = read_statement(conn, &step.request, &mut step.sink, types).await;
        let outcome = match outcome {
            // The statement's end; its Sync's ReadyForQuery follows.
            Ok(truncated) => match to_ready(conn).await {
                Ok(()) => Ok(truncated),
                Err(error) => Err(error),
            },
            // The reader ran up to the ReadyForQuery already.
            Err(Stop::Sql(error)) => Err(cancel_or_timeout(error, sent, limit)),
            Err(Stop::HungUp) => match to_ready(conn).await {
                Ok(()) => Ok(false),
                Err(error) => Err(error),
            },
            Err(Stop::Wire(error)) => Err(wire_error(&error)),
        };
        let failed_here = outcome.as_ref().err().cloned();
        step.sink.end(outcome).await;
        if conn.is_broken() {
            return Attempt::Done(Err(failed_here.unwrap_or_else(|| {
                SqlError::refused(
                    crate::error::ErrorCode::SqlError,
                    "the connection failed during the batch",
                )
            })));
        }
    }
    end_envelope(conn).await;
    Attempt::Done(Ok(()))
}

/// Reads up to the `ReadyForQuery` of a statement's `Sync`.
async fn to_ready(conn: &mut PgConn) -> Result<(), SqlError> {
    match finish(conn).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(fields)) => Err(statement_error(fields, "")),
        Err(error) => Err(wire_error(&error)),
    }
}
