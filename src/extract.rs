//! Request extractors that answer in the API's error envelope.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use crate::error::{AppError, ErrorCode};
use crate::middleware::body::{BodyTimedOut, BodyTooLarge};

/// A JSON body. Unlike `axum::Json` every rejection is an [`AppError`]:
/// wrong content type → `unsupported_media_type`, too large → `payload_too_large`,
/// not JSON → `invalid_json`, wrong shape → `validation_failed` naming the field.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&request) {
            return Err(AppError::new(
                ErrorCode::UnsupportedMediaType,
                "Send the body as JSON with Content-Type: application/json.",
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE
                    || caused_by::<BodyTooLarge>(&rejection)
                {
                    AppError::new(ErrorCode::PayloadTooLarge, "The request body is too large.")
                } else if caused_by::<BodyTimedOut>(&rejection) {
                    AppError::new(
                        ErrorCode::RequestTimeout,
                        "The request body did not arrive in time (HTTP_BODY_TIMEOUT_MS).",
                    )
                } else {
                    AppError::new(
                        ErrorCode::InvalidJson,
                        "The request body could not be read.",
                    )
                }
            })?;
        parse(&bytes).map(Self)
    }
}

/// A query string. Unlike `axum::extract::Query` a rejection is an [`AppError`]:
/// `validation_failed` naming the parameter when serde tells which one.
#[derive(Debug)]
pub(crate) struct ApiQuery<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(Self)
            .map_err(|error| {
                let field = error.path().to_string();
                let message = match field.as_str() {
                    "." | "" => "The query string has an invalid parameter.".to_owned(),
                    name => format!("The query parameter `{name}` has an invalid value."),
                };
                AppError::validation(&field, message)
            })
    }
}

/// Whether reading the body failed because of an `E` (see
/// [`crate::middleware::body`]).
fn caused_by<E: std::error::Error + 'static>(
    rejection: &axum::extract::rejection::BytesRejection,
) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(error) = cause {
        if error.is::<E>() {
            return true;
        }
        cause = error.source();
    }
    false
}

fn is_json(request: &Request) -> bool {
    let Some(value) = request.headers().get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses a JSON body into `T` with errors in the API's vocabulary.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(AppError::new(
            ErrorCode::InvalidJson,
            "The request body is empty: send a JSON object.",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let field = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data if field != "." => {
                // serde's message may quote the rejected value (a password, say); keep
                // only what was expected.
                let message = inner.to_string();
                let expected = message
                    .split_once("expected ")
                    .map(|(_, rest)| rest.rsplit_once(" at line").map_or(rest, |(e, _)| e));
                let reason = match expected {
                    Some(expected) => format!("`{field}` must be {expected}."),
                    None => format!("`{field}` has an invalid value."),
                };
                AppError::validation(&field, reason)
            }
            serde_json::error::Category::Data => AppError::new(
                ErrorCode::ValidationFailed,
                "The body must be a JSON object with the documented fields.",
            ),
            serde_json::error::Category::Syntax
            | serde_json::error::Category::Eof
            | serde_json::error::Category::Io => AppError::new(
                ErrorCode::InvalidJson,
                format!(
                    "The body is not valid JSON (line {}, column {}).",
                    inner.line(),
                    inner.column()
                ),
            ),
        }
    })?;
    deserializer.end().map_err(|error| {
        AppError::new(
            ErrorCode::InvalidJson,
            format!(
                "Unexpected data after the JSON body (line {}, column {}).",
                error.line(),
                error.column()
            ),
        )
    })?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[expect(dead_code, reason = "fields exist to be deserialized")]
    struct Body {
        port: Option<u16>,
        password: Option<String>,
    }

    #[test]
    fn syntax_errors_are_invalid_json() {
        for bad in [&b"{"[..], b"", b"{\"port\": }", b"{} trailing"] {
            assert_eq!(
                parse::<Body>(bad).unwrap_err().code,
                ErrorCode::InvalidJson,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn an_empty_body_is_called_empty() {
        for empty in [&b""[..], b"  \n"] {
            let error = parse::<Body>(empty).unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidJson);
            assert!(error.message.contains("empty"), "{}", error.message);
        }
    }

    #[test]
    fn wrong_types_name_the_field_without_echoing_the_value() {
        let error = parse::<Body>(br#"{"password": 1234567}"#).unwrap_err();
        assert_eq!(error.code, ErrorCode::ValidationFailed);
        assert_eq!(
            error.details,
            Some(serde_json::json!({"field": "password"}))
        );
        assert!(!error.message.contains("1234567"), "{}", error.message);
        let error = parse::<Body>(br#"{"port": 70000}"#).unwrap_err();
        assert_eq!(error.details, Some(serde_json::json!({"field": "port"})));
    }

    #[test]
    fn a_body_that_is_not_an_object_fails_validation() {
        assert_eq!(
            parse::<Body>(b"[1,2]").unwrap_err().code,
            ErrorCode::ValidationFailed
        );
    }
}
