//! What every instance must share, through an optional Redis (`REDIS_URL`): rate
//! limits ([`limit`]) and revoked token chains ([`revocation`]). Never sessions —
//! a token still carries everything needed to serve it, so an instance without
//! Redis, or whose Redis is down, keeps serving (see each part for how).
//!
//! Every call is bounded by `REDIS_TIMEOUT_MS`; the connection manager reconnects
//! by itself, and a failure is logged at most once a minute per kind of use. After
//! a failure, calls are not even tried for [`RETRY_AFTER`] ([`Breaker`]): while
//! Redis is down, requests go straight to the fallback instead of each waiting out
//! the timeout.

pub(crate) mod limit;
pub(crate) mod revocation;

use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::Config;
use crate::error::AppError;
use crate::token::Chain;

/// How often a Redis failure is logged, per kind of use.
const WARN_EVERY_SECS: i64 = 60;

/// How long after a failure Redis is left alone before it is tried again.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A connection to the shared Redis, the prefix of querygate's keys, and what is
/// kept there.
pub struct Shared {
    redis: ConnectionManager,
    prefix: String,
    timeout: Duration,
    revocations: revocation::Revocations,
    limit: Option<limit::SharedLimit>,
    breaker: Breaker,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: only the prefix is shown.
        f.debug_struct("Shared")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// `REDIS_URL` could not be used.
#[derive(Debug, thiserror::Error)]
#[error("REDIS_URL is not a usable Redis URL ({0})")]
pub struct BadRedisUrl(String);

impl Shared {
    /// The shared store `config` names, if any. It connects lazily: a Redis that
    /// is down at start is reached once it is up.
    pub fn from_config(config: &Config) -> Result<Option<Self>, BadRedisUrl> {
        let Some(url) = config.redis_url() else {
            return Ok(None);
        };
        // The error's text can quote the URL; only its kind is kept.
        let client = redis::Client::open(url.expose())
            .map_err(|error| BadRedisUrl(format!("{:?}", error.kind())))?;
        let timeout = Duration::from_millis(config.redis_timeout_ms);
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let redis = ConnectionManager::new_lazy_with_config(client, manager)
            .map_err(|error| BadRedisUrl(format!("{:?}", error.kind())))?;
        let limit = (config.rate_limit_max_requests > 0).then(|| {
            limit::SharedLimit::new(
                config.rate_limit_max_requests,
                Duration::from_millis(config.rate_limit_window_ms),
            )
        });
        Ok(Some(Self {
            redis,
            prefix: config.redis_key_prefix.clone(),
            timeout,
            revocations: revocation::Revocations::new(
                Duration::from_millis(config.revocation_cache_ms),
                config.revocation_fail_mode,
            ),
            limit,
            breaker: Breaker::new(Instant::now()),
        }))
    }

    /// Refuses a token of a revoked chain (see [`revocation`]).
    pub(crate) async fn check_revoked(&self, chain: &Chain) -> Result<(), AppError> {
        self.revocations.check(self, chain).await
    }

    /// Revokes `chain` until `until`, its last possible expiry (Unix seconds).
    pub async fn revoke(&self, chain: &Chain, until: i64) -> Result<(), AppError> {
        self.revocations.revoke(self, chain, until).await
    }

    /// Spends one request of `client` from the shared limit: `Some(wait)` when
    /// refused, `None` when allowed; `Err` when there is no shared limit or Redis
    /// did not answer, so that the caller counts on its own.
    pub(crate) async fn spend(&self, client: IpAddr) -> Result<Option<Duration>, Unreachable> {
        match &self.limit {
            Some(limit) => limit.check(self, client).await,
            None => Err(Unreachable("no shared limit".to_owned())),
        }
    }

    /// The key of `id` in `space` (`revoked`, `rate`).
    fn key(&self, space: &str, id: &str) -> String {
        format!("{}{space}:{id}", self.prefix)
    }

    /// Runs `command`, bounded by the timeout (including reconnecting).
    async fn query<T: redis::FromRedisValue>(
        &self,
        command: &redis::Cmd,
    ) -> Result<T, Unreachable> {
        let mut redis = self.redis.clone();
        self.guarded(command.query_async(&mut redis)).await
    }

    /// Runs `script`, bounded by the timeout (including reconnecting).
    async fn invoke<T: redis::FromRedisValue>(
        &self,
        script: &redis::ScriptInvocation<'_>,
    ) -> Result<T, Unreachable> {
        let mut redis = self.redis.clone();
        self.guarded(script.invoke_async(&mut redis)).await
    }

    /// Runs `call` within the timeout, unless Redis failed within the last
    /// [`RETRY_AFTER`]; a failure opens the breaker.
    async fn guarded<T>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Unreachable> {
        if !self.breaker.allows(Instant::now()) {
            return Err(Unreachable("failed less than a second ago".to_owned()));
        }
        let outcome = match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => Unreachable(format!("{:?}", error.kind())),
            Err(_) => Unreachable("timed out".to_owned()),
        };
        self.breaker.failed(Instant::now());
        Err(outcome)
    }
}

/// Leaves Redis alone for [`RETRY_AFTER`] after a failure.
#[derive(Debug)]
struct Breaker {
    /// The time everything is measured from.
    start: Instant,
    /// Milliseconds after `start` before which no call is tried.
    closed_until: AtomicU64,
}

impl Breaker {
    fn new(start: Instant) -> Self {
        Self {
            start,
            closed_until: AtomicU64::new(0),
        }
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.start).as_millis()).unwrap_or(u64::MAX)
    }

    fn allows(&self, now: Instant) -> bool {
        self.millis(now) >= self.closed_until.load(Ordering::Relaxed)
    }

    fn failed(&self, now: Instant) {
        let until = self.millis(now + RETRY_AFTER);
        self.closed_until.fetch_max(until, Ordering::Relaxed);
    }
}

/// Redis did not answer; the kind of failure, never a URL or a key.
#[derive(Debug)]
pub struct Unreachable(String);

/// Logs a failure at most once a minute.
#[derive(Debug, Default)]
struct Warnings {
    last: AtomicI64,
}

impl Warnings {
    fn warn(&self, what: &'static str, error: &Unreachable) {
        let now = chrono::Utc::now().timestamp();
        let last = self.last.load(Ordering::Relaxed);
        if now - last >= WARN_EVERY_SECS
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(failure = %error.0, "Redis is unreachable: {what} (logged at most once a minute)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_a_failure_redis_is_left_alone_for_a_second() {
        let start = Instant::now();
        let breaker = Breaker::new(start);
        assert!(breaker.allows(start));
        breaker.failed(start + Duration::from_millis(10));
        assert!(!breaker.allows(start + Duration::from_millis(10)));
        assert!(!breaker.allows(start + Duration::from_millis(1009)));
        assert!(breaker.allows(start + Duration::from_millis(1010)));
        // A later failure extends the pause; an earlier report cannot shorten it.
        breaker.failed(start + Duration::from_millis(1500));
        breaker.failed(start + Duration::from_millis(100));
        assert!(!breaker.allows(start + Duration::from_millis(2400)));
        assert!(breaker.allows(start + Duration::from_millis(2500)));
    }
}
