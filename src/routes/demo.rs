//! The built-in demo database without a token: its schema, and questions about it.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::ai::prompt;
use crate::db::params::{ConnParams, Engine, SslMode};
use crate::db::sqlite_dir::DEMO;
use crate::error::AppResult;
use crate::extract::ApiJson;
use crate::routes::ai::{generate, model, question};
use crate::routes::query::{Layout, result_json};
use crate::routes::schema::{schema_response, wants_fresh};
use crate::secret::Secret;
use crate::state::AppState;

/// The routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/demo/schema", get(demo_schema))
        .route("/api/demo/query", post(demo_query))
}

/// The demo database's connection parameters.
pub fn demo_params() -> ConnParams {
    ConnParams {
        engine: Engine::Sqlite,
        host: String::new(),
        port: 0,
        username: String::new(),
        password: Secret::default(),
        database: DEMO.to_owned(),
        ssl: SslMode::Disable,
    }
}

#[tracing::instrument(skip_all)]
async fn demo_schema(State(state): State<AppState>, headers: HeaderMap) -> AppResult<Response> {
    let params = demo_params();
    let tables = state
        .db
        .schema(&params, None, wants_fresh(&headers))
        .await?;
    schema_response(&headers, &params, &tables)
}

/// Body of `POST /api/demo/query`.
#[derive(Debug, Deserialize)]
pub struct DemoQuery {
    query: Option<String>,
}

#[tracing::instrument(skip_all)]
async fn demo_query(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<DemoQuery>,
) -> AppResult<Json<Value>> {
    let question = question("query", body.query)?;
    let ai = model(&state)?;
    let params = demo_params();
    let tables = state.db.schema(&params, None, false).await?;
    let budget = usize::try_from(state.config.ai_schema_budget_chars).unwrap_or(usize::MAX);
    let schema_text = prompt::render_schema(&tables, Engine::Sqlite, &question, budget);
    let generated = generate(
        &state,
        ai,
        Engine::Sqlite,
        Some(&params),
        &schema_text,
        &question,
        true,
    )
    .await?;
    let result = generated
        .result
        .as_ref()
        .map(|r| result_json(r, Layout::Objects))
        .unwrap_or_default();
    Ok(Json(json!({
        "success": true,
        "sql": generated.sql,
        "originalQuery": question,
        "data": result["data"],
        "columns": result["columns"],
        "rowCount": result["rowCount"],
        "truncated": result["truncated"],
        "executedAt": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        "model": ai.model(),
        "retried": generated.retried,
    })))
}
