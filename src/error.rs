//! The one error type of the API and its JSON envelope.
//!
//! Every failure a client can see is an [`AppError`]: a stable [`ErrorCode`], a
//! sentence for a person and optional structured `details`. Modules keep their own
//! small error enums and convert into this type with `From`, so the mapping from a
//! cause to a status code lives in exactly one place: [`ErrorCode::status`].

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

/// The stable, machine-readable error codes (`docs/design.md`, `openapi.yaml`).
///
/// Clients switch on these strings, so a variant is never renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[expect(
    missing_docs,
    reason = "each code is documented in docs/design.md and openapi.yaml"
)]
pub enum ErrorCode {
    TokenMissing,
    TokenInvalid,
    TokenExpired,
    TokenRevoked,
    DbAccessDenied,
    DbDatabaseNotFound,
    DbHostNotFound,
    DbConnectionRefused,
    DbTimeout,
    DbTlsFailed,
    DbHostForbidden,
    SqlSyntaxError,
    SqlTableNotFound,
    SqlColumnNotFound,
    SqlReadOnlyViolation,
    SqlMultipleStatements,
    SqlTimeout,
    SqlCancelled,
    SqlError,
    QueryNotFound,
    AiNotConfigured,
    AiAuthFailed,
    AiRateLimited,
    AiQuotaExceeded,
    AiTimeout,
    AiUpstreamError,
    AiUnsafeSql,
    ValidationFailed,
    InvalidJson,
    PayloadTooLarge,
    UnsupportedMediaType,
    NotFound,
    MethodNotAllowed,
    RateLimited,
    RequestTimeout,
    Overloaded,
    NotReady,
    RevocationUnavailable,
    InternalError,
}

impl ErrorCode {
    /// Every code; used by tests that compare the codes against `openapi.yaml`.
    pub const ALL: [Self; 39] = [
        Self::TokenMissing,
        Self::TokenInvalid,
        Self::TokenExpired,
        Self::TokenRevoked,
        Self::DbAccessDenied,
        Self::DbDatabaseNotFound,
        Self::DbHostNotFound,
        Self::DbConnectionRefused,
        Self::DbTimeout,
        Self::DbTlsFailed,
        Self::DbHostForbidden,
        Self::SqlSyntaxError,
        Self::SqlTableNotFound,
        Self::SqlColumnNotFound,
        Self::SqlReadOnlyViolation,
        Self::SqlMultipleStatements,
        Self::SqlTimeout,
        Self::SqlCancelled,
        Self::SqlError,
        Self::QueryNotFound,
        Self::AiNotConfigured,
        Self::AiAuthFailed,
        Self::AiRateLimited,
        Self::AiQuotaExceeded,
        Self::AiTimeout,
        Self::AiUpstreamError,
        Self::AiUnsafeSql,
        Self::ValidationFailed,
        Self::InvalidJson,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::RateLimited,
        Self::RequestTimeout,
        Self::Overloaded,
        Self::NotReady,
        Self::RevocationUnavailable,
        Self::InternalError,
    ];

    /// The HTTP status that goes with the code (the table of `docs/design.md`).
    pub fn status(self) -> StatusCode {
        match self {
            Self::ValidationFailed
            | Self::InvalidJson
            | Self::DbAccessDenied
            | Self::DbDatabaseNotFound
            | Self::SqlSyntaxError
            | Self::SqlTableNotFound
            | Self::SqlColumnNotFound
            | Self::SqlMultipleStatements
            | Self::SqlError => StatusCode::BAD_REQUEST,
            Self::TokenMissing | Self::TokenInvalid | Self::TokenExpired | Self::TokenRevoked => {
                StatusCode::UNAUTHORIZED
            }
            Self::AiQuotaExceeded => StatusCode::PAYMENT_REQUIRED,
            Self::DbHostForbidden | Self::SqlReadOnlyViolation => StatusCode::FORBIDDEN,
            Self::NotFound | Self::QueryNotFound => StatusCode::NOT_FOUND,
            Self::SqlCancelled => StatusCode::CONFLICT,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::SqlTimeout | Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::AiUnsafeSql => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited | Self::AiRateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::DbConnectionRefused
            | Self::DbHostNotFound
            | Self::DbTlsFailed
            | Self::AiAuthFailed
            | Self::AiUpstreamError => StatusCode::BAD_GATEWAY,
            Self::AiNotConfigured
            | Self::Overloaded
            | Self::NotReady
            | Self::RevocationUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::DbTimeout | Self::AiTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `WWW-Authenticate` challenge of a 401 (RFC 6750 §3): without any token
    /// the challenge names no error; a token that fails names `invalid_token`.
    pub fn challenge(self) -> Option<&'static str> {
        match self {
            Self::TokenMissing => Some(r#"Bearer realm="querygate""#),
            Self::TokenInvalid | Self::TokenExpired | Self::TokenRevoked => Some(
                r#"Bearer realm="querygate", error="invalid_token", error_description="connect again""#,
            ),
            _ => None,
        }
    }

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokenMissing => "token_missing",
            Self::TokenInvalid => "token_invalid",
            Self::TokenExpired => "token_expired",
            Self::TokenRevoked => "token_revoked",
            Self::DbAccessDenied => "db_access_denied",
            Self::DbDatabaseNotFound => "db_database_not_found",
            Self::DbHostNotFound => "db_host_not_found",
            Self::DbConnectionRefused => "db_connection_refused",
            Self::DbTimeout => "db_timeout",
            Self::DbTlsFailed => "db_tls_failed",
            Self::DbHostForbidden => "db_host_forbidden",
            Self::SqlSyntaxError => "sql_syntax_error",
            Self::SqlTableNotFound => "sql_table_not_found",
            Self::SqlColumnNotFound => "sql_column_not_found",
            Self::SqlReadOnlyViolation => "sql_read_only_violation",
            Self::SqlMultipleStatements => "sql_multiple_statements",
            Self::SqlTimeout => "sql_timeout",
            Self::SqlCancelled => "sql_cancelled",
            Self::SqlError => "sql_error",
            Self::QueryNotFound => "query_not_found",
            Self::AiNotConfigured => "ai_not_configured",
            Self::AiAuthFailed => "ai_auth_failed",
            Self::AiRateLimited => "ai_rate_limited",
            Self::AiQuotaExceeded => "ai_quota_exceeded",
            Self::AiTimeout => "ai_timeout",
            Self::AiUpstreamError => "ai_upstream_error",
            Self::AiUnsafeSql => "ai_unsafe_sql",
            Self::ValidationFailed => "validation_failed",
            Self::InvalidJson => "invalid_json",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RateLimited => "rate_limited",
            Self::RequestTimeout => "request_timeout",
            Self::Overloaded => "overloaded",
            Self::NotReady => "not_ready",
            Self::RevocationUnavailable => "revocation_unavailable",
            Self::InternalError => "internal_error",
        }
    }
}

/// An error as the client sees it.
#[derive(Debug)]
pub struct AppError {
    /// The stable code; decides the status.
    pub code: ErrorCode,
    /// A sentence for a person. Never holds a password, token or key.
    pub message: String,
    /// Optional structured context (a field name, the engine's own error code).
    pub details: Option<Value>,
    /// Seconds for `Retry-After`, on 429s.
    pub retry_after: Option<u64>,
}

impl AppError {
    /// An error with a code and a message.
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// Attaches structured details.
    #[must_use]
    pub(crate) fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// `validation_failed` naming the offending field.
    pub(crate) fn validation(field: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationFailed, message)
            .with_details(serde_json::json!({ "field": field }))
    }

    /// The envelope `{"success":false,"error":…,"code":…,"details":…}`.
    pub(crate) fn envelope(&self) -> Envelope<'_> {
        Envelope {
            success: false,
            error: &self.message,
            code: self.code.as_str(),
            details: self.details.as_ref(),
        }
    }

    /// The catch-all for bugs: the cause is logged once here, the client gets a
    /// generic sentence.
    pub(crate) fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            ErrorCode::InternalError,
            "Something went wrong on the server. The error has been logged.",
        )
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for AppError {}

/// The error envelope, as answers and the closing part of a streamed result
/// carry it.
#[derive(Serialize)]
pub(crate) struct Envelope<'a> {
    success: bool,
    error: &'a str,
    code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a Value>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        // Logged once, here, where the failure is answered. Internal errors were
        // logged with their cause by `AppError::internal`; token failures with
        // their reason where they were classified.
        match self.code {
            ErrorCode::InternalError
            | ErrorCode::TokenMissing
            | ErrorCode::TokenInvalid
            | ErrorCode::TokenExpired
            | ErrorCode::TokenRevoked => {}
            _ if status.is_server_error() => {
                tracing::warn!(code = self.code.as_str(), error = %self.message, "request failed");
            }
            _ => {
                // Engine messages can name the database user: only the code is logged.
                tracing::debug!(code = self.code.as_str(), "request rejected")
            }
        }
        let mut response = (status, axum::Json(self.envelope())).into_response();
        let headers = response.headers_mut();
        if let Some(challenge) = self.code.challenge() {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// Result alias for handlers.
pub(crate) type AppResult<T> = Result<T, AppError>;
