//! Sealed connection tokens.
//!
//! A token is a JWT (HS256 by default) whose `cx` claim holds the connection
//! parameters encrypted with AES-256-GCM (see [`seal`]). The server keeps nothing:
//! any instance holding the same [`KeyRing`] verifies and opens any token.
//!
//! Verification follows the order of `docs/design.md`: size cap → header → `alg` → `kid`
//! → signature → `iss`/`aud`/`exp`/`nbf` → decrypt `cx` → parse. The precise reason
//! of a rejection is kept in [`TokenError`] for debug logs; clients only ever learn
//! `token_invalid` or `token_expired`.

pub(crate) mod cache;
mod claims;
mod error;
pub(crate) mod extract;
pub mod keys;
pub(crate) mod seal;

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Header, Validation, errors::ErrorKind};

use crate::db::params::ConnParams;
pub(crate) use claims::rfc3339;
pub use claims::{Chain, Claims, Issued, TokenTimes, Verified};
pub use error::TokenError;
pub use keys::{KeyRing, KeySource, KeyVersion};

/// Tokens longer than this are refused before any parsing.
pub(crate) const MAX_TOKEN_BYTES: usize = 8192;

/// The HMAC variants a deployment may choose (`TOKEN_ALGORITHM`); HS256 by default.
/// Only one is accepted at a time, and never another family or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TokenAlgorithm {
    /// HMAC-SHA256.
    #[default]
    #[value(name = "HS256")]
    Hs256,
    /// HMAC-SHA384.
    #[value(name = "HS384")]
    Hs384,
    /// HMAC-SHA512.
    #[value(name = "HS512")]
    Hs512,
}

impl TokenAlgorithm {
    /// The JOSE algorithm.
    pub(crate) fn jose(self) -> Algorithm {
        match self {
            Self::Hs256 => Algorithm::HS256,
            Self::Hs384 => Algorithm::HS384,
            Self::Hs512 => Algorithm::HS512,
        }
    }
}

/// Token lifetimes and claim values.
#[derive(Debug, Clone)]
pub struct TokenPolicy {
    /// `iss`.
    pub issuer: String,
    /// `aud`.
    pub audience: String,
    /// Lifetime of one token, seconds.
    pub ttl: i64,
    /// Lifetime of a chain from `orig`, seconds.
    pub max_lifetime: i64,
    /// Clock skew allowed on `exp` and `nbf`, seconds.
    pub leeway: u64,
    /// The one signing algorithm issued and accepted.
    pub algorithm: TokenAlgorithm,
}

/// Issues and verifies tokens with one key ring and policy.
#[derive(Debug)]
pub struct TokenService {
    ring: KeyRing,
    policy: TokenPolicy,
    validation: Validation,
    verified: cache::VerifiedTokens,
}

impl TokenService {
    /// A service over `ring` with `policy`.
    pub(crate) fn new(ring: KeyRing, policy: TokenPolicy) -> Self {
        let mut validation = Validation::new(policy.algorithm.jose());
        validation.leeway = policy.leeway;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&policy.issuer]);
        validation.set_audience(&[&policy.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub", "jti"]);
        Self {
            ring,
            policy,
            validation,
            verified: cache::VerifiedTokens::default(),
        }
    }

    /// The policy.
    pub(crate) fn policy(&self) -> &TokenPolicy {
        &self.policy
    }

    /// Issues a token for `params`. `chain` continues a chain (refresh); `None`
    /// starts one. Fails with [`TokenError::Expired`] when the chain has no time left.
    pub(crate) fn issue(
        &self,
        params: &ConnParams,
        chain: Option<Chain>,
    ) -> Result<Issued, TokenError> {
        self.issue_at(params, chain, chrono::Utc::now().timestamp())
    }

    /// The last moment (Unix seconds) any token of `chain` can be accepted.
    pub(crate) fn chain_end(&self, chain: &Chain) -> i64 {
        let leeway = i64::try_from(self.policy.leeway).unwrap_or(i64::MAX);
        chain
            .orig
            .saturating_add(self.policy.max_lifetime)
            .saturating_add(leeway)
    }

    /// As [`TokenService::issue`], as if the clock read `now` (Unix seconds). Tools
    /// and tests use it to mint tokens of a known age.
    pub fn issue_at(
        &self,
        params: &ConnParams,
        chain: Option<Chain>,
        now: i64,
    ) -> Result<Issued, TokenError> {
        let version = self.ring.active();
        let orig = chain.as_ref().map_or(now, |chain| chain.orig);
        let exp = (now + self.policy.ttl).min(orig + self.policy.max_lifetime);
        if exp <= now {
            return Err(TokenError::Expired);
        }
        let jti = URL_SAFE_NO_PAD.encode(crate::random::bytes::<16>());
        let cid = chain.map_or_else(|| jti.clone(), |chain| chain.id);
        let parts = params.identity_parts();
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let sub = URL_SAFE_NO_PAD.encode(&version.fingerprint(&parts)[..16]);
        let plaintext =
            zeroize::Zeroizing::new(serde_json::to_vec(params).map_err(|_| TokenError::Issue)?);
        let aad = seal::associated_data(&version.kid, &jti, &sub, orig);
        let cx = seal::seal(&version.cipher, &aad, &plaintext).ok_or(TokenError::Issue)?;
        let claims = Claims {
            iss: self.policy.issuer.clone(),
            aud: self.policy.audience.clone(),
            iat: now,
            nbf: now,
            exp,
            jti,
            sub,
            orig,
            cid: Some(cid),
            cx,
        };
        let token = self.sign(&version.kid, &claims)?;
        Ok(Issued { token, claims })
    }

    fn sign(&self, kid: &str, claims: &Claims) -> Result<crate::secret::Secret, TokenError> {
        let version = self.ring.get(kid).ok_or(TokenError::UnknownKid)?;
        let mut header = Header::new(self.policy.algorithm.jose());
        header.typ = Some("JWT".to_owned());
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &version.signing)
            .map(crate::secret::Secret::new)
            .map_err(|_| TokenError::Issue)
    }

    /// Verifies `token` and opens its `cx`, or recognises a token that was
    /// verified before (see [`cache`]); expiry is checked either way.
    pub fn verify(&self, token: &str) -> Result<Arc<Verified>, TokenError> {
        self.verify_at(token, chrono::Utc::now().timestamp())
    }

    /// As [`TokenService::verify`], a remembered token checked as if the clock
    /// read `now` (for tests of expiry on the remembered path).
    pub(crate) fn verify_at(&self, token: &str, now: i64) -> Result<Arc<Verified>, TokenError> {
        if let Some(verified) = self.verified.get(token) {
            self.check_lifetime(&verified.claims, now)?;
            return Ok(verified);
        }
        let verified = Arc::new(self.verify_fully(token)?);
        self.verified.insert(token, Arc::clone(&verified));
        Ok(verified)
    }

    /// `exp` (with the leeway) and the chain's maximum lifetime at `now`.
    fn check_lifetime(&self, claims: &Claims, now: i64) -> Result<(), TokenError> {
        let leeway = i64::try_from(self.policy.leeway).unwrap_or(i64::MAX);
        let chain_end = self.chain_end(&claims.chain());
        if now > claims.exp.saturating_add(leeway) || now > chain_end {
            return Err(TokenError::Expired);
        }
        Ok(())
    }

    /// Every check of `docs/design.md`'s order.
    fn verify_fully(&self, token: &str) -> Result<Verified, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::MalformedHeader)?;
        if header.alg != self.policy.algorithm.jose() {
            return Err(TokenError::WrongAlgorithm);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKid)?;
        let version = self.ring.get(&kid).ok_or(TokenError::UnknownKid)?;
        let claims = jsonwebtoken::decode::<Claims>(token, &version.verifying, &self.validation)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                other => TokenError::Rejected(format!("{other:?}")),
            })?
            .claims;
        self.check_lifetime(&claims, chrono::Utc::now().timestamp())?;
        let aad = seal::associated_data(&kid, &claims.jti, &claims.sub, claims.orig);
        let plaintext =
            seal::open(&version.cipher, &aad, &claims.cx).ok_or(TokenError::Undecryptable)?;
        let params: ConnParams =
            serde_json::from_slice(&plaintext).map_err(|_| TokenError::BadPayload)?;
        let times = TokenTimes::new(&claims, self.policy.max_lifetime);
        Ok(Verified {
            claims,
            params,
            times,
        })
    }
}

#[cfg(test)]
mod tests;
