//! `/api/database/*`: connect, status, refresh, disconnect.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::db::params::{ConnParams, Engine, SslMode};
use crate::db::sqlite_dir::SqliteDir;
use crate::error::{AppError, AppResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::secret::Secret;
use crate::state::AppState;
use crate::token::Issued;
use crate::token::extract::{Bearer, MaybeBearer};

/// The routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/database/connect", post(connect))
        .route("/api/database/status", get(status))
        .route("/api/database/refresh", post(refresh))
        .route("/api/database/disconnect", post(disconnect))
}

/// `POST /api/database/connect`, with the replaced app's field names.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectRequest {
    db_type: Option<String>,
    host: Option<String>,
    /// A number, or a string of digits as HTML forms send it.
    port: Option<Value>,
    #[serde(alias = "user")]
    username: Option<String>,
    password: Option<Secret>,
    database: Option<String>,
    /// A mode name, or a boolean.
    ssl: Option<Value>,
}

const MAX_FIELD_CHARS: usize = 255;

impl ConnectRequest {
    /// Checks every field and builds the connection parameters.
    pub fn into_params(self) -> Result<ConnParams, AppError> {
        let engine = Engine::from_field(self.db_type)?;
        let database = required("database", self.database)?;
        if engine == Engine::Sqlite {
            if !SqliteDir::is_valid_name(&database) {
                return Err(AppError::validation(
                    "database",
                    "For sqlite, `database` is the name of a database in the server's SQLite folder \
                     (for example `demo`), never a path, a URI or `:memory:`.",
                ));
            }
            return Ok(ConnParams {
                engine,
                host: String::new(),
                port: 0,
                username: String::new(),
                password: Secret::default(),
                database,
                ssl: SslMode::Disable,
            });
        }
        let host = required("host", self.host)?;
        let host_ok = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
        if !host_ok {
            return Err(AppError::validation(
                "host",
                "`host` must be a host name or an IP address (letters, digits, '.', '-', '_', ':').",
            ));
        }
        let password = self.password.unwrap_or_default();
        if password.expose().chars().count() > MAX_FIELD_CHARS {
            return Err(AppError::validation(
                "password",
                "`password` must be at most 255 characters.",
            ));
        }
        let ssl = match self.ssl {
            None | Some(Value::Null) => SslMode::default(),
            Some(value) => SslMode::parse(&value).ok_or_else(|| {
                AppError::validation(
                    "ssl",
                    "`ssl` must be disable, prefer, require, verify-ca or verify-full.",
                )
            })?,
        };
        Ok(ConnParams {
            engine,
            host,
            port: parse_port(self.port, engine)?,
            username: required("username", self.username)?,
            password,
            database,
            ssl,
        })
    }
}

fn required(field: &str, value: Option<String>) -> Result<String, AppError> {
    let value = value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| AppError::validation(field, format!("`{field}` is required.")))?;
    if value.contains('\0') {
        return Err(AppError::validation(
            field,
            format!("`{field}` must not contain NUL characters."),
        ));
    }
    if value.chars().count() > MAX_FIELD_CHARS {
        return Err(AppError::validation(
            field,
            format!("`{field}` must be at most 255 characters."),
        ));
    }
    Ok(value)
}

fn parse_port(value: Option<Value>, engine: Engine) -> Result<u16, AppError> {
    let invalid = || AppError::validation("port", "`port` must be a whole number from 1 to 65535.");
    let number = match value {
        None | Some(Value::Null) => return Ok(engine.default_port()),
        Some(Value::Number(n)) => n.as_u64().ok_or_else(invalid)?,
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(engine.default_port()),
        Some(Value::String(s)) => s.trim().parse::<u64>().map_err(|_| invalid())?,
        Some(_) => return Err(invalid()),
    };
    u16::try_from(number)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(invalid)
}

/// The answer of connect and refresh.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
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

fn rfc3339(unix: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[tracing::instrument(skip_all)]
async fn connect(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<ConnectRequest>,
) -> AppResult<Json<TokenResponse>> {
    let params = request.into_params()?;
    let info = state.db.connect(&params).await?;
    let issued = state.tokens.issue(&params, None)?;
    tracing::info!(db_type = params.engine.as_str(), sub = %issued.claims.sub, "connected");
    let max_lifetime = state.tokens.policy().max_lifetime;
    Ok(Json(TokenResponse::new(
        &issued,
        &params,
        Some(info.version),
        max_lifetime,
    )))
}

/// Query of `GET /api/database/status`.
#[derive(Debug, Deserialize)]
pub struct StatusQuery {
    /// Also ping the database.
    #[serde(default)]
    check: bool,
}

/// The answer of `GET /api/database/status`: `{"connected":false}` without a
/// token, else what the token holds (never the password).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusAnswer<'a> {
    connected: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    connection: Option<ConnectionStatus<'a>>,
}

/// The connection a token holds, and its lifetime.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionStatus<'a> {
    db_type: &'static str,
    host: Option<&'a str>,
    port: Option<u16>,
    database: &'a str,
    username: Option<&'a str>,
    ssl: Option<&'static str>,
    issued_at: String,
    expires_at: String,
    expires_in: i64,
    refreshable_until: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    check: Option<CheckAnswer>,
}

/// The result of `?check=true`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckAnswer {
    ok: bool,
    server_version: String,
    elapsed_ms: f64,
}

#[tracing::instrument(skip_all)]
async fn status(
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
            issued_at: rfc3339(claims.iat),
            expires_at: rfc3339(claims.exp),
            expires_in: (claims.exp - Utc::now().timestamp()).max(0),
            refreshable_until: rfc3339(claims.orig + state.tokens.policy().max_lifetime),
            check,
        }),
    };
    Ok(Json(answer).into_response())
}

#[tracing::instrument(skip_all)]
async fn refresh(
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
pub struct DisconnectAnswer {
    success: bool,
    message: &'static str,
    pool_closed: bool,
    /// The token's chain was revoked on every instance (needs `REDIS_URL`).
    revoked: bool,
    /// Until when (the chain's last possible expiry), when revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_until: Option<String>,
}

#[tracing::instrument(skip_all)]
async fn disconnect(
    State(state): State<AppState>,
    Bearer(verified): Bearer,
) -> AppResult<Json<DisconnectAnswer>> {
    // Revoked first: a disconnect that cannot revoke says so and changes nothing.
    let revoked_until = match &state.shared {
        Some(shared) => {
            let chain = verified.claims.chain();
            let until = state.tokens.chain_end(&chain);
            shared.revoke(&chain, until).await?;
            chrono::DateTime::from_timestamp(until, 0)
                .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        }
        None => None,
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
    }))
}
