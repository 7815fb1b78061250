//! A statement's result as it comes from the database: its columns first, then
//! rows in batches, then how it ended.
//!
//! The engine runs on a task of its own and writes into a [`RowSink`]; the HTTP
//! layer reads the [`Execution`]. Memory stays flat whatever the result's size:
//! a batch holds about [`BATCH_BYTES`] of rows and the channel holds at most two
//! batches, so an engine that is faster than the client waits for it.
//!
//! A client that goes away before the end drops what it was waiting on — the
//! header, or the [`Execution`] with its [`Hangup`] still armed — and the engine
//! hears it at once ([`RowSink::hangup`]): it asks the database to stop the
//! statement, reads what is left of it without sending it anywhere, and ends the
//! session as usual, so the pooled connection serves the next request.

use std::time::Instant;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::db::budget::{Budget, DecodeLimits};
use crate::db::sql_error::SqlError;

/// Rows sent together, by their approximate JSON size.
pub(crate) const BATCH_BYTES: usize = 64 * 1024;
/// Rows sent together at most, whatever their size.
const BATCH_ROWS: usize = 512;

/// One result column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    /// As the engine names it (duplicates possible).
    pub name: String,
    /// The engine's type name, as clients see it.
    pub type_name: String,
}

/// What follows the columns.
#[derive(Debug)]
pub(crate) enum RowEvent {
    /// Rows, each with one JSON value per column.
    Rows(Vec<Vec<Value>>),
    /// The statement finished; `truncated` when more rows existed than `maxRows`.
    End {
        /// More rows existed than the cap.
        truncated: bool,
    },
    /// The statement failed after its columns were known.
    Failed(SqlError),
}

/// A running statement: its columns, and its rows as they come.
#[derive(Debug)]
pub(crate) struct Execution {
    /// Columns in order.
    pub columns: Vec<Column>,
    /// Rows, then exactly one `End` or `Failed`.
    pub events: mpsc::Receiver<RowEvent>,
    /// When the statement was sent.
    pub started: Instant,
    /// Armed until the reader has seen the end: dropped armed, it stops the
    /// statement.
    pub hangup: Hangup,
}

/// Held by whoever waits for a statement's result. Dropped before
/// [`Hangup::disarm`] — the client went away — it tells the engine to stop the
/// statement at the database.
#[derive(Debug, Default)]
pub(crate) struct Hangup(Option<DropGuard>);

impl Hangup {
    /// Armed over `token`: dropped before [`Hangup::disarm`], it cancels it.
    pub(crate) fn armed(token: CancellationToken) -> Self {
        Self(Some(token.drop_guard()))
    }

    /// The result was read to its end (or failed): nothing to stop.
    pub(crate) fn disarm(&mut self) {
        if let Some(guard) = self.0.take() {
            guard.disarm();
        }
    }
}

/// The client went away: stop reading and close the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HungUp;

/// The engine's end of an execution.
pub(crate) struct RowSink {
    header: Option<oneshot::Sender<Result<Execution, SqlError>>>,
    /// `None` once the sink was handed elsewhere with [`RowSink::take`].
    events: Option<mpsc::Sender<RowEvent>>,
    pending: Option<mpsc::Receiver<RowEvent>>,
    batch: Vec<Vec<Value>>,
    batch_bytes: usize,
    started: Instant,
    budget: Budget,
    hangup: CancellationToken,
}

/// Creates a sink whose rows are decoded within `limits`, the future that
/// resolves to the execution once its columns are known (or to the error that
/// came first), and the armed [`Hangup`] of whoever waits for it.
pub(crate) fn channel(
    limits: DecodeLimits,
) -> (
    RowSink,
    oneshot::Receiver<Result<Execution, SqlError>>,
    Hangup,
) {
    let hangup = CancellationToken::new();
    let (sink, header_rx) = channel_within(limits, hangup.clone());
    (sink, header_rx, Hangup::armed(hangup))
}

/// A sink and its header, as [`channel`], whose engine hears of a hang-up
/// through `hangup` (one token for the statements of a batch).
pub(crate) fn channel_within(
    limits: DecodeLimits,
    hangup: CancellationToken,
) -> (RowSink, oneshot::Receiver<Result<Execution, SqlError>>) {
    let (header, header_rx) = oneshot::channel();
    let (events, events_rx) = mpsc::channel(2);
    let sink = RowSink {
        header: Some(header),
        events: Some(events),
        pending: Some(events_rx),
        batch: Vec::new(),
        batch_bytes: 0,
        started: Instant::now(),
        budget: Budget::new(limits),
        hangup,
    };
    (sink, header_rx)
}

impl RowSink {
    /// Moves the sink out (to a blocking thread), leaving a spent one behind.
    pub(crate) fn take(&mut self) -> Self {
        std::mem::replace(
            self,
            Self {
                header: None,
                events: None,
                pending: None,
                batch: Vec::new(),
                batch_bytes: 0,
                started: self.started,
                budget: self.budget.clone(),
                hangup: self.hangup.clone(),
            },
        )
    }

    /// Cancelled when the client went away before the end: the engine stops
    /// the statement at the database.
    pub(crate) fn hangup(&self) -> CancellationToken {
        self.hangup.clone()
    }

    /// The budget of the next row, which the engine charges as it decodes.
    pub(crate) fn start_row(&mut self) -> &mut Budget {
        self.budget.start_row();
        &mut self.budget
    }

    /// Marks the moment the statement is sent, for `elapsedMs`.
    pub(crate) fn restart_clock(&mut self) {
        self.started = Instant::now();
    }

    /// Announces the columns; rows may follow.
    pub(crate) fn columns(&mut self, columns: Vec<Column>) -> Result<(), HungUp> {
        let header = self.header.take().ok_or(HungUp)?;
        let events = self.pending.take().ok_or(HungUp)?;
        header
            .send(Ok(Execution {
                columns,
                events,
                started: self.started,
                hangup: Hangup::default(),
            }))
            .map_err(|_| HungUp)
    }

    /// Adds a row decoded within [`RowSink::start_row`]'s budget; sends the
    /// batch when it is full.
    pub(crate) async fn row(&mut self, row: Vec<Value>) -> Result<(), HungUp> {
        self.batch_bytes += self.budget.row_bytes();
        self.batch.push(row);
        if self.batch_bytes >= BATCH_BYTES || self.batch.len() >= BATCH_ROWS {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), HungUp> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.batch_bytes = 0;
        let rows = std::mem::take(&mut self.batch);
        let events = self.events.as_ref().ok_or(HungUp)?;
        events.send(RowEvent::Rows(rows)).await.map_err(|_| HungUp)
    }

    /// Ends the execution: with the columns unknown, an error answers the request
    /// itself; otherwise the remaining rows and the end are sent.
    pub(crate) async fn finish(mut self, outcome: Result<bool, SqlError>) {
        self.end(outcome).await;
    }

    /// As [`RowSink::finish`], before the engine's own work is over (its
    /// cleanup can follow the answer); later ends are ignored.
    pub(crate) async fn end(&mut self, outcome: Result<bool, SqlError>) {
        self.send_end(outcome).await;
        self.header = None;
        self.events = None;
        self.pending = None;
    }

    async fn send_end(&mut self, outcome: Result<bool, SqlError>) {
        if let Some(header) = self.header.take() {
            let answer = match outcome {
                Err(error) => Err(error),
                Ok(truncated) => {
                    // A statement that produced no columns (SET, BEGIN): an empty result.
                    let Some(events) = self.pending.take() else {
                        return;
                    };
                    let _ = header.send(Ok(Execution {
                        columns: Vec::new(),
                        events,
                        started: self.started,
                        hangup: Hangup::default(),
                    }));
                    if let Some(sender) = &self.events {
                        let _ = sender.send(RowEvent::End { truncated }).await;
                    }
                    return;
                }
            };
            let _ = header.send(answer);
            return;
        }
        if self.events.is_none() || self.flush().await.is_err() {
            return;
        }
        let last = match outcome {
            Ok(truncated) => RowEvent::End { truncated },
            Err(error) => RowEvent::Failed(error),
        };
        if let Some(sender) = &self.events {
            let _ = sender.send(last).await;
        }
    }
}

/// About the size of a value's JSON text, without writing it.
pub(crate) fn json_size(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 20,
        Value::String(s) => s.len() + 2,
        Value::Array(items) => 2 + items.iter().map(|v| json_size(v) + 1).sum::<usize>(),
        Value::Object(map) => {
            2 + map
                .iter()
                .map(|(k, v)| k.len() + 4 + json_size(v))
                .sum::<usize>()
        }
    }
}

/// Reads a whole execution into memory (for `generate-sql`, the demo, and
/// `validate`-style callers), within `max_bytes` of rows.
pub(crate) async fn collect(
    mut execution: Execution,
    max_bytes: usize,
) -> Result<Collected, SqlError> {
    let mut rows = Vec::new();
    let mut bytes = 0;
    loop {
        match execution.events.recv().await {
            Some(RowEvent::Rows(batch)) => {
                for row in batch {
                    bytes += row.iter().map(json_size).sum::<usize>();
                    if bytes > max_bytes {
                        return Ok(Collected {
                            columns: execution.columns,
                            rows,
                            truncated: true,
                            elapsed: execution.started.elapsed(),
                        });
                    }
                    rows.push(row);
                }
            }
            Some(RowEvent::End { truncated }) => {
                execution.hangup.disarm();
                return Ok(Collected {
                    columns: execution.columns,
                    rows,
                    truncated,
                    elapsed: execution.started.elapsed(),
                });
            }
            Some(RowEvent::Failed(error)) => {
                execution.hangup.disarm();
                return Err(error);
            }
            None => {
                return Err(SqlError::refused(
                    crate::error::ErrorCode::SqlError,
                    "the statement ended without a result",
                ));
            }
        }
    }
}

/// A whole result in memory.
#[derive(Debug, Clone)]
pub(crate) struct Collected {
    /// Columns in order.
    pub columns: Vec<Column>,
    /// Rows.
    pub rows: Vec<Vec<Value>>,
    /// More rows existed than the caps allowed.
    pub truncated: bool,
    /// Time from sending the statement to its last row.
    pub elapsed: std::time::Duration,
}
