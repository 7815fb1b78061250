//! Natural language to SQL through any OpenAI-compatible Chat Completions API.
//!
//! The model sees the question, the dialect and a compact rendering of the schema
//! ([`prompt`]) and nothing else: never a host, user name, password or token.
//! Its answer is cleaned and checked ([`clean`]) before anything runs it; running
//! goes through the same read-only door as `execute`.

pub(crate) mod clean;
pub(crate) mod generate;
pub(crate) mod prompt;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{AppError, ErrorCode};
use crate::secret::Secret;

/// Longest question accepted, in characters.
pub(crate) const MAX_QUESTION_CHARS: usize = 2_000;

/// Checks a question sent in `field`: present, not blank, not too long.
pub(crate) fn question(field: &str, value: Option<String>) -> Result<String, AppError> {
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

/// Where the model lives and how long to wait for it.
#[derive(Debug, Clone)]
pub struct AiSettings {
    /// Base URL of the API, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Bearer key; `None` for servers that need none.
    pub api_key: Option<Secret>,
    /// The model name.
    pub model: String,
    /// Time allowed for one completion.
    pub timeout: Duration,
}

/// Why a completion failed. Upstream text is never carried to the client.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AiError {
    /// No model configured.
    #[error("not configured")]
    NotConfigured,
    /// 401/403 from the model server.
    #[error("authentication failed")]
    AuthFailed,
    /// 429 (not quota).
    #[error("rate limited")]
    RateLimited {
        /// `Retry-After` of the model server, seconds.
        retry_after: Option<u64>,
    },
    /// 402, or a 429 that says the quota is spent.
    #[error("quota exceeded")]
    QuotaExceeded,
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// Anything else: connection failure, 5xx, unreadable answer.
    #[error("upstream error: {0}")]
    Upstream(String),
}

impl From<AiError> for AppError {
    fn from(error: AiError) -> Self {
        match error {
            AiError::NotConfigured => Self::new(
                ErrorCode::AiNotConfigured,
                "Natural-language queries are not configured on this server. The operator sets \
                 OPENAI_API_KEY (for OpenAI) or OPENAI_BASE_URL (for any OpenAI-compatible server, \
                 such as a local one) and optionally OPENAI_MODEL.",
            ),
            AiError::AuthFailed => Self::new(
                ErrorCode::AiAuthFailed,
                "The model server refused querygate's credentials. The operator should check OPENAI_API_KEY.",
            ),
            AiError::RateLimited { retry_after } => {
                let mut app = Self::new(
                    ErrorCode::AiRateLimited,
                    "The model server is rate limiting requests. Wait and try again.",
                );
                app.retry_after = retry_after;
                app
            }
            AiError::QuotaExceeded => Self::new(
                ErrorCode::AiQuotaExceeded,
                "The model server's quota for this deployment is used up.",
            ),
            AiError::Timeout => Self::new(
                ErrorCode::AiTimeout,
                "The model server did not answer in time.",
            ),
            AiError::Upstream(cause) => {
                tracing::debug!(%cause, "model server failed");
                Self::new(
                    ErrorCode::AiUpstreamError,
                    "The model server failed to answer. Try again later.",
                )
            }
        }
    }
}

/// One chat message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl Message {
    /// A message with `role`.
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Self {
            role: role.to_owned(),
            content: content.into(),
        }
    }
}

/// A client of one OpenAI-compatible server.
#[derive(Debug, Clone)]
pub struct AiClient {
    http: reqwest::Client,
    settings: AiSettings,
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
}

impl AiClient {
    /// A client for `settings`.
    pub fn new(settings: AiSettings) -> Result<Self, AiError> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .build()
            .map_err(|e| AiError::Upstream(e.to_string()))?;
        Ok(Self { http, settings })
    }

    /// The model's name.
    pub fn model(&self) -> &str {
        &self.settings.model
    }

    /// Asks for one completion and returns its text.
    pub async fn complete(&self, messages: &[Message]) -> Result<String, AiError> {
        let url = format!(
            "{}/chat/completions",
            self.settings.base_url.trim_end_matches('/')
        );
        let body = json!({ "model": self.settings.model, "messages": messages, "temperature": 0 });
        let mut request = self.http.post(url).json(&body);
        if let Some(key) = &self.settings.api_key {
            request = request.bearer_auth(key.expose());
        }
        let response = request.send().await.map_err(|e| transport(&e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let text = response.text().await.map_err(|e| transport(&e))?;
        match status {
            200..=299 => {}
            401 | 403 => return Err(AiError::AuthFailed),
            402 => return Err(AiError::QuotaExceeded),
            429 if text.contains("insufficient_quota") => return Err(AiError::QuotaExceeded),
            429 => return Err(AiError::RateLimited { retry_after }),
            other => return Err(AiError::Upstream(format!("status {other}"))),
        }
        let completion: Completion = serde_json::from_str(&text)
            .map_err(|e| AiError::Upstream(format!("unreadable answer: {e}")))?;
        completion
            .choices
            .into_iter()
            .next()
            .map(|choice| choice.message.content)
            .filter(|content| !content.trim().is_empty())
            .ok_or_else(|| AiError::Upstream("empty answer".to_owned()))
    }
}

fn transport(error: &reqwest::Error) -> AiError {
    if error.is_timeout() {
        AiError::Timeout
    } else {
        // The URL may carry credentials in exotic setups; keep only the kind.
        AiError::Upstream(format!(
            "transport failure (connect: {})",
            error.is_connect()
        ))
    }
}
