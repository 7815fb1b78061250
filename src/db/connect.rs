//! Opening connections and pools, one arm per engine.
//!
//! A pool is opened in two steps: one direct connection first, whose failure is
//! classified precisely (sqlx's pool would retry a refused connection until its
//! acquire timeout and report only "timed out"), then a lazy pool with the same
//! options. The direct connection also reports the server version.

use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPool, MySqlSslMode};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgSslMode};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqlitePool};
use sqlx::{Connection, Executor};

use crate::db::DbSettings;
use crate::db::error::{DbError, classify_connect};
use crate::db::params::{ConnParams, Engine, SslMode};
use crate::db::sqlite_dir::SqliteDir;
use crate::net_guard::NetGuard;

/// A pool of one engine.
#[derive(Debug, Clone)]
pub enum DbPool {
    /// PostgreSQL.
    Postgres(PgPool),
    /// MySQL / MariaDB.
    Mysql(MySqlPool),
    /// SQLite.
    Sqlite(SqlitePool),
}

/// A cached pool and what was learnt when it was opened.
#[derive(Debug, Clone)]
pub struct PoolEntry {
    /// The pool.
    pub pool: DbPool,
    /// The server version seen when it was opened.
    pub server_version: String,
}

const PG_VERSION: &str = "SHOW server_version";
const MYSQL_VERSION: &str = "SELECT VERSION()";
/// Reading the schema table proves the file is a SQLite database.
const SQLITE_VERSION: &str = "SELECT sqlite_version() FROM (SELECT count(*) FROM sqlite_master)";

impl DbPool {
    /// Closes every connection.
    pub async fn close(&self) {
        match self {
            Self::Postgres(pool) => pool.close().await,
            Self::Mysql(pool) => pool.close().await,
            Self::Sqlite(pool) => pool.close().await,
        }
    }

    /// Connections open now, idle or in use.
    pub fn size(&self) -> u32 {
        match self {
            Self::Postgres(pool) => pool.size(),
            Self::Mysql(pool) => pool.size(),
            Self::Sqlite(pool) => pool.size(),
        }
    }

    /// Asks the server for its version through the pool.
    pub async fn server_version(&self, timeout: Duration) -> Result<String, DbError> {
        let (engine, result) = match self {
            Self::Postgres(pool) => (
                Engine::Postgresql,
                with_timeout(
                    timeout,
                    sqlx::query_scalar::<_, String>(PG_VERSION).fetch_one(pool),
                )
                .await,
            ),
            Self::Mysql(pool) => (
                Engine::Mysql,
                with_timeout(
                    timeout,
                    sqlx::query_scalar::<_, String>(MYSQL_VERSION).fetch_one(pool),
                )
                .await,
            ),
            Self::Sqlite(pool) => (
                Engine::Sqlite,
                with_timeout(
                    timeout,
                    sqlx::query_scalar::<_, String>(SQLITE_VERSION).fetch_one(pool),
                )
                .await,
            ),
        };
        result
            .and_then(|r| r.map_err(|e| classify_connect(engine, &e)))
            .map(|raw| display_version(engine, &raw))
    }
}

async fn with_timeout<T>(timeout: Duration, future: impl Future<Output = T>) -> Result<T, DbError> {
    tokio::time::timeout(timeout, future)
        .await
        .map_err(|_| DbError::Timeout)
}

/// A pool that opens connections with `options` when they are needed: small,
/// with the connect timeout for acquiring and the idle limit for keeping.
fn lazy_pool<DB: sqlx::Database>(
    settings: &DbSettings,
    options: <DB::Connection as Connection>::Options,
) -> sqlx::Pool<DB> {
    sqlx::pool::PoolOptions::<DB>::new()
        .max_connections(settings.max_connections)
        .min_connections(0)
        .acquire_timeout(settings.connect_timeout)
        .idle_timeout(Some(settings.pool_idle))
        .connect_lazy_with(options)
}

/// Checks the host policy, proves the credentials with one connection, and returns
/// a lazy pool with the same options.
pub async fn open(
    params: &ConnParams,
    settings: &DbSettings,
    guard: &NetGuard,
    sqlite: &SqliteDir,
) -> Result<PoolEntry, DbError> {
    let timeout = settings.connect_timeout;
    match params.engine {
        Engine::Postgresql => {
            let addresses = guard.check(&params.host, params.port, timeout).await?;
            let (options, version) = first_reachable::<PgConnection>(
                Engine::Postgresql,
                &connect_hosts(params, &addresses),
                |host| pg_options(params, host),
                PG_VERSION,
                timeout,
            )
            .await?;
            let pool = lazy_pool(settings, options);
            Ok(PoolEntry {
                pool: DbPool::Postgres(pool),
                server_version: version,
            })
        }
        Engine::Mysql => {
            let addresses = guard.check(&params.host, params.port, timeout).await?;
            let (options, version) = first_reachable::<MySqlConnection>(
                Engine::Mysql,
                &connect_hosts(params, &addresses),
                |host| mysql_options(params, host),
                MYSQL_VERSION,
                timeout,
            )
            .await?;
            let pool = lazy_pool(settings, options);
            Ok(PoolEntry {
                pool: DbPool::Mysql(pool),
                server_version: version,
            })
        }
        Engine::Sqlite => {
            let options = SqliteConnectOptions::new()
                .filename(sqlite.resolve(&params.database)?)
                .read_only(true)
                .create_if_missing(false)
                .pragma("query_only", "ON")
                .busy_timeout(timeout);
            let version =
                probe::<SqliteConnection>(Engine::Sqlite, &options, SQLITE_VERSION, timeout)
                    .await?;
            let pool = lazy_pool(settings, options);
            Ok(PoolEntry {
                pool: DbPool::Sqlite(pool),
                server_version: version,
            })
        }
    }
}

/// The options for the first host that accepts a connection, and its version.
/// Only a refused connection moves on to the next address (a host name may resolve
/// to an IPv6 address the server does not listen on); any other failure is the
/// answer.
async fn first_reachable<C>(
    engine: Engine,
    hosts: &[String],
    options_for: impl Fn(&str) -> <C as Connection>::Options,
    version_sql: &'static str,
    timeout: Duration,
) -> Result<(<C as Connection>::Options, String), DbError>
where
    C: Connection,
    for<'c> &'c mut C: Executor<'c, Database = C::Database>,
    String: for<'r> sqlx::Decode<'r, C::Database> + sqlx::Type<C::Database>,
    for<'q> <C::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<C::Database>,
    usize: sqlx::ColumnIndex<<C::Database as sqlx::Database>::Row>,
{
    let mut last = DbError::HostNotFound;
    for host in hosts {
        let options = options_for(host);
        match probe::<C>(engine, &options, version_sql, timeout).await {
            Ok(version) => return Ok((options, version)),
            Err(DbError::ConnectionRefused) => last = DbError::ConnectionRefused,
            Err(other) => return Err(other),
        }
    }
    Err(last)
}

/// Opens one connection, reads the version, closes it.
async fn probe<C>(
    engine: Engine,
    options: &<C as Connection>::Options,
    version_sql: &'static str,
    timeout: Duration,
) -> Result<String, DbError>
where
    C: Connection,
    for<'c> &'c mut C: Executor<'c, Database = C::Database>,
    String: for<'r> sqlx::Decode<'r, C::Database> + sqlx::Type<C::Database>,
    for<'q> <C::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<C::Database>,
    usize: sqlx::ColumnIndex<<C::Database as sqlx::Database>::Row>,
{
    let classify = |error: sqlx::Error| classify_connect(engine, &error);
    let mut connection = with_timeout(timeout, C::connect_with(options))
        .await?
        .map_err(classify)?;
    let raw: String = with_timeout(
        timeout,
        sqlx::query_scalar::<C::Database, String>(version_sql).fetch_one(&mut connection),
    )
    .await?
    .map_err(classify)?;
    // The probe is done; a failure to say goodbye politely changes nothing.
    let _ = connection.close().await;
    Ok(display_version(engine, &raw))
}

/// Where to connect. Without TLS: the addresses the host policy checked (at most
/// four), so that resolving the name again for each pooled connection cannot reach
/// another host. With TLS: the name, which the handshake needs (SNI routes many
/// hosted databases; verify-full checks it), at the price of that second lookup.
fn connect_hosts(params: &ConnParams, checked: &[std::net::IpAddr]) -> Vec<String> {
    match params.ssl {
        SslMode::Disable => checked.iter().take(4).map(ToString::to_string).collect(),
        SslMode::Prefer | SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            vec![params.host.clone()]
        }
    }
}

fn pg_options(params: &ConnParams, host: &str) -> PgConnectOptions {
    // `new_without_pgpass` keeps the server's own ~/.pgpass away from client
    // connections; every field that matters is then set explicitly.
    PgConnectOptions::new_without_pgpass()
        .host(host)
        .port(params.port)
        .username(&params.username)
        .password(params.password.expose())
        .database(&params.database)
        .ssl_mode(match params.ssl {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require => PgSslMode::Require,
            SslMode::VerifyCa => PgSslMode::VerifyCa,
            SslMode::VerifyFull => PgSslMode::VerifyFull,
        })
        .application_name("querygate")
}

fn mysql_options(params: &ConnParams, host: &str) -> MySqlConnectOptions {
    let options = MySqlConnectOptions::new()
        .host(host)
        .port(params.port)
        .username(&params.username);
    // sqlx scrambles `Some("")` into a non-empty auth response, which servers refuse
    // for accounts without a password; no password must be sent as none at all.
    let options = match params.password.expose() {
        "" => options,
        password => options.password(password),
    };
    options
        .database(&params.database)
        .charset("utf8mb4")
        .ssl_mode(match params.ssl {
            SslMode::Disable => MySqlSslMode::Disabled,
            SslMode::Prefer => MySqlSslMode::Preferred,
            SslMode::Require => MySqlSslMode::Required,
            SslMode::VerifyCa => MySqlSslMode::VerifyCa,
            SslMode::VerifyFull => MySqlSslMode::VerifyIdentity,
        })
}

/// `PostgreSQL 15.4`, `MariaDB 10.11.6`, `MySQL 8.0.36`, `SQLite 3.46.0`.
fn display_version(engine: Engine, raw: &str) -> String {
    let raw = raw.trim();
    match engine {
        Engine::Postgresql => {
            format!(
                "PostgreSQL {}",
                raw.split_whitespace().next().unwrap_or(raw)
            )
        }
        Engine::Mysql => match raw.find("-MariaDB") {
            Some(end) => format!("MariaDB {}", &raw[..end]),
            None => format!("MySQL {}", raw.split('-').next().unwrap_or(raw)),
        },
        Engine::Sqlite => format!("SQLite {raw}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_address_falls_through_to_the_next_one() {
        // This machine's PostgreSQL listens on 127.0.0.1 only, as the test setup has it.
        let params = ConnParams {
            engine: Engine::Postgresql,
            host: "localhost".into(),
            port: 5432,
            username: "postgres".into(),
            password: crate::secret::Secret::default(),
            database: "test".into(),
            ssl: SslMode::Disable,
        };
        let hosts = ["::1".to_owned(), "127.0.0.1".to_owned()];
        let (options, version) = first_reachable::<PgConnection>(
            Engine::Postgresql,
            &hosts,
            |host| pg_options(&params, host),
            PG_VERSION,
            Duration::from_secs(5),
        )
        .await
        .expect("the second address answers");
        assert_eq!(options.get_host(), "127.0.0.1");
        assert!(version.starts_with("PostgreSQL "));
    }

    #[test]
    fn versions_are_shown_with_the_product_name() {
        assert_eq!(
            display_version(Engine::Postgresql, "15.19 (Debian 15.19-0+deb12u1)"),
            "PostgreSQL 15.19"
        );
        assert_eq!(
            display_version(Engine::Mysql, "10.11.19-MariaDB-0+deb12u1"),
            "MariaDB 10.11.19"
        );
        assert_eq!(
            display_version(Engine::Mysql, "8.0.36-0ubuntu0.22.04.1"),
            "MySQL 8.0.36"
        );
        assert_eq!(display_version(Engine::Sqlite, "3.46.0"), "SQLite 3.46.0");
    }
}
