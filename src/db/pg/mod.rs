//! PostgreSQL over our own protocol connections (`postgres-protocol`), pooled by
//! `deadpool`.
//!
//! Why not a driver: the read-only envelope must cost one round trip (see
//! [`envelope`]), rows must be bounded before they are buffered (see [`conn`]),
//! and TLS must go to the checked address while verifying the host name (see
//! [`crate::db::tls`]); no driver offers all three. BENCHMARKS.md has the numbers.
//!
//! A pooled connection is checked without a round trip before reuse (nothing
//! unread, socket not closed); one that still turns out dead is replaced and the
//! request sent once more, only when the server acknowledged nothing of it.

mod answers;
mod batch;
mod bind;
mod catalog;
mod conn;
mod envelope;
mod errors;
mod frame;
mod startup;
#[cfg(test)]
mod tests;
mod types;
mod values;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};

pub(crate) use catalog::TextRow;
use conn::{PgConn, Session};
use envelope::Attempt;
use startup::Target;
use types::Types;

use crate::db::DbSettings;
use crate::db::budget::DecodeLimits;
use crate::db::error::DbError;
use crate::db::execute::ExecRequest;
use crate::db::introspect::{CatalogCap, TYPES_CAP};
use crate::db::params::ConnParams;
use crate::db::pool_cache::PoolSlot;
use crate::db::rows::{self, RowSink};
use crate::db::sql_error::SqlError;
use crate::error::ErrorCode;

/// Opens and checks connections for the pool. The first connection, opened by
/// connect to prove the credentials, is handed to the pool rather than closed.
struct Manager {
    target: Target,
    seed: Mutex<Option<PgConn>>,
}

impl managed::Manager for Manager {
    type Type = PgConn;
    type Error = DbError;

    async fn create(&self) -> Result<PgConn, DbError> {
        let seeded = self.seed.lock().ok().and_then(|mut seed| seed.take());
        match seeded {
            Some(conn) => Ok(conn),
            None => startup::connect(&self.target).await,
        }
    }

    async fn recycle(&self, conn: &mut PgConn, _: &Metrics) -> RecycleResult<DbError> {
        if conn.is_reusable() {
            Ok(())
        } else {
            Err(RecycleError::message("closed or out of step"))
        }
    }
}

/// A pool of PostgreSQL connections for one set of connection parameters.
#[derive(Clone)]
pub struct PgPool {
    pool: managed::Pool<Manager>,
    types: Arc<Types>,
    session: Session,
    /// Its place among the instance's pools, given back when the last handle goes.
    slot: Option<Arc<PoolSlot>>,
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPool")
            .field("status", &self.pool.status())
            .finish_non_exhaustive()
    }
}

impl PgPool {
    /// Connects to a checked address, proves the session with one query (which
    /// also reads the database's user-defined types), and keeps that connection as
    /// the pool's first. Returns the pool and the server version.
    pub(crate) async fn open(
        params: &ConnParams,
        addresses: Vec<IpAddr>,
        settings: &DbSettings,
    ) -> Result<(Self, String), DbError> {
        let target = Target {
            addresses,
            port: params.port,
            host: params.host.clone(),
            user: params.username.clone(),
            password: params.password.clone(),
            database: params.database.clone(),
            ssl: params.ssl,
            timeout: settings.connect_timeout,
            session: Session {
                max_row_bytes: settings.max_row_bytes,
                statement_timeout: settings.statement_timeout,
            },
        };
        let mut first = startup::connect(&target).await?;
        let types = Arc::new(Types::default());
        load_types(&mut first, &types, settings.connect_timeout)
            .await
            .map_err(|error| match error {
                SqlError::Connection(db) => db,
                SqlError::Statement(_) => DbError::Protocol,
            })?;
        let session = target.session;
        let version = first.server_version.clone();
        let manager = Manager {
            target,
            seed: Mutex::new(Some(first)),
        };
        let pool = managed::Pool::builder(manager)
            .max_size(usize::try_from(settings.max_connections).unwrap_or(1))
            .wait_timeout(Some(settings.connect_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|_| DbError::Protocol)?;
        Ok((
            Self {
                pool,
                types,
                session,
                slot: None,
            },
            version,
        ))
    }

    async fn get(&self) -> Result<managed::Object<Manager>, DbError> {
        self.pool.get().await.map_err(|error| match error {
            managed::PoolError::Backend(error) => error,
            managed::PoolError::Timeout(_) => DbError::Timeout,
            managed::PoolError::Closed => DbError::PoolClosed,
            managed::PoolError::NoRuntimeSpecified | managed::PoolError::PostCreateHook(_) => {
                DbError::Protocol
            }
        })
    }

    /// Proves the database answers now, refreshing the user-defined types on the
    /// way; returns the server version.
    pub(crate) async fn check(&self, timeout: Duration) -> Result<String, DbError> {
        let mut conn = self.get().await?;
        let result = load_types(&mut conn, &self.types, timeout).await;
        result.map_err(|error| match error {
            SqlError::Connection(db) => db,
            SqlError::Statement(_) => DbError::Protocol,
        })?;
        Ok(conn.server_version.clone())
    }

    /// Runs a client's statement in the read-only envelope, streaming into `sink`;
    /// `Ok(truncated)`.
    pub(crate) async fn execute(
        &self,
        request: &ExecRequest,
        sink: &mut RowSink,
    ) -> Result<bool, SqlError> {
        let mut retried = false;
        loop {
            let mut conn = self.get().await?;
            match envelope::run(&mut conn, request, sink, &self.types).await {
                Attempt::Done(result) => return result,
                Attempt::Retry(error) if retried => return Err(error),
                Attempt::Retry(_) => {
                    tracing::debug!(
                        "a pooled PostgreSQL connection was dead; sending again on a new one"
                    );
                    conn.mark_broken();
                    retried = true;
                }
            }
        }
    }

    /// Runs a batch in one flight (see [`batch`]), ending each step's sink as
    /// its statement ends; a dead pooled connection found before anything was
    /// answered is replaced once.
    pub(crate) async fn batch(
        &self,
        request: &crate::db::batch::BatchRequest,
        steps: &mut [crate::db::batch::Step],
    ) -> Result<(), SqlError> {
        let mut retried = false;
        loop {
            let mut conn = self.get().await?;
            match batch::run(&mut conn, request, steps, &self.types).await {
                Attempt::Done(result) => return result,
                Attempt::Retry(error) if retried => return Err(error),
                Attempt::Retry(_) => {
                    conn.mark_broken();
                    retried = true;
                }
            }
        }
    }

    /// Plans `sql` in the read-only envelope without running it; refuses a plan
    /// that would write (a `ModifyTable` node, such as a writable `WITH`).
    pub(crate) async fn validate(&self, request: &ExecRequest) -> Result<(), SqlError> {
        let explain = ExecRequest {
            sql: format!("EXPLAIN (FORMAT JSON) {}", request.sql),
            max_rows: 1,
            ..request.clone()
        };
        let (mut sink, header, mut hangup) = rows::channel(DecodeLimits {
            row_bytes: self.session.max_row_bytes,
            result_bytes: usize::MAX,
        });
        let run = async {
            let outcome = self.execute(&explain, &mut sink).await;
            sink.finish(outcome).await;
        };
        let (_, plan) = tokio::join!(run, async {
            match header.await {
                Ok(Ok(execution)) => rows::collect(execution, usize::MAX).await,
                Ok(Err(error)) => Err(error),
                Err(_) => Err(SqlError::refused(
                    ErrorCode::SqlError,
                    "the plan was not read",
                )),
            }
        });
        hangup.disarm();
        let plan = plan?;
        let writes = plan
            .rows
            .iter()
            .flatten()
            .any(|value| value.to_string().contains(r#""Node Type":"ModifyTable""#));
        if writes {
            return Err(SqlError::plan_writes());
        }
        Ok(())
    }

    /// Runs querygate's own catalogue queries in one flight, within `cap`.
    pub(crate) async fn catalog(
        &self,
        queries: &[(&str, Vec<Option<String>>)],
        cap: CatalogCap,
    ) -> Result<Vec<Vec<TextRow>>, SqlError> {
        let mut conn = self.get().await?;
        catalog::run(&mut conn, queries, cap).await
    }

    /// Signals the backends of this role whose `application_name` is `tag` (set
    /// by the envelope of a statement the client named) with
    /// `pg_cancel_backend`: PostgreSQL lets a role cancel its own sessions. The
    /// statement ends with `57014` and its envelope rolls back and cleans up as
    /// for any failure. Whether one was signalled.
    pub(crate) async fn cancel(&self, tag: &str) -> Result<bool, SqlError> {
        const CANCEL: &str = "SELECT pg_cancel_backend(pid)::text FROM pg_stat_activity \
             WHERE application_name = $1 AND usename = current_user \
             AND pid <> pg_backend_pid() AND state = 'active'";
        let queries = [(CANCEL, vec![Some(tag.to_owned())])];
        let cap = crate::db::introspect::CatalogCap {
            rows: 1_000,
            bytes: 64 * 1024,
        };
        let results = self.catalog(&queries, cap).await?;
        Ok(results.iter().flatten().any(|row| row.string(0) == "true"))
    }

    /// Whether two handles share one pool.
    pub fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.types, &other.types)
    }

    /// The pool holding `slot` for as long as it exists.
    pub(crate) fn holding(mut self, slot: Arc<PoolSlot>) -> Self {
        self.slot = Some(slot);
        self
    }

    /// Connections open now, idle or in use.
    pub fn size(&self) -> usize {
        self.pool.status().size
    }

    /// Whether the pool was closed.
    pub fn is_closed(&self) -> bool {
        self.pool.is_closed()
    }

    /// Closes the pool: idle connections now, busy ones when they come back.
    pub fn close(&self) {
        self.pool.close();
    }
}

async fn load_types(conn: &mut PgConn, types: &Types, timeout: Duration) -> Result<(), SqlError> {
    let queries = [(types::USER_TYPES, Vec::new())];
    let query = catalog::run(conn, &queries, TYPES_CAP);
    let results = tokio::time::timeout(timeout, query).await.map_err(|_| {
        conn.mark_broken();
        SqlError::Connection(DbError::Timeout)
    })??;
    let rows = results.into_iter().next().unwrap_or_default();
    types.load(
        rows.iter()
            .filter_map(|row| Some((row.number::<u32>(0)?, row.string(1), row.number::<u32>(2)))),
    );
    Ok(())
}
