//! The one audited door for SQL written by a client.
//!
//! # Threat model
//!
//! A client holds valid credentials (they are in its token) and sends arbitrary
//! text. querygate promises that text runs as **exactly one statement, read-only,
//! within a time limit, returning a bounded number of rows in bounded memory**,
//! and that nothing it does outlives the request on a pooled connection. The
//! promise is kept by the engines themselves, never by looking for keywords:
//!
//! - PostgreSQL ([`crate::db::pg`]): a `READ ONLY` transaction under the session's
//!   `statement_timeout` (`SET LOCAL` when the request asks for another limit),
//!   begun in the same flight before the statement is parsed;
//!   the extended protocol refuses a second statement; `ROLLBACK`, `DISCARD ALL`
//!   end every request, which drops what a session can keep (prepared
//!   statements, cursors, advisory locks, `LISTEN`, settings).
//! - MySQL/MariaDB ([`crate::db::mysql`]): a read-only *session* (DDL commits
//!   implicitly and would escape a read-only transaction) and transaction with the
//!   engine's statement limit; the binary protocol refuses a second statement;
//!   `COM_RESET_CONNECTION` after every use drops user variables, temporary
//!   tables, locks, prepared statements and settings; `KILL QUERY` at the deadline.
//! - SQLite ([`crate::db::sqlite`]): a read-only `query_only` connection of its
//!   own, an authorizer, a length limit and a progress-handler deadline.
//!
//! On top of that [`crate::db::policy`] refuses, before any engine sees the text,
//! what a read-only transaction cannot stop because it acts outside it (other
//! sessions, server files, configuration, code loading).
//!
//! Rows are streamed: the engine stops one row past the cap, a row larger than
//! `MAX_ROW_BYTES` is refused before it is buffered, and a client that goes away
//! releases the connection. The statement's work is polled by the request until
//! its columns are known, then runs on a task of its own, as does work whose
//! request is dropped, so a client hanging up cannot cut it between `BEGIN` and
//! `ROLLBACK`; the whole of it (acquire, setup, statement, cleanup) is bounded by
//! the statement's limit plus a grace period. Read-only holds for this session
//! only: extensions such as `dblink` or functions that need superuser rights act
//! with the connecting role's privileges, so deployments should connect with
//! least-privileged roles (docs/security.md).

use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::FutureExt as _;
use serde_json::Value;

use crate::db::DbPool;
use crate::db::budget::DecodeLimits;
use crate::db::policy;
use crate::db::rows::{self, Execution};
use crate::db::sql_error::SqlError;
use crate::db::sql_text;
use crate::error::ErrorCode;

/// What to run and within which limits.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    /// The client's SQL.
    pub sql: String,
    /// Bind parameters (JSON scalars; arrays and objects are bound as JSON text).
    pub params: Vec<Value>,
    /// Rows returned at most.
    pub max_rows: usize,
    /// Statement time limit.
    pub timeout: Duration,
    /// 64-bit integer columns as strings.
    pub bigint_as_string: bool,
    /// The statement's tag when the client named it (`queryId`): the database
    /// shows it with the statement, and `cancel` finds the statement by it
    /// ([`ExecLimits::query_tag`]).
    pub tag: Option<String>,
}

/// How a result leaves the server, which decides its caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// A JSON answer, which clients read whole: `MAX_ROWS`, `MAX_RESULT_BYTES`,
    /// 1,000 rows when the request does not say.
    Answer,
    /// A CSV or NDJSON export, which streams with flat memory: `MAX_EXPORT_ROWS`,
    /// `MAX_EXPORT_BYTES`, and every row up to the cap when the request does not
    /// say.
    Export,
}

/// The rows a request gets: what it asked for, lowered to the cap of its
/// delivery. Said in the answer's headers (`x-row-limit`, and
/// `x-row-limit-lowered-from` when the request asked for more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowCap {
    /// Rows returned at most.
    pub rows: u64,
    /// What the request asked for, when it asked for more than the cap.
    pub lowered_from: Option<u64>,
}

/// The server's limits on execution, built once at start from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct ExecLimits {
    /// Rows returned when the client does not say.
    pub default_max_rows: u64,
    /// Rows returned at most (`MAX_ROWS`).
    pub max_rows: u64,
    /// Rows of a CSV or NDJSON export at most (`MAX_EXPORT_ROWS`, never below
    /// `MAX_ROWS`).
    pub max_export_rows: u64,
    /// Statement time limit at most, and by default (`STATEMENT_TIMEOUT_MS`).
    pub statement_timeout: Duration,
    /// The largest single row (`MAX_ROW_BYTES`).
    pub max_row_bytes: usize,
    /// The largest result, counted as it is written (`MAX_RESULT_BYTES`).
    pub max_result_bytes: usize,
    /// The largest export, counted as it is written (`MAX_EXPORT_BYTES`, never
    /// below `MAX_RESULT_BYTES`).
    pub max_export_bytes: usize,
    /// A statement that takes longer is logged as slow (`SLOW_STATEMENT_MS`).
    pub slow_statement: Duration,
    /// The key of statement fingerprints: logs say which statements were the
    /// same without saying what they were (an unkeyed hash of `SELECT 1` is
    /// easily guessed). Derived from the active key version, so every instance
    /// with the same keys prints the same fingerprint.
    pub fingerprint_key: FingerprintKey,
}

/// Key material that `Debug` never prints.
#[derive(Clone, Copy)]
pub struct FingerprintKey(pub [u8; 32]);

impl std::fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl ExecLimits {
    /// The rows a request that asked for `asked` gets when delivered so: the
    /// default of the delivery when it did not ask, at most its cap.
    pub fn row_cap(&self, delivery: Delivery, asked: Option<u64>) -> RowCap {
        let (default, cap) = match delivery {
            Delivery::Answer => (self.default_max_rows, self.max_rows),
            Delivery::Export => {
                let cap = self.max_export_rows.max(self.max_rows);
                (cap, cap)
            }
        };
        RowCap {
            rows: asked.unwrap_or(default).min(cap),
            lowered_from: asked.filter(|&asked| asked > cap),
        }
    }

    /// The bytes a result delivered so may take as written.
    pub fn result_bytes(&self, delivery: Delivery) -> usize {
        match delivery {
            Delivery::Answer => self.max_result_bytes,
            Delivery::Export => self.max_export_bytes.max(self.max_result_bytes),
        }
    }

    /// A request within these limits: `rows` from [`Self::row_cap`], `timeout`
    /// above the server's maximum lowered to it, absent the default.
    pub fn request(
        &self,
        sql: String,
        params: Vec<Value>,
        rows: RowCap,
        timeout_ms: Option<u64>,
        bigint_as_string: bool,
    ) -> ExecRequest {
        let timeout = timeout_ms
            .map(Duration::from_millis)
            .map_or(self.statement_timeout, |t| t.min(self.statement_timeout));
        ExecRequest {
            sql,
            params,
            max_rows: usize::try_from(rows.rows).unwrap_or(usize::MAX),
            timeout,
            bigint_as_string,
            tag: None,
        }
    }

    /// What decoding a result may allocate.
    pub(crate) fn decode(&self) -> DecodeLimits {
        DecodeLimits {
            row_bytes: self.max_row_bytes,
            result_bytes: self.max_result_bytes,
        }
    }

    /// The tag of the statement a client named `query_id` in the token chain
    /// `chain`: `qg_` and 24 hex digits of an HMAC of both, under the key every
    /// instance derives from the active key version. Any instance computes the
    /// same tag, a client cannot compute one (so it cannot reach another
    /// chain's statements), and it is plain enough to stand in SQL text.
    pub fn query_tag(&self, chain: &str, query_id: &str) -> String {
        use hmac::Mac;
        use std::fmt::Write as _;
        let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.fingerprint_key.0)
        else {
            return String::new();
        };
        mac.update(b"querygate query tag\0");
        mac.update(chain.as_bytes());
        mac.update(b"\0");
        mac.update(query_id.as_bytes());
        let digest = mac.finalize().into_bytes();
        digest[..12].iter().fold(String::from("qg_"), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
    }

    /// A statement's fingerprint: 16 hex digits of an HMAC-SHA256 of its text.
    pub fn fingerprint(&self, sql: &str) -> String {
        use hmac::Mac;
        use std::fmt::Write as _;
        let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.fingerprint_key.0)
        else {
            return String::new();
        };
        mac.update(sql.as_bytes());
        let digest = mac.finalize().into_bytes();
        digest[..8]
            .iter()
            .fold(String::with_capacity(16), |mut out, b| {
                let _ = write!(out, "{b:02x}");
                out
            })
    }
}

/// Logs a finished statement by its fingerprint and duration, never its text,
/// parameters or rows: at debug level always, as a warning when it was slow.
fn log_statement(
    request: &ExecRequest,
    limits: &ExecLimits,
    engine: &str,
    elapsed: Duration,
    outcome: &Result<bool, SqlError>,
) {
    let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    let outcome = match outcome {
        Ok(_) => "ok",
        Err(error) => error.code().as_str(),
    };
    // The fingerprint costs an HMAC: computed only for a line that is written.
    if elapsed >= limits.slow_statement {
        let fingerprint = limits.fingerprint(&request.sql);
        tracing::warn!(engine, fingerprint, elapsed_ms, outcome, "slow statement");
    } else if tracing::enabled!(tracing::Level::DEBUG) {
        let fingerprint = limits.fingerprint(&request.sql);
        tracing::debug!(
            engine,
            fingerprint,
            elapsed_ms,
            outcome,
            "statement finished"
        );
    }
}

/// Starts `request` on `pool`, read-only; resolves once the result's columns are
/// known (or to the error that came first).
///
/// The statement's work is polled here first: a small result usually arrives
/// in one read, so the work ends within this call and no task is spawned. Work
/// that is still running once the columns are known continues on a task of its
/// own, and so does work this call is dropped in the middle of ([`Unfinished`]).
pub(crate) async fn execute(
    pool: &DbPool,
    request: ExecRequest,
    limits: &ExecLimits,
) -> Result<Execution, SqlError> {
    let dialect = pool.dialect();
    policy::check(dialect, &request.sql)?;
    // For a hint on a failure before the first row (the request moves to the work).
    let sql = request.sql.clone();
    let (mut sink, mut header_rx, mut hangup) = rows::channel(limits.decode());
    let (pool, limits) = (pool.clone(), *limits);
    let mut work = Unfinished(Some(Box::pin(async move {
        let started = std::time::Instant::now();
        let work = pool.execute(&request, &mut sink);
        let outcome = tokio::time::timeout(overall_limit(request.timeout), work)
            .await
            .unwrap_or_else(|_| Err(SqlError::timeout()));
        log_statement(
            &request,
            &limits,
            pool.engine().as_str(),
            started.elapsed(),
            &outcome,
        );
        sink.finish(outcome).await;
    })));
    let header = std::future::poll_fn(|cx| {
        if work.poll_unless_done(cx).is_ready() {
            return Poll::Ready(None);
        }
        header_rx.poll_unpin(cx).map(Some)
    })
    .await;
    let header = match header {
        Some(header) => {
            work.detach();
            header
        }
        // The work ended: its header was sent before it did.
        None => header_rx.await,
    };
    let header = header.unwrap_or_else(|_| {
        Err(SqlError::refused(
            ErrorCode::SqlError,
            "the statement could not be completed",
        ))
    });
    match header {
        Ok(mut execution) => {
            execution.hangup = hangup;
            Ok(execution)
        }
        Err(error) => {
            hangup.disarm();
            Err(placeholder_hint(error, dialect, &sql))
        }
    }
}

/// A statement that failed to parse, named an unknown column or got the wrong
/// number of parameters, and that is written with another engine's placeholders
/// (`?` on PostgreSQL, `$1` on MySQL), gets a hint saying the engine's style.
fn placeholder_hint(error: SqlError, dialect: sql_text::Dialect, sql: &str) -> SqlError {
    let SqlError::Statement(mut engine) = error else {
        return error;
    };
    let likely = matches!(
        engine.code,
        ErrorCode::SqlSyntaxError | ErrorCode::SqlColumnNotFound
    ) || engine.message.contains("parameter(s)");
    if let Some(hint) = sql_text::placeholder_hint(sql, dialect).filter(|_| likely) {
        engine.hint = Some(match engine.hint.take() {
            Some(own) => format!("{hint} {own}"),
            None => hint.to_owned(),
        });
    }
    SqlError::Statement(engine)
}

/// A statement's work, boxed so that it can move to a task of its own after
/// being polled here.
type Work = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Work that must run to its end: dropped unfinished, it is spawned, so that
/// a client hanging up cannot cut it between `BEGIN` and `ROLLBACK`.
struct Unfinished(Option<Work>);

impl Unfinished {
    /// Polls the work until it ends; then forgets it.
    fn poll_unless_done(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(work) = self.0.as_mut() else {
            return Poll::Ready(());
        };
        let done = work.as_mut().poll(cx);
        if done.is_ready() {
            self.0 = None;
        }
        done
    }

    /// Lets the rest of the work run on a task of its own.
    fn detach(&mut self) {
        if let Some(work) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(work);
        }
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        self.detach();
    }
}

/// Plans `request.sql` read-only without running it, so that the engine reports
/// syntax and name errors; refuses with `sql_read_only_violation` a plan that
/// would write (PostgreSQL: a `ModifyTable` node, such as a writable `WITH`;
/// MySQL: a writing `select_type`; SQLite: an `OpenWrite` instruction). Used to
/// check generated SQL that is not executed.
pub(crate) async fn validate(pool: &DbPool, request: &ExecRequest) -> Result<(), SqlError> {
    policy::check(pool.dialect(), &request.sql)?;
    // Only queries can be explained. SHOW, DESCRIBE and EXPLAIN itself write
    // nothing; any other kind of statement is not a query at all.
    match sql_text::first_word(&request.sql, pool.dialect()).as_str() {
        "SELECT" | "WITH" | "VALUES" | "TABLE" => {}
        "SHOW" | "DESCRIBE" | "DESC" | "EXPLAIN" => return Ok(()),
        other => {
            return Err(SqlError::refused(
                ErrorCode::SqlReadOnlyViolation,
                format!("{other} is not a query"),
            ));
        }
    }
    // On a task of its own, like a statement: a client hanging up cannot cut the
    // check half-way on a pooled connection.
    let (pool, request) = (pool.clone(), request.clone());
    let check = tokio::spawn(async move {
        tokio::time::timeout(overall_limit(request.timeout), pool.validate(&request))
            .await
            .unwrap_or_else(|_| Err(SqlError::timeout()))
    });
    check.await.unwrap_or_else(|_| {
        Err(SqlError::refused(
            ErrorCode::SqlError,
            "the statement could not be checked",
        ))
    })
}

/// The limit on everything one statement's work may take, setup and cleanup
/// included: a database that goes silent mid-request must not hold a request (and
/// a pooled connection) until TCP gives up.
fn overall_limit(timeout: Duration) -> Duration {
    timeout + Duration::from_secs(5)
}
