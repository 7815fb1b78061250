//! The layers every request passes through, outermost first: request id, its
//! propagation, a tracing span, panic recovery, CORS, `Cache-Control: no-store`,
//! the body size cap, and rate limiting.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::error::{AppError, ErrorCode};
use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps `routes` in every layer.
pub fn wrap(routes: Router<AppState>, state: &AppState) -> Router<AppState> {
    let config = &state.config;
    let limiter = Limiter::new(config);
    let routes = match limiter {
        Some(limiter) => routes.layer(axum::middleware::from_fn_with_state(
            Arc::new(limiter),
            rate_limit,
        )),
        None => routes,
    };
    routes.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            // Failures are logged once, by the error type; the trace layer only
            // records spans and response times.
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(make_span)
                    .on_failure(()),
            )
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(cors(config))
            .layer(SetResponseHeaderLayer::if_not_present(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            ))
            .layer(security_headers(config))
            .layer(DefaultBodyLimit::max(config.max_body_bytes)),
    )
}

/// Headers every answer carries: no MIME sniffing, no referrer, a policy that lets
/// a JSON answer load nothing and be framed nowhere (a page sets its own), and in
/// production HSTS, since production is served over HTTPS by its load balancer.
fn security_headers(
    config: &Config,
) -> tower::util::MapResponseLayer<impl Fn(Response) -> Response + Clone + use<>> {
    let hsts = (config.environment == crate::config::Environment::Production)
        .then(|| HeaderValue::from_static("max-age=63072000; includeSubDomains"));
    tower::util::MapResponseLayer::new(move |mut response: Response| {
        let headers = response.headers_mut();
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
        if let Some(hsts) = &hsts {
            headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
        response
    })
}

/// The Content-Security-Policy of every answer that is not a page.
pub const JSON_CSP: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// One span per request: method, matched route (never the query) and request id.
fn make_span(request: &Request) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-");
    tracing::info_span!("request", method = %request.method(), route, request_id)
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
/// cookies, so no credentials are allowed and a permissive origin list cannot be
/// used to ride on a user's session.
fn cors(config: &Config) -> CorsLayer {
    let origins: Vec<&str> = config
        .frontend_url
        .iter()
        .chain(config.cors_allowed_origins.iter())
        .map(|origin| origin.trim().trim_end_matches('/'))
        .filter(|origin| !origin.is_empty())
        .collect();
    let allow_origin = if origins.is_empty() || origins.contains(&"*") {
        AllowOrigin::from(Any)
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::IF_NONE_MATCH,
            REQUEST_ID,
        ])
        .expose_headers([
            REQUEST_ID,
            header::RETRY_AFTER,
            header::ETAG,
            header::WWW_AUTHENTICATE,
            HeaderName::from_static("x-row-count"),
            HeaderName::from_static("x-truncated"),
        ])
        .max_age(Duration::from_secs(600))
}

/// Per-client-address rate limiting (GCRA from `governor`): a client may spend
/// `RATE_LIMIT_MAX_REQUESTS` at once and regains one every
/// `RATE_LIMIT_WINDOW_MS / RATE_LIMIT_MAX_REQUESTS`.
pub struct Limiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    trust_proxy: bool,
    checks: AtomicU64,
}

impl Limiter {
    fn new(config: &Config) -> Option<Self> {
        let burst = NonZeroU32::new(config.rate_limit_max_requests)?;
        let period = Duration::from_millis(config.rate_limit_window_ms) / burst.get();
        let quota = Quota::with_period(period.max(Duration::from_micros(1)))?.allow_burst(burst);
        Some(Self {
            limiter: RateLimiter::keyed(quota),
            trust_proxy: config.trust_proxy,
            checks: AtomicU64::new(0),
        })
    }

    /// The address a request is counted against: the peer, or behind a trusted
    /// proxy the last `X-Forwarded-For` entry (the one the proxy itself added).
    fn client(&self, request: &Request) -> IpAddr {
        let forwarded = self
            .trust_proxy
            .then(|| request.headers().get("x-forwarded-for"))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        forwarded
            .or_else(|| {
                request
                    .extensions()
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|info| info.0.ip())
            })
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }
}

async fn rate_limit(State(limiter): State<Arc<Limiter>>, request: Request, next: Next) -> Response {
    if request.method() == Method::OPTIONS {
        return next.run(request).await;
    }
    let client = limiter.client(&request);
    if limiter.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
        limiter.limiter.retain_recent();
    }
    match limiter.limiter.check_key(&client) {
        Ok(()) => next.run(request).await,
        Err(not_until) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let mut error = AppError::new(
                ErrorCode::RateLimited,
                "Too many requests from this address. Wait and try again.",
            );
            error.retry_after = Some(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
            error.into_response()
        }
    }
}
