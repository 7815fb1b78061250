//! MySQL / MariaDB through `mysql_async`, whose pool resets every connection
//! between uses with the protocol's own `COM_RESET_CONNECTION` and then runs our
//! session setup, off the request's path.
//!
//! A pooled session is made read-only before any client statement reaches it:
//! the *session* is read-only (DDL commits implicitly and would otherwise escape a
//! read-only transaction), a `READ ONLY` transaction is open, the statement time
//! limit is set, the character set is `utf8mb4`, `TIMESTAMP`s are read in UTC and
//! the database is the token's. The
//! client's statement then costs two round trips: prepare (the binary protocol
//! refuses a second statement) and execute. After use the reset drops what the
//! statement may have left: user variables, temporary tables, prepared statements,
//! `GET_LOCK` and table locks, `HANDLER`s, session settings, the transaction.
//!
//! TLS goes to the checked address with the certificate verified against the host
//! name (`tls_hostname_override`); no second DNS lookup happens.

mod errors;
mod exec;
mod values;

use std::net::IpAddr;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, SslOpts};

use crate::db::DbSettings;
use crate::db::error::DbError;
use crate::db::params::{ConnParams, SslMode};
use crate::db::pool_cache::PoolSlot;
use crate::db::sql_text::MysqlModes;

pub(crate) use errors::{connect_error, is_connection_loss, statement_error};

/// A pool of MySQL/MariaDB connections for one set of connection parameters.
#[derive(Clone)]
pub struct MyPool {
    pool: Pool,
    /// Options without the session setup, for `KILL QUERY` and checks.
    plain: Opts,
    mariadb: bool,
    /// How the server reads quotes (its `sql_mode` when the pool opened).
    modes: MysqlModes,
    /// The statement limit the pooled sessions are set up with.
    default_timeout: Duration,
    max_row_bytes: usize,
    /// Tells pools apart ([`MyPool::same`]).
    identity: std::sync::Arc<()>,
    /// Its place among the instance's pools, given back when the last handle goes.
    slot: Option<std::sync::Arc<PoolSlot>>,
    wait: Duration,
}

impl std::fmt::Debug for MyPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MyPool")
            .field("mariadb", &self.mariadb)
            .finish_non_exhaustive()
    }
}

impl MyPool {
    /// Proves the credentials with one connection (the handshake and one check,
    /// which reads the version), then opens the pool on the address that answered.
    pub(crate) async fn open(
        params: &ConnParams,
        addresses: &[IpAddr],
        settings: &DbSettings,
    ) -> Result<(Self, String), DbError> {
        let mut last = DbError::HostNotFound;
        for address in addresses.iter().take(4) {
            match probe(params, *address, settings).await {
                Ok(Probe {
                    opts,
                    version,
                    modes,
                }) => {
                    let mariadb = version.contains("MariaDB");
                    let mut pool = Self::pool(&opts, params, settings, mariadb);
                    pool.modes = modes;
                    return Ok((pool, version));
                }
                Err(DbError::ConnectionRefused) => last = DbError::ConnectionRefused,
                Err(other) => return Err(other),
            }
        }
        Err(last)
    }

    fn pool(plain: &Opts, params: &ConnParams, settings: &DbSettings, mariadb: bool) -> Self {
        let max = usize::try_from(settings.max_connections)
            .unwrap_or(1)
            .max(1);
        let pooled = OptsBuilder::from_opts(plain.clone())
            .setup(vec![session_setup(
                mariadb,
                settings.statement_timeout,
                &params.database,
            )])
            .pool_opts(
                PoolOpts::default()
                    .with_constraints(PoolConstraints::new(0, max).unwrap_or_default())
                    .with_reset_connection(true)
                    .with_inactive_connection_ttl(settings.pool_idle),
            );
        Self {
            pool: Pool::new(pooled),
            plain: plain.clone(),
            mariadb,
            modes: MysqlModes::default(),
            default_timeout: settings.statement_timeout,
            max_row_bytes: settings.max_row_bytes,
            identity: std::sync::Arc::new(()),
            slot: None,
            wait: settings.connect_timeout,
        }
    }

    /// The pool holding `slot` for as long as it exists.
    pub(crate) fn holding(mut self, slot: std::sync::Arc<PoolSlot>) -> Self {
        self.slot = Some(slot);
        self
    }

    /// How the server reads quotes.
    pub(crate) fn modes(&self) -> MysqlModes {
        self.modes
    }

    /// Whether two handles share one pool.
    pub fn same(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.identity, &other.identity)
    }

    /// Proves the database answers now; returns the server version.
    pub(crate) async fn check(&self, timeout: Duration) -> Result<String, DbError> {
        let check = async {
            let mut conn = self.pool.get_conn().await?;
            conn.query_first::<String, _>("SELECT VERSION()").await
        };
        // Also bounds the wait for a free connection.
        let version = tokio::time::timeout(timeout, check)
            .await
            .map_err(|_| DbError::Timeout)?
            .map_err(|e| connect_error(&e))?;
        Ok(display_version(&version.unwrap_or_default()))
    }

    /// Closes the pool (idle connections now, busy ones when they come back).
    pub(crate) async fn close(&self) {
        let _ = self.pool.clone().disconnect().await;
    }
}

/// The setup every pooled session runs when it is opened and after each reset:
/// one multi-statement query, one round trip.
fn session_setup(mariadb: bool, timeout: Duration, database: &str) -> String {
    let ms = u64::try_from(timeout.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    let limit = statement_limit(mariadb, ms);
    let database = database.replace('`', "``");
    format!(
        "SET NAMES utf8mb4; SET SESSION TRANSACTION READ ONLY; SET SESSION time_zone = '+00:00'; \
         {limit}; USE `{database}`; START TRANSACTION READ ONLY"
    )
}

/// The engine's statement limit: MariaDB's covers every statement, MySQL's only
/// `SELECT` (the client-side deadline and `KILL QUERY` cover the rest).
fn statement_limit(mariadb: bool, ms: u64) -> String {
    if mariadb {
        format!(
            "SET SESSION max_statement_time = {}.{:03}",
            ms / 1000,
            ms % 1000
        )
    } else {
        format!("SET SESSION max_execution_time = {ms}")
    }
}

/// What a first connection learnt.
struct Probe {
    /// The options that worked.
    opts: Opts,
    /// The server's version, for clients.
    version: String,
    /// How the server reads quotes in a new session: a client statement is
    /// checked by the same rules ([`crate::db::policy`]). A later change of the
    /// server's global `sql_mode` is read when the pool is next opened (pools
    /// live at most 30 minutes).
    modes: MysqlModes,
}

/// Opens one connection to `address`, reads the version and `sql_mode`, closes
/// it.
async fn probe(
    params: &ConnParams,
    address: IpAddr,
    settings: &DbSettings,
) -> Result<Probe, DbError> {
    let mut opts = options(params, address, settings, params.ssl);
    let attempt = |opts: Opts| async move {
        let mut conn = mysql_async::Conn::new(opts).await?;
        let row = conn
            .query_first::<(String, Option<String>), _>("SELECT VERSION(), @@SESSION.sql_mode")
            .await?;
        let _ = conn.disconnect().await;
        Ok::<_, mysql_async::Error>(row.unwrap_or_default())
    };
    let timeout = settings.connect_timeout;
    let mut result = tokio::time::timeout(timeout, attempt(opts.clone())).await;
    let no_tls = matches!(
        result,
        Ok(Err(mysql_async::Error::Driver(
            mysql_async::DriverError::NoClientSslFlagFromServer
        )))
    );
    if no_tls && params.ssl == SslMode::Prefer {
        // `prefer`: TLS when the server offers it, plain otherwise.
        opts = options(params, address, settings, SslMode::Disable);
        result = tokio::time::timeout(timeout, attempt(opts.clone())).await;
    }
    let (version, sql_mode) = result
        .map_err(|_| DbError::Timeout)?
        .map_err(|e| connect_error(&e))?;
    Ok(Probe {
        opts,
        version: display_version(&version),
        modes: MysqlModes::from_sql_mode(&sql_mode.unwrap_or_default()),
    })
}

fn options(params: &ConnParams, address: IpAddr, settings: &DbSettings, ssl: SslMode) -> Opts {
    // `Some("")` would be sent as a scrambled empty password, which servers refuse
    // for accounts without one; no password is sent as none at all.
    let password = Some(params.password.expose()).filter(|p| !p.is_empty());
    OptsBuilder::default()
        .ip_or_hostname(address.to_string())
        .tcp_port(params.port)
        .user(Some(params.username.clone()))
        .pass(password.map(str::to_owned))
        .db_name(Some(params.database.clone()))
        .prefer_socket(false)
        .tcp_nodelay(true)
        // Given, so the driver need not ask (one round trip less), and a row
        // larger than the limit fails before it is buffered.
        .max_allowed_packet(Some(settings.max_row_bytes.saturating_add(1024)))
        .wait_timeout(Some(28_800))
        .ssl_opts(ssl_options(&params.host, ssl))
        .into()
}

fn ssl_options(host: &str, ssl: SslMode) -> Option<SslOpts> {
    let base = SslOpts::default().with_danger_tls_hostname_override(Some(host.to_owned()));
    match ssl {
        SslMode::Disable => None,
        SslMode::Prefer | SslMode::Require => Some(
            base.with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true),
        ),
        SslMode::VerifyCa => Some(base.with_danger_skip_domain_validation(true)),
        SslMode::VerifyFull => Some(base),
    }
}

/// `MariaDB 10.11.6`, `MySQL 8.0.36`.
fn display_version(raw: &str) -> String {
    let raw = raw.trim();
    match raw.find("-MariaDB") {
        Some(end) => format!("MariaDB {}", &raw[..end]),
        None => format!("MySQL {}", raw.split('-').next().unwrap_or(raw)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_shown_with_the_product_name() {
        assert_eq!(
            display_version("10.11.19-MariaDB-0+deb12u1"),
            "MariaDB 10.11.19"
        );
        assert_eq!(display_version("8.0.36-0ubuntu0.22.04.1"), "MySQL 8.0.36");
    }

    #[test]
    fn the_session_setup_quotes_the_database() {
        let setup = session_setup(true, Duration::from_millis(1500), "a`b");
        assert!(setup.contains("USE `a``b`"), "{setup}");
        assert!(setup.contains("max_statement_time = 1.500"), "{setup}");
        assert!(setup.contains("SET SESSION TRANSACTION READ ONLY"));
        assert!(setup.ends_with("START TRANSACTION READ ONLY"));
    }
}
