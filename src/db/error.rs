//! Database failures, classified into the design's codes.
//!
//! The engines report failures in their own vocabulary (SQLSTATE, MySQL error
//! numbers, SQLite result codes, I/O errors); this module is the one place that
//! translates them. Messages are for a person and never contain connection
//! parameters.

use crate::db::params::Engine;
use crate::error::{AppError, ErrorCode};

/// A classified database failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    /// Wrong user name or password, or no right to the database.
    #[error("access denied")]
    AccessDenied,
    /// The database (or SQLite file) does not exist.
    #[error("database not found")]
    DatabaseNotFound,
    /// The host name does not resolve.
    #[error("host not found")]
    HostNotFound,
    /// Nothing listens, or the connection broke.
    #[error("connection refused")]
    ConnectionRefused,
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// TLS was required but could not be established or verified.
    #[error("tls failed: {0}")]
    TlsFailed(String),
    /// The host is outside `DB_ALLOWED_HOSTS` or inside `DB_DENIED_NETWORKS`.
    #[error("host forbidden")]
    HostForbidden,
    /// The server answered in a way querygate does not understand.
    #[error("protocol error")]
    Protocol,
}

impl From<DbError> for AppError {
    fn from(error: DbError) -> Self {
        let (code, message) = match &error {
            DbError::AccessDenied => (
                ErrorCode::DbAccessDenied,
                "Access denied. Check the user name and password.",
            ),
            DbError::DatabaseNotFound => (
                ErrorCode::DbDatabaseNotFound,
                "The database does not exist. Check its name.",
            ),
            DbError::HostNotFound => (
                ErrorCode::DbHostNotFound,
                "The database host name could not be resolved. Check the host.",
            ),
            DbError::ConnectionRefused => (
                ErrorCode::DbConnectionRefused,
                "The database server refused the connection. Check the host and port, and that the server is running.",
            ),
            DbError::Timeout => (
                ErrorCode::DbTimeout,
                "The database server did not answer in time.",
            ),
            DbError::TlsFailed(_) => (
                ErrorCode::DbTlsFailed,
                "A secure (TLS) connection to the database could not be established with the requested ssl mode.",
            ),
            DbError::HostForbidden => (
                ErrorCode::DbHostForbidden,
                "Connections to this host are not allowed by the server's configuration.",
            ),
            DbError::Protocol => (
                ErrorCode::DbConnectionRefused,
                "The server at that address did not answer like the chosen database engine.",
            ),
        };
        if let DbError::TlsFailed(reason) = &error {
            // The TLS library's reason can name the host; it is logged, not returned.
            tracing::debug!(%reason, "TLS to the database failed");
        }
        AppError::new(code, message)
    }
}

/// Classifies an error raised while opening a connection.
pub fn classify_connect(engine: Engine, error: &sqlx::Error) -> DbError {
    // The engines' own messages name the user (and MySQL the client host), so only
    // the kind of failure and the engine's code are logged.
    match error {
        sqlx::Error::Database(db) => tracing::debug!(
            engine = engine.as_str(),
            code = db.code().as_deref().unwrap_or("-"),
            "database refused the connection"
        ),
        other => {
            tracing::debug!(engine = engine.as_str(), error = %other, "database connection failed")
        }
    }
    match error {
        sqlx::Error::Database(db) => classify_connect_database(engine, db.as_ref()),
        sqlx::Error::Io(io) if looks_like_tls(&io.to_string()) => {
            DbError::TlsFailed(io.to_string())
        }
        sqlx::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::TimedOut => DbError::Timeout,
            _ => DbError::ConnectionRefused,
        },
        sqlx::Error::Tls(cause) => DbError::TlsFailed(cause.to_string()),
        sqlx::Error::PoolTimedOut => DbError::Timeout,
        sqlx::Error::Protocol(message) if looks_like_tls(message) => {
            DbError::TlsFailed(message.clone())
        }
        _ => DbError::Protocol,
    }
}

/// rustls reports handshake and certificate failures as I/O errors.
fn looks_like_tls(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    ["certificate", "tls", "handshake", "ssl"]
        .iter()
        .any(|word| message.contains(word))
}

fn classify_connect_database(engine: Engine, db: &dyn sqlx::error::DatabaseError) -> DbError {
    match engine {
        Engine::Postgresql => match db.code().as_deref() {
            // invalid_password, invalid_authorization_specification, insufficient_privilege
            Some("28P01" | "28000" | "42501") => DbError::AccessDenied,
            Some("3D000") => DbError::DatabaseNotFound,
            _ => DbError::Protocol,
        },
        Engine::Mysql => {
            let number = db
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .map(sqlx::mysql::MySqlDatabaseError::number);
            match number {
                // ER_ACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR, ER_ACCESS_DENIED_NO_PASSWORD
                Some(1045 | 1044 | 1698) => DbError::AccessDenied,
                Some(1049) => DbError::DatabaseNotFound,
                _ => DbError::Protocol,
            }
        }
        Engine::Sqlite => match db.code().as_deref() {
            // SQLITE_CANTOPEN, SQLITE_NOTADB
            Some("14" | "26") => DbError::DatabaseNotFound,
            Some("23") => DbError::AccessDenied,
            _ => DbError::Protocol,
        },
    }
}
