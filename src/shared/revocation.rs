//! Real logout: `disconnect` revokes a token's whole refresh chain, and every
//! instance then refuses every token of the chain with `token_revoked`.
//!
//! A revocation is recorded in Redis until the chain's last possible expiry and
//! published, in one script call; every instance subscribes to the channel and
//! keeps the revoked chains in memory, so a request is answered from memory and
//! never waits for Redis. Pub/sub forgets what it could not deliver, so on every
//! (re)subscription an instance first catches up from the store. While an
//! instance is not subscribed (Redis down, a connection broken and not yet
//! remade), it cannot know of new revocations: `REVOCATION_FAIL_MODE=open` serves
//! tokens by what it knows, `closed` refuses them with 503
//! `revocation_unavailable`, and a fail-closed instance is not ready until it
//! has caught up once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;

use super::{Shared, Unreachable, Warnings};
use crate::config::FailMode;
use crate::error::{AppError, ErrorCode};
use crate::token::Chain;

/// Records a revocation (`KEYS[1]`, until `ARGV[2]` Unix seconds, for `ARGV[3]`
/// ms) and publishes it on `ARGV[1]`; returns how many instances heard it.
pub(crate) const SCRIPT: &str = r"
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return redis.call('PUBLISH', ARGV[1], ARGV[4])
";

/// How often a subscription is asked whether it is still alive.
const PING_EVERY: Duration = Duration::from_secs(1);

/// The longest wait between two attempts to subscribe again.
const RETRY_AT_MOST: Duration = Duration::from_millis(500);

/// The chains this instance knows to be revoked, and whether it hears of new
/// ones.
#[derive(Debug)]
pub(crate) struct Revocations {
    /// Chain id → the Unix second until which it is revoked.
    revoked: moka::sync::Cache<String, i64>,
    /// Subscribed and caught up: new revocations reach this instance.
    live: AtomicBool,
    /// Caught up at least once since the start.
    caught_up: AtomicBool,
    /// When this instance started to follow, and how long it waits for the
    /// store before a fail-open instance is ready without it.
    started: std::time::Instant,
    patience: Duration,
    fail_mode: FailMode,
    warnings: Warnings,
}

impl Revocations {
    /// Chains remembered at most `longest` (a chain's whole life), failing as
    /// `fail_mode`; a fail-open instance is ready without the store after
    /// `patience`.
    pub(crate) fn new(fail_mode: FailMode, longest: Duration, patience: Duration) -> Self {
        Self {
            revoked: moka::sync::Cache::builder()
                .time_to_live(longest.max(Duration::from_secs(1)))
                .build(),
            live: AtomicBool::new(false),
            caught_up: AtomicBool::new(false),
            started: std::time::Instant::now(),
            patience,
            fail_mode,
            warnings: Warnings::default(),
        }
    }

    /// Refuses a token of a revoked chain with `token_revoked`, from memory;
    /// while this instance hears of no new revocation, serves or refuses as the
    /// fail mode says.
    pub(crate) fn check(&self, chain: &Chain) -> Result<(), AppError> {
        let now = chrono::Utc::now().timestamp();
        if self
            .revoked
            .get(&chain.id)
            .is_some_and(|until| until >= now)
        {
            tracing::debug!("token refused: its chain was revoked");
            return Err(AppError::new(
                ErrorCode::TokenRevoked,
                "This token was revoked by a disconnect. Connect again.",
            ));
        }
        if self.live.load(Ordering::Relaxed) {
            return Ok(());
        }
        let failure = Unreachable("not subscribed to revocations".to_owned());
        match self.fail_mode {
            FailMode::Open => {
                self.warnings.warn(
                    "new revocations are not heard (REVOCATION_FAIL_MODE=open)",
                    &failure,
                );
                Ok(())
            }
            FailMode::Closed => {
                self.warnings.warn(
                    "token-bearing requests are refused (REVOCATION_FAIL_MODE=closed)",
                    &failure,
                );
                Err(unavailable())
            }
        }
    }

    /// Whether this instance may receive requests: once it has read the
    /// revocations from the store; in fail-open mode also when the store has not
    /// answered within the connect budget (it serves by what it knows).
    pub(crate) fn ready(&self) -> bool {
        self.caught_up.load(Ordering::Relaxed)
            || (self.fail_mode == FailMode::Open && self.started.elapsed() >= self.patience)
    }

    fn remember(&self, chain: String, until: i64) {
        self.revoked.insert(chain, until);
    }
}

/// Revokes `chain` until `until` (Unix seconds, its last possible expiry):
/// recorded in the store and published; the number of instances that heard it
/// at once.
pub(crate) async fn revoke(shared: &Shared, chain: &Chain, until: i64) -> Result<u64, AppError> {
    let now = chrono::Utc::now().timestamp();
    let ttl_ms = until.saturating_sub(now).max(1).saturating_mul(1000);
    let mut invocation = shared.scripts.revoke.prepare_invoke();
    invocation
        .key(shared.key("revoked", &chain.id))
        .arg(shared.channel())
        .arg(until)
        .arg(ttl_ms)
        .arg(format!("{} {until}", chain.id));
    let heard: u64 = shared
        .call(|mut connection| async move { invocation.invoke_async(&mut connection).await })
        .await
        .map_err(|error| {
            tracing::warn!(failure = %error.0, "a disconnect could not record its revocation in Redis");
            unavailable()
        })?;
    shared.revocations.remember(chain.id.clone(), until);
    Ok(heard)
}

/// Follows the revocations for as long as the process runs: subscribes, catches
/// up, listens; when the subscription breaks, subscribes again.
pub(crate) async fn follow(shared: Arc<Shared>) {
    let warnings = Warnings::default();
    let mut pause = Duration::from_millis(50);
    loop {
        let outcome = listen(&shared).await;
        shared.revocations.live.store(false, Ordering::Relaxed);
        if let Err(error) = outcome {
            warnings.warn("revocations made elsewhere are not heard", &error);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RETRY_AT_MOST);
    }
}

/// One subscription, until it breaks.
async fn listen(shared: &Shared) -> Result<(), Unreachable> {
    let failed =
        |what: &str, error: redis::RedisError| Unreachable(format!("{what}: {:?}", error.kind()));
    let subscribing = async {
        let mut pubsub = shared.client.get_async_pubsub().await?;
        pubsub.subscribe(shared.channel()).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    let pubsub = tokio::time::timeout(shared.connect_timeout + shared.timeout, subscribing)
        .await
        .map_err(|_| Unreachable("subscribing timed out".to_owned()))?
        .map_err(|error| failed("subscribing", error))?;
    // Subscribed first, caught up second: nothing published in between is lost.
    catch_up(shared).await?;
    shared.revocations.live.store(true, Ordering::Relaxed);
    shared.revocations.caught_up.store(true, Ordering::Relaxed);
    let (mut sink, mut messages) = pubsub.split();
    let mut pings = tokio::time::interval(PING_EVERY);
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else {
                    return Err(Unreachable("the subscription ended".to_owned()));
                };
                let payload: String = message.get_payload().unwrap_or_default();
                if let Some((chain, until)) = payload.split_once(' ')
                    && let Ok(until) = until.parse()
                {
                    shared.revocations.remember(chain.to_owned(), until);
                }
            }
            _ = pings.tick() => {
                let ping = tokio::time::timeout(shared.timeout, sink.ping::<redis::Value>()).await;
                match ping {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => return Err(failed("ping", error)),
                    Err(_) => return Err(Unreachable("ping timed out".to_owned())),
                }
            }
        }
    }
}

/// Reads every revocation the store holds into memory.
async fn catch_up(shared: &Shared) -> Result<(), Unreachable> {
    let pattern = shared.key("revoked", "*");
    let prefix = shared.key("revoked", "");
    let mut cursor = 0u64;
    loop {
        let pattern = pattern.clone();
        let (next, keys): (u64, Vec<String>) = shared
            .call(|mut connection| async move {
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        if !keys.is_empty() {
            let wanted = keys.clone();
            let untils: Vec<Option<String>> = shared
                .call(|mut connection| async move {
                    redis::cmd("MGET")
                        .arg(wanted)
                        .query_async(&mut connection)
                        .await
                })
                .await?;
            let fallback = chrono::Utc::now().timestamp() + 86_400;
            for (key, until) in keys.iter().zip(untils) {
                let Some(chain) = key.strip_prefix(&prefix) else {
                    continue;
                };
                // A value from before revocations carried their end: a day.
                let until = until
                    .and_then(|u| u.parse::<i64>().ok())
                    .filter(|u| *u > 1_000_000_000)
                    .unwrap_or(fallback);
                shared.revocations.remember(chain.to_owned(), until);
            }
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

fn unavailable() -> AppError {
    let mut error = AppError::new(
        ErrorCode::RevocationUnavailable,
        "The shared store of revoked tokens cannot be reached. Try again shortly.",
    );
    error.retry_after = Some(1);
    error
}
