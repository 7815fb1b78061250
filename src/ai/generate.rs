//! A question in plain language to one read-only statement: ask the model, clean
//! and check its answer, then (with a database) let the database plan or run it,
//! asking the model once more when the database refuses the first answer.

use serde_json::{Value, json};

use super::{AiClient, clean, prompt};
use crate::db::Databases;
use crate::db::execute::{Delivery, ExecLimits};
use crate::db::params::{ConnParams, Engine};
use crate::db::rows::{self, Collected};
use crate::db::sql_error::SqlError;
use crate::error::{AppError, ErrorCode};

/// What becomes of the generated statement.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'a> {
    /// Nothing: there is no database (a schema given as text).
    Plan,
    /// The database plans it read-only without running it.
    Validate(&'a ConnParams),
    /// The database runs it read-only; its rows come back. With the tag of the
    /// client's `queryId`, a cancel request can stop it.
    Execute(&'a ConnParams, Option<&'a str>),
}

/// One question to answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Question<'a> {
    /// The dialect to write.
    pub engine: Engine,
    /// The compact schema the model sees.
    pub schema: &'a str,
    /// The question.
    pub text: &'a str,
    /// What to do with the answer.
    pub target: Target<'a>,
}

/// A generated statement and, when it ran, its result.
#[derive(Debug)]
pub(crate) struct Generated {
    /// The cleaned SQL.
    pub sql: String,
    /// Whether the model needed a second try after the database refused the first.
    pub retried: bool,
    /// The rows, when executed.
    pub result: Option<Collected>,
}

/// Answers `question` with `ai`, checking or running the SQL on `db`.
pub(crate) async fn generate(
    ai: &AiClient,
    db: &Databases,
    limits: &ExecLimits,
    question: Question<'_>,
) -> Result<Generated, AppError> {
    let mut messages = prompt::messages(question.engine, question.schema, question.text);
    let mut retried = false;
    loop {
        let answer = ai.complete(&messages).await?;
        let sql = clean::extract_sql(&answer, question.engine);
        if !clean::looks_read_only(&sql, question.engine) {
            return Err(unsafe_sql(&sql));
        }
        let result = match check(db, limits, question.target, &sql).await {
            Ok(result) => {
                return Ok(Generated {
                    sql,
                    retried,
                    result,
                });
            }
            Err(error) => error,
        };
        match &result {
            SqlError::Statement(error)
                if matches!(
                    error.code,
                    ErrorCode::SqlReadOnlyViolation | ErrorCode::SqlMultipleStatements
                ) =>
            {
                return Err(unsafe_sql(&sql));
            }
            SqlError::Statement(error) if !retried && error.code != ErrorCode::SqlTimeout => {
                tracing::debug!(
                    code = error.code.as_str(),
                    "generated SQL refused by the database; asking again"
                );
                messages = prompt::retry(messages, &sql, &error.message);
                retried = true;
            }
            _ => return Err(with_sql(result.into(), &sql)),
        }
    }
}

/// Plans or runs `sql` as `target` says.
async fn check(
    db: &Databases,
    limits: &ExecLimits,
    target: Target<'_>,
    sql: &str,
) -> Result<Option<Collected>, SqlError> {
    let rows = limits.row_cap(Delivery::Answer, None);
    let mut request = limits.request(sql.to_owned(), Vec::new(), rows, None, false);
    match target {
        Target::Plan => Ok(None),
        Target::Validate(params) => db.validate(params, &request).await.map(|()| None),
        Target::Execute(params, tag) => {
            request.tag = tag.map(str::to_owned);
            let execution = db.execute(params, request).await?;
            rows::collect(execution, limits.max_result_bytes)
                .await
                .map(Some)
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

/// Adds the generated statement to an error's details.
fn with_sql(mut error: AppError, sql: &str) -> AppError {
    match error.details.as_mut() {
        Some(Value::Object(details)) => {
            details.insert("sql".into(), json!(sql));
        }
        _ => error.details = Some(json!({ "sql": sql })),
    }
    error
}
