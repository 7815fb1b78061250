//! Which database hosts clients may reach.
//!
//! querygate connects wherever a client asks, which makes it a network pivot if
//! left open. `DB_ALLOWED_HOSTS` (names, `*.suffix` patterns or CIDR networks)
//! narrows the reachable set; `DB_DENIED_NETWORKS` removes networks such as cloud
//! metadata endpoints. The check runs on every address the host name resolves to,
//! before any connection is attempted.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use crate::db::error::DbError;

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

/// The configured host policy.
#[derive(Debug, Clone, Default)]
pub struct NetGuard {
    allowed: Vec<Allow>,
    denied: Vec<IpNet>,
}

impl NetGuard {
    /// Builds the policy from the configuration's lists.
    pub fn new(allowed: &[String], denied: &[IpNet]) -> Self {
        let allowed = allowed
            .iter()
            .map(|entry| entry.trim().to_ascii_lowercase())
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                if let Ok(network) = entry.parse::<IpNet>() {
                    Allow::Network(network)
                } else if let Ok(address) = entry.parse::<IpAddr>() {
                    Allow::Network(IpNet::from(address))
                } else if let Some(suffix) = entry.strip_prefix("*.") {
                    Allow::Suffix(suffix.to_owned())
                } else {
                    Allow::Name(entry)
                }
            })
            .collect();
        Self {
            allowed,
            denied: denied.to_vec(),
        }
    }

    /// Networks denied when a production deployment lists none: loopback, "this
    /// host", link-local (cloud metadata endpoints live there).
    pub fn production_default_denied() -> Vec<IpNet> {
        [
            "127.0.0.0/8",
            "0.0.0.0/8",
            "169.254.0.0/16",
            "::1/128",
            "::/128",
            "fe80::/10",
        ]
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect()
    }

    /// Resolves `host` and checks every address; returns the addresses to connect
    /// to, in the resolver's order (so that a second resolution cannot land
    /// elsewhere), or fails with `HostNotFound`, `Timeout` or `HostForbidden`.
    pub async fn check(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<Vec<IpAddr>, DbError> {
        let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(address) => vec![address],
            Err(_) => tokio::time::timeout(timeout, tokio::net::lookup_host((host, port)))
                .await
                .map_err(|_| DbError::Timeout)?
                .map_err(|_| DbError::HostNotFound)?
                .map(|socket| socket.ip())
                .collect(),
        };
        if addresses.is_empty() {
            return Err(DbError::HostNotFound);
        }
        // An unspecified address (0.0.0.0, ::) reaches this very host.
        let addresses: Vec<IpAddr> = addresses
            .into_iter()
            .map(|a| match a.to_canonical() {
                IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
                other => other,
            })
            .collect();
        if addresses
            .iter()
            .any(|a| self.denied.iter().any(|n| n.contains(a)))
        {
            return Err(DbError::HostForbidden);
        }
        if self.allowed.is_empty() || self.allows(host, &addresses) {
            Ok(addresses)
        } else {
            Err(DbError::HostForbidden)
        }
    }

    fn allows(&self, host: &str, addresses: &[IpAddr]) -> bool {
        let host = host.to_ascii_lowercase();
        let name_allowed = self.allowed.iter().any(|rule| match rule {
            Allow::Name(name) => *name == host,
            Allow::Suffix(suffix) => host.ends_with(&format!(".{suffix}")),
            Allow::Network(_) => false,
        });
        let addresses_allowed = addresses.iter().all(|address| {
            self.allowed
                .iter()
                .any(|rule| matches!(rule, Allow::Network(n) if n.contains(address)))
        });
        name_allowed || addresses_allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn everything_is_allowed_without_rules() {
        assert!(
            NetGuard::default()
                .check("127.0.0.1", 5432, T)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn denied_networks_win_even_for_mapped_addresses() {
        let guard = NetGuard::new(&[], &["127.0.0.0/8".parse().expect("net")]);
        assert!(matches!(
            guard.check("127.0.0.1", 1, T).await,
            Err(DbError::HostForbidden)
        ));
        assert!(matches!(
            guard.check("::ffff:127.0.0.1", 1, T).await,
            Err(DbError::HostForbidden)
        ));
        assert!(matches!(
            guard.check("0.0.0.0", 1, T).await,
            Err(DbError::HostForbidden)
        ));
        assert!(matches!(
            guard.check("localhost", 1, T).await,
            Err(DbError::HostForbidden)
        ));
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
        );
        assert!(guard.allows("DB.example.com", &["203.0.113.9".parse().expect("ip")]));
        assert!(guard.allows("a.corp.example", &["203.0.113.9".parse().expect("ip")]));
        assert!(!guard.allows("corp.example.evil", &["203.0.113.9".parse().expect("ip")]));
        assert!(guard.check("localhost", 1, T).await.is_ok());
        assert!(matches!(
            guard.check("10.1.2.3", 1, T).await,
            Err(DbError::HostForbidden)
        ));
    }

    #[tokio::test]
    async fn unresolvable_names_are_reported_as_not_found() {
        let result = NetGuard::default()
            .check("no-such-host.invalid", 5432, T)
            .await;
        assert!(matches!(result, Err(DbError::HostNotFound)));
    }
}
