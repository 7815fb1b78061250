//! The accept loop: bounded connections, slow clients cut off, draining on
//! shutdown.
//!
//! - At most `MAX_CONNECTIONS` connections are open at once (kept below the
//!   file-descriptor limit, which the binary raises to its hard limit at start); a
//!   connection over the cap is closed as soon as it is accepted, so one client
//!   cannot starve the process of descriptors.
//! - A request's headers must arrive within `HTTP_HEADER_TIMEOUT_MS`; the same
//!   limit closes a kept-alive connection that sends no next request (hyper starts
//!   the timer when it waits for a request head). Bodies are bounded by
//!   `HTTP_BODY_TIMEOUT_MS` in the middleware.
//! - Accept errors (out of descriptors, aborted handshakes) are logged at most
//!   once a second and followed by a short pause instead of a busy loop.
//! - One client address may hold at most `MAX_CONNECTIONS_PER_CLIENT` of them
//!   (not applied behind a trusted proxy, whose own addresses are the peers), so
//!   a single client cannot take every place.
//! - On shutdown the listener is closed at once (new connections are refused, so a
//!   proxy retries elsewhere) and the instance answers `/api/ready` with 503.
//!   Connections already open are not cut: whatever request still arrives on one
//!   is served, with `Connection: close`, and an idle one closes at its idle
//!   limit. Cutting an idle kept-alive connection would race with a load
//!   balancer that is just sending a request on it. The process ends when every
//!   connection is closed or the grace period is over.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::db::Databases;
use crate::lifecycle::Lifecycle;

mod flushes;

pub(crate) use flushes::Flushes;

/// Limits of the HTTP server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServeLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections one client address may hold at once (`None`: no such cap).
    pub max_per_client: Option<usize>,
    /// Time to receive a request's headers, and to wait for the next request on
    /// a kept-alive connection.
    pub header_timeout: Duration,
    /// Time requests in flight get to finish after shutdown begins.
    pub shutdown_grace: Duration,
}

/// What draining acts on: readiness, and the pools closed at the end.
#[derive(Debug, Clone)]
pub(crate) struct Drain {
    /// Turns `/api/ready` to 503.
    pub lifecycle: Arc<Lifecycle>,
    /// Closed once the connections are gone.
    pub db: Arc<Databases>,
}

/// Serves `router` on `listener` until `shutdown` completes, then drains: the
/// listener closes, requests in flight get `limits.shutdown_grace`.
pub(crate) async fn serve(
    listener: TcpListener,
    router: axum::Router,
    drain_on: Drain,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let places = limits.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(places));
    let clients = Arc::new(Clients::default());
    let builder = http_builder(limits.header_timeout);
    let mut errors = ErrorLog::default();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                errors.record(&error);
                // Out of descriptors (or a transient failure): give the process a
                // moment instead of spinning on the same error.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            errors.over_cap("MAX_CONNECTIONS");
            drop(stream);
            continue;
        };
        let Some(client) = clients.enter(peer.ip(), limits.max_per_client) else {
            errors.over_cap("MAX_CONNECTIONS_PER_CLIENT");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let flushes = Flushes::default();
        let service = router.clone().map_request(with_peer(peer, flushes.clone()));
        let stream = flushes::Counted::new(stream, flushes);
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        tokio::spawn(async move {
            let _ = connection.await;
            drop((permit, client));
        });
    }
    drain(&drain_on, listener, &permits, places, limits.shutdown_grace).await;
    Ok(())
}

/// HTTP/1 and HTTP/2 with the header timeout: the time to receive a request's
/// headers, and to wait for the next request on a kept-alive connection.
fn http_builder(header_timeout: Duration) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(header_timeout))
        .keep_alive_timeout(header_timeout);
    builder
}

/// The end: readiness answers 503, the listener closes, open connections get
/// `grace` to finish (each holds one of `places` permits until it closes), and
/// the pools are closed.
async fn drain(
    state: &Drain,
    listener: TcpListener,
    permits: &Semaphore,
    places: usize,
    grace: Duration,
) {
    state.lifecycle.begin_draining();
    drop(listener);
    let open = places - permits.available_permits();
    tracing::info!(
        connections = open,
        grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
        "draining: new connections are refused, open ones finish"
    );
    let all_closed = permits.acquire_many(u32::try_from(places).unwrap_or(u32::MAX));
    if tokio::time::timeout(grace, all_closed).await.is_err() {
        tracing::warn!("connections still open at the end of the grace period were cut");
    }
    state.db.close_all().await;
}

/// Connections per client address.
#[derive(Default)]
struct Clients {
    open: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

/// A client's place, given back when the connection ends.
struct ClientPlace {
    clients: Arc<Clients>,
    address: std::net::IpAddr,
}

impl Clients {
    fn enter(
        self: &Arc<Self>,
        address: std::net::IpAddr,
        cap: Option<usize>,
    ) -> Option<ClientPlace> {
        let mut open = self.open.lock().ok()?;
        let count = open.entry(address).or_insert(0);
        if cap.is_some_and(|cap| *count >= cap) {
            return None;
        }
        *count += 1;
        Some(ClientPlace {
            clients: Arc::clone(self),
            address,
        })
    }
}

impl Drop for ClientPlace {
    fn drop(&mut self) {
        if let Ok(mut open) = self.clients.open.lock()
            && let Some(count) = open.get_mut(&self.address)
        {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// Tags each request with the connection's peer address (the rate limiter's key)
/// and its [`Flushes`] (a streamed answer that fails waits for one before it
/// aborts).
fn with_peer<B>(
    peer: SocketAddr,
    flushes: Flushes,
) -> impl Fn(axum::http::Request<B>) -> axum::http::Request<B> + Clone {
    move |mut request| {
        let extensions = request.extensions_mut();
        extensions.insert(ConnectInfo(peer));
        extensions.insert(flushes.clone());
        request
    }
}

/// Accept failures, logged at most once a second with a count.
#[derive(Default)]
struct ErrorLog {
    last: Option<Instant>,
    accept_errors: u64,
    refused: u64,
}

impl ErrorLog {
    fn record(&mut self, error: &std::io::Error) {
        self.accept_errors += 1;
        if self.due() {
            tracing::warn!(%error, count = self.accept_errors, "accept failed");
            self.accept_errors = 0;
        }
    }

    fn over_cap(&mut self, cap: &'static str) {
        self.refused += 1;
        if self.due() {
            tracing::warn!(
                count = self.refused,
                cap,
                "connections closed at once: a cap was reached"
            );
            self.refused = 0;
        }
    }

    fn due(&mut self) -> bool {
        let due = self
            .last
            .is_none_or(|last| last.elapsed() >= Duration::from_secs(1));
        if due {
            self.last = Some(Instant::now());
        }
        due
    }
}

/// Raises the soft limit on open files to the hard limit; returns the limit in
/// force.
pub fn raise_file_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(error) => {
            tracing::warn!(%error, "could not raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    }
}

/// The connection cap: the configured one, kept below the file-descriptor limit
/// with room for database connections, logs and the listener.
pub(crate) fn connection_cap(configured: usize, file_limit: Option<u64>) -> usize {
    let room = file_limit
        .and_then(|limit| usize::try_from(limit.saturating_sub(256)).ok())
        .unwrap_or(configured);
    configured.min(room.max(16))
}
