//! A bounded cache of connection pools, and an exact budget of them.
//!
//! Keyed by an HMAC of every connection parameter, password included, under a
//! random per-process key: two clients with different credentials never share a
//! pool, and the key reveals nothing. moka closes idle pools and lets concurrent
//! first requests for one key wait for a single opening without any global lock.
//!
//! moka's own bound on the number of entries is approximate and says nothing of
//! pools still being opened or being closed, so the budget is a semaphore of
//! `POOL_MAX_POOLS` places: a pool takes one before its first connection is
//! opened and gives it back only when its last handle is dropped (its last
//! connection closed with it). A pool that finds no place evicts the least
//! recently used one, whose idle connections close at once, and waits for a
//! place at most the connect timeout (`503 overloaded` past it). So
//! `POOL_MAX_POOLS × POOL_MAX_CONNECTIONS` connections per instance is a bound
//! at every moment.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use moka::future::Cache;
use sha2::Sha256;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::db::error::DbError;
use crate::db::params::ConnParams;
use crate::db::pool::PoolEntry;

type PoolKey = [u8; 32];

/// A place among the instance's pools, held by the pool for as long as any
/// handle of it exists.
#[derive(Debug)]
pub(crate) struct PoolSlot {
    _place: OwnedSemaphorePermit,
}

/// The pool cache. Cloning shares it.
#[derive(Clone)]
pub(crate) struct PoolCache {
    cache: Cache<PoolKey, PoolEntry>,
    key: Arc<[u8; 32]>,
    /// `POOL_MAX_POOLS` places.
    places: Arc<Semaphore>,
    /// How long an opening waits for a place.
    wait: Duration,
    /// The clock of `last_used`.
    started: Instant,
}

impl std::fmt::Debug for PoolCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolCache")
            .field("pools", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

impl PoolCache {
    /// At most `max_pools` pools, each closed after `idle` without use; an
    /// opening waits at most `wait` for a place.
    pub(crate) fn new(max_pools: u64, idle: Duration, wait: Duration) -> Self {
        let cache = Cache::builder()
            .max_capacity(max_pools)
            // LRU, not TinyLFU: a newly opened pool is in use right now and must
            // never be the one refused admission.
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .time_to_idle(idle)
            // Even a busy pool is rebuilt now and then, so that it follows its host
            // to a new address after a failover.
            .time_to_live(idle.max(Duration::from_secs(1800)))
            .async_eviction_listener(|_key, entry: PoolEntry, cause| {
                Box::pin(async move {
                    tracing::debug!(?cause, "closing evicted pool");
                    // Idle connections close now; closing waits for checked-out
                    // ones, so the cache is never blocked on it.
                    tokio::spawn(async move { entry.pool.close().await });
                })
            })
            .build();
        Self {
            cache,
            key: Arc::new(crate::random::bytes()),
            places: Arc::new(Semaphore::new(
                usize::try_from(max_pools).unwrap_or(usize::MAX).max(1),
            )),
            wait,
            started: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A place for a new pool: a free one, or the place of the least recently
    /// used pool, evicted for it, once its last handle is gone. While it waits,
    /// pools opened meanwhile by others become candidates too.
    async fn place(&self) -> Result<Arc<PoolSlot>, DbError> {
        let deadline = Instant::now() + self.wait;
        loop {
            if let Ok(place) = Arc::clone(&self.places).try_acquire_owned() {
                return Ok(Arc::new(PoolSlot { _place: place }));
            }
            self.evict_least_recently_used().await;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(DbError::PoolsFull);
            }
            let step = left.min(Duration::from_millis(50));
            if let Ok(Ok(place)) =
                tokio::time::timeout(step, Arc::clone(&self.places).acquire_owned()).await
            {
                return Ok(Arc::new(PoolSlot { _place: place }));
            }
        }
    }

    /// Evicts the pool used least recently, if there is one; moka hands it to
    /// its listener (which closes it) in its housekeeping, run here at once.
    async fn evict_least_recently_used(&self) {
        let oldest = self
            .cache
            .iter()
            .min_by_key(|(_, entry)| entry.last_used())
            .map(|(key, _)| key);
        if let Some(key) = oldest {
            self.cache.invalidate(key.as_ref()).await;
            self.cache.run_pending_tasks().await;
        }
    }

    /// The cache key of `params`: an HMAC of every parameter under a per-process key.
    pub(crate) fn key(&self, params: &ConnParams) -> PoolKey {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.as_slice())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        let parts = params.identity_parts();
        for part in parts.iter().map(Vec::as_slice).chain([
            params.password.expose().as_bytes(),
            params.ssl.as_str().as_bytes(),
        ]) {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// The cached pool for `params`, or the result of `open`. Concurrent callers for
    /// the same key share one `open`. The flag tells whether `open` ran for this call.
    pub(crate) async fn get_or_open(
        &self,
        params: &ConnParams,
        open: impl Future<Output = Result<PoolEntry, DbError>>,
    ) -> Result<(PoolEntry, bool), DbError> {
        let opening = async {
            let place = self.place().await?;
            let entry = open.await?.holding(place);
            entry.touch(self.now());
            Ok::<_, DbError>(entry)
        };
        let entry = self
            .cache
            .entry(self.key(params))
            .or_try_insert_with(opening)
            .await
            .map_err(|error| (*error).clone())?;
        let fresh = entry.is_fresh();
        let entry = entry.into_value();
        entry.touch(self.now());
        Ok((entry, fresh))
    }

    /// Removes the pool for `params` (the eviction listener closes it); tells
    /// whether there was one.
    pub(crate) async fn evict(&self, params: &ConnParams) -> bool {
        self.cache.remove(&self.key(params)).await.is_some()
    }

    /// Closes and forgets every pool (at shutdown).
    pub(crate) async fn close_all(&self) {
        let entries: Vec<PoolEntry> = self.cache.iter().map(|(_, entry)| entry).collect();
        self.cache.invalidate_all();
        for entry in entries {
            entry.pool.close().await;
        }
    }

    /// Pools currently held.
    pub(crate) async fn count(&self) -> u64 {
        self.cache.run_pending_tasks().await;
        self.cache.entry_count()
    }
}
