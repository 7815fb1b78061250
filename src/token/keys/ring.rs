//! A version's keys, derived once from its secret, and the ring of versions.

use std::collections::HashMap;

use aes_gcm::{Aes256Gcm, KeyInit};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use jsonwebtoken::{DecodingKey, EncodingKey};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{KeyError, MIN_SECRET_BYTES, validate_kid};

const HKDF_SALT: &[u8] = b"querygate key derivation v1";
/// One signing key for every HMAC variant, 64 bytes: at least the hash size of
/// HS512 (RFC 7518 §3.2), and within SHA-256's block for HS256.
const LABEL_SIGN: &[u8] = b"querygate/jwt-hmac";
const LABEL_SEAL: &[u8] = b"querygate/cx-aes-256-gcm";
const LABEL_FINGERPRINT: &[u8] = b"querygate/connection-fingerprint";

/// The keys of one version, derived once.
pub struct KeyVersion {
    /// The version's id, written as the token header's `kid`.
    pub kid: String,
    pub(crate) signing: EncodingKey,
    pub(crate) verifying: DecodingKey,
    pub(crate) cipher: Aes256Gcm,
    fingerprint: Hmac<Sha256>,
}

impl KeyVersion {
    /// Derives the version's keys from its secret.
    pub(crate) fn derive(kid: &str, secret: &[u8]) -> Result<Self, KeyError> {
        validate_kid(kid)?;
        if secret.len() < MIN_SECRET_BYTES {
            return Err(KeyError::WeakSecret(kid.to_owned()));
        }
        let hkdf = Hkdf::<Sha256>::new(Some(HKDF_SALT), secret);
        let expand = |label: &[u8]| {
            let mut okm = Zeroizing::new([0u8; 32]);
            // 32 bytes is far below HKDF-SHA256's limit of 255 * 32, so expand cannot fail.
            hkdf.expand(label, okm.as_mut_slice())
                .map(|()| okm)
                .map_err(|_| KeyError::WeakSecret(kid.to_owned()))
        };
        let mut sign = Zeroizing::new([0u8; 64]);
        hkdf.expand(LABEL_SIGN, sign.as_mut_slice())
            .map_err(|_| KeyError::WeakSecret(kid.to_owned()))?;
        let seal = expand(LABEL_SEAL)?;
        let fingerprint = expand(LABEL_FINGERPRINT)?;
        Ok(Self {
            kid: kid.to_owned(),
            signing: EncodingKey::from_secret(sign.as_slice()),
            verifying: DecodingKey::from_secret(sign.as_slice()),
            cipher: Aes256Gcm::new_from_slice(seal.as_slice())
                .map_err(|_| KeyError::WeakSecret(kid.to_owned()))?,
            fingerprint: <Hmac<Sha256> as Mac>::new_from_slice(fingerprint.as_slice())
                .map_err(|_| KeyError::WeakSecret(kid.to_owned()))?,
        })
    }

    /// A keyed, irreversible hash of `parts`, separated unambiguously.
    pub(crate) fn fingerprint(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.fingerprint.clone();
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for KeyVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyVersion")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// All known key versions; one is active (signs and seals new tokens), the others
/// still verify tokens they issued.
#[derive(Debug)]
pub struct KeyRing {
    versions: HashMap<String, KeyVersion>,
    active: String,
}

impl KeyRing {
    /// A ring from `(kid, secret)` pairs; the first is active.
    pub(crate) fn from_secrets<'a>(
        entries: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<Self, KeyError> {
        let mut versions = HashMap::new();
        let mut active = None;
        for (kid, secret) in entries {
            let version = KeyVersion::derive(kid, secret)?;
            if versions.insert(kid.to_owned(), version).is_some() {
                return Err(KeyError::DuplicateKid(kid.to_owned()));
            }
            active.get_or_insert_with(|| kid.to_owned());
        }
        let active = active.ok_or(KeyError::NoKeys)?;
        Ok(Self { versions, active })
    }

    /// The version that signs new tokens.
    pub fn active(&self) -> &KeyVersion {
        // `from_secrets` only builds a ring whose active id is a key of the map.
        &self.versions[&self.active]
    }

    /// The version with this id, if it is still listed.
    pub fn get(&self, kid: &str) -> Option<&KeyVersion> {
        self.versions.get(kid)
    }

    /// Ids of every loaded version, sorted.
    pub(crate) fn kids(&self) -> Vec<&str> {
        let mut kids: Vec<&str> = self.versions.keys().map(String::as_str).collect();
        kids.sort_unstable();
        kids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_derive_distinct_keys_from_distinct_secrets() {
        let a = KeyVersion::derive("a", &[1u8; 32]).expect("a");
        let b = KeyVersion::derive("b", &[2u8; 32]).expect("b");
        assert_ne!(a.fingerprint(&[b"x"]), b.fingerprint(&[b"x"]));
        assert_ne!(a.fingerprint(&[b"ab", b"c"]), a.fingerprint(&[b"a", b"bc"]));
    }

    #[test]
    fn a_ring_of_no_version_is_refused() {
        assert!(matches!(KeyRing::from_secrets([]), Err(KeyError::NoKeys)));
    }
}
