//! Request bodies are read whole before the request takes one of the
//! `MAX_CONCURRENT_REQUESTS` places ([`super::overload`]), within a total time.
//!
//! A client that sends its body one byte every few seconds therefore holds a
//! connection (bounded per address by `MAX_CONNECTIONS_PER_CLIENT`) but never a
//! place that other clients need, and it is cut off once `HTTP_BODY_TIMEOUT_MS`
//! have passed since its headers, however slowly it trickles — an idle timeout
//! that restarts at every byte would never end such a body. The bytes read
//! ahead of admission are bounded too: a body over `MAX_BODY_BYTES` is not read
//! further, and all bodies being read at once share [`BUFFER_BODIES`] times that
//! size; past it, reading waits.
//!
//! A body that failed (too large, too slow, broken) is not answered here: the
//! handler's `ApiJson` reads a body that fails the same way, so the answer keeps
//! its place in the order of checks (token, then content type, then size and
//! time, then JSON).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How many bodies of the largest size may be read ahead of admission at once.
pub(crate) const BUFFER_BODIES: usize = 64;

/// The limits of reading bodies, from `MAX_BODY_BYTES` and `HTTP_BODY_TIMEOUT_MS`.
#[derive(Debug)]
pub(crate) struct BodyLimits {
    max_bytes: usize,
    total: Duration,
    /// Bytes of bodies being read, shared by every request.
    buffered: Arc<Semaphore>,
}

impl BodyLimits {
    pub(crate) fn new(max_bytes: usize, total: Duration) -> Self {
        let budget = max_bytes
            .saturating_mul(BUFFER_BODIES)
            .min(Semaphore::MAX_PERMITS);
        Self {
            max_bytes,
            total,
            buffered: Arc::new(Semaphore::new(budget)),
        }
    }
}

/// The body was larger than `MAX_BODY_BYTES`.
#[derive(Debug, thiserror::Error)]
#[error("the request body is larger than MAX_BODY_BYTES")]
pub(crate) struct BodyTooLarge;

/// The body did not arrive within `HTTP_BODY_TIMEOUT_MS`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within HTTP_BODY_TIMEOUT_MS")]
pub(crate) struct BodyTimedOut;

/// The middleware: reads the body, then runs the rest of the stack on it.
pub(crate) async fn read_first(
    State(limits): State<Arc<BodyLimits>>,
    request: Request,
    next: Next,
) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let announced = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let outcome = match announced {
        Some(length) if length > u64::try_from(limits.max_bytes).unwrap_or(u64::MAX) => {
            Err(axum::Error::new(BodyTooLarge))
        }
        _ => tokio::time::timeout(limits.total, read(body, &limits))
            .await
            .unwrap_or_else(|_| Err(axum::Error::new(BodyTimedOut))),
    };
    match outcome {
        Ok((bytes, _held)) => {
            // The bytes stay charged until the answer is made.
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(error) => {
            let failed = Body::new(Failed(Some(error)));
            next.run(Request::from_parts(parts, failed)).await
        }
    }
}

/// Reads `body` whole, charging its bytes to the shared budget as they come.
async fn read(
    mut body: Body,
    limits: &BodyLimits,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), axum::Error> {
    let mut collected = BytesMut::new();
    let mut held: Option<OwnedSemaphorePermit> = None;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        if collected.len() + data.len() > limits.max_bytes {
            return Err(axum::Error::new(BodyTooLarge));
        }
        let charge = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let permit = Arc::clone(&limits.buffered)
            .acquire_many_owned(charge)
            .await
            .map_err(axum::Error::new)?;
        match &mut held {
            Some(held) => held.merge(permit),
            None => held = Some(permit),
        }
        collected.extend_from_slice(&data);
    }
    Ok((collected.freeze(), held))
}

/// A body that fails with the error its reading met.
struct Failed(Option<axum::Error>);

impl HttpBody for Failed {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Poll::Ready(self.0.take().map(Err))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
