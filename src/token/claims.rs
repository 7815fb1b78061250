//! What a token says: its claims, the refresh chain it belongs to, and a token
//! freshly issued or verified.

use serde::{Deserialize, Serialize};

use crate::db::params::ConnParams;

/// The claims of a querygate token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Not before (Unix seconds).
    pub nbf: i64,
    /// Expires (Unix seconds).
    pub exp: i64,
    /// Random token id, 128 bits, base64url.
    pub jti: String,
    /// Keyed fingerprint of engine, host, port, database and user name.
    pub sub: String,
    /// When the first token of this chain was issued (Unix seconds).
    pub orig: i64,
    /// The chain's id: the first token's `jti`, kept by every refresh, so that
    /// revoking it ends the whole chain. Tokens from before the claim existed
    /// count their own `jti`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    /// The sealed connection parameters.
    pub cx: String,
}

impl Claims {
    /// The chain this token belongs to.
    pub(crate) fn chain(&self) -> Chain {
        Chain {
            orig: self.orig,
            id: self.cid.clone().unwrap_or_else(|| self.jti.clone()),
        }
    }
}

/// A refresh chain: the tokens issued from one `connect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// When its first token was issued (Unix seconds).
    pub orig: i64,
    /// Its id (the first token's `jti`).
    pub id: String,
}

/// A freshly issued token.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The compact JWT.
    pub token: crate::secret::Secret,
    /// Its claims (without the need to parse it again).
    pub claims: Claims,
}

/// A token that passed every check, with its opened connection parameters.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The token's claims.
    pub claims: Claims,
    /// The connection parameters from `cx`.
    pub params: ConnParams,
    /// Its times as clients see them, written once when it was verified.
    pub times: TokenTimes,
}

/// A token's times in RFC 3339 (UTC, whole seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenTimes {
    /// `iat`.
    pub issued_at: String,
    /// `exp`.
    pub expires_at: String,
    /// The end of its chain: `orig` plus the maximum lifetime.
    pub refreshable_until: String,
}

impl TokenTimes {
    /// The times of `claims` under a chain's `max_lifetime` (seconds).
    pub(crate) fn new(claims: &Claims, max_lifetime: i64) -> Self {
        Self {
            issued_at: rfc3339(claims.iat),
            expires_at: rfc3339(claims.exp),
            refreshable_until: rfc3339(claims.orig.saturating_add(max_lifetime)),
        }
    }
}

/// Seconds since the epoch in RFC 3339 (UTC, whole seconds).
pub(crate) fn rfc3339(unix: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp(unix, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
