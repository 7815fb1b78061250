//! The schema answer with its `ETag`, shared by `/api/database/schema` and
//! `/api/demo/schema`.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::db::introspect::Table;
use crate::db::params::ConnParams;
use crate::error::{AppError, AppResult};

/// `{"success":true,"database":…,"dbType":…,"tables":[…]}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SchemaAnswer<'a> {
    success: bool,
    database: &'a str,
    db_type: &'static str,
    tables: &'a [Table],
}

/// `Cache-Control: no-cache` (or `max-age=0`) asks for the catalog as it is now,
/// bypassing the server's short-lived schema cache.
pub(crate) fn wants_fresh(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("no-cache") || v.contains("max-age=0"))
}

/// The schema answer with its ETag, or `304` when `If-None-Match` holds it.
pub(crate) fn schema_response(
    headers: &HeaderMap,
    params: &ConnParams,
    tables: &[Table],
) -> AppResult<Response> {
    let body = SchemaAnswer {
        success: true,
        database: &params.database,
        db_type: params.engine.as_str(),
        tables,
    };
    let bytes = serde_json::to_vec(&body).map_err(|e| AppError::internal(&e))?;
    let digest = Sha256::digest(&bytes);
    let etag = format!(
        "\"{}\"",
        digest[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').map(str::trim).any(|tag| {
                tag == etag || tag == "*" || tag.strip_prefix("W/") == Some(etag.as_str())
            })
        });
    let etag_value = HeaderValue::from_str(&etag).map_err(|e| AppError::internal(&e))?;
    // The answer depends on who asks, but may be revalidated with the ETag.
    let cache = HeaderValue::from_static("private, no-cache");
    if matches {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag_value), (header::CACHE_CONTROL, cache)],
        )
            .into_response());
    }
    Ok((
        [
            (header::ETAG, etag_value),
            (header::CACHE_CONTROL, cache),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
        ],
        bytes,
    )
        .into_response())
}
