//! Which instance this is, and whether it is serving or draining.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Semaphore;

/// The instance's identity and readiness, shared by every request.
#[derive(Debug)]
pub struct Lifecycle {
    instance: String,
    draining: AtomicBool,
    /// The `MAX_CONCURRENT_REQUESTS` places of requests being served.
    places: Arc<Semaphore>,
}

impl Lifecycle {
    /// A serving instance called `instance` that serves `places` requests at once.
    pub(crate) fn new(instance: String, places: usize) -> Self {
        Self {
            instance,
            draining: AtomicBool::new(false),
            places: Arc::new(Semaphore::new(places)),
        }
    }

    /// The places of requests being served ([`crate::middleware::overload`]).
    pub(crate) fn places(&self) -> Arc<Semaphore> {
        Arc::clone(&self.places)
    }

    /// Whether every place is taken: a new request would be refused as
    /// `overloaded`, so readiness says so too.
    pub(crate) fn is_saturated(&self) -> bool {
        self.places.available_permits() == 0
    }

    /// The name in `X-Served-By` and in logs.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Turns the instance not-ready for good (shutdown has begun).
    pub(crate) fn begin_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether the instance should receive new requests.
    pub(crate) fn is_ready(&self) -> bool {
        !self.draining.load(Ordering::SeqCst)
    }
}

/// This instance's name: `QUERYGATE_INSTANCE` if set, else Render's
/// `RENDER_INSTANCE_ID`, else the host name.
pub fn instance_name(configured: Option<&str>) -> String {
    let from_env = |name: &str| std::env::var(name).ok();
    let hostname = || {
        from_env("HOSTNAME").or_else(|| {
            ["/proc/sys/kernel/hostname", "/etc/hostname"]
                .iter()
                .find_map(|path| std::fs::read_to_string(path).ok())
        })
    };
    configured
        .map(str::to_owned)
        .or_else(|| from_env("RENDER_INSTANCE_ID"))
        .or_else(hostname)
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_else(|| "querygate".to_owned())
}
