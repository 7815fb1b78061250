//! Reading the envelope's answers: the setup's completions, the statement's
//! columns and rows (streamed into the sink, decoded from the binary format),
//! and the rest of a flight up to its `ReadyForQuery`.

use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::{DataRowBody, Message, RowDescriptionBody};
use serde_json::Value;

use super::conn::{PgConn, WireError};
use super::errors::{DbErrorFields, statement_error};
use super::types::Types;
use super::values;
use crate::db::execute::ExecRequest;
use crate::db::rows::{Column, RowSink};
use crate::db::sql_error::SqlError;
use crate::db::values::Render;
use crate::error::ErrorCode;

/// Reads the answers of the `count` setup commands; an error ends the reading
/// (the caller closes the connection).
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
                    return Err(WireError::Io(std::io::ErrorKind::ConnectionAborted.into()));
                }
                return Ok(Err(fields));
            }
            Message::ParseComplete
            | Message::BindComplete
            | Message::NoticeResponse(_)
            | Message::ParameterStatus(_)
            | Message::NotificationResponse(_) => {}
            _ => return Err(WireError::Protocol("unexpected message in the setup")),
        }
    }
    Ok(Ok(()))
}

/// Reads answers up to the next `ReadyForQuery`: the first error, if any.
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
            _ => return Err(WireError::Protocol("unexpected message")),
        }
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
    loop {
        match conn.recv().await? {
            Message::RowDescription(body) => {
                let columns = describe(&body, types, &mut wire_types)?;
                sink.columns(columns).map_err(|_| Stop::HungUp)?;
            }
            Message::DataRow(body) => {
                rows += 1;
                if rows > request.max_rows {
                    truncated = true;
                    continue;
                }
                let row = decode_row(&body, &wire_types, render, types)?;
                if sink.row(row).await.is_err() {
                    conn.mark_broken();
                    return Err(Stop::HungUp);
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
            _ => return Err(Stop::Wire(WireError::Protocol("unexpected message"))),
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
    while let Some(field) = fields
        .next()
        .map_err(|_| WireError::Protocol("row description"))?
    {
        wire_types.push(field.type_oid());
        columns.push(Column {
            name: field.name().to_owned(),
            type_name: types.display(field.type_oid()),
        });
    }
    Ok(columns)
}

fn decode_row(
    body: &DataRowBody,
    wire_types: &[u32],
    render: Render,
    types: &Types,
) -> Result<Vec<Value>, WireError> {
    let buffer = body.buffer();
    let mut ranges = body.ranges();
    let mut row = Vec::with_capacity(wire_types.len());
    for oid in wire_types {
        let range = ranges
            .next()
            .map_err(|_| WireError::Protocol("data row"))?
            .ok_or(WireError::Protocol("data row"))?;
        let raw = range
            .map(|r| buffer.get(r))
            .map(|slice| slice.unwrap_or_default());
        row.push(values::value(*oid, raw, render, types));
    }
    Ok(row)
}
