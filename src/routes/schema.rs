//! `GET /api/database/schema`: tables, views, columns, keys and indexes.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::db::introspect::Table;
use crate::db::params::ConnParams;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::token::extract::Bearer;

/// The routes of this area.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/database/schema", get(schema))
}

/// `?schema=` filter.
#[derive(Debug, Deserialize)]
pub struct SchemaQuery {
    schema: Option<String>,
}

#[tracing::instrument(skip_all, fields(db_type = verified.params.engine.as_str()))]
async fn schema(
    State(state): State<AppState>,
    Bearer(verified): Bearer,
    query: Result<Query<SchemaQuery>, QueryRejection>,
    headers: HeaderMap,
) -> AppResult<Response> {
    let invalid = || {
        AppError::validation(
            "schema",
            "`schema` must be a schema name of 1 to 255 characters.",
        )
    };
    let Query(query) = query.map_err(|_| invalid())?;
    let filter = query.schema.filter(|s| !s.is_empty());
    if filter.as_ref().is_some_and(|s| s.chars().count() > 255) {
        return Err(invalid());
    }
    let params = &verified.params;
    let tables = state
        .db
        .schema(params, filter.as_deref(), wants_fresh(&headers))
        .await?;
    schema_response(&headers, params, &tables)
}

/// `Cache-Control: no-cache` (or `max-age=0`) asks for the catalog as it is now,
/// bypassing the server's short-lived schema cache.
pub fn wants_fresh(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("no-cache") || v.contains("max-age=0"))
}

/// The schema answer with its ETag, or `304` when `If-None-Match` holds it.
pub fn schema_response(
    headers: &HeaderMap,
    params: &ConnParams,
    tables: &[Table],
) -> AppResult<Response> {
    let body = json!({
        "success": true,
        "database": params.database,
        "dbType": params.engine.as_str(),
        "tables": tables,
    });
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
