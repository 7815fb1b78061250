//! A bounded cache of connection pools.
//!
//! Keyed by an HMAC of every connection parameter, password included, under a
//! random per-process key: two clients with different credentials never share a
//! pool, and the key reveals nothing. moka bounds the number of pools, closes idle
//! ones, and lets concurrent first requests for one key wait for a single opening
//! without any global lock.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use moka::future::Cache;
use sha2::Sha256;

use crate::db::error::DbError;
use crate::db::params::ConnParams;
use crate::db::pool::PoolEntry;

type PoolKey = [u8; 32];

/// The pool cache. Cloning shares it.
#[derive(Clone)]
pub(crate) struct PoolCache {
    cache: Cache<PoolKey, PoolEntry>,
    key: Arc<[u8; 32]>,
}

impl std::fmt::Debug for PoolCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolCache")
            .field("pools", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

impl PoolCache {
    /// At most `max_pools` pools, each closed after `idle` without use.
    pub(crate) fn new(max_pools: u64, idle: Duration) -> Self {
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
                    // Closing waits for checked-out connections; never block the cache on it.
                    tokio::spawn(async move { entry.pool.close().await });
                })
            })
            .build();
        Self {
            cache,
            key: Arc::new(crate::random::bytes()),
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
        let entry = self
            .cache
            .entry(self.key(params))
            .or_try_insert_with(open)
            .await
            .map_err(|error| (*error).clone())?;
        let fresh = entry.is_fresh();
        Ok((entry.into_value(), fresh))
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
