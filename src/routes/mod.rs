//! The HTTP routes, one module per area, each exporting `router()`.

pub(crate) mod ai;
pub(crate) mod batch;
pub(crate) mod console;
pub(crate) mod database;
pub(crate) mod demo;
pub(crate) mod meta;
pub(crate) mod query;
pub(crate) mod schema;

use axum::Router;
use axum::http::{StatusCode, Uri};

use crate::error::{AppError, ErrorCode};
use crate::state::AppState;

/// Every route of the API, with JSON answers for unknown paths and methods.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .merge(console::router())
        .merge(meta::router())
        .merge(database::router())
        .merge(schema::router())
        .merge(query::router())
        .merge(batch::router())
        .merge(ai::router())
        .merge(demo::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn not_found(uri: Uri) -> AppError {
    AppError::new(ErrorCode::NotFound, format!("No route for {}.", uri.path()))
}

async fn method_not_allowed(uri: Uri) -> AppError {
    debug_assert_eq!(
        ErrorCode::MethodNotAllowed.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
    AppError::new(
        ErrorCode::MethodNotAllowed,
        format!("{} does not accept this method.", uri.path()),
    )
}
