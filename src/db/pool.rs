//! A pool of one engine: the closed enum every operation is dispatched on, in one
//! place per operation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::db::DbSettings;
use crate::db::error::DbError;
use crate::db::execute::ExecRequest;
use crate::db::mysql::MyPool;
use crate::db::params::{ConnParams, Engine};
use crate::db::pg::PgPool;
use crate::db::pool_cache::PoolSlot;
use crate::db::rows::RowSink;
use crate::db::sql_error::SqlError;
use crate::db::sql_text::Dialect;
use crate::db::sqlite::LitePool;
use crate::db::sqlite_dir::SqliteDir;
use crate::net_guard::NetGuard;

/// A pool of one engine.
#[derive(Debug, Clone)]
pub enum DbPool {
    /// PostgreSQL.
    Postgres(PgPool),
    /// MySQL / MariaDB.
    Mysql(MyPool),
    /// SQLite.
    Sqlite(LitePool),
}

/// A cached pool and what was learnt when it was opened.
#[derive(Debug, Clone)]
pub struct PoolEntry {
    /// The pool.
    pub pool: DbPool,
    /// The server version seen when it was opened, e.g. `PostgreSQL 15.4`.
    pub server_version: String,
    /// Why the pool was dropped, when a failure showed its database gone.
    closed_because: Arc<OnceLock<DbError>>,
    /// When the pool was last asked for (milliseconds since the process began).
    last_used: Arc<AtomicU64>,
}

impl PoolEntry {
    /// The entry with its pool holding `slot` (see [`crate::db::pool_cache`]).
    pub(crate) fn holding(mut self, slot: Arc<PoolSlot>) -> Self {
        self.pool = match self.pool {
            DbPool::Postgres(pool) => DbPool::Postgres(pool.holding(slot)),
            DbPool::Mysql(pool) => DbPool::Mysql(pool.holding(slot)),
            DbPool::Sqlite(pool) => DbPool::Sqlite(pool.holding(slot)),
        };
        self
    }

    /// Marks the pool used now.
    pub(crate) fn touch(&self, now: u64) {
        self.last_used.store(now, Ordering::Relaxed);
    }

    /// When the pool was last used.
    pub(crate) fn last_used(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed)
    }

    /// Records why the pool is being dropped, for the requests still waiting on it.
    pub(crate) fn close_because(&self, reason: DbError) {
        let _ = self.closed_because.set(reason);
    }

    /// Why the pool was dropped, if a failure showed its database gone.
    pub(crate) fn closed_because(&self) -> Option<DbError> {
        self.closed_because.get().cloned()
    }
}

/// Checks the host policy (resolving the name once), proves the credentials with
/// one connection, and returns a pool that connects only to the checked
/// addresses.
pub(crate) async fn open(
    params: &ConnParams,
    settings: &DbSettings,
    guard: &NetGuard,
    sqlite: &SqliteDir,
) -> Result<PoolEntry, DbError> {
    let timeout = settings.connect_timeout;
    let (pool, server_version) = match params.engine {
        Engine::Postgresql => {
            let addresses = guard.check(&params.host, params.port, timeout).await?;
            let (pool, version) = PgPool::open(params, addresses, settings).await?;
            let version = version
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            (DbPool::Postgres(pool), format!("PostgreSQL {version}"))
        }
        Engine::Mysql => {
            let addresses = guard.check(&params.host, params.port, timeout).await?;
            let (pool, version) = MyPool::open(params, &addresses, settings).await?;
            (DbPool::Mysql(pool), version)
        }
        Engine::Sqlite => {
            let path = sqlite.resolve(&params.database)?;
            let (pool, version) = LitePool::open(path, settings).await?;
            (DbPool::Sqlite(pool), version)
        }
    };
    Ok(PoolEntry {
        pool,
        server_version,
        closed_because: Arc::default(),
        last_used: Arc::default(),
    })
}

impl DbPool {
    /// The engine.
    pub(crate) fn engine(&self) -> Engine {
        match self {
            Self::Postgres(_) => Engine::Postgresql,
            Self::Mysql(_) => Engine::Mysql,
            Self::Sqlite(_) => Engine::Sqlite,
        }
    }

    /// How the engine reads the text of a statement (MySQL's quoting follows the
    /// server's `sql_mode`, read when the pool opened).
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Self::Postgres(_) => Dialect::Postgres,
            Self::Mysql(pool) => Dialect::Mysql(pool.modes()),
            Self::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Runs a client's statement read-only, streaming into `sink` (see
    /// [`crate::db::execute`]); `Ok(truncated)`.
    pub(crate) async fn execute(
        &self,
        request: &ExecRequest,
        sink: &mut RowSink,
    ) -> Result<bool, SqlError> {
        match self {
            Self::Postgres(pool) => pool.execute(request, sink).await,
            Self::Mysql(pool) => pool.execute(request, sink).await,
            Self::Sqlite(pool) => pool.execute(request, sink).await,
        }
    }

    /// Runs a read-only batch (see [`crate::db::batch`]), ending each step's
    /// sink as its statement ends.
    pub(crate) async fn batch(
        &self,
        request: &crate::db::batch::BatchRequest,
        steps: &mut [crate::db::batch::Step],
    ) -> Result<(), SqlError> {
        match self {
            Self::Postgres(pool) => pool.batch(request, steps).await,
            Self::Mysql(pool) => pool.batch(request, steps).await,
            Self::Sqlite(pool) => pool.batch(request, steps).await,
        }
    }

    /// Stops the running statement tagged `tag` (see
    /// [`crate::db::execute::ExecLimits::query_tag`]); whether one was found.
    /// PostgreSQL and MySQL/MariaDB find it through the server, so any instance
    /// can; SQLite's statements run in the process, so only the instance running
    /// it finds it.
    pub(crate) async fn cancel(&self, tag: &str) -> Result<bool, SqlError> {
        match self {
            Self::Postgres(pool) => pool.cancel(tag).await,
            Self::Mysql(pool) => pool.cancel(tag).await,
            Self::Sqlite(pool) => Ok(pool.cancel(tag)),
        }
    }

    /// Plans a statement read-only without running it.
    pub(crate) async fn validate(&self, request: &ExecRequest) -> Result<(), SqlError> {
        match self {
            Self::Postgres(pool) => pool.validate(request).await,
            Self::Mysql(pool) => pool.validate(request).await,
            Self::Sqlite(pool) => pool.validate(request).await,
        }
    }

    /// Proves the database answers now; the server version.
    pub async fn check(&self, timeout: Duration) -> Result<String, DbError> {
        match self {
            Self::Postgres(pool) => {
                let raw = pool.check(timeout).await?;
                let version = raw.split_whitespace().next().unwrap_or_default();
                Ok(format!("PostgreSQL {version}"))
            }
            Self::Mysql(pool) => pool.check(timeout).await,
            Self::Sqlite(pool) => pool.check().await,
        }
    }

    /// Closes every connection.
    pub async fn close(&self) {
        match self {
            Self::Postgres(pool) => pool.close(),
            Self::Mysql(pool) => pool.close().await,
            Self::Sqlite(_) => {}
        }
    }

    /// Connections open now, where the pool tells.
    pub(crate) fn size(&self) -> Option<usize> {
        match self {
            Self::Postgres(pool) => Some(pool.size()),
            Self::Mysql(_) | Self::Sqlite(_) => None,
        }
    }

    /// Whether two handles share one pool.
    pub fn same(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Postgres(a), Self::Postgres(b)) => a.same(b),
            (Self::Mysql(a), Self::Mysql(b)) => a.same(b),
            (Self::Sqlite(a), Self::Sqlite(b)) => a.same(b),
            _ => false,
        }
    }

    /// Whether the pool was closed (PostgreSQL tells; the others close their
    /// connections after use anyway).
    pub fn is_closed(&self) -> bool {
        match self {
            Self::Postgres(pool) => pool.is_closed(),
            Self::Mysql(_) | Self::Sqlite(_) => false,
        }
    }
}
