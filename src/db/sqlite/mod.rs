//! SQLite through `rusqlite`, one connection per statement on a blocking thread.
//!
//! Opening a SQLite file costs microseconds, so every statement gets a fresh
//! connection, closed afterwards: nothing a statement leaves (temporary tables,
//! pragmas) reaches the next. The connection is opened read-only with
//! `query_only`, and before the client's text is even prepared:
//!
//! - an **authorizer** refuses `ATTACH`/`DETACH`, every pragma but the
//!   informational ones (some change the whole process: heap limits, the temporary
//!   directory), and functions that load code;
//! - **limits**: no attached databases, and no string or blob longer than
//!   `MAX_ROW_BYTES` (so `zeroblob(300000000)` fails before it allocates);
//! - a **progress handler** interrupts the statement at its deadline.
//!
//! SQLite would prepare every `;`-separated statement, so the text is split by
//! SQLite's lexical rules first (see [`crate::db::execute`]) and `rusqlite` refuses
//! a second statement again.

mod exec;
mod values;

pub(crate) use exec::statement_error;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use crate::db::DbSettings;
use crate::db::error::DbError;
use crate::db::pool_cache::PoolSlot;

/// The SQLite "pool": the file, and how many statements may run on it at once.
#[derive(Debug, Clone)]
pub struct LitePool {
    path: Arc<PathBuf>,
    permits: Arc<Semaphore>,
    max_row_bytes: usize,
    wait: Duration,
    /// Its place among the instance's pools, given back when the last handle goes.
    slot: Option<Arc<PoolSlot>>,
    /// Tagged statements running now, for `cancel`.
    running: Arc<Running>,
}

/// Reading the schema table proves the file is a SQLite database.
const VERSION: &str = "SELECT sqlite_version() FROM (SELECT count(*) FROM sqlite_master)";

impl LitePool {
    /// The pool holding `slot` for as long as it exists.
    pub(crate) fn holding(mut self, slot: Arc<PoolSlot>) -> Self {
        self.slot = Some(slot);
        self
    }

    /// Opens the file once to prove it is a database; returns the pool and the
    /// SQLite version.
    pub(crate) async fn open(
        path: PathBuf,
        settings: &DbSettings,
    ) -> Result<(Self, String), DbError> {
        let pool = Self {
            path: Arc::new(path),
            permits: Arc::new(Semaphore::new(
                usize::try_from(settings.max_connections)
                    .unwrap_or(1)
                    .max(1),
            )),
            max_row_bytes: settings.max_row_bytes,
            wait: settings.connect_timeout,
            slot: None,
            running: Arc::default(),
        };
        let version = pool.check().await?;
        Ok((pool, version))
    }

    /// Proves the file opens and reads as a database now; the SQLite version.
    pub(crate) async fn check(&self) -> Result<String, DbError> {
        let version = self
            .blocking(|conn| conn.query_row(VERSION, [], |row| row.get::<_, String>(0)))
            .await?
            .map_err(|e| exec::connect_error(&e))?;
        Ok(format!("SQLite {version}"))
    }

    /// Runs `work` on a fresh read-only connection on a blocking thread, within the
    /// pool's concurrency.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> T + Send + 'static,
    ) -> Result<T, DbError> {
        let permit = self.permit().await?;
        let (path, max_row_bytes) = (Arc::clone(&self.path), self.max_row_bytes);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = open(&path, max_row_bytes).map_err(|e| exec::connect_error(&e))?;
            Ok(work(&conn))
        })
        .await
        .map_err(|_| DbError::Protocol)?
    }
}

impl LitePool {
    /// Whether two handles share one pool.
    pub fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.permits, &other.permits)
    }

    /// A place among the statements running on this file at once.
    async fn permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, DbError> {
        tokio::time::timeout(self.wait, Arc::clone(&self.permits).acquire_owned())
            .await
            .map_err(|_| DbError::Timeout)?
            .map_err(|_| DbError::ConnectionRefused)
    }
}

/// A read-only, `query_only` connection with the limits and the authorizer.
fn open(path: &std::path::Path, max_row_bytes: usize) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.pragma_update(None, "query_only", true)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)?;
    conn.set_limit(
        Limit::SQLITE_LIMIT_LENGTH,
        i32::try_from(max_row_bytes).unwrap_or(i32::MAX),
    )?;
    conn.authorizer(Some(authorize));
    Ok(conn)
}

/// Pragmas that only describe the database; their argument names what to
/// describe, never a new value.
const INFORMATIONAL_PRAGMAS: [&str; 14] = [
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "collation_list",
    "function_list",
    "module_list",
    "pragma_list",
    "database_list",
    "compile_options",
    "user_version",
];

/// Functions that load code or reach files.
const DENIED_FUNCTIONS: [&str; 5] = [
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fts3_tokenizer",
];

fn authorize(context: AuthContext<'_>) -> Authorization {
    match context.action {
        AuthAction::Attach { .. } | AuthAction::Detach { .. } | AuthAction::Unknown { .. } => {
            Authorization::Deny
        }
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } => {
            let name = pragma_name.to_ascii_lowercase();
            let reads = INFORMATIONAL_PRAGMAS.contains(&name.as_str())
                && (name != "user_version" || pragma_value.is_none());
            if reads {
                Authorization::Allow
            } else {
                Authorization::Deny
            }
        }
        AuthAction::Function { function_name } => {
            if DENIED_FUNCTIONS.contains(&function_name.to_ascii_lowercase().as_str()) {
                Authorization::Deny
            } else {
                Authorization::Allow
            }
        }
        _ => Authorization::Allow,
    }
}

/// Interrupts SQLite's work once `deadline` has passed, or once `stop` says so.
fn deadline_handler(conn: &Connection, deadline: Instant, stop: Option<Arc<StopFlag>>) {
    conn.progress_handler(
        1_000,
        Some(move || Instant::now() >= deadline || stop.as_ref().is_some_and(|s| s.stopped())),
    );
}

/// Why a running statement stops before its end, besides its deadline: read by
/// SQLite's progress handler on the statement's thread.
#[derive(Debug, Default)]
pub(crate) struct StopFlag(std::sync::atomic::AtomicU8);

impl StopFlag {
    const RUNNING: u8 = 0;
    const HUNG_UP: u8 = 1;
    const CANCELLED: u8 = 2;

    /// The client went away.
    pub(crate) fn hang_up(&self) {
        self.set(Self::HUNG_UP);
    }

    /// A cancel request named the statement.
    pub(crate) fn cancel(&self) {
        self.set(Self::CANCELLED);
    }

    fn set(&self, why: u8) {
        use std::sync::atomic::Ordering;
        let _ = self
            .0
            .compare_exchange(Self::RUNNING, why, Ordering::AcqRel, Ordering::Acquire);
    }

    fn stopped(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire) != Self::RUNNING
    }

    /// Whether a cancel request (not a hang-up) stopped it.
    pub(crate) fn cancelled(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire) == Self::CANCELLED
    }
}

/// The tagged statements running on one file on this instance, for `cancel`.
#[derive(Debug, Default)]
pub(crate) struct Running(std::sync::Mutex<HashMap<String, Arc<StopFlag>>>);

impl Running {
    /// Lists `stop` under `tag` until the guard drops.
    fn enter(self: &Arc<Self>, tag: &str, stop: &Arc<StopFlag>) -> Listed {
        if let Ok(mut map) = self.0.lock() {
            map.insert(tag.to_owned(), Arc::clone(stop));
        }
        Listed {
            running: Arc::clone(self),
            tag: tag.to_owned(),
            stop: Arc::clone(stop),
        }
    }

    /// Stops the statement listed under `tag`; whether there was one.
    pub(crate) fn cancel(&self, tag: &str) -> bool {
        let stop = self.0.lock().ok().and_then(|map| map.get(tag).cloned());
        stop.inspect(|stop| stop.cancel()).is_some()
    }
}

/// A statement's place in [`Running`].
struct Listed {
    running: Arc<Running>,
    tag: String,
    stop: Arc<StopFlag>,
}

impl Drop for Listed {
    fn drop(&mut self) {
        if let Ok(mut map) = self.running.0.lock()
            && map
                .get(&self.tag)
                .is_some_and(|s| Arc::ptr_eq(s, &self.stop))
        {
            map.remove(&self.tag);
        }
    }
}
