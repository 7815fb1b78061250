//! What every instance must share, through an optional Redis (`REDIS_URL`): rate
//! limits ([`limit`]) and revoked token chains ([`revocation`]). Never sessions —
//! a token still carries everything needed to serve it.
//!
//! **No request waits for Redis.** Rate limits are decided by each instance and
//! exchanged in the background every [`limit::EVERY`]; revocations are pushed to
//! every instance (Redis pub/sub) and answered from memory. Only `disconnect`
//! itself talks to Redis on its way, to record and publish its revocation.
//!
//! The connection is made at start, with a budget of its own
//! (`REDIS_CONNECT_TIMEOUT_MS`, enough for TCP, TLS and a login across an ocean),
//! and the scripts are loaded on every new connection. Any failed or late call
//! drops the connection, and the next call makes a new one: a store that flaps
//! is used again as soon as it answers, whatever the failure was.

pub(crate) mod limit;
pub(crate) mod revocation;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;

use crate::config::Config;
use crate::middleware::rate_limit::LocalLimits;

/// How often a Redis failure is logged, per kind of use.
const WARN_EVERY_SECS: i64 = 60;

/// The shared store: how to reach it, the prefix of querygate's keys, and what
/// this instance knows of it.
pub struct Shared {
    client: redis::Client,
    prefix: String,
    /// One command (`REDIS_TIMEOUT_MS`).
    timeout: Duration,
    /// One connection: TCP, TLS, login (`REDIS_CONNECT_TIMEOUT_MS`).
    connect_timeout: Duration,
    /// The connection in use, dropped after any failure.
    connection: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    /// A new connection was made since [`Shared::reconnected`] last looked.
    fresh_connection: std::sync::atomic::AtomicBool,
    pub(crate) revocations: revocation::Revocations,
    scripts: Scripts,
}

/// The Lua scripts, loaded on every new connection.
struct Scripts {
    limit: redis::Script,
    revoke: redis::Script,
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
    /// The shared store `config` names, if any. Nothing is connected yet: see
    /// [`Shared::start`].
    pub fn from_config(config: &Config) -> Result<Option<Self>, BadRedisUrl> {
        let Some(url) = config.redis_url() else {
            return Ok(None);
        };
        // The error's text can quote the URL; only its kind is kept.
        let client = redis::Client::open(url.expose())
            .map_err(|error| BadRedisUrl(format!("{:?}", error.kind())))?;
        Ok(Some(Self {
            client,
            prefix: config.redis_key_prefix.clone(),
            timeout: Duration::from_millis(config.redis_timeout_ms),
            connect_timeout: Duration::from_millis(config.redis_connect_timeout_ms),
            connection: tokio::sync::Mutex::new(None),
            fresh_connection: std::sync::atomic::AtomicBool::new(false),
            revocations: revocation::Revocations::new(
                config.revocation_fail_mode,
                Duration::from_secs(config.token_max_lifetime),
                Duration::from_millis(config.redis_connect_timeout_ms),
            ),
            scripts: Scripts {
                limit: redis::Script::new(limit::SCRIPT),
                revoke: redis::Script::new(revocation::SCRIPT),
            },
        }))
    }

    /// Starts the background work: the connection and its scripts at once, the
    /// revocations followed as they are published, and — with `limits` — the
    /// exchange of rate limits.
    pub(crate) fn start(self: &Arc<Self>, limits: Option<Arc<LocalLimits>>) {
        let shared = Arc::clone(self);
        tokio::spawn(async move {
            // Eager: the first request after a start must not pay for it.
            let _ = shared.connection().await;
        });
        tokio::spawn(revocation::follow(Arc::clone(self)));
        if let Some(limits) = limits {
            tokio::spawn(limit::share(Arc::clone(self), limits));
        }
    }

    /// The key of `id` in `space` (`revoked`, `rate`).
    fn key(&self, space: &str, id: &str) -> String {
        format!("{}{space}:{id}", self.prefix)
    }

    /// The channel revocations are published on.
    fn channel(&self) -> String {
        format!("{}revocations", self.prefix)
    }

    /// The connection in use, or a new one (within the connect budget, scripts
    /// loaded).
    async fn connection(&self) -> Result<MultiplexedConnection, Unreachable> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.timeout));
        let connect = async {
            let mut connection = self
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            for script in [&self.scripts.limit, &self.scripts.revoke] {
                script.prepare_invoke().load_async(&mut connection).await?;
            }
            Ok::<_, redis::RedisError>(connection)
        };
        let budget = self.connect_timeout + self.timeout * 2;
        let connection = tokio::time::timeout(budget, connect)
            .await
            .map_err(|_| Unreachable("connecting timed out".to_owned()))?
            .map_err(|error| Unreachable(format!("connecting: {:?}", error.kind())))?;
        *slot = Some(connection.clone());
        self.fresh_connection.store(true, Ordering::Relaxed);
        Ok(connection)
    }

    /// Whether a new connection was made since the last time this was asked:
    /// the store may have restarted and forgotten.
    fn reconnected(&self) -> bool {
        self.fresh_connection.swap(false, Ordering::Relaxed)
    }

    /// Runs `call` on the connection within the timeout; a failure drops the
    /// connection so that the next call makes a new one.
    async fn call<T, F, Fut>(&self, call: F) -> Result<T, Unreachable>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let connection = self.connection().await?;
        let failure = match tokio::time::timeout(self.timeout, call(connection)).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => Unreachable(format!("{:?}", error.kind())),
            Err(_) => Unreachable("timed out".to_owned()),
        };
        *self.connection.lock().await = None;
        Err(failure)
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
