//! querygate: a stateless HTTP API to explore PostgreSQL, MySQL/MariaDB and SQLite.
//!
//! # Architecture
//!
//! - [`config`]: flags and environment variables (clap).
//! - [`token`]: sealed bearer tokens: [`token::keys`] (key versions, HKDF),
//!   [`token::seal`] (AES-256-GCM `cx`), verification, and the bearer extractors.
//! - [`db`]: the user's databases: parameters, host policy, connection, pool cache,
//!   the SQLite folder with the built-in demo.
//! - [`net_guard`]: which database hosts clients may reach.
//! - [`ai`]: a question in plain language to one read-only statement.
//! - [`results`]: a statement's rows written as JSON, CSV or NDJSON.
//! - [`routes`]: the HTTP API, one module per area.
//! - [`error`]: the one error type and its JSON envelope.
//! - [`middleware`]: request ids, tracing spans, rate limiting, CORS, panics.
//! - [`server`]: the accept loop: connection caps, header timeouts, draining.
//!
//! The server keeps no session: every request carries a token from which any
//! instance with the same keys rebuilds what it needs. In memory live only
//! accelerators (connection pools) that any instance can rebuild.

pub(crate) mod ai;
pub mod config;
pub mod db;
pub mod error;
pub(crate) mod extract;
pub mod lifecycle;
pub(crate) mod middleware;
pub(crate) mod net_guard;
pub(crate) mod random;
pub(crate) mod results;
pub(crate) mod routes;
pub mod secret;
pub mod server;
pub mod shared;
pub mod state;
pub mod telemetry;
pub mod token;

use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

pub use config::Config;
pub use state::AppState;

/// The application: every route with every layer.
pub fn app(state: AppState) -> Router {
    middleware::wrap(routes::router(), &state).with_state(state)
}

/// Serves `app(state)` on `listener` until `shutdown` completes, then drains (see
/// [`server`]).
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let config = &state.config;
    let limits = server::ServeLimits {
        max_connections: server::connection_cap(
            usize::try_from(config.max_connections).unwrap_or(usize::MAX),
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft),
        ),
        max_per_client: (config.max_connections_per_client > 0 && !config.trust_proxy)
            .then(|| usize::try_from(config.max_connections_per_client).unwrap_or(usize::MAX)),
        header_timeout: std::time::Duration::from_millis(config.http_header_timeout_ms),
        shutdown_grace: std::time::Duration::from_millis(config.shutdown_grace_ms),
    };
    let drain = server::Drain {
        lifecycle: Arc::clone(&state.lifecycle),
        db: Arc::clone(&state.db),
    };
    server::serve(listener, app(state), drain, limits, shutdown).await
}
