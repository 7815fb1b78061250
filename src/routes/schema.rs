//! `GET /api/database/schema`: tables, views, columns, keys and indexes.

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use crate::error::{AppError, AppResult};
use crate::extract::ApiQuery;
use crate::results::schema::{schema_response, wants_fresh};
use crate::state::AppState;
use crate::token::extract::Bearer;

/// The routes of this area.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/database/schema", get(schema))
}

/// `?schema=` filter.
#[derive(Debug, Deserialize)]
pub(crate) struct SchemaQuery {
    schema: Option<String>,
}

#[tracing::instrument(skip_all, fields(db_type = verified.params.engine.as_str()))]
async fn schema(
    State(state): State<AppState>,
    Bearer(verified): Bearer,
    ApiQuery(query): ApiQuery<SchemaQuery>,
    headers: HeaderMap,
) -> AppResult<Response> {
    let filter = query.schema.filter(|s| !s.is_empty());
    if filter.as_ref().is_some_and(|s| s.chars().count() > 255) {
        return Err(AppError::validation(
            "schema",
            "`schema` must be a schema name of 1 to 255 characters.",
        ));
    }
    let params = &verified.params;
    let tables = state
        .db
        .schema(params, filter.as_deref(), wants_fresh(&headers))
        .await?;
    schema_response(&headers, params, &tables)
}
