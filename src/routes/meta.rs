//! Health, readiness, the API document and the public keys.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;

use crate::error::{AppError, AppResult, ErrorCode};
use crate::state::AppState;

/// The OpenAPI document served at `/openapi.yaml`.
pub(crate) const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

/// `/api/health`, `/health`, `/openapi.yaml`, `/.well-known/jwks.json`.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/health", get(health))
        .route("/health", get(health))
        .route("/api/ready", get(ready))
        .route("/openapi.yaml", get(openapi))
        .route("/.well-known/jwks.json", get(jwks))
}

/// The answer of the health and readiness checks.
#[derive(Debug, Serialize)]
pub(crate) struct HealthAnswer {
    status: &'static str,
    version: &'static str,
}

/// Liveness: the process answers.
async fn health() -> Json<HealthAnswer> {
    Json(HealthAnswer {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// Readiness: keys are loaded (the state exists only then), the instance is
/// not draining, and it has a place for another request (a load balancer that
/// checks readiness then routes around an instance that would answer
/// `overloaded`).
async fn ready(State(state): State<AppState>) -> AppResult<Json<HealthAnswer>> {
    if !state.lifecycle.is_ready() {
        return Err(AppError::new(
            ErrorCode::NotReady,
            "This instance is shutting down; send requests to another one.",
        ));
    }
    if state
        .shared
        .as_ref()
        .is_some_and(|s| !s.revocations.ready())
    {
        let mut error = AppError::new(
            ErrorCode::NotReady,
            "This instance has not read the revoked tokens from the shared store yet; send requests to another one.",
        );
        error.retry_after = Some(1);
        return Err(error);
    }
    if state.lifecycle.is_saturated() {
        let mut error = AppError::new(
            ErrorCode::Overloaded,
            "This instance is serving as many requests as it can; send requests to another one.",
        );
        error.retry_after = Some(1);
        return Err(error);
    }
    Ok(Json(HealthAnswer {
        status: "ready",
        version: env!("CARGO_PKG_VERSION"),
    }))
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
        Json(JwksAnswer { keys: [] }),
    )
}

/// The answer of `GET /.well-known/jwks.json`: a key set that is always empty.
#[derive(Debug, Serialize)]
struct JwksAnswer {
    keys: [(); 0],
}
