//! Database failures, classified into the design's codes.
//!
//! The engines report failures in their own vocabulary (SQLSTATE, MySQL error
//! numbers, SQLite result codes, I/O errors); each engine's `errors` module
//! translates them into these kinds, and this module turns a kind into the API's
//! code and sentence. Messages are for a person and never contain connection
//! parameters.

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
    /// The pool was closed while the request waited for one of its connections
    /// (a disconnect, or the pool's eviction); the request may try a new pool.
    #[error("pool closed")]
    PoolClosed,
    /// Every one of the instance's `POOL_MAX_POOLS` pools stayed in use while a
    /// new one waited for a place.
    #[error("no place for another pool")]
    PoolsFull,
}

impl From<crate::net_guard::GuardError> for DbError {
    fn from(error: crate::net_guard::GuardError) -> Self {
        use crate::net_guard::GuardError;
        match error {
            GuardError::NotFound => Self::HostNotFound,
            GuardError::Timeout => Self::Timeout,
            GuardError::Denied(rule) => {
                // The operator learns which rule refused the host; the client
                // only that the configuration does not allow it.
                tracing::warn!(%rule, "a database host was refused by the host policy");
                Self::HostForbidden
            }
        }
    }
}

impl DbError {
    /// The kind of an I/O failure while talking to a database.
    pub fn from_io(error: &std::io::Error) -> Self {
        match error.kind() {
            std::io::ErrorKind::TimedOut => Self::Timeout,
            _ => Self::ConnectionRefused,
        }
    }
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
            DbError::PoolClosed => (
                ErrorCode::DbConnectionRefused,
                "The connection to the database was closed while the request waited; try again.",
            ),
            DbError::PoolsFull => (
                ErrorCode::Overloaded,
                "This instance holds as many database pools as it may (POOL_MAX_POOLS), all in use. Try again shortly.",
            ),
        };
        if let DbError::TlsFailed(reason) = &error {
            // The TLS library's reason can name the host; it is logged, not returned.
            tracing::debug!(%reason, "TLS to the database failed");
        }
        let mut answer = Self::new(code, message);
        if matches!(error, DbError::PoolsFull) {
            answer.retry_after = Some(1);
        }
        answer
    }
}
