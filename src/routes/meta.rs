//! Health, the API document and the public keys.

use axum::Json;
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

use crate::state::AppState;

/// The OpenAPI document served at `/openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

/// `/api/health`, `/health`, `/openapi.yaml`, `/.well-known/jwks.json`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/health", get(health))
        .route("/health", get(health))
        .route("/openapi.yaml", get(openapi))
        .route("/.well-known/jwks.json", get(jwks))
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

async fn openapi() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/yaml"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        OPENAPI_YAML,
    )
}

/// Tokens are signed with HMAC (HS256), a shared secret: there is no public key to
/// publish, so the set is empty. The route exists so that clients written for
/// asymmetric deployments find a well-formed answer.
async fn jwks() -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(json!({ "keys": [] })),
    )
}
