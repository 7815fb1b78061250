//! A client's statement on a pooled MySQL/MariaDB session (see the module docs):
//! prepare, execute, stream the rows; at the deadline `KILL QUERY` from another
//! connection, since closing this one would leave the statement running.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Row};

use super::values::{self, Kind};
use super::{MyPool, is_connection_loss, statement_error, statement_limit};
use crate::db::budget::{Budget, OverBudget};
use crate::db::execute::ExecRequest;
use crate::db::introspect::{CatalogCap, FIELD_BYTES, Tally};
use crate::db::rows::{Column, RowSink};
use crate::db::sql_error::SqlError;
use crate::db::values::Render;

/// How reading the rows ended.
/// How long the rest of an abandoned result may take to read before the
/// statement is killed instead.
const DRAIN_GRACE: Duration = Duration::from_millis(50);

/// The most closing an abandoned session may take.
const CLOSE_LIMIT: Duration = Duration::from_secs(10);

enum Read {
    /// All rows read; the session is clean.
    Complete,
    /// Stopped early (the cap, the client went away, a value over the decode
    /// budget): rows may be left unread, so the session is closed (see
    /// [`MyPool::close_unread`]); the result's outcome.
    Abandoned(Result<bool, SqlError>),
    /// Cut early, the rest read and dropped so that the session goes on (a
    /// batch); the result's outcome.
    Drained(Result<bool, SqlError>),
}

impl MyPool {
    /// Runs `request` read-only, streaming rows into `sink`; `Ok(truncated)`.
    pub(crate) async fn execute(
        &self,
        request: &ExecRequest,
        sink: &mut RowSink,
    ) -> Result<bool, SqlError> {
        let mut retried = false;
        loop {
            let mut conn = self.connection().await?;
            if request.timeout != self.default_timeout {
                let ms = u64::try_from(request.timeout.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1);
                if let Err(error) = conn.query_drop(statement_limit(self.mariadb, ms)).await {
                    return Err(statement_error(&error, "", self.max_row_bytes));
                }
            }
            sink.restart_clock();
            // A statement the client named carries its tag in a leading comment:
            // the process list shows it, and `cancel` finds it there.
            let tagged = request
                .tag
                .as_ref()
                .map(|tag| format!("/*{tag}*/ {}", request.sql));
            let text = tagged.as_deref().unwrap_or(&request.sql);
            let statement = match conn.prep(text).await {
                Ok(statement) => statement,
                // Nothing of the statement ran on a session that was already gone.
                Err(error) if is_connection_loss(&error) && !retried => {
                    tracing::debug!(
                        "a pooled MySQL connection was dead; sending again on a new one"
                    );
                    retried = true;
                    continue;
                }
                Err(error) => {
                    return Err(statement_error(&error, &request.sql, self.max_row_bytes));
                }
            };
            let deadline = Instant::now() + request.timeout + Duration::from_secs(1);
            let id = conn.id();
            let hangup = sink.hangup();
            let run = self.kill_on_hangup(
                self.run(&mut conn, statement, request, sink, false),
                &hangup,
                id,
            );
            let read = tokio::time::timeout_at(deadline.into(), run).await;
            return match read {
                Ok(Ok(Read::Complete)) => Ok(false),
                Ok(Ok(Read::Drained(outcome))) => outcome,
                Ok(Ok(Read::Abandoned(outcome))) => {
                    tokio::spawn(self.clone().close_unread(conn, id));
                    outcome
                }
                Ok(Err(error)) => Err(error),
                Err(_) => {
                    // The engine's own limit did not stop it (MySQL's covers only
                    // SELECT; a statement can lift MariaDB's for itself).
                    self.kill_query(id).await;
                    drop(conn);
                    Err(SqlError::timeout())
                }
            };
        }
    }

    /// Runs a batch (see [`crate::db::batch`]) in one `REPEATABLE READ`
    /// read-only transaction with a consistent snapshot, ending each step's sink
    /// as its statement ends. A failing statement does not end the transaction;
    /// a lost session or the batch's deadline ends the batch.
    pub(crate) async fn batch(
        &self,
        request: &crate::db::batch::BatchRequest,
        steps: &mut [crate::db::batch::Step],
    ) -> Result<(), SqlError> {
        const BEGIN: &str = "COMMIT; SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; \
                             START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT";
        let mut retried = false;
        let mut conn = loop {
            let mut conn = self.connection().await?;
            match conn.query_drop(BEGIN).await {
                Ok(()) => break conn,
                Err(error) if is_connection_loss(&error) && !retried => retried = true,
                Err(error) => return Err(statement_error(&error, "", self.max_row_bytes)),
            }
        };
        if request.timeout != self.default_timeout {
            let ms = u64::try_from(request.timeout.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            conn.query_drop(statement_limit(self.mariadb, ms))
                .await
                .map_err(|e| statement_error(&e, "", self.max_row_bytes))?;
        }
        let deadline = Instant::now() + request.timeout + Duration::from_secs(1);
        let id = conn.id();
        for step in steps.iter_mut() {
            let (statement, sink) = (&step.request, &mut step.sink);
            sink.restart_clock();
            let tagged = request
                .tag
                .as_ref()
                .map(|tag| format!("/*{tag}*/ {}", statement.sql));
            let text = tagged.as_deref().unwrap_or(&statement.sql);
            let hangup = sink.hangup();
            let work = async {
                let prepared = conn
                    .prep(text)
                    .await
                    .map_err(|e| statement_error(&e, &statement.sql, self.max_row_bytes))?;
                self.run(&mut conn, prepared, statement, sink, true).await
            };
            let read =
                tokio::time::timeout_at(deadline.into(), self.kill_on_hangup(work, &hangup, id));
            let outcome = match read.await {
                Ok(Ok(Read::Complete)) => Ok(false),
                Ok(Ok(Read::Drained(outcome) | Read::Abandoned(outcome))) => outcome,
                Ok(Err(error)) => Err(error),
                Err(_) => {
                    self.kill_query(id).await;
                    return Err(SqlError::timeout());
                }
            };
            let lost = matches!(&outcome, Err(SqlError::Connection(_)));
            step.sink.end(outcome).await;
            if lost {
                return Err(SqlError::Connection(
                    crate::db::error::DbError::ConnectionRefused,
                ));
            }
        }
        Ok(())
    }

    /// Awaits `run`; if the client goes away first, stops the statement with
    /// `KILL QUERY` and goes on reading what is left of it, so that the session
    /// goes back to the pool.
    async fn kill_on_hangup<T>(
        &self,
        run: impl Future<Output = T>,
        hangup: &tokio_util::sync::CancellationToken,
        id: u32,
    ) -> T {
        tokio::pin!(run);
        tokio::select! {
            biased;
            outcome = &mut run => return outcome,
            () = hangup.cancelled() => {}
        }
        tokio::spawn({
            let pool = self.clone();
            async move { pool.kill_query(id).await }
        });
        run.await
    }

    /// A pooled session, waiting at most the connect timeout for one.
    async fn connection(&self) -> Result<Conn, SqlError> {
        tokio::time::timeout(self.wait, self.pool.get_conn())
            .await
            .map_err(|_| SqlError::Connection(crate::db::error::DbError::Timeout))?
            .map_err(|e| SqlError::Connection(super::connect_error(&e)))
    }

    /// Executes `statement`, streaming its rows into `sink`. With `keep`, a
    /// result cut early (the cap, the decode budget) is read to its end and
    /// dropped, so that the session can run the next statement of a batch.
    async fn run(
        &self,
        conn: &mut Conn,
        statement: mysql_async::Statement,
        request: &ExecRequest,
        sink: &mut RowSink,
        keep: bool,
    ) -> Result<Read, SqlError> {
        let params: Vec<_> = request.params.iter().map(values::param).collect();
        let params = if params.is_empty() {
            Params::Empty
        } else {
            Params::Positional(params)
        };
        let fail =
            |error: &mysql_async::Error| statement_error(error, &request.sql, self.max_row_bytes);
        let mut result = conn
            .exec_iter(statement, params)
            .await
            .map_err(|e| fail(&e))?;
        let (columns, kinds): (Vec<Column>, Vec<Kind>) = result
            .columns()
            .map(|columns| columns.iter().map(values::column).unzip())
            .unwrap_or_default();
        // The client went away: the rest is read and dropped (the statement is
        // being stopped), so that the session can go back to the pool.
        let mut hung_up = sink.columns(columns).is_err();
        let render = Render {
            bigint_as_string: request.bigint_as_string,
        };
        let mut count = 0;
        let mut cut = None;
        while let Some(row) = result.next().await.map_err(|e| fail(&e))? {
            if hung_up || cut.is_some() {
                continue;
            }
            count += 1;
            let outcome = if count > request.max_rows {
                Ok(true)
            } else {
                match convert(row, &kinds, render, sink.start_row()) {
                    Ok(row) => {
                        hung_up = sink.row(row).await.is_err();
                        continue;
                    }
                    Err(over) => over.outcome(),
                }
            };
            if !keep {
                return Ok(Read::Abandoned(outcome));
            }
            cut = Some(outcome);
        }
        Ok(cut.map_or(Read::Complete, Read::Drained))
    }

    /// Closes a session that has rows left unread, off the request path. The
    /// protocol's only way back from a result is to read it to its end (even
    /// `COM_QUIT` waits for that in the driver), so a result that does not end
    /// within [`DRAIN_GRACE`] is stopped with `KILL QUERY`, and the closing is
    /// bounded by [`CLOSE_LIMIT`]: a closing that times out drops the socket.
    async fn close_unread(self, conn: Conn, id: u32) {
        let close = conn.disconnect();
        tokio::pin!(close);
        if tokio::time::timeout(DRAIN_GRACE, &mut close).await.is_ok() {
            return;
        }
        let stop = async { tokio::join!(&mut close, self.kill_query(id)) };
        if tokio::time::timeout(CLOSE_LIMIT, stop).await.is_err() {
            tracing::warn!("closing a MySQL session with unread rows timed out; dropped it");
        }
    }

    /// Stops the statement tagged `tag` (its text starts with `/*tag*/`) with
    /// `KILL QUERY`, from a connection of its own with the same credentials (a
    /// user sees and may stop its own threads); whether one was found. MariaDB
    /// stops it by its query id, so a thread that moved on to another statement
    /// is left alone.
    pub(crate) async fn cancel(&self, tag: &str) -> Result<bool, SqlError> {
        let fail = |e: &mysql_async::Error| statement_error(e, "", self.max_row_bytes);
        let work = async {
            let mut other = Conn::new(self.plain.clone())
                .await
                .map_err(|e| SqlError::Connection(super::connect_error(&e)))?;
            let pattern = format!("/*{tag}*/%");
            let found: Vec<(u64, u64)> = other
                .exec(
                    "SELECT ID, QUERY_ID FROM information_schema.PROCESSLIST \
                     WHERE INFO LIKE ? AND ID <> CONNECTION_ID()",
                    (pattern,),
                )
                .await
                .map_err(|e| fail(&e))?;
            for (id, query) in &found {
                let kill = if self.mariadb {
                    format!("KILL QUERY ID {query}")
                } else {
                    format!("KILL QUERY {id}")
                };
                // Gone in the meantime: nothing to stop.
                let _ = other.query_drop(kill).await;
            }
            let _ = other.disconnect().await;
            Ok(!found.is_empty())
        };
        tokio::time::timeout(self.wait, work)
            .await
            .unwrap_or(Err(SqlError::Connection(
                crate::db::error::DbError::Timeout,
            )))
    }

    /// `KILL QUERY` for the statement running on connection `id`, from a
    /// connection of its own (the pool may be full of exactly the statements that
    /// need stopping), bounded in time; a failure leaves nothing worse than before.
    async fn kill_query(&self, id: u32) {
        let kill = async {
            let mut other = Conn::new(self.plain.clone()).await?;
            other.query_drop(format!("KILL QUERY {id}")).await?;
            other.disconnect().await
        };
        match tokio::time::timeout(Duration::from_secs(5), kill).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not stop a MySQL statement")
            }
            Err(_) => tracing::warn!("stopping a MySQL statement timed out"),
        }
    }

    /// Plans `sql` read-only without running it; refuses a plan with a step that
    /// writes (`select_type` INSERT, UPDATE, DELETE or REPLACE).
    pub(crate) async fn validate(&self, request: &ExecRequest) -> Result<(), SqlError> {
        let mut conn = self.connection().await?;
        let explain = format!("EXPLAIN {}", request.sql);
        let plan: Vec<Row> = conn
            .exec(explain.as_str(), ())
            .await
            .map_err(|e| statement_error(&e, &request.sql, self.max_row_bytes))?;
        let writes = plan.iter().any(|row| {
            row.columns_ref()
                .iter()
                .position(|c| c.name_str() == "select_type")
                .and_then(|i| row.as_ref(i))
                .is_some_and(|kind| {
                    matches!(kind, mysql_async::Value::Bytes(b)
                        if matches!(b.as_slice(), b"INSERT" | b"UPDATE" | b"DELETE" | b"REPLACE"))
                })
        });
        if writes {
            return Err(SqlError::plan_writes());
        }
        Ok(())
    }

    /// Runs querygate's own catalogue queries as one multi-statement query (one
    /// round trip); the rows of each, every field as text.
    pub(crate) async fn catalog(
        &self,
        sql: &str,
        cap: CatalogCap,
    ) -> Result<Vec<Vec<Vec<Option<String>>>>, SqlError> {
        let mut conn = self.connection().await?;
        let id = conn.id();
        let fail = |e: &mysql_async::Error| statement_error(e, "", self.max_row_bytes);
        let mut tally = Tally::new(cap);
        let mut sets = Vec::new();
        let over = {
            let mut result = conn.query_iter(sql).await.map_err(|e| fail(&e))?;
            loop {
                if result.is_empty() {
                    break None;
                }
                let mut set = Vec::new();
                let mut over = None;
                while let Some(row) = result.next().await.map_err(|e| fail(&e))? {
                    let fields = text_fields(row);
                    let bytes = fields.iter().flatten().map(String::len).sum::<usize>()
                        + FIELD_BYTES * (fields.len() + 1);
                    if let Err(error) = tally.add(1, bytes) {
                        over = Some(error);
                        break;
                    }
                    set.push(fields);
                }
                sets.push(set);
                if over.is_some() {
                    break over;
                }
            }
        };
        match over {
            // The rest is not read: the session closes instead of going back.
            Some(error) => {
                tokio::spawn(self.clone().close_unread(conn, id));
                Err(error)
            }
            None => Ok(sets),
        }
    }
}

fn convert(
    row: Row,
    kinds: &[Kind],
    render: Render,
    budget: &mut Budget,
) -> Result<Vec<serde_json::Value>, OverBudget> {
    row.unwrap_raw()
        .into_iter()
        .zip(kinds)
        .map(|(value, kind)| {
            let value = value.unwrap_or(mysql_async::Value::NULL);
            values::value(value, *kind, render, budget)
        })
        .collect()
}

fn text_fields(row: Row) -> Vec<Option<String>> {
    row.unwrap_raw()
        .into_iter()
        .map(|value| match value {
            None | Some(mysql_async::Value::NULL) => None,
            Some(mysql_async::Value::Bytes(b)) => Some(String::from_utf8_lossy(&b).into_owned()),
            Some(mysql_async::Value::Int(i)) => Some(i.to_string()),
            Some(mysql_async::Value::UInt(u)) => Some(u.to_string()),
            Some(other) => Some(format!("{other:?}")),
        })
        .collect()
}
