//! `POST /api/database/execute`: one read-only statement over the token's
//! database, its rows written as they come.

use axum::Extension;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::db::execute::{Delivery, ExecLimits, ExecRequest, RowCap};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::extract::{ApiJson, ApiQuery};
use crate::results::{self, Cells, Format, Layout};
use crate::server::Flushes;
use crate::state::AppState;
use crate::token::extract::Bearer;

/// The routes of this area.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/database/execute", post(execute))
        .route("/api/database/cancel", post(cancel))
}

/// `maxRows` and `timeoutMs` of 0 are refused (absent ones take the defaults).
pub(crate) fn check_limits(max_rows: Option<u64>, timeout_ms: Option<u64>) -> Result<(), AppError> {
    if max_rows == Some(0) {
        return Err(AppError::validation(
            "maxRows",
            "`maxRows` must be at least 1.",
        ));
    }
    if timeout_ms == Some(0) {
        return Err(AppError::validation(
            "timeoutMs",
            "`timeoutMs` must be at least 1.",
        ));
    }
    Ok(())
}

/// The longest `queryId`.
const MAX_QUERY_ID_CHARS: usize = 128;

/// Checks a client's `queryId`: 1 to 128 characters out of letters, digits and
/// `-`, `_`, `.`, `:` (a UUID, a counter, a name).
pub(crate) fn query_id(value: Option<String>) -> Result<Option<String>, AppError> {
    let Some(id) = value else {
        return Ok(None);
    };
    let fits = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    if id.is_empty() || id.len() > MAX_QUERY_ID_CHARS || !id.chars().all(fits) {
        return Err(AppError::validation(
            "queryId",
            "`queryId` must be 1 to 128 characters of letters, digits, `-`, `_`, `.` or `:`, \
             such as a UUID.",
        ));
    }
    Ok(Some(id))
}

/// Body of `POST /api/database/execute`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExecuteBody {
    sql: Option<String>,
    #[serde(default)]
    params: Vec<Value>,
    max_rows: Option<u64>,
    timeout_ms: Option<u64>,
    #[serde(default)]
    bigint_as_string: bool,
    query_id: Option<String>,
}

impl ExecuteBody {
    /// Checks the fields; `maxRows` and `timeoutMs` above the server maximum of
    /// the delivery are lowered to it.
    pub(crate) fn into_request(
        self,
        limits: &ExecLimits,
        delivery: Delivery,
        chain: &str,
    ) -> Result<(ExecRequest, RowCap), AppError> {
        let query_id = query_id(self.query_id)?;
        let sql = self
            .sql
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| AppError::validation("sql", "`sql` is required: one SQL statement."))?;
        check_limits(self.max_rows, self.timeout_ms)?;
        let rows = limits.row_cap(delivery, self.max_rows);
        let mut request = limits.request(
            sql,
            self.params,
            rows,
            self.timeout_ms,
            self.bigint_as_string,
        );
        request.tag = query_id.map(|id| limits.query_tag(chain, &id));
        Ok((request, rows))
    }
}

/// `?format=` and `?csv=` of execute.
#[derive(Debug, Deserialize)]
pub(crate) struct FormatQuery {
    format: Option<String>,
    csv: Option<String>,
}

impl FormatQuery {
    fn cells(&self) -> Result<Cells, AppError> {
        match self.csv.as_deref() {
            None | Some("safe") => Ok(Cells::Safe),
            Some("raw") => Ok(Cells::Raw),
            Some(_) => Err(AppError::validation(
                "csv",
                "`csv` must be `safe` or `raw`.",
            )),
        }
    }

    pub(crate) fn layout(&self) -> Result<Layout, AppError> {
        match self.format.as_deref() {
            None | Some("objects") => Ok(Layout::Objects),
            Some("arrays") => Ok(Layout::Arrays),
            Some(_) => Err(AppError::validation(
                "format",
                "`format` must be `objects` or `arrays`.",
            )),
        }
    }
}

#[tracing::instrument(skip_all, fields(db_type = verified.params.engine.as_str()))]
async fn execute(
    State(state): State<AppState>,
    Bearer(verified): Bearer,
    ApiQuery(query): ApiQuery<FormatQuery>,
    headers: HeaderMap,
    flushes: Option<Extension<Flushes>>,
    ApiJson(body): ApiJson<ExecuteBody>,
) -> AppResult<Response> {
    let layout = query.layout()?;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept, layout, query.cells()?);
    let delivery = format.delivery();
    let chain = verified.claims.chain();
    let (request, rows) = body.into_request(&state.limits, delivery, &chain.id)?;
    let execution = state.db.execute(&verified.params, request).await?;
    let bytes = state.limits.result_bytes(delivery);
    let flushes = flushes.map(|Extension(flushes)| flushes);
    let mut response = results::respond(execution, format, bytes, flushes).await;
    results::row_cap_headers(response.headers_mut(), rows);
    Ok(response)
}

/// Body of `POST /api/database/cancel`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CancelBody {
    query_id: Option<String>,
}

/// The answer of a cancel that found its statement.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CancelAnswer {
    success: bool,
    query_id: String,
    cancelled: bool,
}

/// Stops the running statement the client sent with `queryId`, on this token's
/// chain, from any instance: the database finds it by its tag.
#[tracing::instrument(skip_all, fields(db_type = verified.params.engine.as_str()))]
async fn cancel(
    State(state): State<AppState>,
    Bearer(verified): Bearer,
    ApiJson(body): ApiJson<CancelBody>,
) -> AppResult<Json<CancelAnswer>> {
    let query_id = query_id(body.query_id)?.ok_or_else(|| {
        AppError::validation(
            "queryId",
            "`queryId` is required: the id the statement was sent with.",
        )
    })?;
    let tag = state
        .limits
        .query_tag(&verified.claims.chain().id, &query_id);
    if !state.db.cancel(&verified.params, &tag).await? {
        return Err(AppError::new(
            ErrorCode::QueryNotFound,
            "No statement sent with this queryId by this session is running (it may have \
             finished; on SQLite, it may run on another instance).",
        ));
    }
    Ok(Json(CancelAnswer {
        success: true,
        query_id,
        cancelled: true,
    }))
}
