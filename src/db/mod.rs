//! Everything that talks to the user's databases.
//!
//! [`Databases`] is the entry point the routes use: it checks the host policy,
//! opens and caches pools, and answers version pings. The engine is a closed enum
//! ([`params::Engine`]) matched in one place per operation.

pub mod connect;
pub mod error;
pub mod execute;
pub mod introspect;
pub mod params;
pub mod pool_cache;
pub mod sql_error;
pub mod sqlite_dir;
pub mod values;

use std::sync::Arc;
use std::time::Duration;

use crate::net_guard::NetGuard;
use error::DbError;
use params::ConnParams;
use pool_cache::PoolCache;
use sql_error::SqlError;
use sqlite_dir::SqliteDir;

pub use connect::{DbPool, PoolEntry};

/// Limits of the database layer.
#[derive(Debug, Clone, Copy)]
pub struct DbSettings {
    /// Resolve + connect + log in, and pool acquisition.
    pub connect_timeout: Duration,
    /// Connections per pool.
    pub max_connections: u32,
    /// How long an unused pool is kept.
    pub pool_idle: Duration,
    /// Pools kept at most.
    pub max_pools: u64,
    /// How long a schema read is reused; zero turns the cache off.
    pub schema_ttl: Duration,
    /// Time allowed to read a schema.
    pub statement_timeout: Duration,
}

/// Runs a statement's work on a task of its own, so that a client hanging up
/// mid-request cannot drop it between `BEGIN` and `ROLLBACK` and hand a connection
/// with an open transaction back to the pool.
async fn run_to_completion<T: Send + 'static>(
    work: impl Future<Output = Result<T, SqlError>> + Send + 'static,
) -> Result<T, SqlError> {
    tokio::spawn(work).await.unwrap_or_else(|error| {
        tracing::error!(%error, "statement task failed");
        Err(SqlError::refused(
            crate::error::ErrorCode::SqlError,
            "the statement could not be completed",
        ))
    })
}

/// Cached schemas, keyed by the pool key and the schema filter.
type SchemaCache = moka::future::Cache<([u8; 32], Option<String>), Arc<Vec<introspect::Table>>>;

/// The database layer's shared state.
#[derive(Debug, Clone)]
pub struct Databases {
    settings: DbSettings,
    guard: Arc<NetGuard>,
    sqlite: Arc<SqliteDir>,
    pools: PoolCache,
    schemas: SchemaCache,
}

/// What a successful connect or ping reports.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// e.g. `PostgreSQL 15.4`.
    pub version: String,
}

impl Databases {
    /// The layer over a host policy and a SQLite folder.
    pub fn new(settings: DbSettings, guard: NetGuard, sqlite: SqliteDir) -> Self {
        Self {
            pools: PoolCache::new(settings.max_pools, settings.pool_idle),
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
            guard: Arc::new(guard),
            sqlite: Arc::new(sqlite),
        }
    }

    /// The SQLite folder.
    pub fn sqlite(&self) -> &SqliteDir {
        &self.sqlite
    }

    /// The pool for `params`, opened (and checked) on first use.
    pub async fn pool(&self, params: &ConnParams) -> Result<(PoolEntry, bool), DbError> {
        self.pools
            // Boxed: opening is rare and its future is large.
            .get_or_open(
                params,
                Box::pin(connect::open(
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
    pub async fn connect(&self, params: &ConnParams) -> Result<ServerInfo, DbError> {
        let (entry, fresh) = self.pool(params).await?;
        if fresh {
            return Ok(ServerInfo {
                version: entry.server_version.clone(),
            });
        }
        match entry
            .pool
            .server_version(self.settings.connect_timeout)
            .await
        {
            Ok(version) => Ok(ServerInfo { version }),
            Err(error) => {
                // A pool whose server went away is dropped so that the next request
                // starts from a fresh connection.
                self.pools.evict(params).await;
                Err(error)
            }
        }
    }

    /// Runs a client's statement read-only (see [`execute`]). A failure to reach the
    /// database drops the pool, so the next request starts afresh.
    pub async fn execute(
        &self,
        params: &ConnParams,
        request: &execute::ExecRequest,
    ) -> Result<execute::QueryOutput, SqlError> {
        let (entry, _) = self.pool(params).await?;
        let (task, request) = (entry.clone(), request.clone());
        let result = run_to_completion(async move {
            execute::execute(&task.pool, &task.server_version, &request).await
        })
        .await;
        if let Err(SqlError::Connection(error)) = &result
            && self.gone(&entry, error)
        {
            self.pools.evict(params).await;
        }
        result
    }

    /// Plans `sql` read-only without running it (see [`execute::validate`]).
    pub async fn validate(
        &self,
        params: &ConnParams,
        sql: &str,
        timeout: Duration,
    ) -> Result<(), SqlError> {
        let (entry, _) = self.pool(params).await?;
        let (task, sql) = (entry.clone(), sql.to_owned());
        let result = run_to_completion(async move {
            execute::validate(&task.pool, &task.server_version, &sql, timeout).await
        })
        .await;
        if let Err(SqlError::Connection(error)) = &result
            && self.gone(&entry, error)
        {
            self.pools.evict(params).await;
        }
        result
    }

    /// The tables and views of the database, optionally of one schema, through a
    /// short-lived cache; `fresh` reads the catalog even when a cached copy exists.
    pub async fn schema(
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
        );
        let result = read.await.unwrap_or_else(|_| Err(SqlError::timeout()));
        match result {
            Ok(tables) => {
                let tables = Arc::new(tables);
                self.schemas.insert(key, Arc::clone(&tables)).await;
                Ok(tables)
            }
            Err(error) => {
                if let SqlError::Connection(db_error) = &error
                    && self.gone(&entry, db_error)
                {
                    self.pools.evict(params).await;
                }
                Err(error)
            }
        }
    }

    /// Whether a connection failure means the database is gone (drop the pool, so
    /// the next request resolves and connects afresh) rather than the pool being
    /// busy: a refused connection, or a timeout while the pool had room, which is
    /// sqlx's pool retrying a connect that keeps failing.
    fn gone(&self, entry: &PoolEntry, error: &DbError) -> bool {
        match error {
            DbError::ConnectionRefused => true,
            DbError::Timeout => entry.pool.size() < self.settings.max_connections,
            _ => false,
        }
    }

    /// Drops this instance's pool and cached schemas for `params`.
    pub async fn disconnect(&self, params: &ConnParams) -> bool {
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
}
