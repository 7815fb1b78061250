//! A cap on the requests one instance serves at once: past it, an immediate 503
//! `overloaded` with `Retry-After`, so that a load balancer or client tries
//! another instance instead of queueing here. A request holds its place until its
//! answer's body is finished, streamed results included. Health and readiness
//! checks are never refused.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{AppError, ErrorCode};

/// Paths served whatever the load or the rate: the load balancer must see the
/// truth.
pub(crate) const ALWAYS_SERVED: [&str; 3] = ["/api/health", "/health", "/api/ready"];

/// The middleware: `State` is the semaphore of free places.
pub(crate) async fn cap(
    State(places): State<Arc<Semaphore>>,
    request: Request,
    next: Next,
) -> Response {
    if ALWAYS_SERVED.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let Ok(place) = places.try_acquire_owned() else {
        let mut error = AppError::new(
            ErrorCode::Overloaded,
            "This instance is serving as many requests as it can. Try again shortly.",
        );
        error.retry_after = Some(1);
        return error.into_response();
    };
    next.run(request)
        .await
        .map(|body| Body::new(Held { body, place }))
}

/// A body that keeps its request's place until it is finished or dropped.
struct Held {
    body: Body,
    place: OwnedSemaphorePermit,
}

impl HttpBody for Held {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let _ = &self.place;
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
