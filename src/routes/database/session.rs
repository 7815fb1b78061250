//! A token's session: `GET /api/database/status`, `POST /api/database/refresh`
//! and `POST /api/database/disconnect`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::TokenResponse;
use crate::db::params::Engine;
use crate::error::AppResult;
use crate::extract::ApiQuery;
use crate::state::AppState;
use crate::token::extract::{Bearer, MaybeBearer};

/// Query of `GET /api/database/status`.
#[derive(Debug, Deserialize)]
pub(crate) struct StatusQuery {
    /// Also ping the database.
    #[serde(default)]
    check: bool,
}

/// The answer of `GET /api/database/status`: `{"connected":false}` without a
/// token, else what the token holds (never the password).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StatusAnswer<'a> {
    connected: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    connection: Option<ConnectionStatus<'a>>,
}

/// The connection a token holds, and its lifetime.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConnectionStatus<'a> {
    db_type: &'static str,
    host: Option<&'a str>,
    port: Option<u16>,
    database: &'a str,
    username: Option<&'a str>,
    ssl: Option<&'static str>,
    issued_at: &'a str,
    expires_at: &'a str,
    expires_in: i64,
    refreshable_until: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    check: Option<CheckAnswer>,
}

/// The result of `?check=true`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CheckAnswer {
    ok: bool,
    server_version: String,
    elapsed_ms: f64,
}

#[tracing::instrument(skip_all)]
pub(super) async fn status(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<StatusQuery>,
    MaybeBearer(verified): MaybeBearer,
) -> AppResult<Response> {
    let Some(verified) = verified else {
        return Ok(Json(StatusAnswer {
            connected: false,
            connection: None,
        })
        .into_response());
    };
    let (params, claims) = (&verified.params, &verified.claims);
    let network = params.engine != Engine::Sqlite;
    let check = if query.check {
        let started = std::time::Instant::now();
        let info = state.db.connect(params).await?;
        Some(CheckAnswer {
            ok: true,
            server_version: info.version,
            elapsed_ms: crate::results::elapsed_ms(started.elapsed()),
        })
    } else {
        None
    };
    let answer = StatusAnswer {
        connected: true,
        connection: Some(ConnectionStatus {
            db_type: params.engine.as_str(),
            host: params.public_host(),
            port: network.then_some(params.port),
            database: &params.database,
            username: network.then_some(params.username.as_str()),
            ssl: network.then_some(params.ssl.as_str()),
            issued_at: &verified.times.issued_at,
            expires_at: &verified.times.expires_at,
            expires_in: (claims.exp - Utc::now().timestamp()).max(0),
            refreshable_until: &verified.times.refreshable_until,
            check,
        }),
    };
    Ok(Json(answer).into_response())
}

#[tracing::instrument(skip_all)]
pub(super) async fn refresh(
    State(state): State<AppState>,
    Bearer(verified): Bearer,
) -> AppResult<Json<TokenResponse>> {
    let issued = state
        .tokens
        .issue(&verified.params, Some(verified.claims.chain()))?;
    let max_lifetime = state.tokens.policy().max_lifetime;
    Ok(Json(TokenResponse::new(
        &issued,
        &verified.params,
        None,
        max_lifetime,
    )))
}

/// The answer of `POST /api/database/disconnect`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DisconnectAnswer {
    success: bool,
    message: &'static str,
    pool_closed: bool,
    /// The token's chain was revoked on every instance (needs `REDIS_URL`).
    revoked: bool,
    /// Until when (the chain's last possible expiry), when revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_until: Option<String>,
    /// Where the revocation is known: `store` (recorded in Redis, where every
    /// instance reads it when it subscribes) or `instance` (this one alone: no
    /// `REDIS_URL`, so nothing is revoked).
    revoked_in: &'static str,
    /// Instances that heard the revocation at once (subscribed now, this one
    /// included); the others read it from the store when they subscribe again.
    #[serde(skip_serializing_if = "Option::is_none")]
    instances_notified: Option<u64>,
}

#[tracing::instrument(skip_all)]
pub(super) async fn disconnect(
    State(state): State<AppState>,
    Bearer(verified): Bearer,
) -> AppResult<Json<DisconnectAnswer>> {
    // Revoked first: a disconnect that cannot revoke says so and changes nothing.
    let (revoked_until, instances_notified) = match &state.shared {
        Some(shared) => {
            let chain = verified.claims.chain();
            let until = state.tokens.chain_end(&chain);
            let heard = crate::shared::revocation::revoke(shared, &chain, until).await?;
            let until = chrono::DateTime::from_timestamp(until, 0)
                .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            (until, Some(heard))
        }
        None => (None, None),
    };
    let pool_closed = state.db.disconnect(&verified.params).await;
    let (revoked, message) = match state.shared {
        Some(_) => (
            true,
            "Disconnected. This token and every token refreshed from it are revoked on every instance.",
        ),
        None => (
            false,
            "Disconnected. Forget the token: without a shared store (REDIS_URL) it stays valid until it expires, but this instance holds no connection for it.",
        ),
    };
    Ok(Json(DisconnectAnswer {
        success: true,
        message,
        pool_closed,
        revoked,
        revoked_until,
        revoked_in: if revoked { "store" } else { "instance" },
        instances_notified,
    }))
}
