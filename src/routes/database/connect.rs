//! `POST /api/database/connect`: the connection fields, checked, become the
//! parameters sealed into a new token.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::Value;

use super::TokenResponse;
use crate::db::params::{ConnParams, Engine, SslMode};
use crate::db::sqlite_dir::SqliteDir;
use crate::error::{AppError, AppResult};
use crate::extract::ApiJson;
use crate::secret::Secret;
use crate::state::AppState;

/// `POST /api/database/connect`, with the replaced app's field names.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConnectRequest {
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
    pub(crate) fn into_params(self) -> Result<ConnParams, AppError> {
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

#[tracing::instrument(skip_all)]
pub(super) async fn connect(
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
