//! Tokens already verified, kept for a short while: a token that comes back (a
//! client sends the same one with every request) is recognised by comparing it
//! with the stored copy instead of checking its HMAC, decrypting its `cx` and
//! parsing two JSON documents again. An accelerator like the pool cache: losing
//! it changes no answer.
//!
//! Only a token that passed every check is stored; a hit needs the whole token to
//! be identical, byte for byte, to one that passed. Expiry is checked again on
//! every hit, so a cached token is refused the moment it expires. Entries leave
//! after [`TTL`] or when the cache is full, least recently used first.

use std::sync::Arc;
use std::time::Duration;

use super::Verified;
use crate::secret::Secret;

/// How long a verified token is remembered.
const TTL: Duration = Duration::from_secs(300);
/// Tokens remembered at most.
const CAPACITY: u64 = 10_000;

/// A verified token and what verifying it gave.
#[derive(Debug)]
struct Entry {
    token: Secret,
    verified: Arc<Verified>,
}

/// The cache, keyed by the token's signature (short, and unique per token).
#[derive(Debug, Clone)]
pub(crate) struct VerifiedTokens {
    cache: moka::sync::Cache<Box<str>, Arc<Entry>>,
}

impl Default for VerifiedTokens {
    fn default() -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(TTL)
                .build(),
        }
    }
}

/// The signature part of a compact JWS.
fn signature(token: &str) -> Option<&str> {
    token.rsplit_once('.').map(|(_, signature)| signature)
}

impl VerifiedTokens {
    /// What verifying `token` gave, if the very same token was verified before.
    pub(crate) fn get(&self, token: &str) -> Option<Arc<Verified>> {
        let entry = self.cache.get(signature(token)?)?;
        constant_time_eq(entry.token.expose().as_bytes(), token.as_bytes())
            .then(|| Arc::clone(&entry.verified))
    }

    /// Remembers a token that passed every check.
    pub(crate) fn insert(&self, token: &str, verified: Arc<Verified>) {
        if let Some(signature) = signature(token) {
            let entry = Entry {
                token: Secret::new(token),
                verified,
            };
            self.cache.insert(signature.into(), Arc::new(entry));
        }
    }
}

/// Compares without stopping at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_identical_token_is_recognised() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
