//! Per-client-address rate limiting (GCRA), decided by this instance alone on
//! every request: no request waits for Redis.
//!
//! A client may spend `RATE_LIMIT_MAX_REQUESTS` (the burst) at once and regains
//! one every `RATE_LIMIT_WINDOW_MS / RATE_LIMIT_MAX_REQUESTS` (the interval).
//! Each client's state is its theoretical arrival time (TAT): a request moves it
//! one interval on and is allowed while it stays within the burst of now.
//!
//! With `REDIS_URL`, the instances keep one shared limit in the background
//! ([`crate::shared::limit`]): every 100 ms an instance sends what it admitted
//! since the last exchange and raises its clients' TATs to what the store has
//! counted for every instance. Between two exchanges an instance admits at most
//! [`LocalLimits::advance`] requests of one client that the store has not seen.
//! What another instance admitted reaches this one within two of its exchanges
//! (the batch on its way to the store, and the next), so the limit is overshot
//! by at most 2 × (instances − 1) × that advance, at any moment — a fresh start
//! included (about one advance per other instance in practice). The local TAT counts every request all the
//! time, so a store that fails or forgets (a restart, a flush) never hands out a
//! fresh burst: the next exchange tells it the TATs the instance knew.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::Config;
use crate::error::{AppError, ErrorCode};

/// Independent locks, so that clients rarely wait for each other.
const SHARDS: usize = 16;

/// One client's state.
#[derive(Debug, Clone, Copy)]
struct ClientState {
    /// Theoretical arrival time, microseconds on this instance's clock.
    tat: u64,
    /// Requests admitted since the last exchange with the store.
    unsent: u32,
}

/// What one client spent since the last exchange, for the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spent {
    /// The client.
    pub client: IpAddr,
    /// Requests admitted and not yet sent.
    pub count: u32,
    /// How far ahead of now the client's TAT stood before these requests
    /// (microseconds): what the store must at least hold, even after a flush.
    pub ahead_before: u64,
}

/// The GCRA state of every client this instance has seen.
#[derive(Debug)]
pub(crate) struct LocalLimits {
    shards: Vec<Mutex<HashMap<IpAddr, ClientState>>>,
    hasher: std::collections::hash_map::RandomState,
    interval: u64,
    burst: u64,
    /// Requests of one client admitted between two exchanges at most; `None`
    /// without a store.
    advance: Option<u32>,
    start: Instant,
}

impl LocalLimits {
    /// The limits of `RATE_LIMIT_*`; `shared` when instances share them.
    pub(crate) fn new(burst: u32, window: Duration, shared: bool) -> Self {
        let burst = u64::from(burst.max(1));
        let interval =
            u64::try_from((window / u32::try_from(burst).unwrap_or(u32::MAX)).as_micros())
                .unwrap_or(u64::MAX)
                .max(1);
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            interval,
            burst,
            advance: shared.then(|| Self::advance_for(burst)),
            start: Instant::now(),
        }
    }

    /// A client's requests one instance admits between two exchanges: an
    /// eighth of the burst (at least one).
    pub(crate) fn advance_for(burst: u64) -> u32 {
        u32::try_from(burst.div_ceil(8)).unwrap_or(u32::MAX).max(1)
    }

    /// The interval in microseconds.
    pub(crate) fn interval_us(&self) -> u64 {
        self.interval
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn shard(&self, client: &IpAddr) -> &Mutex<HashMap<IpAddr, ClientState>> {
        let index = usize::try_from(self.hasher.hash_one(client) % SHARDS as u64).unwrap_or(0);
        &self.shards[index]
    }

    /// Spends one request of `client`: `None` when allowed, the wait otherwise.
    pub(crate) fn check(&self, client: IpAddr) -> Option<Duration> {
        let now = self.now();
        let Ok(mut shard) = self.shard(&client).lock() else {
            return None;
        };
        let state = shard.entry(client).or_insert(ClientState {
            tat: now,
            unsent: 0,
        });
        let tat = state.tat.max(now);
        let allowed_from = (tat + self.interval).saturating_sub(self.burst * self.interval);
        if allowed_from > now {
            return Some(Duration::from_micros(allowed_from - now));
        }
        if self.advance.is_some_and(|advance| state.unsent >= advance) {
            // The store has not seen this client's last requests yet.
            return Some(Duration::from_millis(100));
        }
        state.tat = tat + self.interval;
        state.unsent += 1;
        None
    }

    /// What every client spent since the last exchange; those counts are now
    /// the store's to add. With `all`, also every client whose burst is not
    /// whole again, with nothing spent: a store that forgot learns again what
    /// this instance knows.
    pub(crate) fn take_spent(&self, all: bool) -> Vec<Spent> {
        let now = self.now();
        let mut spent = Vec::new();
        for shard in &self.shards {
            let Ok(mut shard) = shard.lock() else {
                continue;
            };
            let owed = |state: &ClientState| state.unsent > 0 || (all && state.tat > now);
            for (client, state) in shard.iter_mut().filter(|(_, s)| owed(s)) {
                let sent_part = u64::from(state.unsent) * self.interval;
                spent.push(Spent {
                    client: *client,
                    count: state.unsent,
                    ahead_before: state.tat.saturating_sub(sent_part).saturating_sub(now),
                });
                state.unsent = 0;
            }
        }
        spent
    }

    /// The store counted `client`'s TAT `ahead` microseconds ahead of its now,
    /// every instance's requests included: this instance's TAT becomes at least
    /// that, plus what it admitted since.
    pub(crate) fn raise(&self, client: IpAddr, ahead: u64) {
        let now = self.now();
        let Ok(mut shard) = self.shard(&client).lock() else {
            return;
        };
        if let Some(state) = shard.get_mut(&client) {
            let known = now + ahead + u64::from(state.unsent) * self.interval;
            state.tat = state.tat.max(known);
        }
    }

    /// Forgets clients whose burst is whole again and who owe the store nothing.
    pub(crate) fn forget_idle(&self) {
        let now = self.now();
        for shard in &self.shards {
            if let Ok(mut shard) = shard.lock() {
                shard.retain(|_, state| state.tat > now || state.unsent > 0);
            }
        }
    }
}

/// The middleware's state: the limits and how a client is named.
#[derive(Debug)]
pub(crate) struct Limiter {
    limits: Arc<LocalLimits>,
    trust_proxy: bool,
}

impl Limiter {
    /// The limiter of `limits`; `trust_proxy` from the configuration.
    pub(crate) fn new(config: &Config, limits: Arc<LocalLimits>) -> Self {
        Self {
            limits,
            trust_proxy: config.trust_proxy,
        }
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
    if request.method() == Method::OPTIONS
        || super::overload::ALWAYS_SERVED.contains(&request.uri().path())
    {
        return next.run(request).await;
    }
    match limiter.limits.check(limiter.client(&request)) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn client(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    #[test]
    fn a_client_spends_its_burst_then_waits_for_the_interval() {
        let limits = LocalLimits::new(3, Duration::from_secs(3600), false);
        for _ in 0..3 {
            assert_eq!(limits.check(client(1)), None);
        }
        let wait = limits.check(client(1)).unwrap_or_default();
        assert!(wait > Duration::from_secs(1100), "{wait:?}");
        assert_eq!(limits.check(client(2)), None, "another client has its own");
    }

    #[test]
    fn with_a_store_a_client_spends_at_most_the_advance_between_exchanges() {
        let limits = LocalLimits::new(40, Duration::from_secs(3600), true);
        let admitted = (0..40)
            .filter(|_| limits.check(client(1)).is_none())
            .count();
        assert_eq!(admitted, 5, "an eighth of the burst");
        let spent = limits.take_spent(false);
        assert_eq!(spent.len(), 1);
        assert_eq!(spent[0].count, 5);
        assert_eq!(spent[0].ahead_before, 0, "nothing was spent before them");
        // The store saw another instance spend 20 more: 25 in all.
        limits.raise(client(1), 25 * limits.interval_us());
        let admitted = (0..40)
            .filter(|_| limits.check(client(1)).is_none())
            .count();
        assert_eq!(admitted, 5);
        let _ = limits.take_spent(false);
        limits.raise(client(1), 35 * limits.interval_us());
        let admitted = (0..40)
            .filter(|_| limits.check(client(1)).is_none())
            .count();
        assert_eq!(admitted, 5, "40 in all");
        limits.take_spent(false);
        limits.raise(client(1), 40 * limits.interval_us());
        assert!(
            limits.check(client(1)).is_some(),
            "the shared burst is spent"
        );
    }

    #[test]
    fn a_store_that_forgot_is_told_how_far_ahead_the_client_stands() {
        let limits = LocalLimits::new(40, Duration::from_secs(3600), true);
        for _ in 0..5 {
            limits.check(client(1));
        }
        let _ = limits.take_spent(false);
        limits.raise(client(1), 5 * limits.interval_us());
        for _ in 0..3 {
            limits.check(client(1));
        }
        let spent = limits.take_spent(false);
        assert_eq!(spent[0].count, 3);
        let ahead = spent[0].ahead_before;
        let five = 5 * limits.interval_us();
        assert!(ahead <= five && ahead > five - 1_000_000, "{ahead}");
    }

    #[test]
    fn idle_clients_are_forgotten_only_when_they_owe_the_store_nothing() {
        let limits = LocalLimits::new(1, Duration::from_micros(1), true);
        limits.check(client(1));
        std::thread::sleep(Duration::from_millis(2));
        limits.forget_idle();
        assert_eq!(
            limits.take_spent(false).len(),
            1,
            "its request is still unsent"
        );
        limits.forget_idle();
        assert!(limits.take_spent(false).is_empty());
    }
}
