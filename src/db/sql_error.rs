//! Failures of a client's statement, with the engine's own code and message.
//!
//! Each engine's `errors` module builds an [`EngineError`] from its driver's error;
//! this module turns it into the API's envelope.

use serde_json::{Map, Value, json};

use crate::db::error::DbError;
use crate::error::{AppError, ErrorCode};

/// Why a statement failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SqlError {
    /// The database could not be reached (or went away mid-request).
    #[error(transparent)]
    Connection(#[from] DbError),
    /// The engine (or querygate's own policy) refused or aborted the statement.
    #[error("{}", .0.message)]
    Statement(Box<EngineError>),
}

/// A statement's failure as the engine reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineError {
    /// The design's code.
    pub code: ErrorCode,
    /// The engine's message.
    pub message: String,
    /// The engine's code: SQLSTATE, MySQL error number, SQLite result code.
    pub engine_code: Option<String>,
    /// 1-based character position in the statement, where the engine tells.
    pub position: Option<usize>,
    /// The engine's hint.
    pub hint: Option<String>,
    /// The engine's detail.
    pub detail: Option<String>,
}

impl EngineError {
    /// An error with only a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            engine_code: None,
            position: None,
            hint: None,
            detail: None,
        }
    }
}

impl From<EngineError> for SqlError {
    fn from(error: EngineError) -> Self {
        Self::Statement(Box::new(error))
    }
}

impl SqlError {
    /// A refusal decided by querygate itself (no engine code).
    pub(crate) fn refused(code: ErrorCode, message: impl Into<String>) -> Self {
        EngineError::new(code, message).into()
    }

    /// The statement was cancelled at its time limit.
    pub(crate) fn timeout() -> Self {
        Self::refused(
            ErrorCode::SqlTimeout,
            "the statement was cancelled at its time limit",
        )
    }

    /// The statement was stopped by a cancel request (`POST /api/database/cancel`).
    pub(crate) fn cancelled() -> Self {
        Self::refused(
            ErrorCode::SqlCancelled,
            "a cancel request stopped the statement",
        )
    }

    /// The plan of a statement that was only to be checked modifies data.
    pub(crate) fn plan_writes() -> Self {
        Self::refused(
            ErrorCode::SqlReadOnlyViolation,
            "the statement's plan modifies data",
        )
    }

    /// A row larger than `MAX_ROW_BYTES` came from the database; it was not read.
    pub(crate) fn row_too_large(limit: usize) -> Self {
        Self::refused(
            ErrorCode::SqlError,
            format!(
                "a row of the result is larger than the server's limit of {limit} bytes \
                 (MAX_ROW_BYTES), as sent or once decoded; select fewer or smaller columns"
            ),
        )
    }

    /// One of querygate's own catalogue reads was larger than it reads.
    pub(crate) fn catalog_too_large(limit: usize) -> Self {
        Self::refused(
            ErrorCode::SqlError,
            format!(
                "the database's catalogue answer is larger than querygate reads ({limit} bytes); \
                 read one schema at a time with ?schema="
            ),
        )
    }

    /// The design's code of this failure.
    pub(crate) fn code(&self) -> ErrorCode {
        match self {
            Self::Connection(error) => AppError::from(error.clone()).code,
            Self::Statement(error) => error.code,
        }
    }
}

impl From<SqlError> for AppError {
    fn from(error: SqlError) -> Self {
        match error {
            SqlError::Connection(db) => db.into(),
            SqlError::Statement(error) => {
                let EngineError {
                    code,
                    message,
                    engine_code,
                    position,
                    hint,
                    detail,
                } = *error;
                let mut details = Map::new();
                details.insert("message".into(), json!(message));
                for (key, value) in [
                    ("engineCode", engine_code),
                    ("hint", hint),
                    ("detail", detail),
                ] {
                    if let Some(value) = value {
                        details.insert(key.into(), json!(value));
                    }
                }
                if let Some(position) = position {
                    details.insert("position".into(), json!(position));
                }
                Self::new(code, format!("{}: {message}", lead(code)))
                    .with_details(Value::Object(details))
            }
        }
    }
}

/// The first half of the sentence for a statement's failure.
fn lead(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::SqlSyntaxError => "The SQL has a syntax error",
        ErrorCode::SqlTableNotFound => "A table or view in the query does not exist",
        ErrorCode::SqlColumnNotFound => "A column in the query does not exist",
        ErrorCode::SqlReadOnlyViolation => "Only read-only statements are allowed",
        ErrorCode::SqlMultipleStatements => "Send exactly one statement per request",
        ErrorCode::SqlTimeout => "The query took longer than its time limit",
        ErrorCode::SqlCancelled => "The query was cancelled",
        _ => "The database refused the query",
    }
}
