//! A statement's result as an HTTP answer, written as the rows arrive.
//!
//! The first [`BUFFER_BYTES`] of the answer are held back: a result that ends
//! within them is sent whole (with `Content-Length`, byte for byte what a
//! non-streamed answer was), and a failure within them is an ordinary error with
//! its status. Past that the answer is committed (`200`, chunked): rows are
//! written as they come, memory stays flat, the byte cap is counted on the bytes
//! written. A failure after that point is written in the closing part — `error`
//! in the JSON and NDJSON endings, a `#querygate-error` record in CSV — and then
//! the transfer is aborted (an HTTP/1.1 body ends without its last chunk, an
//! HTTP/2 stream is reset), so that no client, `curl -f` included, can take the
//! result for a whole one. A result cut short by a cap says so in its body in
//! every format (`truncated` in the JSON and NDJSON endings, a last
//! `#querygate-truncated` record in CSV); a CSV also carries `x-row-count` and
//! `x-truncated`, as headers when whole, as trailers when streamed.

pub(crate) mod batch;
pub(crate) mod schema;
mod writers;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use http_body::Frame;
use serde::Serialize;
use serde_json::Value;

pub(crate) use writers::{Cells, Format, Layout};
use writers::{Ending, RowObject, Writer};

use crate::db::execute::RowCap;
use crate::db::rows::{Collected, Column, Execution, RowEvent};
use crate::error::AppError;
use crate::server::Flushes;

/// What is held back before an answer is committed to streaming.
pub(crate) const BUFFER_BYTES: usize = 256 * 1024;

/// The time an answer was finished, as written in `executedAt`.
fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A duration in milliseconds, to a tenth of a millisecond.
pub(crate) fn elapsed_ms(elapsed: std::time::Duration) -> f64 {
    (elapsed.as_secs_f64() * 10_000.0).round() / 10.0
}

/// Bytes sent per chunk once an answer streams.
const CHUNK_BYTES: usize = 64 * 1024;

/// How long a failed stream waits for its closing part to leave before it
/// aborts anyway (a client that stopped reading).
const FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long the closing part of a failed stream is left to be read after it
/// left, before the abort: a browser reports a failed transfer as soon as it
/// sees it, and may drop what arrived just before (Chromium does, now and then,
/// when the end follows the last bytes at once).
const READ_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

/// Where writing stands.
struct Progress {
    writer: Writer,
    execution: Execution,
    flushes: Option<Flushes>,
    max_bytes: usize,
    written: usize,
    rows: usize,
}

/// What reading the next events gave.
enum Step {
    /// More bytes to send.
    Bytes(Vec<u8>),
    /// The last rows, and how the result ended.
    End(Vec<u8>, Outcome),
}

/// How a result ended.
struct Outcome {
    truncated: bool,
    error: Option<AppError>,
}

impl Progress {
    /// Reads events until about `want` bytes are written or the result ends.
    async fn step(&mut self, want: usize) -> Step {
        let mut out = Vec::new();
        loop {
            match self.execution.events.recv().await {
                Some(RowEvent::Rows(batch)) => {
                    for row in batch {
                        let before = out.len();
                        self.writer.row(&row, &mut out);
                        if self.written + out.len() > self.max_bytes {
                            out.truncate(before);
                            return self.end(out, true, None);
                        }
                        self.rows += 1;
                    }
                    if out.len() >= want {
                        self.written += out.len();
                        return Step::Bytes(out);
                    }
                }
                Some(RowEvent::End { truncated }) => {
                    self.execution.hangup.disarm();
                    return self.end(out, truncated, None);
                }
                Some(RowEvent::Failed(error)) => {
                    self.execution.hangup.disarm();
                    return self.end(out, false, Some(error.into()));
                }
                None => {
                    let error = AppError::new(
                        crate::error::ErrorCode::SqlError,
                        "The statement ended without finishing its result.",
                    );
                    return self.end(out, false, Some(error));
                }
            }
        }
    }

    fn end(&mut self, out: Vec<u8>, truncated: bool, error: Option<AppError>) -> Step {
        // Stop the engine now: it closes its connection rather than read on.
        self.execution.events.close();
        self.written += out.len();
        Step::End(out, Outcome { truncated, error })
    }

    fn close(&self, ending: &Outcome, out: &mut Vec<u8>) {
        let executed_at = now();
        self.writer.tail(
            &Ending {
                row_count: self.rows,
                truncated: ending.truncated,
                executed_at: &executed_at,
                elapsed_ms: elapsed_ms(self.execution.started.elapsed()),
                error: ending.error.as_ref(),
            },
            out,
        );
    }
}

/// The answer for `execution` in `format`, within `max_bytes` of rows.
///
/// `flushes` are the request's connection's (absent when the router is called
/// without a server, in tests).
pub(crate) async fn respond(
    execution: Execution,
    format: Format,
    max_bytes: usize,
    flushes: Option<Flushes>,
) -> Response {
    let writer = Writer::new(format, execution.columns.clone());
    let mut progress = Progress {
        writer,
        execution,
        flushes,
        max_bytes,
        written: 0,
        rows: 0,
    };
    let mut head = Vec::new();
    progress.writer.head(&mut head);
    match progress.step(BUFFER_BYTES).await {
        Step::End(rows, ending) => {
            if let Some(error) = ending.error {
                return error.into_response();
            }
            head.extend_from_slice(&rows);
            progress.close(&ending, &mut head);
            whole(format, head, progress.rows, ending.truncated)
        }
        Step::Bytes(rows) => {
            head.extend_from_slice(&rows);
            streamed(format, head, progress)
        }
    }
}

fn whole(format: Format, body: Vec<u8>, rows: usize, truncated: bool) -> Response {
    let mut response = ([(header::CONTENT_TYPE, format.content_type())], body).into_response();
    if matches!(format, Format::Csv(_)) {
        count_headers(response.headers_mut(), rows, truncated);
    }
    response
}

fn count_headers(headers: &mut HeaderMap, rows: usize, truncated: bool) {
    headers.insert("x-row-count", HeaderValue::from(rows));
    headers.insert(
        "x-truncated",
        HeaderValue::from_static(if truncated { "true" } else { "false" }),
    );
}

/// Where a streamed answer stands.
enum Stage {
    /// The held-back opening, not sent yet.
    First(Vec<u8>, Progress),
    /// Rows are being sent.
    Rows(Progress),
    /// The result ended well: CSV's counts follow as trailers.
    Trailers(HeaderMap),
    /// The result failed after its closing part was written: abort the
    /// transfer once that part has left (within [`FLUSH_WAIT`]).
    Abort(Option<Flushes>),
    /// Nothing more.
    Done,
}

impl Stage {
    /// The next frame, and what follows it.
    async fn next(self, format: Format) -> Option<(FrameResult, Self)> {
        match self {
            Self::First(bytes, progress) => Some((data(bytes), Self::Rows(progress))),
            Self::Rows(mut progress) => match progress.step(CHUNK_BYTES).await {
                Step::Bytes(bytes) => Some((data(bytes), Self::Rows(progress))),
                Step::End(mut bytes, outcome) => {
                    progress.close(&outcome, &mut bytes);
                    let next = if let Some(error) = &outcome.error {
                        tracing::warn!(
                            code = error.code.as_str(),
                            "a streamed result failed after its first rows; the transfer is aborted"
                        );
                        Self::Abort(progress.flushes.take())
                    } else if matches!(format, Format::Csv(_)) {
                        let mut trailers = HeaderMap::new();
                        count_headers(&mut trailers, progress.rows, outcome.truncated);
                        Self::Trailers(trailers)
                    } else {
                        Self::Done
                    };
                    Some((data(bytes), next))
                }
            },
            Self::Trailers(trailers) => Some((Ok(Frame::trailers(trailers)), Self::Done)),
            Self::Abort(flushes) => {
                // The closing part is in the server's buffer by now: the abort
                // would drop it, so wait until the connection flushed it (a
                // request without a connection, in tests, gets one turn).
                match flushes {
                    Some(flushes) => {
                        let seen = flushes.count();
                        if tokio::time::timeout(FLUSH_WAIT, flushes.after(seen))
                            .await
                            .is_ok()
                        {
                            tokio::time::sleep(READ_GRACE).await;
                        }
                    }
                    None => tokio::task::yield_now().await,
                }
                Some((Err(Aborted), Self::Done))
            }
            Self::Done => None,
        }
    }
}

fn streamed(format: Format, first: Vec<u8>, progress: Progress) -> Response {
    let frames = futures_util::stream::unfold(Stage::First(first, progress), move |stage| {
        stage.next(format)
    });
    let mut response = Response::new(Body::new(http_body_util::StreamBody::new(frames)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if matches!(format, Format::Csv(_)) {
        headers.insert(
            header::TRAILER,
            HeaderValue::from_static("x-row-count, x-truncated"),
        );
    }
    // Proxies such as nginx would otherwise hold the rows back.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Says in an answer's headers which row cap applied: `x-row-limit` (rows
/// returned at most) and, when the request asked for more than the server
/// allows, `x-row-limit-lowered-from` (what it asked for).
pub(crate) fn row_cap_headers(headers: &mut HeaderMap, cap: RowCap) {
    headers.insert("x-row-limit", HeaderValue::from(cap.rows));
    if let Some(asked) = cap.lowered_from {
        headers.insert("x-row-limit-lowered-from", HeaderValue::from(asked));
    }
}

/// The error that ends a streamed answer whose result failed after its first
/// rows: the server then cuts the transfer, which every client reports.
#[derive(Debug)]
struct Aborted;

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the result failed after streaming began")
    }
}

impl std::error::Error for Aborted {}

type FrameResult = Result<Frame<Bytes>, Aborted>;

fn data(bytes: Vec<u8>) -> FrameResult {
    Ok(Frame::data(Bytes::from(bytes)))
}

/// A whole result as a typed answer (for `generate-sql` and the demo, which read
/// a result into memory): the same fields, in the same order, as [`respond`].
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExecuteAnswer {
    /// Always true.
    pub success: bool,
    /// Column names in order.
    pub columns: Vec<String>,
    /// Column names with the engine's type names.
    pub column_types: Vec<ColumnTypeAnswer>,
    /// Rows as objects.
    pub data: RowsAnswer,
    /// Rows returned.
    pub row_count: usize,
    /// More rows existed than the caps allowed.
    pub truncated: bool,
    /// When the answer was finished (RFC 3339).
    pub executed_at: String,
    /// Time from sending the statement to its last row.
    pub elapsed_ms: f64,
}

/// One result column's name and type.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ColumnTypeAnswer {
    /// The column's name.
    pub name: String,
    /// The engine's type name.
    #[serde(rename = "type")]
    pub type_name: String,
}

/// Rows as objects keyed by column name.
#[derive(Debug, Default)]
pub(crate) struct RowsAnswer {
    keys: Vec<(String, usize)>,
    rows: Vec<Vec<Value>>,
}

impl Serialize for RowsAnswer {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.rows.iter().map(|values| RowObject {
            keys: &self.keys,
            values,
        }))
    }
}

impl ExecuteAnswer {
    /// The answer for a result read into memory.
    pub(crate) fn new(collected: Collected) -> Self {
        let columns = writers::Columns::new(collected.columns);
        Self {
            success: true,
            columns: columns.columns.iter().map(|c| c.name.clone()).collect(),
            column_types: columns.columns.iter().map(type_answer).collect(),
            row_count: collected.rows.len(),
            data: RowsAnswer {
                keys: columns.object_keys().to_vec(),
                rows: collected.rows,
            },
            truncated: collected.truncated,
            executed_at: now(),
            elapsed_ms: elapsed_ms(collected.elapsed),
        }
    }
}

fn type_answer(column: &Column) -> ColumnTypeAnswer {
    ColumnTypeAnswer {
        name: column.name.clone(),
        type_name: column.type_name.clone(),
    }
}
