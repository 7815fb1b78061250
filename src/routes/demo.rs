//! The built-in demo database without a token: its schema, and questions about it.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::ai::generate::{self, Question, Target};
use crate::ai::{self, prompt};
use crate::db::params::{ConnParams, Engine};
use crate::error::AppResult;
use crate::extract::ApiJson;
use crate::results::schema::{schema_response, wants_fresh};
use crate::results::{ExecuteAnswer, RowsAnswer};
use crate::state::AppState;

/// The routes of this area.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/demo/schema", get(demo_schema))
        .route("/api/demo/query", post(demo_query))
}

#[tracing::instrument(skip_all)]
async fn demo_schema(State(state): State<AppState>, headers: HeaderMap) -> AppResult<Response> {
    let params = ConnParams::demo();
    let tables = state
        .db
        .schema(&params, None, wants_fresh(&headers))
        .await?;
    schema_response(&headers, &params, &tables)
}

/// Body of `POST /api/demo/query`.
#[derive(Debug, Deserialize)]
pub(crate) struct DemoQuery {
    query: Option<String>,
}

/// The answer of `POST /api/demo/query`, in the replaced app's shape.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DemoAnswer {
    success: bool,
    sql: String,
    original_query: String,
    data: RowsAnswer,
    columns: Vec<String>,
    row_count: usize,
    truncated: bool,
    executed_at: String,
    model: String,
    retried: bool,
}

#[tracing::instrument(skip_all)]
async fn demo_query(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<DemoQuery>,
) -> AppResult<Json<DemoAnswer>> {
    let question = ai::question("query", body.query)?;
    let model = state.model()?;
    let params = ConnParams::demo();
    let tables = state.db.schema(&params, None, false).await?;
    let budget = usize::try_from(state.config.ai_schema_budget_chars).unwrap_or(usize::MAX);
    let schema_text = prompt::render_schema(&tables, Engine::Sqlite, &question, budget);
    let asked = Question {
        engine: Engine::Sqlite,
        schema: &schema_text,
        text: &question,
        target: Target::Execute(&params, None),
    };
    let generated = generate::generate(model, &state.db, &state.limits, asked).await?;
    let result = generated.result.map(ExecuteAnswer::new);
    let (data, columns, row_count, truncated) = match result {
        Some(result) => (
            result.data,
            result.columns,
            result.row_count,
            result.truncated,
        ),
        None => (RowsAnswer::default(), Vec::new(), 0, false),
    };
    Ok(Json(DemoAnswer {
        success: true,
        sql: generated.sql,
        original_query: question,
        data,
        columns,
        row_count,
        truncated,
        executed_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        model: model.model().to_owned(),
        retried: generated.retried,
    }))
}
