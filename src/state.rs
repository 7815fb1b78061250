//! The state every handler shares. Only accelerators live here (pools, keys derived
//! at start); nothing a later request depends on.

use std::sync::Arc;
use std::time::Duration;

use crate::ai::AiClient;
use crate::config::{Config, Environment};
use crate::db::execute::ExecLimits;
use crate::db::sqlite_dir::SqliteDir;
use crate::db::{Databases, DbSettings};
use crate::lifecycle::{Lifecycle, instance_name};
use crate::middleware::rate_limit::LocalLimits;
use crate::net_guard::NetGuard;
use crate::shared::Shared;
use crate::token::keys::{self, KeySource};
use crate::token::{TokenPolicy, TokenService};

/// Shared, cheaply cloned state.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The configuration.
    pub config: Arc<Config>,
    /// Token issue and verification.
    pub tokens: Arc<TokenService>,
    /// The database layer.
    pub db: Arc<Databases>,
    /// The model client, when one is configured.
    pub ai: Option<Arc<AiClient>>,
    /// The limits of every statement, from the configuration.
    pub limits: ExecLimits,
    /// Which instance this is, and whether it is draining.
    pub lifecycle: Arc<Lifecycle>,
    /// What instances share through Redis, when `REDIS_URL` is set.
    pub shared: Option<Arc<Shared>>,
    /// Every client's rate limit, decided here (`None`: limiting is off).
    pub(crate) rate: Option<Arc<LocalLimits>>,
}

impl axum::extract::FromRef<AppState> for crate::token::extract::TokenGate {
    fn from_ref(state: &AppState) -> Self {
        Self {
            tokens: Arc::clone(&state.tokens),
            shared: state.shared.clone(),
        }
    }
}

/// Rows returned when the client does not say (within `MAX_ROWS`).
pub(crate) const DEFAULT_MAX_ROWS: u64 = 1_000;

impl AppState {
    /// The configured model, or `ai_not_configured`.
    pub(crate) fn model(&self) -> Result<&AiClient, crate::error::AppError> {
        self.ai
            .as_deref()
            .ok_or_else(|| crate::ai::AiError::NotConfigured.into())
    }
}

/// Why the server could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Keys could not be loaded.
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    /// `REDIS_URL` could not be used.
    #[error(transparent)]
    Redis(#[from] crate::shared::BadRedisUrl),
    /// The SQLite folder or the demo database could not be prepared.
    #[error("SQLite folder {path}: {source}")]
    Sqlite {
        /// The folder.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl AppState {
    /// Loads keys, prepares the SQLite folder and the demo, and builds the state.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let production = config.environment == Environment::Production;
        let (ring, source) = keys::load(
            config.keys.as_ref(),
            &config.keys_dir,
            config.active_kid.as_deref(),
            production,
        )?;
        match &source {
            KeySource::CreatedDevelopmentKey(path) => tracing::warn!(
                path = %path.display(),
                "NO KEYS CONFIGURED: created a DEVELOPMENT key. Tokens it signs are only as safe as this file; \
                 set QUERYGATE_KEYS or run `querygate keygen` before going to production"
            ),
            KeySource::Environment => {
                tracing::info!(kids = ?ring.kids(), active = %ring.active().kid, "keys loaded from QUERYGATE_KEYS")
            }
            KeySource::Folder(dir) => {
                tracing::info!(kids = ?ring.kids(), active = %ring.active().kid, dir = %dir.display(), "keys loaded from folder")
            }
        }
        let sqlite = SqliteDir::open(&config.sqlite_dir)
            .await
            .map_err(|source| StartupError::Sqlite {
                path: config.sqlite_dir.clone(),
                source,
            })?;
        let shared = Shared::from_config(&config)?.map(Arc::new);
        if shared.is_some() {
            tracing::info!(
                "REDIS_URL is set: rate limits and revoked tokens are shared with every instance on that Redis"
            );
        } else {
            tracing::info!(
                "REDIS_URL is not set: rate limits are this instance's own, and disconnect cannot revoke tokens"
            );
        }
        let state = Self::from_parts(config, ring, sqlite, shared);
        if let Some(shared) = &state.shared {
            shared.start(state.rate.clone());
        }
        Ok(state)
    }

    /// The state from an already loaded key ring, SQLite folder and shared store.
    pub(crate) fn from_parts(
        config: Config,
        ring: keys::KeyRing,
        sqlite: SqliteDir,
        shared: Option<Arc<Shared>>,
    ) -> Self {
        let settings = db_settings(&config);
        let limits = exec_limits(&config, &settings, &ring);
        let lifecycle = Arc::new(Lifecycle::new(
            instance_name(config.instance.as_deref()),
            usize::try_from(config.max_concurrent_requests).unwrap_or(usize::MAX),
        ));
        let rate = (config.rate_limit_max_requests > 0).then(|| {
            Arc::new(LocalLimits::new(
                config.rate_limit_max_requests,
                Duration::from_millis(config.rate_limit_window_ms),
                shared.is_some(),
            ))
        });
        Self {
            ai: model_client(&config),
            limits,
            lifecycle,
            shared,
            rate,
            tokens: Arc::new(TokenService::new(ring, token_policy(&config))),
            db: Arc::new(Databases::new(settings, limits, net_guard(&config), sqlite)),
            config: Arc::new(config),
        }
    }
}

fn token_policy(config: &Config) -> TokenPolicy {
    TokenPolicy {
        issuer: config.token_issuer.clone(),
        audience: config.token_audience.clone(),
        ttl: i64::try_from(config.token_ttl).unwrap_or(i64::MAX),
        max_lifetime: i64::try_from(config.token_max_lifetime).unwrap_or(i64::MAX),
        leeway: config.token_leeway,
        algorithm: config.token_algorithm,
    }
}

fn db_settings(config: &Config) -> DbSettings {
    DbSettings {
        connect_timeout: Duration::from_millis(config.db_connect_timeout_ms),
        max_connections: config.pool_max_connections,
        pool_idle: Duration::from_secs(config.pool_idle_secs),
        max_pools: config.pool_max_pools,
        schema_ttl: Duration::from_secs(config.schema_cache_ttl_secs),
        statement_timeout: Duration::from_millis(config.statement_timeout_ms),
        max_row_bytes: usize::try_from(config.max_row_bytes).unwrap_or(usize::MAX),
    }
}

/// The limits of every statement; statement fingerprints in the logs are keyed
/// by the active key version.
fn exec_limits(config: &Config, settings: &DbSettings, ring: &keys::KeyRing) -> ExecLimits {
    ExecLimits {
        default_max_rows: DEFAULT_MAX_ROWS,
        max_rows: config.max_rows,
        max_export_rows: config.max_export_rows,
        statement_timeout: settings.statement_timeout,
        max_row_bytes: settings.max_row_bytes,
        max_result_bytes: usize::try_from(config.max_result_bytes).unwrap_or(usize::MAX),
        max_export_bytes: usize::try_from(config.max_export_bytes).unwrap_or(usize::MAX),
        slow_statement: Duration::from_millis(config.slow_statement_ms),
        fingerprint_key: crate::db::execute::FingerprintKey(
            ring.active()
                .fingerprint(&[b"querygate statement fingerprints"]),
        ),
    }
}

fn net_guard(config: &Config) -> NetGuard {
    let resolver = crate::net_guard::Resolver::new(
        &config.db_dns_servers,
        Duration::from_millis(config.db_connect_timeout_ms),
    );
    NetGuard::new(
        &config.db_allowed_hosts,
        &config.db_denied_networks,
        config.environment == Environment::Production,
    )
    .with_resolver(resolver)
}

/// The model client, when one is configured; a client that cannot be built
/// turns natural-language queries off rather than stopping the server.
fn model_client(config: &Config) -> Option<Arc<AiClient>> {
    let settings = config.ai_settings()?;
    match AiClient::new(settings) {
        Ok(client) => Some(Arc::new(client)),
        Err(error) => {
            tracing::error!(%error, "the model client could not be built; natural-language queries are off");
            None
        }
    }
}
