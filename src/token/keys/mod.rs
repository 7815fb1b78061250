//! Key versions: where they come from, and the keys derived from each.
//!
//! An operator manages one random secret per version (`kid`). The HMAC signing key,
//! the AES-256-GCM key and the fingerprint key are derived from it with
//! HKDF-SHA256 under distinct labels, once, when the ring is loaded; requests never
//! derive keys.
//!
//! - [`ring`]: a version's derived keys, and the ring of versions.
//! - [`source`]: where versions come from (`QUERYGATE_KEYS`, `<kid>.key` files, a
//!   development key) and how new ones are written.

mod ring;
mod source;

use std::path::PathBuf;

pub use ring::{KeyRing, KeyVersion};
pub(crate) use source::load;
pub use source::{KeySource, default_kid, generate_secret, write_key_file};

/// The id of the key a development start creates.
pub(crate) const DEV_KID: &str = "dev";

/// Fewest random bytes a key version's secret may have.
pub(crate) const MIN_SECRET_BYTES: usize = 32;

/// Why a key ring could not be loaded. Never carries secret material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// An entry of `QUERYGATE_KEYS` is not `kid:SECRET`.
    #[error("QUERYGATE_KEYS entry {position} is not of the form kid:SECRET")]
    MalformedEntry {
        /// 1-based position in the list.
        position: usize,
    },
    /// A key id with characters other than letters, digits, `.`, `_`, `-`.
    #[error("key id {0:?} is not valid: use 1-64 letters, digits, '.', '_' or '-'")]
    InvalidKid(String),
    /// The same id twice.
    #[error("key id {0:?} is listed twice")]
    DuplicateKid(String),
    /// The secret is not base64 or too short.
    #[error("the secret of key {0:?} must be standard base64 of at least 32 bytes")]
    WeakSecret(String),
    /// `QUERYGATE_ACTIVE_KID` names no loaded version.
    #[error("the active key id {0:?} is not among the loaded keys")]
    UnknownActive(String),
    /// Production with the development key a development start created.
    #[error(
        "the keys folder holds the development key dev.key, which production never trusts; \
         remove it and use a real key (querygate keygen, or QUERYGATE_KEYS)"
    )]
    DevelopmentKeyInProduction,
    /// A ring of no version at all.
    #[error("no key versions were loaded")]
    NoKeys,
    /// Production without any key.
    #[error(
        "no keys configured: set QUERYGATE_KEYS or put <kid>.key files in the keys folder \
         (querygate keygen); production never creates a development key"
    )]
    MissingInProduction,
    /// Reading or writing the keys folder failed.
    #[error("keys folder {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Checks a key id: 1-64 letters, digits, `.`, `_`, `-`.
pub fn validate_kid(kid: &str) -> Result<(), KeyError> {
    let valid = (1..=64).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(KeyError::InvalidKid(kid.to_owned()))
    }
}
