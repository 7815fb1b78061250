//! A read-only batch: several statements in one snapshot of the database, each
//! with its own result or error, in order.
//!
//! - PostgreSQL ([`crate::db::pg`]): one flight. `BEGIN ISOLATION LEVEL
//!   REPEATABLE READ READ ONLY` and a savepoint; then each statement, ended by a
//!   `Sync` (a failure skips only to it) and followed by `ROLLBACK TO SAVEPOINT`,
//!   which clears a failure and keeps the transaction's snapshot; then
//!   `ROLLBACK`, `DISCARD ALL`. Every statement sees the same snapshot, and one
//!   that fails does not lose the others.
//! - MySQL/MariaDB: `START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT` at
//!   `REPEATABLE READ` on a pooled session, then the statements in turn (a
//!   failing statement does not end the transaction).
//! - SQLite: one read transaction on one connection.
//!
//! Each statement passes the same checks as `execute` ([`policy`]), and
//! statements that control the transaction (`COMMIT`, `SAVEPOINT`, …) are
//! refused, since the batch is one transaction; a refused statement is that
//! entry's error and the others run. `maxRows` applies to each statement,
//! `timeoutMs` to the whole batch (and to each statement as its own limit).

use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::db::DbPool;
use crate::db::execute::{ExecLimits, ExecRequest};
use crate::db::policy;
use crate::db::rows::{self, Execution, Hangup, RowSink};
use crate::db::sql_error::SqlError;
use crate::db::sql_text;
use crate::error::ErrorCode;

/// Statements in one batch at most.
pub(crate) const MAX_BATCH_STATEMENTS: usize = 32;

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct BatchRequest {
    /// The statements, each with its parameters and row cap.
    pub statements: Vec<ExecRequest>,
    /// The limit of the whole batch (and of each statement).
    pub timeout: Duration,
    /// The batch's tag when the client named it (`queryId`).
    pub tag: Option<String>,
}

/// A statement of a batch on its way to the engine, with the sink of its result.
pub(crate) struct Step {
    /// The statement.
    pub request: ExecRequest,
    /// Where its result goes; the engine ends it.
    pub sink: RowSink,
}

/// A running batch: each statement's result in order, resolving as the engine
/// reaches it.
pub(crate) struct Batch {
    /// One header per statement, in order (as [`crate::db::execute::execute`]'s).
    pub entries: Vec<oneshot::Receiver<Result<Execution, SqlError>>>,
    /// Armed until the reader has seen the last entry's end.
    pub hangup: Hangup,
    /// When the batch was sent.
    pub started: Instant,
}

/// Starts `request` on `pool`; its work runs on a task of its own, so that a
/// client hanging up cannot cut it between `BEGIN` and `ROLLBACK`.
pub(crate) fn run(pool: &DbPool, request: BatchRequest, limits: &ExecLimits) -> Batch {
    let dialect = pool.dialect();
    let token = CancellationToken::new();
    let mut entries = Vec::with_capacity(request.statements.len());
    let mut steps = Vec::with_capacity(request.statements.len());
    let mut refused = Vec::new();
    for statement in request.statements {
        let (sink, header) = rows::channel_within(limits.decode(), token.clone());
        entries.push(header);
        match check(dialect, &statement.sql) {
            Ok(()) => steps.push(Step {
                request: statement,
                sink,
            }),
            Err(error) => refused.push((sink, error)),
        }
    }
    let batch = BatchRequest {
        statements: Vec::new(),
        ..request
    };
    let pool = pool.clone();
    tokio::spawn(async move {
        for (sink, error) in refused {
            sink.finish(Err(error)).await;
        }
        let outcome = tokio::time::timeout(
            batch.timeout + Duration::from_secs(5),
            pool.batch(&batch, &mut steps),
        )
        .await
        .unwrap_or_else(|_| Err(SqlError::timeout()));
        // The engine ended every statement it reached; the others share its failure.
        let error = outcome.err().unwrap_or_else(|| {
            SqlError::refused(ErrorCode::SqlError, "the batch ended before this statement")
        });
        for step in steps {
            step.sink.finish(Err(error.clone())).await;
        }
    });
    Batch {
        entries,
        hangup: Hangup::armed(token),
        started: Instant::now(),
    }
}

/// `execute`'s checks, and no transaction control: the batch is one
/// transaction.
fn check(dialect: sql_text::Dialect, sql: &str) -> Result<(), SqlError> {
    policy::check(dialect, sql)?;
    let first = sql_text::first_word(sql, dialect);
    let controls = matches!(
        first.as_str(),
        "BEGIN" | "START" | "COMMIT" | "END" | "ROLLBACK" | "ABORT" | "SAVEPOINT" | "RELEASE"
    ) || (first == "SET"
        && sql_text::leading_words(sql, dialect, 2)
            .get(1)
            .map(String::as_str)
            == Some("TRANSACTION"));
    if controls {
        return Err(SqlError::refused(
            ErrorCode::SqlError,
            format!(
                "{first} is not allowed in a batch: the batch is one read-only transaction \
                 that querygate begins and ends"
            ),
        ));
    }
    Ok(())
}
