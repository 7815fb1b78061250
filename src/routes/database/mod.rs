//! `/api/database/*`: connect, status, refresh, disconnect.
//!
//! - [`connect`]: the connection fields checked into parameters, and the first
//!   token of a chain.
//! - [`session`]: what a token holds, its refresh, and its end.

mod connect;
mod session;

use axum::Router;
use axum::routing::{get, post};
use serde::Serialize;

use crate::db::params::ConnParams;
use crate::state::AppState;
use crate::token::{Issued, rfc3339};

/// The routes of this area.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/database/connect", post(connect::connect))
        .route("/api/database/status", get(session::status))
        .route("/api/database/refresh", post(session::refresh))
        .route("/api/database/disconnect", post(session::disconnect))
}

/// The answer of connect and refresh.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenResponse {
    success: bool,
    token: String,
    token_type: &'static str,
    expires_in: i64,
    expires_at: String,
    refreshable_until: String,
    db_type: &'static str,
    database: String,
    host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_version: Option<String>,
}

impl TokenResponse {
    fn new(
        issued: &Issued,
        params: &ConnParams,
        server_version: Option<String>,
        max_lifetime: i64,
    ) -> Self {
        let claims = &issued.claims;
        Self {
            success: true,
            token: issued.token.expose().to_owned(),
            token_type: "Bearer",
            expires_in: claims.exp - claims.iat,
            expires_at: rfc3339(claims.exp),
            refreshable_until: rfc3339(claims.orig + max_lifetime),
            db_type: params.engine.as_str(),
            database: params.database.clone(),
            host: params.public_host().map(str::to_owned),
            server_version,
        }
    }
}
