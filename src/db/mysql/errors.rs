//! MySQL/MariaDB errors (server error numbers, driver and I/O failures) in the
//! API's vocabulary.

use mysql_async::{DriverError, Error, IoError};

use crate::db::error::DbError;
use crate::db::sql_error::{EngineError, SqlError};
use crate::db::sql_text::{self, Dialect};
use crate::error::ErrorCode;

/// A failure while connecting. The server's message names the user and the
/// client host, so only the number is logged.
pub(crate) fn connect_error(error: &Error) -> DbError {
    match error {
        Error::Server(server) => {
            tracing::debug!(code = server.code, "MySQL refused the connection");
            match server.code {
                // ER_ACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR, ER_ACCESS_DENIED_NO_PASSWORD
                1045 | 1044 | 1698 => DbError::AccessDenied,
                1049 => DbError::DatabaseNotFound,
                // ER_CON_COUNT_ERROR, ER_HOST_IS_BLOCKED
                1040 | 1129 => DbError::ConnectionRefused,
                _ => DbError::Protocol,
            }
        }
        Error::Io(IoError::Tls(tls)) => DbError::TlsFailed(tls.to_string()),
        Error::Io(IoError::Io(io)) if looks_like_tls(&io.to_string()) => {
            DbError::TlsFailed(io.to_string())
        }
        Error::Io(IoError::Io(io)) => {
            tracing::debug!(error = %io, "MySQL connection failed");
            DbError::from_io(io)
        }
        Error::Driver(DriverError::NoClientSslFlagFromServer) => {
            DbError::TlsFailed("the server does not accept TLS".into())
        }
        Error::Driver(DriverError::ConnectionClosed) => DbError::ConnectionRefused,
        Error::Driver(DriverError::PoolDisconnected) => DbError::PoolClosed,
        other => {
            tracing::debug!(error = %other, "MySQL connection failed");
            DbError::Protocol
        }
    }
}

/// rustls reports handshake and certificate failures as I/O errors.
fn looks_like_tls(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    ["certificate", "tls", "handshake", "ssl"]
        .iter()
        .any(|word| message.contains(word))
}

/// Whether the connection died in a way that says nothing of the statement ran:
/// the socket was closed or reset.
pub(crate) fn is_connection_loss(error: &Error) -> bool {
    match error {
        Error::Io(IoError::Io(_)) => !is_packet_too_large(error),
        Error::Driver(DriverError::ConnectionClosed) => true,
        Error::Server(server) => matches!(server.code, 1927 | 2006 | 2013 | 4031),
        _ => false,
    }
}

fn is_packet_too_large(error: &Error) -> bool {
    matches!(error, Error::Io(IoError::Io(io)) if io.to_string() == "packet too large")
}

/// A statement's failure, classified; `sql` is the client's text.
pub(crate) fn statement_error(error: &Error, sql: &str, max_row_bytes: usize) -> SqlError {
    if is_packet_too_large(error) {
        return SqlError::row_too_large(max_row_bytes);
    }
    match error {
        Error::Server(server) => server_error(server, sql),
        Error::Driver(DriverError::StmtParamsMismatch { required, supplied }) => SqlError::refused(
            ErrorCode::SqlError,
            format!(
                "the statement expects {required} parameter(s) but {supplied} were given in `params`"
            ),
        ),
        Error::Driver(DriverError::StmtParamsNumberExceedsLimit { .. }) => {
            SqlError::refused(ErrorCode::SqlError, "too many parameters")
        }
        Error::Driver(DriverError::LocalInfile(_)) => SqlError::refused(
            ErrorCode::SqlReadOnlyViolation,
            "LOAD DATA LOCAL is not allowed",
        ),
        other => SqlError::Connection(connect_error(other)),
    }
}

fn server_error(server: &mysql_async::ServerError, sql: &str) -> SqlError {
    // The server ended the session under the statement (shutdown, KILL, gone away).
    if matches!(server.code, 1927 | 2006 | 2013 | 4031) {
        return SqlError::Connection(DbError::ConnectionRefused);
    }
    let code = match server.code {
        // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION, ER_OPTION_PREVENTS_STATEMENT
        1792 | 1290 => ErrorCode::SqlReadOnlyViolation,
        // MariaDB ER_STATEMENT_TIMEOUT, MySQL ER_QUERY_TIMEOUT
        1969 | 3024 => ErrorCode::SqlTimeout,
        // ER_QUERY_INTERRUPTED: a KILL QUERY, which querygate sends for a cancel
        // request (its own deadline answers sql_timeout without reading this)
        1317 => ErrorCode::SqlCancelled,
        1064 if sql_text::statement_count(sql, Dialect::Mysql(Default::default())) > 1 => {
            ErrorCode::SqlMultipleStatements
        }
        1064 => ErrorCode::SqlSyntaxError,
        1146 => ErrorCode::SqlTableNotFound,
        1054 => ErrorCode::SqlColumnNotFound,
        _ => ErrorCode::SqlError,
    };
    EngineError {
        code,
        message: server.message.clone(),
        engine_code: Some(server.code.to_string()),
        position: None,
        hint: None,
        detail: None,
    }
    .into()
}
