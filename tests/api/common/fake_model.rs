//! A small OpenAI-compatible server for the tests: it records every request it
//! receives and answers what the test scripted, in order. The only stand-in in
//! the suite: the real client talks to it over HTTP.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// One scripted answer.
#[derive(Clone)]
pub enum Reply {
    /// A chat completion whose message content is this text.
    Sql(String),
    /// A raw status, body and optional `Retry-After`.
    Raw(u16, String, Option<u64>),
    /// Never answer.
    Hang,
}

/// What the server received.
#[derive(Clone, Debug)]
pub struct Received {
    pub body: Value,
    pub authorization: Option<String>,
}

#[derive(Clone, Default)]
struct Shared {
    replies: Arc<Mutex<VecDeque<Reply>>>,
    received: Arc<Mutex<Vec<Received>>>,
}

pub struct FakeModel {
    pub base_url: String,
    shared: Shared,
}

impl FakeModel {
    pub async fn start(replies: Vec<Reply>) -> Self {
        let shared = Shared {
            replies: Arc::new(Mutex::new(replies.into())),
            ..Shared::default()
        };
        let app = axum::Router::new()
            .route("/v1/chat/completions", post(complete))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address: SocketAddr = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base_url: format!("http://{address}/v1"),
            shared,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().expect("received").clone()
    }
}

pub fn reply(sql: &str) -> Reply {
    Reply::Sql(sql.to_owned())
}

async fn complete(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    shared.received.lock().expect("received").push(Received {
        body,
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    });
    let next = shared.replies.lock().expect("replies").pop_front();
    match next {
        Some(Reply::Sql(content)) => Json(json!({
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        }))
        .into_response(),
        Some(Reply::Raw(status, body, retry_after)) => {
            let status = StatusCode::from_u16(status).expect("status");
            let mut response = (status, body).into_response();
            if let Some(seconds) = retry_after {
                response.headers_mut().insert("retry-after", seconds.into());
            }
            response
        }
        Some(Reply::Hang) => std::future::pending().await,
        None => (StatusCode::INTERNAL_SERVER_ERROR, "no scripted reply left").into_response(),
    }
}
