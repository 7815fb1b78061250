//! Command line and environment configuration.
//!
//! Every setting is a flag with an environment variable of the same meaning, so
//! `querygate serve --help` is the configuration manual. Names of the replaced
//! Node app (`PORT`, `FRONTEND_URL`, `RATE_LIMIT_*`, `OPENAI_*`) are kept.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::secret::Secret;

/// querygate: a stateless HTTP API to explore PostgreSQL, MySQL/MariaDB and SQLite.
#[derive(Debug, Parser)]
#[command(name = "querygate", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do; without a subcommand querygate serves.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Server settings, when no subcommand is given.
    #[command(flatten)]
    pub serve: Config,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[expect(clippy::large_enum_variant, reason = "parsed once at start")]
pub enum Command {
    /// Serve the HTTP API (the default).
    Serve(Config),
    /// Create a new key version.
    Keygen(KeygenArgs),
}

/// Arguments of `querygate keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Id of the new version; defaults to `k` followed by the UTC time
    /// (`k20260101T120000`), so ids sort by age.
    #[arg(long)]
    pub kid: Option<String>,
    /// Folder to write `<kid>.key` into (mode 0600).
    #[arg(long, env = "QUERYGATE_KEYS_DIR", default_value = "keys")]
    pub keys_dir: PathBuf,
    /// Print `kid:SECRET` for `QUERYGATE_KEYS` instead of writing a file.
    #[arg(long)]
    pub print: bool,
}

/// Whether this is a development or a production deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Environment {
    /// Creates a development key when none is configured; readable logs.
    Development,
    /// Refuses to start without keys; JSON logs.
    Production,
}

/// What a request gets when a shared store cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailMode {
    /// Serve the request as if nothing were revoked.
    Open,
    /// Refuse the request with 503.
    Closed,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// All settings of the server.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on. Defaults to `127.0.0.1` in development (which may
    /// reach loopback databases, so it must not be reachable from the network) and
    /// to `0.0.0.0` in production.
    #[arg(long, env = "HOST")]
    pub host: Option<IpAddr>,
    /// Port to listen on (0 picks a free one and logs it).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// Threads that serve requests; defaults to the CPUs the process may use
    /// (its cgroup quota included). With one, tokio's single-threaded scheduler
    /// runs everything on one thread, which costs less per request than one
    /// worker of the multi-threaded one (BENCHMARKS.md).
    #[arg(long, env = "TOKIO_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,
    /// `development` or `production`. Production refuses to start without keys.
    #[arg(
        long = "env",
        env = "QUERYGATE_ENV",
        value_enum,
        default_value = "development"
    )]
    pub environment: Environment,
    /// Log format; defaults to `json` in production and `pretty` otherwise.
    #[arg(long, env = "LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// Key versions as `kid1:SECRET,kid2:SECRET` (standard base64 of at least 32
    /// random bytes); the first is active. Overrides the keys folder.
    #[arg(long, env = "QUERYGATE_KEYS", hide_env_values = true, value_parser = Secret::parse)]
    pub keys: Option<Secret>,
    /// Folder of `<kid>.key` files, used when `QUERYGATE_KEYS` is not set.
    #[arg(long, env = "QUERYGATE_KEYS_DIR", default_value = "keys")]
    pub keys_dir: PathBuf,
    /// The active key version in the keys folder; defaults to the newest file.
    #[arg(long, env = "QUERYGATE_ACTIVE_KID")]
    pub active_kid: Option<String>,

    /// Lifetime of one token, in seconds.
    #[arg(long, env = "TOKEN_TTL", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub token_ttl: u64,
    /// How long a chain of refreshed tokens may live after the first connect, in seconds.
    #[arg(long, env = "TOKEN_MAX_LIFETIME", default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub token_max_lifetime: u64,
    /// Allowed clock skew between instances when checking `exp` and `nbf`, in seconds.
    #[arg(long, env = "TOKEN_LEEWAY", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub token_leeway: u64,
    /// The `iss` claim written and required.
    #[arg(long, env = "TOKEN_ISSUER", default_value = "querygate")]
    pub token_issuer: String,
    /// The `aud` claim written and required.
    #[arg(long, env = "TOKEN_AUDIENCE", default_value = "querygate")]
    pub token_audience: String,
    /// The HMAC algorithm that signs tokens; only this one is accepted.
    #[arg(long, env = "TOKEN_ALGORITHM", value_enum, default_value = "HS256")]
    pub token_algorithm: crate::token::TokenAlgorithm,

    /// Folder holding the SQLite databases clients may open by name; the demo
    /// database is created here on start.
    #[arg(long, env = "SQLITE_DIR", default_value = "data")]
    pub sqlite_dir: PathBuf,
    /// Upper bound on rows of one JSON answer (`maxRows` above it is lowered to
    /// it, and the answer's `x-row-limit-lowered-from` header says so); 1,000
    /// when the request does not say.
    #[arg(long, env = "MAX_ROWS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_rows: u64,
    /// Upper bound on the size of one JSON answer's rows as written, in bytes;
    /// rows past it are left out and the result is marked truncated.
    #[arg(long, env = "MAX_RESULT_BYTES", default_value_t = 64 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..))]
    pub max_result_bytes: u64,
    /// Upper bound on rows of one CSV or NDJSON export (`Accept: text/csv` or
    /// `application/x-ndjson`), which streams with flat memory; never below
    /// `MAX_ROWS`. An export whose request does not say `maxRows` gets every row
    /// up to it.
    #[arg(long, env = "MAX_EXPORT_ROWS", default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub max_export_rows: u64,
    /// Upper bound on the size of one CSV or NDJSON export as written, in bytes;
    /// never below `MAX_RESULT_BYTES`. Rows past it are left out and the export
    /// says it was truncated.
    #[arg(long, env = "MAX_EXPORT_BYTES", default_value_t = 1024 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..))]
    pub max_export_bytes: u64,
    /// Upper bound on one row as the database sends it, in bytes: a larger row is
    /// refused before it is read into memory (`sql_error`), so that one value
    /// cannot take the instance's memory.
    #[arg(long, env = "MAX_ROW_BYTES", default_value_t = 8 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..=1_073_741_824))]
    pub max_row_bytes: u64,
    /// Upper bound on the run time of one statement, in milliseconds.
    #[arg(long, env = "STATEMENT_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub statement_timeout_ms: u64,
    /// A statement that takes at least this long is logged as slow, by its
    /// fingerprint (a keyed hash) and duration, never its text, in milliseconds; 0
    /// logs every statement so.
    #[arg(long, env = "SLOW_STATEMENT_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub slow_statement_ms: u64,
    /// Time allowed to resolve, reach and log in to a database, in milliseconds.
    #[arg(long, env = "DB_CONNECT_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub db_connect_timeout_ms: u64,
    /// Comma-separated host names, `*.suffix` patterns or CIDR networks clients may
    /// connect to; empty allows every host not denied. It only narrows: a denied
    /// address stays denied.
    #[arg(long, env = "DB_ALLOWED_HOSTS", value_delimiter = ',')]
    pub db_allowed_hosts: Vec<String>,
    /// Comma-separated CIDR networks clients may never reach, e.g. `10.0.0.0/8`,
    /// added to the built-in list (0.0.0.0/8, ::, link-local and cloud metadata,
    /// multicast, broadcast; in production also loopback), which always holds.
    #[arg(long, env = "DB_DENIED_NETWORKS", value_delimiter = ',')]
    pub db_denied_networks: Vec<ipnet::IpNet>,
    /// Comma-separated DNS servers (`ip` or `ip:port`) that resolve database host
    /// names; empty uses the system's `/etc/resolv.conf`. `/etc/hosts` is read
    /// either way.
    #[arg(long, env = "DB_DNS_SERVERS", value_delimiter = ',', value_parser = crate::net_guard::parse_dns_server)]
    pub db_dns_servers: Vec<std::net::SocketAddr>,
    /// Connection pools kept in memory at most (one per distinct connection).
    #[arg(long, env = "POOL_MAX_POOLS", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub pool_max_pools: u64,
    /// Connections per pool at most.
    #[arg(long, env = "POOL_MAX_CONNECTIONS", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub pool_max_connections: u32,
    /// Seconds a schema read is reused by later schema and generate-sql requests
    /// for the same connection; 0 reads the catalog every time.
    #[arg(long, env = "SCHEMA_CACHE_TTL_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub schema_cache_ttl_secs: u64,
    /// Seconds an unused pool is kept before it is closed.
    #[arg(long, env = "POOL_IDLE_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub pool_idle_secs: u64,

    /// The single page app's origin, allowed by CORS.
    #[arg(long, env = "FRONTEND_URL")]
    pub frontend_url: Option<String>,
    /// More allowed CORS origins, comma-separated; `*` allows any origin.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub cors_allowed_origins: Vec<String>,
    /// Length of the rate limiting window, in milliseconds.
    #[arg(long, env = "RATE_LIMIT_WINDOW_MS", default_value_t = 900_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub rate_limit_window_ms: u64,
    /// Requests one client address may make at once; it regains them evenly over
    /// the window (GCRA), so a steady client gets this many per window. 0 turns
    /// limiting off.
    #[arg(long, env = "RATE_LIMIT_MAX_REQUESTS", default_value_t = 1000)]
    pub rate_limit_max_requests: u32,
    /// Take the client address from `X-Forwarded-For` (behind a load balancer).
    #[arg(long, env = "TRUST_PROXY", default_value_t = false, action = clap::ArgAction::Set)]
    pub trust_proxy: bool,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1_048_576)]
    pub max_body_bytes: usize,
    /// Time a client has to send a request's headers, and the longest a
    /// kept-alive connection may wait for its next request, in milliseconds.
    #[arg(long, env = "HTTP_HEADER_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub http_header_timeout_ms: u64,
    /// Time a client has to send a request's whole body, from the end of its
    /// headers, in milliseconds (408 past it, however slowly the body trickles).
    /// Bodies are read before the request takes a MAX_CONCURRENT_REQUESTS place.
    #[arg(long, env = "HTTP_BODY_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub http_body_timeout_ms: u64,
    /// Connections open at once at most (kept below the open-file limit, which is
    /// raised to its hard limit at start); more are closed when accepted.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// Connections one client address may hold at once; 0 turns the cap off. Not
    /// applied with `TRUST_PROXY=true`, where the peers are the proxies.
    #[arg(long, env = "MAX_CONNECTIONS_PER_CLIENT", default_value_t = 256, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub max_connections_per_client: u64,
    /// Requests served at once at most; more are answered 503 `overloaded` with
    /// `Retry-After` (health and readiness checks are always served).
    #[arg(long, env = "MAX_CONCURRENT_REQUESTS", default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_concurrent_requests: u64,
    /// Time requests in flight get to finish after SIGTERM, in milliseconds.
    #[arg(long, env = "SHUTDOWN_GRACE_MS", default_value_t = 25_000, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub shutdown_grace_ms: u64,
    /// This instance's name in the `X-Served-By` header and in logs; defaults to
    /// Render's `RENDER_INSTANCE_ID`, then the host name.
    #[arg(long, env = "QUERYGATE_INSTANCE")]
    pub instance: Option<String>,

    /// Redis for what every instance must share — rate limits and revoked token
    /// chains, never sessions (`redis://…`, or `rediss://…` for TLS). Without it
    /// each instance limits on its own and `disconnect` cannot revoke a token.
    #[arg(long, env = "REDIS_URL", hide_env_values = true, value_parser = Secret::parse)]
    pub redis_url: Option<Secret>,
    /// The prefix of every key querygate writes in Redis.
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "querygate:")]
    pub redis_key_prefix: String,
    /// Time allowed for each Redis command, in milliseconds. No request waits
    /// for Redis but `disconnect`: limits are exchanged and revocations heard in
    /// the background.
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub redis_timeout_ms: u64,
    /// Time allowed for one connection to Redis — TCP, TLS and the login, about
    /// three round trips — in milliseconds: enough for a store across an ocean.
    #[arg(long, env = "REDIS_CONNECT_TIMEOUT_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub redis_connect_timeout_ms: u64,
    /// A token-bearing request while this instance is not subscribed to the
    /// revocations (Redis down): `open` serves it by the revocations it knows
    /// (and logs a warning at most once a minute), `closed` answers 503
    /// `revocation_unavailable` — and a `closed` instance is not ready until it
    /// has read the revocations once.
    #[arg(long, env = "REVOCATION_FAIL_MODE", value_enum, default_value_t = FailMode::Open)]
    pub revocation_fail_mode: FailMode,

    /// API key for the model server; optional for servers that need none.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true, value_parser = Secret::parse)]
    pub openai_api_key: Option<Secret>,
    /// Base URL of an OpenAI-compatible API (default `https://api.openai.com/v1`).
    /// Setting it enables natural-language queries even without a key, for local
    /// servers that need none.
    #[arg(long, env = "OPENAI_BASE_URL")]
    pub openai_base_url: Option<String>,
    /// Model used to write SQL.
    #[arg(long, env = "OPENAI_MODEL", default_value = "gpt-4.1-mini")]
    pub openai_model: String,
    /// Time allowed for one answer of the model, in milliseconds.
    #[arg(long, env = "OPENAI_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub openai_timeout_ms: u64,
    /// Largest schema text sent to the model, in characters; larger schemas keep
    /// the tables the question most likely means.
    #[arg(long, env = "AI_SCHEMA_BUDGET_CHARS", default_value_t = 16_000, value_parser = clap::value_parser!(u64).range(200..=1_000_000))]
    pub ai_schema_budget_chars: u64,
}

impl Config {
    /// Every default, ignoring the process environment: what tests start from, so a
    /// `PORT` or `OPENAI_API_KEY` in the developer's shell cannot change a test.
    pub fn defaults() -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let command = Cli::command().mut_args(|arg| arg.env(None::<&str>));
        let matches = command.get_matches_from(["querygate"]);
        match Cli::from_arg_matches(&matches) {
            Ok(cli) => cli.serve,
            Err(error) => unreachable!("the defaults always parse: {error}"),
        }
    }

    /// The model settings, when a model is configured (a key or a base URL).
    pub(crate) fn ai_settings(&self) -> Option<crate::ai::AiSettings> {
        // An empty value counts as unset, as a blank line in an env file means.
        let api_key = self
            .openai_api_key
            .clone()
            .filter(|key| !key.expose().trim().is_empty());
        let base_url = self
            .openai_base_url
            .clone()
            .filter(|url| !url.trim().is_empty());
        if api_key.is_none() && base_url.is_none() {
            return None;
        }
        Some(crate::ai::AiSettings {
            base_url: base_url.unwrap_or_else(|| "https://api.openai.com/v1".to_owned()),
            api_key,
            model: self.openai_model.clone(),
            timeout: std::time::Duration::from_millis(self.openai_timeout_ms),
        })
    }

    /// The address to listen on, and why it was chosen.
    pub fn listen_host(&self) -> (IpAddr, &'static str) {
        match (self.host, self.environment) {
            (Some(host), _) => (host, "HOST is set"),
            (None, Environment::Development) => (
                IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                "development listens on loopback only, since it may reach loopback databases; set HOST to change it",
            ),
            (None, Environment::Production) => (
                IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                "production listens on every interface; set HOST to change it",
            ),
        }
    }

    /// `REDIS_URL`, unless it is unset or empty.
    pub fn redis_url(&self) -> Option<&Secret> {
        self.redis_url
            .as_ref()
            .filter(|url| !url.expose().trim().is_empty())
    }

    /// The log format in force.
    pub fn log_format(&self) -> LogFormat {
        self.log_format.unwrap_or(match self.environment {
            Environment::Production => LogFormat::Json,
            Environment::Development => LogFormat::Pretty,
        })
    }
}
