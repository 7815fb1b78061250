//! The sealed `cx` claim: AES-256-GCM over the serialized connection parameters.
//!
//! Format: base64url (no padding) of `nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)`.
//! The nonce is fresh and random for every token; with at most a few billion tokens
//! per key version the chance of a repeat stays negligible. The associated data
//! binds the ciphertext to its token (see [`associated_data`]), so a `cx` pasted into
//! another token fails to open.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The associated data of a token's `cx`: its key version, id, subject and chain
/// start, each length-prefixed.
pub(crate) fn associated_data(kid: &str, jti: &str, sub: &str, orig: i64) -> Vec<u8> {
    let mut aad = b"querygate.cx.v1".to_vec();
    for part in [
        kid.as_bytes(),
        jti.as_bytes(),
        sub.as_bytes(),
        &orig.to_be_bytes(),
    ] {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part);
    }
    aad
}

/// Encrypts `plaintext` under a fresh nonce.
pub(crate) fn seal(cipher: &Aes256Gcm, aad: &[u8], plaintext: &[u8]) -> Option<String> {
    let nonce_bytes: [u8; NONCE_LEN] = crate::random::bytes();
    let ciphertext = cipher
        .encrypt(
            &Nonce::from(nonce_bytes),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .ok()?;
    let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(&ciphertext);
    Some(URL_SAFE_NO_PAD.encode(out))
}

/// Decrypts and authenticates a sealed value; `None` for any failure.
pub(crate) fn open(cipher: &Aes256Gcm, aad: &[u8], sealed: &str) -> Option<Zeroizing<Vec<u8>>> {
    let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    if raw.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
    cipher
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
        .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes_gcm::KeyInit;

    fn cipher() -> Aes256Gcm {
        Aes256Gcm::new_from_slice(&[9u8; 32]).expect("key")
    }

    #[test]
    fn sealed_value_opens_with_the_same_associated_data_only() {
        let aad = associated_data("k1", "jti", "sub", 1);
        let sealed = seal(&cipher(), &aad, b"secret params").expect("seal");
        assert_eq!(
            open(&cipher(), &aad, &sealed).expect("open").as_slice(),
            b"secret params"
        );
        let other = associated_data("k1", "other-jti", "sub", 1);
        assert!(open(&cipher(), &other, &sealed).is_none());
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let aad = associated_data("k1", "jti", "sub", 1);
        let a = seal(&cipher(), &aad, b"same").expect("a");
        let b = seal(&cipher(), &aad, b"same").expect("b");
        assert_ne!(a, b);
    }

    #[test]
    fn truncated_or_garbage_input_does_not_open() {
        let aad = associated_data("k1", "jti", "sub", 1);
        assert!(open(&cipher(), &aad, "").is_none());
        assert!(open(&cipher(), &aad, "AAAA").is_none());
        assert!(open(&cipher(), &aad, "not base64 !!").is_none());
    }
}
