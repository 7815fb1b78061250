//! `POST /api/database/execute`: one read-only statement over the token's database.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::config::Config;
use crate::db::execute::{ExecRequest, QueryOutput};
use crate::error::{AppError, AppResult};
use crate::extract::ApiJson;
use crate::state::AppState;
use crate::token::extract::Bearer;

/// The routes of this area.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/database/execute", post(execute))
}

/// Body of `POST /api/database/execute`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteRequest {
    sql: Option<String>,
    #[serde(default)]
    params: Vec<Value>,
    max_rows: Option<u64>,
    timeout_ms: Option<u64>,
    #[serde(default)]
    bigint_as_string: bool,
}

/// Rows returned when the client does not say, within `MAX_ROWS`.
pub const DEFAULT_MAX_ROWS: u64 = 1_000;

impl ExecuteRequest {
    /// Checks the fields against the server's limits. `maxRows` and `timeoutMs`
    /// above the server maximum are lowered to it.
    pub fn into_request(self, config: &Config) -> Result<ExecRequest, AppError> {
        let sql = self
            .sql
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| AppError::validation("sql", "`sql` is required: one SQL statement."))?;
        let max_rows = match self.max_rows {
            Some(0) => {
                return Err(AppError::validation(
                    "maxRows",
                    "`maxRows` must be at least 1.",
                ));
            }
            Some(rows) => rows.min(config.max_rows),
            None => DEFAULT_MAX_ROWS.min(config.max_rows),
        };
        let timeout_ms = match self.timeout_ms {
            Some(0) => {
                return Err(AppError::validation(
                    "timeoutMs",
                    "`timeoutMs` must be at least 1.",
                ));
            }
            Some(ms) => ms.min(config.statement_timeout_ms),
            None => config.statement_timeout_ms,
        };
        Ok(ExecRequest {
            sql,
            params: self.params,
            max_rows: usize::try_from(max_rows).unwrap_or(usize::MAX),
            timeout: std::time::Duration::from_millis(timeout_ms),
            bigint_as_string: self.bigint_as_string,
            max_result_bytes: usize::try_from(config.max_result_bytes).unwrap_or(usize::MAX),
        })
    }
}

/// `?format=` of execute.
#[derive(Debug, Deserialize)]
pub struct FormatQuery {
    format: Option<String>,
}

/// How rows are laid out in a JSON answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `data`: one object per row, keyed by column name.
    Objects,
    /// `rows`: one array per row (duplicate column names survive).
    Arrays,
}

impl Layout {
    fn from_query(query: Result<Query<FormatQuery>, QueryRejection>) -> Result<Self, AppError> {
        let invalid = || AppError::validation("format", "`format` must be `objects` or `arrays`.");
        let Query(query) = query.map_err(|_| invalid())?;
        match query.format.as_deref() {
            None | Some("objects") => Ok(Self::Objects),
            Some("arrays") => Ok(Self::Arrays),
            Some(_) => Err(invalid()),
        }
    }
}

/// The JSON answer for a result.
pub fn result_json(output: &QueryOutput, layout: Layout) -> Value {
    let columns: Vec<&str> = output.columns.iter().map(|c| c.name.as_str()).collect();
    let column_types: Vec<Value> = output
        .columns
        .iter()
        .map(|c| json!({ "name": c.name, "type": c.type_name }))
        .collect();
    let mut body = json!({
        "success": true,
        "columns": columns,
        "columnTypes": column_types,
    });
    match layout {
        Layout::Objects => {
            let data: Vec<Value> = output
                .rows
                .iter()
                .map(|row| {
                    let object: Map<String, Value> = columns
                        .iter()
                        .map(|c| (*c).to_owned())
                        .zip(row.iter().cloned())
                        .collect();
                    Value::Object(object)
                })
                .collect();
            body["data"] = Value::Array(data);
        }
        Layout::Arrays => body["rows"] = json!(output.rows),
    }
    body["rowCount"] = json!(output.rows.len());
    body["truncated"] = json!(output.truncated);
    body["executedAt"] = json!(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true));
    body["elapsedMs"] = json!(super::elapsed_ms(output.elapsed));
    body
}

/// The result as CSV: a header line, then one line per row. NULL is an empty
/// field; JSON values are their JSON text.
fn result_csv(output: &QueryOutput) -> Result<Vec<u8>, AppError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let failed = |error: &dyn std::fmt::Display| AppError::internal(error);
    writer
        .write_record(output.columns.iter().map(|c| c.name.as_str()))
        .map_err(|e| failed(&e))?;
    for row in &output.rows {
        writer
            .write_record(row.iter().map(|value| match value {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }))
            .map_err(|e| failed(&e))?;
    }
    writer.into_inner().map_err(|e| failed(&e))
}

fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.to_ascii_lowercase().contains("text/csv"))
}

#[tracing::instrument(skip_all, fields(db_type = verified.params.engine.as_str()))]
async fn execute(
    State(state): State<AppState>,
    Bearer(verified): Bearer,
    query: Result<Query<FormatQuery>, QueryRejection>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ExecuteRequest>,
) -> AppResult<Response> {
    let layout = Layout::from_query(query)?;
    let request = body.into_request(&state.config)?;
    let output = state.db.execute(&verified.params, &request).await?;
    if wants_csv(&headers) {
        let csv = result_csv(&output)?;
        let mut response =
            ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response();
        let headers = response.headers_mut();
        headers.insert("x-row-count", HeaderValue::from(output.rows.len()));
        headers.insert(
            "x-truncated",
            HeaderValue::from_static(if output.truncated { "true" } else { "false" }),
        );
        return Ok(response);
    }
    Ok(Json(result_json(&output, layout)).into_response())
}
