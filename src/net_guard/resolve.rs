//! Resolving database host names: once per pool, every answer checked by the
//! host policy before any connection (see [`super`]).
//!
//! Through `hickory-resolver` (asynchronous and cancellable, unlike the system's
//! blocking `getaddrinfo`), with the system's `/etc/resolv.conf` and
//! `/etc/hosts`, or the servers of `DB_DNS_SERVERS`. Where the system
//! configuration cannot be read, the system resolver is used instead.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfigGroup, ResolveHosts, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;

use super::GuardError;

/// How names are resolved.
#[derive(Clone)]
pub(crate) struct Resolver(Inner);

#[derive(Clone)]
enum Inner {
    Dns(Box<TokioResolver>),
    System,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Inner::Dns(_) => "Resolver(dns)",
            Inner::System => "Resolver(system)",
        })
    }
}

impl Resolver {
    /// The resolver for `servers` (none: the system's configuration), with
    /// `timeout` per query.
    pub(crate) fn new(servers: &[SocketAddr], timeout: Duration) -> Self {
        let provider = TokioConnectionProvider::default();
        let builder = if servers.is_empty() {
            match TokioResolver::builder_tokio() {
                Ok(builder) => builder,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the system's resolver configuration; using getaddrinfo");
                    return Self(Inner::System);
                }
            }
        } else {
            let mut group = NameServerConfigGroup::new();
            for server in servers {
                group.merge(NameServerConfigGroup::from_ips_clear(
                    &[server.ip()],
                    server.port(),
                    true,
                ));
            }
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, vec![], group),
                provider,
            )
        };
        let mut builder = builder;
        let options = builder.options_mut();
        options.timeout = timeout;
        options.attempts = 2;
        options.use_hosts_file = ResolveHosts::Always;
        options.ip_strategy = hickory_resolver::config::LookupIpStrategy::Ipv4AndIpv6;
        Self(Inner::Dns(Box::new(builder.build())))
    }

    /// The system's resolver (`getaddrinfo`), for tests and fallbacks.
    pub(crate) fn system() -> Self {
        Self(Inner::System)
    }

    /// The addresses of `host`; `NotFound` when there are none.
    pub(crate) async fn lookup(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<Vec<IpAddr>, GuardError> {
        let addresses: Vec<IpAddr> = match &self.0 {
            Inner::Dns(resolver) => tokio::time::timeout(timeout, resolver.lookup_ip(host))
                .await
                .map_err(|_| GuardError::Timeout)?
                .map_err(|_| GuardError::NotFound)?
                .iter()
                .collect(),
            Inner::System => tokio::time::timeout(timeout, tokio::net::lookup_host((host, port)))
                .await
                .map_err(|_| GuardError::Timeout)?
                .map_err(|_| GuardError::NotFound)?
                .map(|socket| socket.ip())
                .collect(),
        };
        if addresses.is_empty() {
            return Err(GuardError::NotFound);
        }
        Ok(addresses)
    }
}

/// Parses a `DB_DNS_SERVERS` entry: an IP address with an optional port (53).
pub(crate) fn parse_server(entry: &str) -> Result<SocketAddr, String> {
    let entry = entry.trim();
    entry
        .parse::<SocketAddr>()
        .or_else(|_| entry.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("`{entry}` is not an IP address with an optional port"))
}
