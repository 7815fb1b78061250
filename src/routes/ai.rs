//! `POST /api/generate-sql`: a question in plain language to one read-only statement.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::ai::generate::{self, Question, Target};
use crate::ai::{self, prompt};
use crate::db::params::Engine;
use crate::error::{AppError, AppResult};
use crate::extract::ApiJson;
use crate::results::ExecuteAnswer;
use crate::state::AppState;
use crate::token::extract::MaybeBearer;

/// The routes of this area.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/generate-sql", post(generate_sql))
}

/// Body of `POST /api/generate-sql`, with the replaced app's field names.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerateBody {
    user_query: Option<String>,
    db_type: Option<String>,
    schema: Option<String>,
    #[serde(default)]
    execute: bool,
    query_id: Option<String>,
}

/// The answer of `generate-sql`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerateAnswer {
    success: bool,
    sql: String,
    original_query: String,
    db_type: &'static str,
    generated_at: String,
    model: String,
    retried: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<ExecuteAnswer>,
}

#[tracing::instrument(skip_all)]
async fn generate_sql(
    State(state): State<AppState>,
    MaybeBearer(verified): MaybeBearer,
    ApiJson(body): ApiJson<GenerateBody>,
) -> AppResult<Json<GenerateAnswer>> {
    let question = ai::question("userQuery", body.user_query)?;
    let query_id = super::query::query_id(body.query_id)?;
    let tag = verified
        .as_ref()
        .zip(query_id.as_deref())
        .map(|(verified, id)| state.limits.query_tag(&verified.claims.chain().id, id));
    let model = state.model()?;
    let budget = usize::try_from(state.config.ai_schema_budget_chars).unwrap_or(usize::MAX);
    let (engine, schema_text, target) = match &verified {
        Some(verified) => {
            let params = &verified.params;
            let tables = state.db.schema(params, None, false).await?;
            let text = prompt::render_schema(&tables, params.engine, &question, budget);
            let target = if body.execute {
                Target::Execute(params, tag.as_deref())
            } else {
                Target::Validate(params)
            };
            (params.engine, text, target)
        }
        None if body.execute => {
            return Err(AppError::validation(
                "execute",
                "`execute` needs a bearer token: connect first.",
            ));
        }
        None => {
            let engine = Engine::from_field(body.db_type)?;
            let text = prompt::trim_text(body.schema.as_deref().unwrap_or_default(), budget);
            (engine, text, Target::Plan)
        }
    };
    let question_ref = Question {
        engine,
        schema: &schema_text,
        text: &question,
        target,
    };
    let generated = generate::generate(model, &state.db, &state.limits, question_ref).await?;
    Ok(Json(GenerateAnswer {
        success: true,
        sql: generated.sql,
        original_query: question,
        db_type: engine.as_str(),
        generated_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        model: model.model().to_owned(),
        retried: generated.retried,
        result: generated.result.map(ExecuteAnswer::new),
    }))
}
