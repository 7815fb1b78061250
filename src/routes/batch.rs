//! `POST /api/database/batch`: several read-only statements in one snapshot,
//! each with its own result or error, in order (see [`crate::db::batch`]).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::Value;

use super::query::{FormatQuery, check_limits, query_id};
use crate::db::Delivery;
use crate::db::batch::{BatchRequest, MAX_BATCH_STATEMENTS};
use crate::db::sql_error::SqlError;
use crate::error::{AppError, AppResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::results::{self, Cells, Format};
use crate::state::AppState;
use crate::token::extract::Bearer;

/// The routes of this area.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/database/batch", post(batch))
}

/// Body of `POST /api/database/batch`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BatchBody {
    statements: Option<Vec<StatementBody>>,
    max_rows: Option<u64>,
    timeout_ms: Option<u64>,
    #[serde(default)]
    bigint_as_string: bool,
    query_id: Option<String>,
}

/// One statement of a batch.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatementBody {
    sql: Option<String>,
    #[serde(default)]
    params: Vec<Value>,
}

impl BatchBody {
    fn into_request(self, state: &AppState, chain: &str) -> Result<BatchRequest, AppError> {
        let statements = self.statements.filter(|s| !s.is_empty()).ok_or_else(|| {
            AppError::validation(
                "statements",
                "`statements` is required: a list of {\"sql\", \"params\"}.",
            )
        })?;
        if statements.len() > MAX_BATCH_STATEMENTS {
            return Err(AppError::validation(
                "statements",
                format!("A batch holds at most {MAX_BATCH_STATEMENTS} statements."),
            ));
        }
        check_limits(self.max_rows, self.timeout_ms)?;
        let limits = &state.limits;
        let rows = limits.row_cap(Delivery::Answer, self.max_rows);
        let tag = query_id(self.query_id)?.map(|id| limits.query_tag(chain, &id));
        let mut requests = Vec::with_capacity(statements.len());
        for (i, statement) in statements.into_iter().enumerate() {
            let sql = statement
                .sql
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| {
                    AppError::validation(
                        &format!("statements[{i}].sql"),
                        format!("Statement {i} needs `sql`: one SQL statement."),
                    )
                })?;
            let mut request = limits.request(
                sql,
                statement.params,
                rows,
                self.timeout_ms,
                self.bigint_as_string,
            );
            request.tag.clone_from(&tag);
            requests.push(request);
        }
        let timeout = requests
            .first()
            .map_or(limits.statement_timeout, |r| r.timeout);
        Ok(BatchRequest {
            statements: requests,
            timeout,
            tag,
        })
    }
}

#[tracing::instrument(skip_all, fields(db_type = verified.params.engine.as_str()))]
async fn batch(
    State(state): State<AppState>,
    Bearer(verified): Bearer,
    ApiQuery(query): ApiQuery<FormatQuery>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<BatchBody>,
) -> AppResult<Response> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    // A batch is JSON or NDJSON: several tables do not make one CSV.
    let format = match Format::from_accept(accept, query.layout()?, Cells::Safe) {
        Format::Csv(_) => Format::Json(query.layout()?),
        other => other,
    };
    let request = body.into_request(&state, &verified.claims.chain().id)?;
    let mut batch = state.db.batch(&verified.params, request).await?;
    // Nothing is committed until the first statement's fate is known: a
    // database that cannot be reached is this answer's error.
    let first = match batch.entries.first_mut() {
        Some(first) => first.await.unwrap_or_else(|_| {
            Err(SqlError::refused(
                crate::error::ErrorCode::SqlError,
                "the batch ended before its first statement",
            ))
        }),
        None => return Err(AppError::validation("statements", "`statements` is empty.")),
    };
    if let Err(SqlError::Connection(error)) = &first {
        return Ok(AppError::from(SqlError::Connection(error.clone())).into_response());
    }
    Ok(results::batch::respond(
        batch,
        first,
        format,
        state.limits.max_result_bytes,
    ))
}
