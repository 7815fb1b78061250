//! `POST /api/generate-sql`: a question in plain language to one read-only statement.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::ai::{AiClient, AiError, clean, prompt};
use crate::db::execute::{ExecRequest, QueryOutput};
use crate::db::params::{ConnParams, Engine};
use crate::db::sql_error::SqlError;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::extract::ApiJson;
use crate::routes::query::{DEFAULT_MAX_ROWS, Layout, result_json};
use crate::state::AppState;
use crate::token::extract::MaybeBearer;

/// The routes of this area.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/generate-sql", post(generate_sql))
}

/// Longest question accepted, in characters.
pub const MAX_QUESTION_CHARS: usize = 2_000;

/// Body of `POST /api/generate-sql`, with the replaced app's field names.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateRequest {
    user_query: Option<String>,
    db_type: Option<String>,
    schema: Option<String>,
    #[serde(default)]
    execute: bool,
}

/// A generated statement and, when it ran, its result.
#[derive(Debug)]
pub struct Generated {
    /// The cleaned SQL.
    pub sql: String,
    /// Whether the model needed a second try after the database refused the first.
    pub retried: bool,
    /// The rows, when executed.
    pub result: Option<QueryOutput>,
}

/// Checks a question: present, not blank, not too long.
pub fn question(field: &str, value: Option<String>) -> Result<String, AppError> {
    let value = value.map(|q| q.trim().to_owned()).filter(|q| !q.is_empty());
    let value = value.ok_or_else(|| {
        AppError::validation(
            field,
            format!("`{field}` is required: a question in plain language."),
        )
    })?;
    if value.chars().count() > MAX_QUESTION_CHARS {
        return Err(AppError::validation(
            field,
            format!("`{field}` must be at most {MAX_QUESTION_CHARS} characters."),
        ));
    }
    Ok(value)
}

/// The configured model, or `ai_not_configured`.
pub fn model(state: &AppState) -> Result<&AiClient, AppError> {
    state
        .ai
        .as_deref()
        .ok_or_else(|| AiError::NotConfigured.into())
}

/// Asks the model, cleans and checks its answer, and (with a database) validates or
/// runs it read-only; one more try when the database refuses the first answer.
pub async fn generate(
    state: &AppState,
    ai: &AiClient,
    engine: Engine,
    database: Option<&ConnParams>,
    schema_text: &str,
    question: &str,
    execute: bool,
) -> Result<Generated, AppError> {
    let mut messages = prompt::messages(engine, schema_text, question);
    let mut retried = false;
    loop {
        let answer = ai.complete(&messages).await?;
        let sql = clean::extract_sql(&answer, engine);
        if !clean::looks_read_only(&sql, engine) {
            return Err(unsafe_sql(&sql));
        }
        let Some(params) = database else {
            return Ok(Generated {
                sql,
                retried,
                result: None,
            });
        };
        let timeout = std::time::Duration::from_millis(state.config.statement_timeout_ms);
        let checked = if execute {
            let request = ExecRequest {
                sql: sql.clone(),
                params: Vec::new(),
                max_rows: usize::try_from(DEFAULT_MAX_ROWS.min(state.config.max_rows))
                    .unwrap_or(usize::MAX),
                timeout,
                bigint_as_string: false,
                max_result_bytes: usize::try_from(state.config.max_result_bytes)
                    .unwrap_or(usize::MAX),
            };
            state.db.execute(params, &request).await.map(Some)
        } else {
            state
                .db
                .validate(params, &sql, timeout)
                .await
                .map(|()| None)
        };
        match checked {
            Ok(result) => {
                return Ok(Generated {
                    sql,
                    retried,
                    result,
                });
            }
            Err(SqlError::Statement {
                code: ErrorCode::SqlReadOnlyViolation | ErrorCode::SqlMultipleStatements,
                ..
            }) => {
                return Err(unsafe_sql(&sql));
            }
            Err(SqlError::Statement { code, message, .. })
                if !retried && code != ErrorCode::SqlTimeout =>
            {
                tracing::debug!(
                    code = code.as_str(),
                    "generated SQL refused by the database; asking again"
                );
                messages = prompt::retry(messages, &sql, &message);
                retried = true;
            }
            Err(error) => {
                let mut app = AppError::from(error);
                if let Some(Value::Object(details)) = app.details.as_mut() {
                    details.insert("sql".into(), json!(sql));
                } else {
                    app.details = Some(json!({ "sql": sql }));
                }
                return Err(app);
            }
        }
    }
}

fn unsafe_sql(sql: &str) -> AppError {
    AppError::new(
        ErrorCode::AiUnsafeSql,
        "The model did not produce a single read-only statement, so it was not used.",
    )
    .with_details(json!({ "sql": sql }))
}

#[tracing::instrument(skip_all)]
async fn generate_sql(
    State(state): State<AppState>,
    MaybeBearer(verified): MaybeBearer,
    ApiJson(body): ApiJson<GenerateRequest>,
) -> AppResult<Json<Value>> {
    let question = question("userQuery", body.user_query)?;
    let ai = model(&state)?;
    let budget = usize::try_from(state.config.ai_schema_budget_chars).unwrap_or(usize::MAX);
    let (engine, schema_text) = match &verified {
        Some(verified) => {
            let tables = state.db.schema(&verified.params, None, false).await?;
            let engine = verified.params.engine;
            (
                engine,
                prompt::render_schema(&tables, engine, &question, budget),
            )
        }
        None => {
            if body.execute {
                return Err(AppError::validation(
                    "execute",
                    "`execute` needs a bearer token: connect first.",
                ));
            }
            let engine = super::database::db_type(body.db_type)?;
            (
                engine,
                prompt::trim_text(body.schema.as_deref().unwrap_or_default(), budget),
            )
        }
    };
    let params = verified.as_ref().map(|v| &v.params);
    let generated = generate(
        &state,
        ai,
        engine,
        params,
        &schema_text,
        &question,
        body.execute,
    )
    .await?;
    let mut answer = json!({
        "success": true,
        "sql": generated.sql,
        "originalQuery": question,
        "dbType": engine.as_str(),
        "generatedAt": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        "model": ai.model(),
        "retried": generated.retried,
    });
    if let Some(result) = &generated.result {
        answer["result"] = result_json(result, Layout::Objects);
    }
    Ok(Json(answer))
}
