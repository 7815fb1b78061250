//! Per-client-address rate limiting (GCRA): shared by every instance through
//! Redis when `REDIS_URL` is set, this instance's own otherwise — and whenever
//! Redis does not answer, so that a store that is down never fails a request.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::Config;
use crate::error::{AppError, ErrorCode};
use crate::shared::Shared;

/// Per-client-address rate limiting (GCRA from `governor`): a client may spend
/// `RATE_LIMIT_MAX_REQUESTS` at once and regains one every
/// `RATE_LIMIT_WINDOW_MS / RATE_LIMIT_MAX_REQUESTS`.
pub(crate) struct Limiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    trust_proxy: bool,
    checks: AtomicU64,
    shared: Option<Arc<Shared>>,
}

impl Limiter {
    /// The limiter the configuration asks for; `None` when limiting is off.
    pub(crate) fn new(config: &Config, shared: Option<Arc<Shared>>) -> Option<Self> {
        let burst = NonZeroU32::new(config.rate_limit_max_requests)?;
        let period = Duration::from_millis(config.rate_limit_window_ms) / burst.get();
        let quota = Quota::with_period(period.max(Duration::from_micros(1)))?.allow_burst(burst);
        Some(Self {
            limiter: RateLimiter::keyed(quota),
            trust_proxy: config.trust_proxy,
            checks: AtomicU64::new(0),
            shared,
        })
    }

    /// Spends one request of `client`: `None` when allowed, the wait otherwise.
    async fn spend(&self, client: IpAddr) -> Option<Duration> {
        if let Some(shared) = &self.shared
            && let Ok(verdict) = shared.spend(client).await
        {
            return verdict;
        }
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&client)
            .err()
            .map(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
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

/// The middleware.
pub(crate) async fn rate_limit(
    State(limiter): State<Arc<Limiter>>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() == Method::OPTIONS {
        return next.run(request).await;
    }
    let client = limiter.client(&request);
    match limiter.spend(client).await {
        None => next.run(request).await,
        Some(wait) => {
            let mut error = AppError::new(
                ErrorCode::RateLimited,
                "Too many requests from this address. Wait and try again.",
            );
            error.retry_after = Some(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
            error.into_response()
        }
    }
}
