//! PostgreSQL's errors (SQLSTATE and fields) in the API's vocabulary.

use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::ErrorFields;

use super::conn::WireError;
use super::frame::FrameError;
use crate::db::error::DbError;
use crate::db::sql_error::{EngineError, SqlError};
use crate::db::sql_text::{self, Dialect};
use crate::error::ErrorCode;

/// The fields of an `ErrorResponse` that matter here.
#[derive(Debug, Clone, Default)]
pub(crate) struct DbErrorFields {
    pub(crate) code: String,
    pub(crate) message: String,
    pub(crate) detail: Option<String>,
    pub(crate) hint: Option<String>,
    pub(crate) position: Option<usize>,
}

impl DbErrorFields {
    pub(crate) fn parse(mut fields: ErrorFields<'_>) -> Self {
        let mut parsed = Self::default();
        while let Ok(Some(field)) = fields.next() {
            let value = String::from_utf8_lossy(field.value_bytes()).into_owned();
            match field.type_() {
                b'C' => parsed.code = value,
                b'M' => parsed.message = value,
                b'D' => parsed.detail = Some(value),
                b'H' => parsed.hint = Some(value),
                b'P' => parsed.position = value.parse().ok(),
                _ => {}
            }
        }
        parsed
    }
}

/// A failure while connecting. The server's message names the user, so only the
/// code is logged.
pub(crate) fn connect_error(fields: &DbErrorFields) -> DbError {
    tracing::debug!(code = %fields.code, "PostgreSQL refused the connection");
    match fields.code.as_str() {
        // invalid_password, invalid_authorization_specification, insufficient_privilege
        "28P01" | "28000" | "42501" => DbError::AccessDenied,
        "3D000" => DbError::DatabaseNotFound,
        // too_many_connections, cannot_connect_now (starting up or shutting down)
        "53300" | "57P03" => DbError::ConnectionRefused,
        _ => DbError::Protocol,
    }
}

/// A failure of the connection itself while a statement was under way.
pub(crate) fn wire_error(error: &WireError) -> SqlError {
    match error {
        WireError::Io(error) => {
            tracing::debug!(error = %error, "PostgreSQL connection lost");
            SqlError::Connection(DbError::from_io(error))
        }
        WireError::Closed | WireError::Ending { .. } => {
            tracing::debug!(%error, "PostgreSQL connection lost");
            SqlError::Connection(DbError::ConnectionRefused)
        }
        WireError::Frame(FrameError::RowTooLarge { limit, .. }) => SqlError::row_too_large(*limit),
        WireError::CatalogTooLarge { limit } => SqlError::catalog_too_large(*limit),
        WireError::Frame(_)
        | WireError::Unexpected { .. }
        | WireError::Columns { .. }
        | WireError::Field => {
            tracing::warn!(%error, "PostgreSQL answered outside the protocol");
            SqlError::Connection(DbError::Protocol)
        }
    }
}

/// A statement's error, classified; `sql` is the client's text, used to name the
/// write of a data-modifying `WITH` and to turn character positions into 1-based
/// ones of the original text.
pub(crate) fn statement_error(fields: DbErrorFields, sql: &str) -> SqlError {
    // The server ended the session under the statement (shutdown, restart, an
    // administrator's pg_terminate_backend): the database went away.
    if matches!(fields.code.as_str(), "57P01" | "57P02" | "57P03") {
        return SqlError::Connection(DbError::ConnectionRefused);
    }
    let code = match fields.code.as_str() {
        "25006" => ErrorCode::SqlReadOnlyViolation,
        "57014" => ErrorCode::SqlTimeout,
        "42601" if fields.message.contains("multiple commands") => ErrorCode::SqlMultipleStatements,
        "42601" => ErrorCode::SqlSyntaxError,
        "42P01" => ErrorCode::SqlTableNotFound,
        "42703" => ErrorCode::SqlColumnNotFound,
        _ => ErrorCode::SqlError,
    };
    let message = match fields.code.as_str() {
        "25006" => name_the_write(&fields.message, sql),
        // protocol_violation: the parameters do not fit the statement.
        "08P01" => parameter_message(&fields.message),
        _ => fields.message,
    };
    EngineError {
        code,
        message,
        engine_code: Some(fields.code),
        position: fields.position,
        hint: fields.hint,
        detail: fields.detail,
    }
    .into()
}

/// PostgreSQL calls a data-modifying `WITH` "SELECT" (the outer statement); name
/// the write it contains instead.
fn name_the_write(message: &str, sql: &str) -> String {
    if !message.contains("cannot execute SELECT") {
        return message.to_owned();
    }
    let words = sql_text::words(sql, Dialect::Postgres);
    match words
        .iter()
        .find(|w| matches!(w.as_str(), "INSERT" | "UPDATE" | "DELETE" | "MERGE"))
    {
        Some(write) => format!(
            "cannot execute {write} in a read-only transaction (the WITH clause writes data)"
        ),
        None => message.to_owned(),
    }
}

/// The server's message about a parameter count names the driver's unnamed
/// statement; say it in the client's terms.
fn parameter_message(message: &str) -> String {
    let numbers: Vec<&str> = message
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .collect();
    match numbers.as_slice() {
        [given, expected] if message.starts_with("bind message supplies") => format!(
            "the statement expects {expected} parameter(s) but {given} were given in `params`"
        ),
        _ => "the parameters do not fit the statement".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writable_with_is_named_by_its_write() {
        let message = name_the_write(
            "cannot execute SELECT in a read-only transaction",
            "WITH gone AS (DELETE FROM t RETURNING *) SELECT * FROM gone",
        );
        assert!(message.contains("DELETE"), "{message}");
        assert!(!message.contains("SELECT"), "{message}");
    }

    #[test]
    fn parameter_counts_are_told_without_driver_names() {
        let message = parameter_message(
            "bind message supplies 0 parameters, but prepared statement \"\" requires 1",
        );
        assert_eq!(
            message,
            "the statement expects 1 parameter(s) but 0 were given in `params`"
        );
    }
}
