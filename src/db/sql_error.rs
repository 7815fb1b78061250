//! Failures of a client's statement, with the engine's own code and message.

use serde_json::{Map, Value, json};

use crate::db::error::{DbError, classify_connect};
use crate::db::execute::sql_text;
use crate::db::params::Engine;
use crate::error::{AppError, ErrorCode};

/// Why a statement failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SqlError {
    /// The database could not be reached (or went away mid-request).
    #[error(transparent)]
    Connection(#[from] DbError),
    /// The engine refused or aborted the statement.
    #[error("{message}")]
    Statement {
        /// The design's code.
        code: ErrorCode,
        /// The engine's message.
        message: String,
        /// The engine's code: SQLSTATE, MySQL error number, SQLite result code.
        engine_code: Option<String>,
        /// 1-based character position in the statement, where the engine tells.
        position: Option<usize>,
        /// The engine's hint.
        hint: Option<String>,
        /// The engine's detail.
        detail: Option<String>,
    },
}

impl SqlError {
    /// A refusal decided by querygate itself (no engine code).
    pub fn refused(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Statement {
            code,
            message: message.into(),
            engine_code: None,
            position: None,
            hint: None,
            detail: None,
        }
    }

    /// The statement was cancelled at its time limit.
    pub fn timeout() -> Self {
        Self::refused(
            ErrorCode::SqlTimeout,
            "the statement was cancelled at its time limit",
        )
    }
}

impl From<SqlError> for AppError {
    fn from(error: SqlError) -> Self {
        match error {
            SqlError::Connection(db) => db.into(),
            SqlError::Statement {
                code,
                message,
                engine_code,
                position,
                hint,
                detail,
            } => {
                let lead = match code {
                    ErrorCode::SqlSyntaxError => "The SQL has a syntax error",
                    ErrorCode::SqlTableNotFound => "A table or view in the query does not exist",
                    ErrorCode::SqlColumnNotFound => "A column in the query does not exist",
                    ErrorCode::SqlReadOnlyViolation => "Only read-only statements are allowed",
                    ErrorCode::SqlMultipleStatements => "Send exactly one statement per request",
                    ErrorCode::SqlTimeout => "The query took longer than its time limit",
                    _ => "The database refused the query",
                };
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
                AppError::new(code, format!("{lead}: {message}"))
                    .with_details(Value::Object(details))
            }
        }
    }
}

/// Classifies an error raised while running a client's statement.
pub fn classify(engine: Engine, error: &sqlx::Error, sql: &str) -> SqlError {
    let sqlx::Error::Database(db) = error else {
        return match error {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => SqlError::Connection(classify_connect(engine, error)),
            other => SqlError::refused(ErrorCode::SqlError, other.to_string()),
        };
    };
    // The server ended the session under the statement (shutdown, restart, an
    // administrator's pg_terminate_backend; MySQL's server gone away): that is the
    // database going away, not a fault of the SQL.
    let gone = match engine {
        Engine::Postgresql => matches!(db.code().as_deref(), Some("57P01" | "57P02" | "57P03")),
        Engine::Mysql => db
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .is_some_and(|e| matches!(e.number(), 1927 | 2006 | 2013)),
        Engine::Sqlite => false,
    };
    if gone {
        return SqlError::Connection(DbError::ConnectionRefused);
    }
    let message = db.message().to_owned();
    let (code, engine_code, position, hint, detail) = match engine {
        Engine::Postgresql => {
            let pg = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>();
            let sqlstate = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let code = match sqlstate.as_str() {
                "25006" => ErrorCode::SqlReadOnlyViolation,
                "57014" => ErrorCode::SqlTimeout,
                "42601" if message.contains("multiple commands") => {
                    ErrorCode::SqlMultipleStatements
                }
                "42601" => ErrorCode::SqlSyntaxError,
                "42P01" => ErrorCode::SqlTableNotFound,
                "42703" => ErrorCode::SqlColumnNotFound,
                _ => ErrorCode::SqlError,
            };
            let position = pg.and_then(|e| match e.position() {
                Some(sqlx::postgres::PgErrorPosition::Original(p)) => Some(p),
                _ => None,
            });
            (
                code,
                Some(sqlstate),
                position,
                pg.and_then(|e| e.hint()).map(str::to_owned),
                pg.and_then(|e| e.detail()).map(str::to_owned),
            )
        }
        Engine::Mysql => {
            let number = db
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .map(sqlx::mysql::MySqlDatabaseError::number)
                .unwrap_or_default();
            let code = match number {
                // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION, ER_OPTION_PREVENTS_STATEMENT
                1792 | 1290 => ErrorCode::SqlReadOnlyViolation,
                // MariaDB ER_STATEMENT_TIMEOUT, MySQL ER_QUERY_TIMEOUT
                1969 | 3024 => ErrorCode::SqlTimeout,
                1064 if sql_text::statement_count(sql, sql_text::Dialect::Mysql) > 1 => {
                    ErrorCode::SqlMultipleStatements
                }
                1064 => ErrorCode::SqlSyntaxError,
                1146 => ErrorCode::SqlTableNotFound,
                1054 => ErrorCode::SqlColumnNotFound,
                _ => ErrorCode::SqlError,
            };
            (code, Some(number.to_string()), None, None, None)
        }
        Engine::Sqlite => {
            let result = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let primary = result.parse::<u32>().map(|c| c & 0xff).unwrap_or_default();
            let lower = message.to_ascii_lowercase();
            let code = match primary {
                8 => ErrorCode::SqlReadOnlyViolation,
                9 => ErrorCode::SqlTimeout,
                _ if lower.contains("no such table") => ErrorCode::SqlTableNotFound,
                _ if lower.contains("no such column") => ErrorCode::SqlColumnNotFound,
                _ if lower.contains("syntax error")
                    || lower.contains("incomplete input")
                    || lower.contains("unrecognized token") =>
                {
                    ErrorCode::SqlSyntaxError
                }
                _ => ErrorCode::SqlError,
            };
            (code, Some(result), None, None, None)
        }
    };
    SqlError::Statement {
        code,
        message,
        engine_code,
        position,
        hint,
        detail,
    }
}
