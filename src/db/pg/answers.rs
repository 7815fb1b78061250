//! Reading the envelope's answers: the setup's completions, the statement's
//! columns and rows (streamed into the sink, decoded from the binary format),
//! and the rest of a flight up to its `ReadyForQuery`.

use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::{
    DataRowBody, DataRowRanges, Message, RowDescriptionBody,
};
use serde_json::Value;

use super::conn::{PgConn, WireError, message_name};
use super::errors::{DbErrorFields, statement_error};
use super::types::Types;
use super::values;
use crate::db::budget::{Budget, OverBudget};
use crate::db::execute::ExecRequest;
use crate::db::rows::{Column, RowSink};
use crate::db::sql_error::SqlError;
use crate::db::values::Render;
use crate::error::ErrorCode;

/// Reads the answers of the `count` setup commands; an error ends the reading
/// (the caller closes the connection). Safe to drop: what is unread keeps the
/// connection `Busy`.
pub(super) async fn finish_setup(
    conn: &mut PgConn,
    count: usize,
) -> Result<Result<(), DbErrorFields>, WireError> {
    let mut done = 0;
    while done < count {
        match conn.recv().await? {
            Message::CommandComplete(_) => done += 1,
            Message::ErrorResponse(body) => {
                let fields = DbErrorFields::parse(body.fields());
                // A session that is being terminated: nothing of ours ran.
                if fields.code.starts_with("57P0") {
                    conn.mark_broken();
                    return Err(WireError::Ending { code: fields.code });
                }
                return Ok(Err(fields));
            }
            Message::ParseComplete
            | Message::BindComplete
            | Message::NoticeResponse(_)
            | Message::ParameterStatus(_)
            | Message::NotificationResponse(_) => {}
            other => return Err(unexpected(conn, &other, "the envelope's setup")),
        }
    }
    Ok(Ok(()))
}

/// Reads answers up to the next `ReadyForQuery`: the first error, if any.
/// Safe to drop, like every reader here: the connection stays `Busy`.
pub(super) async fn finish(conn: &mut PgConn) -> Result<Result<(), DbErrorFields>, WireError> {
    let mut failure = None;
    loop {
        match conn.recv().await? {
            Message::ReadyForQuery(_) => return Ok(failure.map_or(Ok(()), Err)),
            Message::ErrorResponse(body) => {
                failure.get_or_insert(DbErrorFields::parse(body.fields()));
            }
            Message::ParseComplete
            | Message::BindComplete
            | Message::CommandComplete(_)
            | Message::EmptyQueryResponse
            | Message::NoticeResponse(_)
            | Message::ParameterStatus(_)
            | Message::NotificationResponse(_) => {}
            other => return Err(unexpected(conn, &other, "the end of a flight")),
        }
    }
}

/// A message out of place: the connection is out of step and never reused.
pub(super) fn unexpected(conn: &mut PgConn, message: &Message, phase: &'static str) -> WireError {
    conn.mark_broken();
    WireError::Unexpected {
        message: message_name(message),
        phase,
    }
}

/// Why reading a statement stopped early.
pub(super) enum Stop {
    Sql(SqlError),
    Wire(WireError),
    HungUp,
}

impl From<WireError> for Stop {
    fn from(error: WireError) -> Self {
        Self::Wire(error)
    }
}

/// Reads the statement's answers up to its end, streaming rows; after an error,
/// up to the flight's `ReadyForQuery` (the server skipped the rest).
pub(super) async fn read_statement(
    conn: &mut PgConn,
    request: &ExecRequest,
    sink: &mut RowSink,
    types: &Types,
) -> Result<bool, Stop> {
    let render = Render {
        bigint_as_string: request.bigint_as_string,
    };
    let mut wire_types: Vec<u32> = Vec::new();
    let (mut rows, mut truncated) = (0usize, false);
    // The client went away: the rest of the statement is read and dropped
    // (its cancellation is on the way), so that the session ends clean.
    let mut hung_up = false;
    loop {
        match conn.recv().await? {
            Message::DataRow(_) if hung_up => {}
            Message::CommandComplete(_)
            | Message::PortalSuspended
            | Message::EmptyQueryResponse
                if hung_up =>
            {
                return Err(Stop::HungUp);
            }
            Message::RowDescription(body) => {
                let columns = describe(&body, types, &mut wire_types)?;
                hung_up = sink.columns(columns).is_err();
            }
            Message::DataRow(body) => {
                rows += 1;
                if rows > request.max_rows {
                    truncated = true;
                    // The portal was asked for one row past the cap: a server
                    // that sends more does not follow the request. Stop reading;
                    // the connection closes.
                    if rows > request.max_rows + 1 {
                        conn.mark_broken();
                        return Ok(true);
                    }
                    continue;
                }
                let budget = sink.start_row();
                let row = match decode_row(&body, &wire_types, render, types, budget) {
                    Ok(row) => row,
                    Err(Decode::Wire(error)) => {
                        conn.mark_broken();
                        return Err(Stop::Wire(error));
                    }
                    // The rest of the result is not read: the connection closes.
                    Err(Decode::Over(over)) => {
                        conn.mark_broken();
                        return over.outcome().map_err(Stop::Sql);
                    }
                };
                if sink.row(row).await.is_err() {
                    hung_up = true;
                }
            }
            // The statement's end; the cleanup's answers follow.
            Message::CommandComplete(_)
            | Message::PortalSuspended
            | Message::EmptyQueryResponse => return Ok(truncated),
            // The server skips to the Sync, whose ReadyForQuery ends the flight.
            Message::ErrorResponse(body) => {
                let fields = DbErrorFields::parse(body.fields());
                finish(conn).await?.ok();
                return Err(Stop::Sql(statement_error(fields, &request.sql)));
            }
            Message::CopyInResponse(_) | Message::CopyOutResponse(_) => {
                conn.mark_broken();
                return Err(Stop::Sql(SqlError::refused(
                    ErrorCode::SqlError,
                    "COPY is not supported here; use SELECT",
                )));
            }
            Message::ParseComplete
            | Message::BindComplete
            | Message::NoData
            | Message::NoticeResponse(_)
            | Message::ParameterStatus(_)
            | Message::NotificationResponse(_) => {}
            other => return Err(Stop::Wire(unexpected(conn, &other, "a statement's answer"))),
        }
    }
}

/// The columns a row description announces; their wire types are appended to
/// `wire_types`, for decoding the rows.
fn describe(
    body: &RowDescriptionBody,
    types: &Types,
    wire_types: &mut Vec<u32>,
) -> Result<Vec<Column>, WireError> {
    let mut fields = body.fields();
    let mut columns = Vec::new();
    let malformed = || {
        WireError::Frame(super::frame::FrameError::Malformed {
            tag: postgres_protocol::message::backend::ROW_DESCRIPTION_TAG,
        })
    };
    while let Some(field) = fields.next().map_err(|_| malformed())? {
        wire_types.push(field.type_oid());
        columns.push(Column {
            name: field.name().to_owned(),
            type_name: types.display(field.type_oid()),
        });
    }
    Ok(columns)
}

/// Why a row was not decoded.
enum Decode {
    Wire(WireError),
    Over(OverBudget),
}

impl From<OverBudget> for Decode {
    fn from(over: OverBudget) -> Self {
        Self::Over(over)
    }
}

/// One row: exactly one field per described column, each decoded within
/// `budget`.
fn decode_row(
    body: &DataRowBody,
    wire_types: &[u32],
    render: Render,
    types: &Types,
    budget: &mut Budget,
) -> Result<Vec<Value>, Decode> {
    let buffer = body.buffer();
    let mut ranges = body.ranges();
    let mut row = Vec::with_capacity(wire_types.len());
    let columns = |ranges: &mut DataRowRanges<'_>, decoded: usize| {
        Decode::Wire(WireError::Columns {
            described: wire_types.len(),
            sent: decoded + ranges.count().unwrap_or(0),
        })
    };
    for oid in wire_types {
        let range = match ranges.next() {
            Ok(Some(range)) => range,
            Ok(None) => return Err(columns(&mut ranges, row.len())),
            Err(_) => return Err(Decode::Wire(WireError::Field)),
        };
        let raw = match range {
            None => None,
            Some(range) => Some(buffer.get(range).ok_or(Decode::Wire(WireError::Field))?),
        };
        row.push(values::value(*oid, raw, render, types, budget)?);
    }
    if !matches!(ranges.next(), Ok(None)) {
        return Err(columns(&mut ranges, row.len() + 1));
    }
    Ok(row)
}
