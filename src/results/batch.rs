//! A batch's results as one answer, written as each statement's rows arrive.
//!
//! JSON: `{"success":true,"results":[…],"executedAt":…,"elapsedMs":…}`, each
//! entry byte for byte an `execute` answer for its statement (`error` in its
//! closing part when it failed after its first rows), or the usual error
//! envelope (`{"success":false,"error","code","details"}`) when it failed before
//! them. NDJSON: per statement a line `{"statement":i,"columns","columnTypes"}`,
//! one array per row, and `{"statement":i,"rowCount","truncated","executedAt",
//! "elapsedMs"}` (or `{"statement":i,"error":{…}}` alone); then
//! `{"results":n,"executedAt","elapsedMs"}`. The rows of all the statements
//! share one byte budget: past it, the statement being read ends `truncated`,
//! and so does every later one with rows.

use std::convert::Infallible;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use http_body::Frame;
use serde_json::json;
use tokio::sync::mpsc;

use super::writers::{Ending, Format, Writer};
use super::{elapsed_ms, now};
use crate::db::batch::Batch;
use crate::db::rows::{Execution, RowEvent};
use crate::db::sql_error::SqlError;
use crate::error::{AppError, ErrorCode};

/// Bytes sent per chunk.
const CHUNK_BYTES: usize = 64 * 1024;

/// Where the batch's bytes go: the response body, a chunk at a time.
struct Out {
    sender: mpsc::Sender<Bytes>,
    buffer: Vec<u8>,
    /// Chunks sent so far.
    sent: usize,
}

/// The client went away.
struct Gone;

impl Out {
    async fn flush_if_full(&mut self) -> Result<(), Gone> {
        if self.buffer.len() >= CHUNK_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Gone> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buffer));
        self.sent += 1;
        self.sender.send(chunk).await.map_err(|_| Gone)
    }
}

/// The answer for `batch` in `format` (JSON or NDJSON), its rows within
/// `max_bytes` in all. `first` is the first statement's header, already awaited.
pub(crate) fn respond(
    mut batch: Batch,
    first: Result<Execution, SqlError>,
    format: Format,
    max_bytes: usize,
) -> Response {
    let (sender, receiver) = mpsc::channel::<Bytes>(2);
    tokio::spawn(async move {
        let mut out = Out {
            sender,
            buffer: Vec::new(),
            sent: 0,
        };
        if write(&mut batch, first, format, max_bytes, &mut out)
            .await
            .is_ok()
            && out.flush().await.is_ok()
        {
            batch.hangup.disarm();
        }
        // Gone: the batch's hang-up guard drops armed and stops the statements.
    });
    let frames = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let chunk = receiver.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(chunk)), receiver))
    });
    let mut response = Response::new(Body::new(http_body_util::StreamBody::new(frames)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

async fn write(
    batch: &mut Batch,
    first: Result<Execution, SqlError>,
    format: Format,
    max_bytes: usize,
    out: &mut Out,
) -> Result<(), Gone> {
    let json = matches!(format, Format::Json(_));
    if json {
        out.buffer
            .extend_from_slice(br#"{"success":true,"results":["#);
    }
    let mut budget = max_bytes;
    let mut header = Some(first);
    let count = batch.entries.len();
    for index in 0..count {
        let result = match header.take() {
            Some(first) => first,
            None => match (&mut batch.entries[index]).await {
                Ok(result) => result,
                Err(_) => Err(SqlError::refused(
                    ErrorCode::SqlError,
                    "the batch ended before this statement",
                )),
            },
        };
        if json && index > 0 {
            out.buffer.push(b',');
        }
        let start = out.buffer.len();
        let failure = match result {
            Ok(execution) => entry(index, execution, format, &mut budget, out).await?,
            Err(error) => Some(AppError::from(error)),
        };
        if let Some(error) = failure {
            // Nothing of this entry left yet: it is its error alone.
            out.buffer.truncate(start);
            failed(index, &error, json, out);
        }
        out.flush_if_full().await?;
    }
    let ending = json!({
        "executedAt": now(),
        "elapsedMs": elapsed_ms(batch.started.elapsed()),
    });
    let ending = ending.to_string();
    if json {
        // `],` then the ending's members.
        out.buffer.extend_from_slice(b"],");
        out.buffer.extend_from_slice(&ending.as_bytes()[1..]);
    } else {
        out.buffer.extend_from_slice(br#"{"results":"#);
        out.buffer.extend_from_slice(count.to_string().as_bytes());
        out.buffer.push(b',');
        out.buffer.extend_from_slice(&ending.as_bytes()[1..]);
        out.buffer.push(b'\n');
    }
    Ok(())
}

/// An entry that failed before its rows: the error envelope.
fn failed(index: usize, error: &AppError, json: bool, out: &mut Out) {
    let line = if json {
        serde_json::to_vec(&error.envelope())
    } else {
        serde_json::to_vec(&json!({ "statement": index, "error": error.envelope() }))
    };
    out.buffer.extend_from_slice(&line.unwrap_or_default());
    if !json {
        out.buffer.push(b'\n');
    }
}

/// One statement's result: its opening, its rows within the shared budget, its
/// closing part. A failure before any row is given back instead of written.
async fn entry(
    index: usize,
    mut execution: Execution,
    format: Format,
    budget: &mut usize,
    out: &mut Out,
) -> Result<Option<AppError>, Gone> {
    let sent_before = out.sent;
    let mut writer = Writer::new(format, execution.columns.clone());
    if matches!(format, Format::Json(_)) {
        writer.head(&mut out.buffer);
    } else {
        let head = json!({
            "statement": index,
            "columns": execution.columns.iter().map(|c| &c.name).collect::<Vec<_>>(),
            "columnTypes": execution.columns.iter()
                .map(|c| json!({ "name": c.name, "type": c.type_name }))
                .collect::<Vec<_>>(),
        });
        out.buffer.extend_from_slice(head.to_string().as_bytes());
        out.buffer.push(b'\n');
    }
    let (mut rows, mut truncated, mut error) = (0usize, false, None);
    loop {
        match execution.events.recv().await {
            Some(RowEvent::Rows(batch)) => {
                for row in batch {
                    let before = out.buffer.len();
                    writer.row(&row, &mut out.buffer);
                    let size = out.buffer.len() - before;
                    if size > *budget {
                        out.buffer.truncate(before);
                        *budget = 0;
                        truncated = true;
                        break;
                    }
                    *budget -= size;
                    rows += 1;
                }
                if truncated {
                    // The engine reads the rest without sending it.
                    execution.events.close();
                    break;
                }
                out.flush_if_full().await?;
            }
            Some(RowEvent::End { truncated: cut }) => {
                truncated = cut;
                break;
            }
            Some(RowEvent::Failed(failure)) => {
                error = Some(AppError::from(failure));
                break;
            }
            None => {
                error = Some(AppError::new(
                    ErrorCode::SqlError,
                    "The statement ended without finishing its result.",
                ));
                break;
            }
        }
    }
    // A failure before any row, with nothing of the entry sent: the caller
    // writes the error alone.
    if rows == 0
        && out.sent == sent_before
        && let Some(error) = error
    {
        return Ok(Some(error));
    }
    let executed_at = now();
    let ending = Ending {
        row_count: rows,
        truncated,
        executed_at: &executed_at,
        elapsed_ms: elapsed_ms(execution.started.elapsed()),
        error: error.as_ref(),
    };
    if matches!(format, Format::Json(_)) {
        writer.tail(&ending, &mut out.buffer);
    } else {
        let mut line = json!({
            "statement": index,
            "rowCount": rows,
            "truncated": truncated,
            "executedAt": executed_at,
            "elapsedMs": ending.elapsed_ms,
        });
        if let Some(error) = &error {
            line["error"] = serde_json::to_value(error.envelope()).unwrap_or_default();
        }
        out.buffer.extend_from_slice(line.to_string().as_bytes());
        out.buffer.push(b'\n');
    }
    Ok(None)
}
