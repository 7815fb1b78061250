//! Everything that talks to the user's databases.
//!
//! [`Databases`] is the entry point the routes use: it checks the host policy,
//! opens and caches pools, and runs statements through the one door for client
//! SQL ([`execute`]). The engine is a closed enum ([`params::Engine`], [`DbPool`])
//! matched in one place per operation; each engine lives in its own module:
//! [`pg`] (our own protocol connections), [`mysql`] (`mysql_async`), [`sqlite`]
//! (`rusqlite`).

pub(crate) mod batch;
pub(crate) mod budget;
pub(crate) mod error;
pub(crate) mod execute;
pub(crate) mod introspect;
pub(crate) mod mysql;
pub mod params;
pub(crate) mod pg;
pub(crate) mod policy;
pub(crate) mod pool;
pub(crate) mod pool_cache;
pub(crate) mod rows;
pub mod sql_error;
pub(crate) mod sql_text;
pub(crate) mod sqlite;
pub(crate) mod sqlite_dir;
pub(crate) mod tls;
pub(crate) mod values;

use std::sync::Arc;
use std::time::Duration;

use crate::net_guard::NetGuard;
use error::DbError;
use execute::{ExecLimits, ExecRequest};
use params::ConnParams;
use pool_cache::PoolCache;
use rows::Execution;
use sql_error::SqlError;
use sqlite_dir::SqliteDir;

pub use execute::Delivery;
pub use pool::{DbPool, PoolEntry};

/// Limits of the database layer.
#[derive(Debug, Clone, Copy)]
pub struct DbSettings {
    /// Resolve + connect + log in, and waiting for a pooled connection.
    pub connect_timeout: Duration,
    /// Connections per pool.
    pub max_connections: u32,
    /// How long an unused pool (and an unused MySQL connection) is kept.
    pub pool_idle: Duration,
    /// Pools kept at most.
    pub max_pools: u64,
    /// How long a schema read is reused; zero turns the cache off.
    pub schema_ttl: Duration,
    /// The server's statement limit: the default for MySQL sessions, and the
    /// limit of a schema read.
    pub statement_timeout: Duration,
    /// The largest single row read from a database.
    pub max_row_bytes: usize,
}

/// Cached schemas, keyed by the pool key and the schema filter.
type SchemaCache = moka::future::Cache<([u8; 32], Option<String>), Arc<Vec<introspect::Table>>>;

/// The database layer's shared state.
#[derive(Debug, Clone)]
pub struct Databases {
    settings: DbSettings,
    limits: ExecLimits,
    guard: Arc<NetGuard>,
    sqlite: Arc<SqliteDir>,
    pools: PoolCache,
    schemas: SchemaCache,
}

/// What a successful connect or check reports.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// e.g. `PostgreSQL 15.4`.
    pub version: String,
}

impl Databases {
    /// The layer over a host policy and a SQLite folder; statements run within
    /// `limits`.
    pub(crate) fn new(
        settings: DbSettings,
        limits: ExecLimits,
        guard: NetGuard,
        sqlite: SqliteDir,
    ) -> Self {
        Self {
            pools: PoolCache::new(
                settings.max_pools,
                settings.pool_idle,
                settings.connect_timeout,
            ),
            schemas: moka::future::Cache::builder()
                .max_capacity(if settings.schema_ttl.is_zero() {
                    0
                } else {
                    256
                })
                .time_to_live(settings.schema_ttl.max(Duration::from_millis(1)))
                .support_invalidation_closures()
                .build(),
            settings,
            limits,
            guard: Arc::new(guard),
            sqlite: Arc::new(sqlite),
        }
    }

    /// The SQLite folder.
    pub fn sqlite(&self) -> &SqliteDir {
        &self.sqlite
    }

    /// The pool for `params`, opened (and checked) on first use; the flag tells
    /// whether this call opened it.
    pub async fn pool(&self, params: &ConnParams) -> Result<(PoolEntry, bool), DbError> {
        self.pools
            // Boxed: opening is rare and its future is large.
            .get_or_open(
                params,
                Box::pin(pool::open(
                    params,
                    &self.settings,
                    &self.guard,
                    &self.sqlite,
                )),
            )
            .await
    }

    /// Connects (or reuses a pool) and reports the server version. A reused pool is
    /// asked again, so a connect always proves the database answers now.
    pub(crate) async fn connect(&self, params: &ConnParams) -> Result<ServerInfo, DbError> {
        let (entry, fresh) = self.pool(params).await?;
        if fresh {
            return Ok(ServerInfo {
                version: entry.server_version.clone(),
            });
        }
        let checked = entry.pool.check(self.settings.connect_timeout).await;
        let version = self.evict_if_gone(params, &entry, checked).await?;
        Ok(ServerInfo { version })
    }

    /// Starts a client's statement read-only (see [`execute`]); resolves when its
    /// columns are known. A pool closed under the request (a disconnect, an
    /// eviction) is replaced once.
    pub(crate) async fn execute(
        &self,
        params: &ConnParams,
        request: ExecRequest,
    ) -> Result<Execution, SqlError> {
        let (entry, _) = self.pool(params).await?;
        let result = execute::execute(&entry.pool, request.clone(), &self.limits).await;
        match self.evict_if_gone(params, &entry, result).await {
            Err(SqlError::Connection(DbError::PoolClosed)) => {
                let (entry, _) = self.pool(params).await?;
                let result = execute::execute(&entry.pool, request, &self.limits).await;
                self.evict_if_gone(params, &entry, result).await
            }
            other => other,
        }
    }

    /// Starts a read-only batch on `params`' database (see [`batch`]).
    pub(crate) async fn batch(
        &self,
        params: &ConnParams,
        request: batch::BatchRequest,
    ) -> Result<batch::Batch, SqlError> {
        let (entry, _) = self.pool(params).await?;
        Ok(batch::run(&entry.pool, request, &self.limits))
    }

    /// Stops the running statement tagged `tag` on `params`' database (see
    /// [`DbPool::cancel`]); whether one was found.
    pub(crate) async fn cancel(&self, params: &ConnParams, tag: &str) -> Result<bool, SqlError> {
        let (entry, _) = self.pool(params).await?;
        let result = entry.pool.cancel(tag).await;
        self.evict_if_gone(params, &entry, result).await
    }

    /// Plans a statement read-only without running it (see [`execute::validate`]).
    pub async fn validate(
        &self,
        params: &ConnParams,
        request: &ExecRequest,
    ) -> Result<(), SqlError> {
        let (entry, _) = self.pool(params).await?;
        let result = execute::validate(&entry.pool, request).await;
        self.evict_if_gone(params, &entry, result).await
    }

    /// The tables and views of the database, optionally of one schema, through a
    /// short-lived cache; `fresh` reads the catalog even when a cached copy exists.
    pub(crate) async fn schema(
        &self,
        params: &ConnParams,
        schema: Option<&str>,
        fresh: bool,
    ) -> Result<Arc<Vec<introspect::Table>>, SqlError> {
        let key = (self.pools.key(params), schema.map(str::to_owned));
        if !fresh && let Some(tables) = self.schemas.get(&key).await {
            return Ok(tables);
        }
        let (entry, _) = self.pool(params).await?;
        let read = tokio::time::timeout(
            self.settings.statement_timeout,
            introspect::read(&entry.pool, schema),
        )
        .await
        .unwrap_or_else(|_| Err(SqlError::timeout()));
        let tables = Arc::new(self.evict_if_gone(params, &entry, read).await?);
        self.schemas.insert(key, Arc::clone(&tables)).await;
        Ok(tables)
    }

    /// Passes `result` through; a failure that means the database is gone drops
    /// the pool, so the next request resolves and connects afresh. The requests
    /// still waiting on that pool are told the same reason (not that their pool
    /// closed), and so is one whose pool another request dropped this way.
    async fn evict_if_gone<T, E>(
        &self,
        params: &ConnParams,
        entry: &PoolEntry,
        result: Result<T, E>,
    ) -> Result<T, E>
    where
        E: GoneCheck,
    {
        let Err(error) = &result else {
            return result;
        };
        match error.connection() {
            Some(DbError::PoolClosed) => {
                if let Some(reason) = entry.closed_because() {
                    return Err(E::from(reason));
                }
            }
            Some(cause) if self.gone(entry, cause) => {
                entry.close_because(cause.clone());
                self.pools.evict(params).await;
            }
            _ => {}
        }
        result
    }

    /// Whether a connection failure means the database is gone rather than the
    /// pool being busy: a refused connection, or a timeout while the pool had room.
    fn gone(&self, entry: &PoolEntry, error: &DbError) -> bool {
        match error {
            DbError::ConnectionRefused => true,
            DbError::Timeout => entry.pool.size().is_some_and(|size| {
                size < usize::try_from(self.settings.max_connections).unwrap_or(0)
            }),
            _ => false,
        }
    }

    /// Drops this instance's pool and cached schemas for `params`.
    pub(crate) async fn disconnect(&self, params: &ConnParams) -> bool {
        let key = self.pools.key(params);
        // Entries are few; a linear sweep keeps the cache key simple.
        let _ = self
            .schemas
            .invalidate_entries_if(move |(k, _), _| *k == key);
        self.pools.evict(params).await
    }

    /// Number of pools held (for tests and metrics).
    pub async fn pool_count(&self) -> u64 {
        self.pools.count().await
    }

    /// Closes every pool (at shutdown).
    pub(crate) async fn close_all(&self) {
        self.pools.close_all().await;
    }
}

/// Errors that may say the database is gone.
trait GoneCheck: From<DbError> {
    fn connection(&self) -> Option<&DbError>;
}

impl GoneCheck for DbError {
    fn connection(&self) -> Option<&DbError> {
        Some(self)
    }
}

impl GoneCheck for SqlError {
    fn connection(&self) -> Option<&DbError> {
        match self {
            Self::Connection(error) => Some(error),
            Self::Statement(_) => None,
        }
    }
}
