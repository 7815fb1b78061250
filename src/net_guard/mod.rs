//! Which database hosts clients may reach.
//!
//! querygate connects wherever a client asks, which makes it a network pivot if
//! left open. One policy holds in every mode:
//!
//! - **Always denied**, whatever is configured: "this network" (`0.0.0.0/8`, `::`),
//!   link-local and cloud metadata (`169.254.0.0/16`, `fe80::/10`,
//!   `fd00:ec2::254`, Alibaba's `100.100.100.200`), multicast, broadcast and the
//!   reserved `240.0.0.0/4`.
//! - **Production** adds loopback (`127.0.0.0/8`, `::1`).
//! - `DB_DENIED_NETWORKS` **adds** networks; it never lifts the list above.
//! - `DB_ALLOWED_HOSTS` (names, `*.suffix` patterns or CIDR networks) can only
//!   **narrow** what is left: a denied address stays denied even when listed.
//!
//! An address is checked in every form it can take: numeric hosts are read the way
//! the system resolver reads them (`2852039166`, `0251.0376.0251.0376`,
//! `0xa9fea9fe`, `127.1`), and an IPv6 address that carries an IPv4 address
//! (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4
//! `2002::/16`) is checked as that IPv4 address too. Names are resolved once and
//! every answer is checked; the caller connects only to the checked addresses.

mod address;
mod resolve;

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use address::{forms, looks_numeric, parse_numeric_host};
pub(crate) use resolve::{Resolver, parse_server as parse_dns_server};

/// Why a host may not be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum GuardError {
    /// The name does not resolve, or a numeric form is not an address.
    #[error("the host name does not resolve")]
    NotFound,
    /// Resolving took longer than the connect timeout.
    #[error("resolving the host name timed out")]
    Timeout,
    /// An address (or the name) is refused by the policy.
    #[error("refused by {0}")]
    Denied(Denial),
}

/// Which part of the policy refused a host: logged for the operator, never told
/// to the client (it would map the policy for an attacker).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Denial {
    /// A network no client may ever reach (metadata, link-local, …).
    #[error("the built-in denied network {0}")]
    AlwaysDenied(IpNet),
    /// Loopback, which production denies.
    #[error("{0}, loopback, denied in production")]
    Production(IpNet),
    /// A network of `DB_DENIED_NETWORKS`.
    #[error("DB_DENIED_NETWORKS entry {0}")]
    Operator(IpNet),
    /// Neither the name nor every address is in `DB_ALLOWED_HOSTS`.
    #[error("DB_ALLOWED_HOSTS, which lists neither the name nor every address")]
    NotAllowed,
}

/// Networks no client may ever reach.
const ALWAYS_DENIED: [&str; 10] = [
    "0.0.0.0/8",
    "169.254.0.0/16",
    "100.100.100.200/32",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "255.255.255.255/32",
    "::/128",
    "fe80::/10",
    "fd00:ec2::254/128",
    "ff00::/8",
];

/// Networks production adds: the server's own host.
const PRODUCTION_DENIED: [&str; 2] = ["127.0.0.0/8", "::1/128"];

/// One entry of `DB_ALLOWED_HOSTS`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Allow {
    /// Exactly this host name (lower case).
    Name(String),
    /// Any name ending in `.suffix`.
    Suffix(String),
    /// Any address in the network.
    Network(IpNet),
}

/// Builds the [`Denial`] of a denied network.
type Rule = fn(IpNet) -> Denial;

/// The host policy in force.
#[derive(Debug, Clone)]
pub(crate) struct NetGuard {
    allowed: Vec<Allow>,
    denied: Vec<(IpNet, Rule)>,
    resolver: Resolver,
}

impl NetGuard {
    /// The policy of a deployment: the built-in denied networks (plus loopback in
    /// production), the operator's extra denied networks, and the allow list.
    pub(crate) fn new(allowed: &[String], extra_denied: &[IpNet], production: bool) -> Self {
        let allowed = allowed
            .iter()
            .map(|entry| entry.trim().to_ascii_lowercase())
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                if let Ok(network) = entry.parse::<IpNet>() {
                    Allow::Network(network)
                } else if let Some(address) = parse_numeric_host(&entry) {
                    Allow::Network(IpNet::from(address))
                } else if let Some(suffix) = entry.strip_prefix("*.") {
                    Allow::Suffix(suffix.to_owned())
                } else {
                    Allow::Name(entry)
                }
            })
            .collect();
        let production_list: &[&str] = if production { &PRODUCTION_DENIED } else { &[] };
        let parsed = |list: &[&str], rule: Rule| {
            list.iter()
                .filter_map(|network| network.parse().ok())
                .map(move |network| (network, rule))
                .collect::<Vec<_>>()
        };
        let denied = parsed(&ALWAYS_DENIED, Denial::AlwaysDenied)
            .into_iter()
            .chain(parsed(production_list, Denial::Production))
            .chain(extra_denied.iter().map(|n| (*n, Denial::Operator as Rule)))
            .collect();
        Self {
            allowed,
            denied,
            resolver: Resolver::system(),
        }
    }

    /// The same policy, resolving names with `resolver`.
    #[must_use]
    pub(crate) fn with_resolver(mut self, resolver: Resolver) -> Self {
        self.resolver = resolver;
        self
    }

    /// Resolves `host` once and checks every address; returns the addresses to
    /// connect to, in the resolver's order, or fails saying why (which rule, for
    /// a refusal). Nothing is sent to the host before this.
    pub(crate) async fn check(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<Vec<IpAddr>, GuardError> {
        let addresses: Vec<IpAddr> = match parse_numeric_host(host) {
            Some(address) => vec![address],
            None if looks_numeric(host) => return Err(GuardError::NotFound),
            None => self.resolver.lookup(host, port, timeout).await?,
        };
        if addresses.is_empty() {
            return Err(GuardError::NotFound);
        }
        if let Some(denial) = addresses.iter().find_map(|address| self.denial(*address)) {
            return Err(GuardError::Denied(denial));
        }
        if self.allowed.is_empty() || self.allows(host, &addresses) {
            Ok(addresses)
        } else {
            Err(GuardError::Denied(Denial::NotAllowed))
        }
    }

    /// Whether `address`, or an IPv4 address it carries, is in a denied network.
    #[cfg(test)]
    pub(crate) fn is_denied(&self, address: IpAddr) -> bool {
        self.denial(address).is_some()
    }

    /// The rule that denies `address` (or an IPv4 address it carries), if any.
    fn denial(&self, address: IpAddr) -> Option<Denial> {
        forms(address).into_iter().flatten().find_map(|form| {
            self.denied
                .iter()
                .find(|(network, _)| network.contains(&form))
                .map(|(network, rule)| rule(*network))
        })
    }

    fn allows(&self, host: &str, addresses: &[IpAddr]) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let name_allowed = self.allowed.iter().any(|rule| match rule {
            Allow::Name(name) => *name == host,
            Allow::Suffix(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.ends_with('.')),
            Allow::Network(_) => false,
        });
        let addresses_allowed = addresses.iter().all(|address| {
            let canonical = address.to_canonical();
            self.allowed
                .iter()
                .any(|rule| matches!(rule, Allow::Network(n) if n.contains(&canonical)))
        });
        name_allowed || addresses_allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(5);

    fn dev() -> NetGuard {
        NetGuard::new(&[], &[], false)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn metadata_and_link_local_are_denied_in_every_form_in_every_mode() {
        for guard in [dev(), NetGuard::new(&[], &[], true)] {
            for form in [
                "169.254.169.254",
                "::ffff:169.254.169.254",
                "::169.254.169.254",
                "64:ff9b::a9fe:a9fe",
                "2002:a9fe:a9fe::1",
                "fe80::1",
                "fd00:ec2::254",
                "100.100.100.200",
                "0.0.0.0",
                "::",
                "224.0.0.1",
                "255.255.255.255",
                "ff02::1",
            ] {
                let address = parse_numeric_host(form).expect(form);
                assert!(guard.is_denied(address), "{form}");
            }
        }
    }

    #[test]
    fn loopback_is_denied_in_production_only() {
        assert!(!dev().is_denied(ip("127.0.0.1")));
        let production = NetGuard::new(&[], &[], true);
        for form in ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"] {
            assert!(production.is_denied(ip(form)), "{form}");
        }
    }

    #[test]
    fn each_denial_names_its_rule() {
        let net = |text: &str| text.parse::<IpNet>().expect("net");
        let guard = NetGuard::new(&[], &[net("10.0.0.0/8")], true);
        assert_eq!(
            guard.denial(ip("::ffff:10.1.2.3")),
            Some(Denial::Operator(net("10.0.0.0/8")))
        );
        assert_eq!(
            guard.denial(ip("127.0.0.2")),
            Some(Denial::Production(net("127.0.0.0/8")))
        );
        assert_eq!(guard.denial(ip("203.0.113.9")), None);
        let message = Denial::Operator(net("10.0.0.0/8")).to_string();
        assert!(message.contains("DB_DENIED_NETWORKS"), "{message}");
    }

    #[test]
    fn denied_networks_add_to_the_built_in_list() {
        let guard = NetGuard::new(&[], &["10.0.0.0/8".parse().expect("net")], true);
        for form in [
            "10.1.2.3",
            "127.0.0.1",
            "169.254.169.254",
            "::ffff:10.0.0.1",
        ] {
            assert!(guard.is_denied(ip(form)), "{form}");
        }
        assert!(!guard.is_denied(ip("203.0.113.9")));
    }

    #[tokio::test]
    async fn the_allow_list_narrows_but_never_lifts_a_denial() {
        let guard = NetGuard::new(&["169.254.0.0/16".into(), "127.0.0.1".into()], &[], false);
        assert_eq!(
            guard.check("169.254.169.254", 1, T).await,
            Err(GuardError::Denied(Denial::AlwaysDenied(
                "169.254.0.0/16".parse().expect("net")
            )))
        );
        assert!(guard.check("127.0.0.1", 1, T).await.is_ok());
        assert_eq!(
            guard.check("10.1.2.3", 1, T).await,
            Err(GuardError::Denied(Denial::NotAllowed))
        );
    }

    #[tokio::test]
    async fn allow_list_accepts_names_suffixes_and_networks_only() {
        let guard = NetGuard::new(
            &[
                "db.example.com".into(),
                "*.corp.example".into(),
                "127.0.0.0/8".into(),
            ],
            &[],
            false,
        );
        let public = [ip("203.0.113.9")];
        assert!(guard.allows("DB.example.com", &public));
        assert!(guard.allows("a.corp.example", &public));
        assert!(!guard.allows("corp.example.evil", &public));
        assert!(!guard.allows("evilcorp.example", &public));
        assert!(guard.check("localhost", 1, T).await.is_ok());
        assert_eq!(
            guard.check("10.1.2.3", 1, T).await,
            Err(GuardError::Denied(Denial::NotAllowed))
        );
    }

    #[tokio::test]
    async fn names_are_resolved_and_every_answer_checked() {
        let production = NetGuard::new(&[], &[], true);
        assert!(matches!(
            production.check("localhost", 1, T).await,
            Err(GuardError::Denied(Denial::Production(_)))
        ));
        assert_eq!(
            dev().check("no-such-host.invalid", 5432, T).await,
            Err(GuardError::NotFound)
        );
        assert_eq!(
            dev().check("999.1.1.1", 5432, T).await,
            Err(GuardError::NotFound)
        );
    }
}
