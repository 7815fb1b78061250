//! querygate's own static queries on PostgreSQL (the connect check, user types,
//! the schema's catalogue): pipelined in one flight and one snapshot, text
//! results, text parameters.

use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::Message;

use super::answers::unexpected;
use super::conn::{PgConn, WireError};
use super::errors::{DbErrorFields, statement_error, wire_error};
use crate::db::introspect::{CatalogCap, FIELD_BYTES, Tally};
use crate::db::sql_error::SqlError;
use crate::error::ErrorCode;

/// One result row, each field as text (`None` for NULL).
#[derive(Debug, Clone)]
pub(crate) struct TextRow(Vec<Option<String>>);

impl TextRow {
    /// Field `i` as text.
    pub(crate) fn text(&self, i: usize) -> Option<String> {
        self.0.get(i).cloned().flatten()
    }

    /// Field `i` as text, empty when NULL.
    pub(crate) fn string(&self, i: usize) -> String {
        self.text(i).unwrap_or_default()
    }

    /// A boolean field (`t`/`f`).
    pub(crate) fn bool(&self, i: usize) -> bool {
        self.text(i).as_deref() == Some("t")
    }

    /// A numeric field.
    pub(crate) fn number<T: std::str::FromStr>(&self, i: usize) -> Option<T> {
        self.text(i).and_then(|v| v.parse().ok())
    }

    /// A JSON field (arrays of names are sent as JSON to avoid array syntax).
    pub(crate) fn json<T: serde::de::DeserializeOwned + Default>(&self, i: usize) -> T {
        self.text(i)
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default()
    }
}

/// Runs `queries` (static SQL with text parameters) in one flight and one
/// implicit transaction; the rows of each, in order, within `cap`: past it the
/// rest is not read and the connection closes. The caller bounds the time;
/// dropped half-way, the connection stays `Busy` and is never pooled.
pub(crate) async fn run(
    conn: &mut PgConn,
    queries: &[(&str, Vec<Option<String>>)],
    cap: CatalogCap,
) -> Result<Vec<Vec<TextRow>>, SqlError> {
    for (sql, params) in queries {
        conn.queue_text_statement(sql, params).map_err(|_| {
            SqlError::refused(
                ErrorCode::InternalError,
                "a catalogue query could not be encoded",
            )
        })?;
    }
    conn.queue_sync();
    conn.flush().await.map_err(|e| wire_error(&e))?;
    read(conn, queries.len(), cap)
        .await
        .map_err(|e| {
            conn.mark_broken();
            wire_error(&e)
        })?
        .map_err(|fields| {
            conn.mark_broken();
            statement_error(fields, "")
        })
}

async fn read(
    conn: &mut PgConn,
    count: usize,
    cap: CatalogCap,
) -> Result<Result<Vec<Vec<TextRow>>, DbErrorFields>, WireError> {
    let mut results: Vec<Vec<TextRow>> = vec![Vec::new()];
    let mut failure = None;
    let mut tally = Tally::new(cap);
    loop {
        match conn.recv().await? {
            Message::DataRow(body) => {
                tally_row(&mut tally, 1, FIELD_BYTES, cap)?;
                let buffer = body.buffer();
                let mut ranges = body.ranges();
                let mut fields = Vec::new();
                while let Some(range) = ranges.next().map_err(|_| WireError::Field)? {
                    let text = match range {
                        None => None,
                        Some(range) => Some(buffer.get(range).ok_or(WireError::Field)?),
                    };
                    let bytes = FIELD_BYTES + text.map_or(0, <[u8]>::len);
                    tally_row(&mut tally, 0, bytes, cap)?;
                    fields.push(text.map(|b| String::from_utf8_lossy(b).into_owned()));
                }
                if let Some(rows) = results.last_mut() {
                    rows.push(TextRow(fields));
                }
            }
            Message::CommandComplete(_) => results.push(Vec::new()),
            Message::ErrorResponse(body) => {
                failure.get_or_insert(DbErrorFields::parse(body.fields()));
            }
            Message::ReadyForQuery(_) => {
                results.truncate(count);
                return Ok(match failure {
                    Some(fields) => Err(fields),
                    None => Ok(results),
                });
            }
            Message::ParseComplete
            | Message::BindComplete
            | Message::NoticeResponse(_)
            | Message::ParameterStatus(_) => {}
            other => return Err(unexpected(conn, &other, "a catalogue query")),
        }
    }
}

/// Counts a row (or a field of one) before it is kept.
fn tally_row(
    tally: &mut Tally,
    rows: usize,
    bytes: usize,
    cap: CatalogCap,
) -> Result<(), WireError> {
    tally
        .add(rows, bytes)
        .map_err(|_| WireError::CatalogTooLarge { limit: cap.bytes })
}
