//! The layers every request passes through, outermost first: `X-Served-By`,
//! request id and its propagation, a tracing span, panic recovery, CORS,
//! `Cache-Control: no-store`, the security headers, the body size cap and read
//! timeout, the cap on requests in flight ([`overload`]), and rate limiting
//! ([`rate_limit`]).

pub(crate) mod body;
pub(crate) mod overload;
pub(crate) mod rate_limit;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::error::AppError;
use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The instance that answered, on every response.
pub(crate) const SERVED_BY: HeaderName = HeaderName::from_static("x-served-by");

/// Wraps `routes` in every layer.
pub(crate) fn wrap(routes: Router<AppState>, state: &AppState) -> Router<AppState> {
    let config = &state.config;
    let routes = match &state.rate {
        Some(limits) => routes.layer(axum::middleware::from_fn_with_state(
            Arc::new(rate_limit::Limiter::new(config, Arc::clone(limits))),
            rate_limit::rate_limit,
        )),
        None => routes,
    };
    let places = state.lifecycle.places();
    let routes = routes.layer(axum::middleware::from_fn_with_state(places, overload::cap));
    let bodies = Arc::new(body::BodyLimits::new(
        config.max_body_bytes,
        Duration::from_millis(config.http_body_timeout_ms),
    ));
    let routes = routes.layer(axum::middleware::from_fn_with_state(
        bodies,
        body::read_first,
    ));
    let headers = Arc::new(ResponseHeaders::new(state));
    let instance: Arc<str> = state.lifecycle.instance().into();
    routes.layer(
        ServiceBuilder::new()
            .layer(tower::util::MapResponseLayer::new(move |response| {
                headers.apply(response)
            }))
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            // Failures are logged once, by the error type; the trace layer only
            // records spans and response times.
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(move |request: &Request| make_span(request, &instance))
                    .on_failure(()),
            )
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(cors(config))
            .layer(DefaultBodyLimit::max(config.max_body_bytes)),
    )
}

/// Headers every answer carries, set in one place: the instance that answered;
/// `Cache-Control: no-store` unless a route said otherwise; no MIME sniffing, no
/// referrer, a policy that lets a JSON answer load nothing and be framed nowhere
/// (a page sets its own); HSTS in production, which is served over HTTPS by its
/// load balancer; and `Connection: close` while draining, so that kept-alive
/// connections move to other instances after their next request.
struct ResponseHeaders {
    served_by: HeaderValue,
    hsts: Option<HeaderValue>,
    lifecycle: Arc<crate::lifecycle::Lifecycle>,
}

impl ResponseHeaders {
    fn new(state: &AppState) -> Self {
        Self {
            served_by: HeaderValue::from_str(state.lifecycle.instance())
                .unwrap_or_else(|_| HeaderValue::from_static("querygate")),
            hsts: (state.config.environment == crate::config::Environment::Production)
                .then(|| HeaderValue::from_static("max-age=63072000; includeSubDomains")),
            lifecycle: Arc::clone(&state.lifecycle),
        }
    }

    fn apply<B>(&self, mut response: axum::http::Response<B>) -> axum::http::Response<B> {
        let headers = response.headers_mut();
        headers.insert(SERVED_BY, self.served_by.clone());
        headers
            .entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers
            .entry(header::CONTENT_SECURITY_POLICY)
            .or_insert(HeaderValue::from_static(JSON_CSP));
        if let Some(hsts) = &self.hsts {
            headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
        if !self.lifecycle.is_ready() {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        // The CORS layer grants credentials on every answer; an origin that was not
        // granted (no Allow-Origin) gets no half of a grant either.
        if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
            headers.remove(header::ACCESS_CONTROL_ALLOW_CREDENTIALS);
        }
        response
    }
}

/// The Content-Security-Policy of every answer that is not a page.
pub(crate) const JSON_CSP: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// One span per request: the instance, method, matched route (never the query) and
/// request id.
fn make_span(request: &Request, instance: &str) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-");
    tracing::info_span!("request", instance, method = %request.method(), route, request_id)
}

#[expect(
    clippy::needless_pass_by_value,
    reason = "the signature CatchPanicLayer requires"
)]
/// A panic becomes the generic 500 envelope; the payload is logged, never sent.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("non-string panic payload");
    AppError::internal(&format_args!("handler panicked: {detail}")).into_response()
}

/// Origins from `FRONTEND_URL` and `CORS_ALLOWED_ORIGINS`; any origin when none is
/// configured or `*` is listed. Tokens travel in the `Authorization` header, never in
/// cookies: listed origins are granted credentials only so that cookie-era clients
/// keep working, and since no cookie is ever read, the grant lets no page ride on a
/// user's session.
fn cors(config: &Config) -> CorsLayer {
    let origins: Vec<&str> = config
        .frontend_url
        .iter()
        .chain(config.cors_allowed_origins.iter())
        .map(|origin| origin.trim().trim_end_matches('/'))
        .filter(|origin| !origin.is_empty())
        .collect();
    // Listed origins may send credentials, so that a cookie-era client with
    // `withCredentials` keeps working (querygate reads no cookie); `*` never may.
    let (allow_origin, credentials) = if origins.is_empty() || origins.contains(&"*") {
        (AllowOrigin::from(Any), false)
    } else {
        let list = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok());
        (AllowOrigin::list(list), true)
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_credentials(credentials)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::IF_NONE_MATCH,
            // `Cache-Control: no-cache` reads the schema past its cache.
            header::CACHE_CONTROL,
            REQUEST_ID,
        ])
        .expose_headers([
            REQUEST_ID,
            SERVED_BY,
            header::RETRY_AFTER,
            header::ETAG,
            header::WWW_AUTHENTICATE,
            HeaderName::from_static("x-row-count"),
            HeaderName::from_static("x-truncated"),
            HeaderName::from_static("x-row-limit"),
            HeaderName::from_static("x-row-limit-lowered-from"),
        ])
        .max_age(Duration::from_secs(600))
}
