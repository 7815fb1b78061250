//! Key versions: where they come from, and the keys derived from each.
//!
//! An operator manages one random secret per version (`kid`). The HMAC signing key,
//! the AES-256-GCM key and the fingerprint key are derived from it with
//! HKDF-SHA256 under distinct labels, once, when the ring is loaded; requests never
//! derive keys.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use aes_gcm::{Aes256Gcm, KeyInit};
use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose::STANDARD};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use jsonwebtoken::{DecodingKey, EncodingKey};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::secret::Secret;

/// The id of the key a development start creates.
pub const DEV_KID: &str = "dev";

/// Fewest random bytes a key version's secret may have.
pub const MIN_SECRET_BYTES: usize = 32;

const HKDF_SALT: &[u8] = b"querygate key derivation v1";
/// One signing key for every HMAC variant, 64 bytes: at least the hash size of
/// HS512 (RFC 7518 §3.2), and within SHA-256's block for HS256.
const LABEL_SIGN: &[u8] = b"querygate/jwt-hmac";
const LABEL_SEAL: &[u8] = b"querygate/cx-aes-256-gcm";
const LABEL_FINGERPRINT: &[u8] = b"querygate/connection-fingerprint";

/// Standard base64 that accepts the secret with or without padding.
const LENIENT_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

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
    pub fn derive(kid: &str, secret: &[u8]) -> Result<Self, KeyError> {
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
    pub fn fingerprint(&self, parts: &[&[u8]]) -> [u8; 32] {
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

/// Where the ring came from, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `QUERYGATE_KEYS`.
    Environment,
    /// `<kid>.key` files in this folder.
    Folder(PathBuf),
    /// A development key created just now at this path.
    CreatedDevelopmentKey(PathBuf),
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
    pub fn from_secrets<'a>(
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
        let active = active.ok_or(KeyError::MissingInProduction)?;
        Ok(Self { versions, active })
    }

    /// Parses `QUERYGATE_KEYS` (`kid1:SECRET,kid2:SECRET`).
    pub fn from_env_value(value: &Secret) -> Result<Self, KeyError> {
        let mut decoded = Vec::new();
        for (index, entry) in value.expose().split(',').map(str::trim).enumerate() {
            let (kid, secret) = entry.split_once(':').ok_or(KeyError::MalformedEntry {
                position: index + 1,
            })?;
            decoded.push((kid.trim().to_owned(), decode_secret(kid, secret)?));
        }
        Self::from_secrets(decoded.iter().map(|(k, s)| (k.as_str(), s.as_slice())))
    }

    /// Loads every `<kid>.key` in `dir`; the active one is `active_kid` or the newest
    /// file (latest modification time, then the greatest id). `Ok(None)` when the
    /// folder has no key.
    pub fn from_dir(dir: &Path, active_kid: Option<&str>) -> Result<Option<Self>, KeyError> {
        let io = |source| KeyError::Io {
            path: dir.to_owned(),
            source,
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io(error)),
        };
        let mut found: Vec<(SystemTime, String, Zeroizing<Vec<u8>>)> = Vec::new();
        for entry in entries {
            let path = entry.map_err(io)?.path();
            let Some(kid) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".key"))
            else {
                continue;
            };
            let file_io = |source| KeyError::Io {
                path: path.clone(),
                source,
            };
            let text = Zeroizing::new(std::fs::read_to_string(&path).map_err(file_io)?);
            let modified = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .map_err(file_io)?;
            found.push((modified, kid.to_owned(), decode_secret(kid, text.trim())?));
        }
        if found.is_empty() {
            return Ok(None);
        }
        // Newest first, so that without QUERYGATE_ACTIVE_KID the newest is active.
        found.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
        if let Some(kid) = active_kid {
            let position = found
                .iter()
                .position(|(_, k, _)| k == kid)
                .ok_or_else(|| KeyError::UnknownActive(kid.to_owned()))?;
            found.swap(0, position);
        }
        Self::from_secrets(found.iter().map(|(_, k, s)| (k.as_str(), s.as_slice()))).map(Some)
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
    pub fn kids(&self) -> Vec<&str> {
        let mut kids: Vec<&str> = self.versions.keys().map(String::as_str).collect();
        kids.sort_unstable();
        kids
    }
}

/// Loads the ring the configuration asks for, creating a development key when
/// nothing is configured outside production.
pub fn load(
    env_keys: Option<&Secret>,
    dir: &Path,
    active_kid: Option<&str>,
    production: bool,
) -> Result<(KeyRing, KeySource), KeyError> {
    if let Some(value) = env_keys.filter(|v| !v.expose().trim().is_empty()) {
        return Ok((KeyRing::from_env_value(value)?, KeySource::Environment));
    }
    if let Some(ring) = KeyRing::from_dir(dir, active_kid)? {
        if production && ring.get(DEV_KID).is_some() {
            return Err(KeyError::DevelopmentKeyInProduction);
        }
        return Ok((ring, KeySource::Folder(dir.to_owned())));
    }
    if production {
        return Err(KeyError::MissingInProduction);
    }
    let path = write_key_file(dir, DEV_KID)?;
    let ring = KeyRing::from_dir(dir, Some(DEV_KID))?.ok_or(KeyError::MissingInProduction)?;
    Ok((ring, KeySource::CreatedDevelopmentKey(path)))
}

/// A fresh random secret, standard base64.
pub fn generate_secret() -> Secret {
    let mut bytes = Zeroizing::new([0u8; MIN_SECRET_BYTES]);
    crate::random::fill(bytes.as_mut_slice());
    Secret::new(STANDARD.encode(bytes.as_slice()))
}

/// The default id of a new version: `k` and the UTC time, so ids sort by age.
pub fn default_kid() -> String {
    chrono::Utc::now().format("k%Y%m%dT%H%M%S").to_string()
}

/// Writes a new version `<kid>.key` (mode 0600, never overwriting) into `dir`.
pub fn write_key_file(dir: &Path, kid: &str) -> Result<PathBuf, KeyError> {
    use std::io::Write as _;
    validate_kid(kid)?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| KeyError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join(format!("{kid}.key"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(io(&path))?;
    writeln!(file, "{}", generate_secret().expose()).map_err(io(&path))?;
    Ok(path)
}

fn decode_secret(kid: &str, secret: &str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let bytes = LENIENT_STANDARD
        .decode(secret.trim())
        .map_err(|_| KeyError::WeakSecret(kid.to_owned()))?;
    Ok(Zeroizing::new(bytes))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_b64() -> String {
        generate_secret().expose().to_owned()
    }

    #[test]
    fn env_value_makes_the_first_version_active() {
        let value = Secret::new(format!("new:{},old:{}", secret_b64(), secret_b64()));
        let ring = KeyRing::from_env_value(&value).expect("ring");
        assert_eq!(ring.active().kid, "new");
        assert!(ring.get("old").is_some());
    }

    #[test]
    fn secret_without_padding_is_accepted() {
        let unpadded = secret_b64().trim_end_matches('=').to_owned();
        let ring = KeyRing::from_env_value(&Secret::new(format!("a:{unpadded}")));
        assert!(ring.is_ok());
    }

    #[test]
    fn short_secret_is_refused_and_the_error_does_not_show_it() {
        let short = STANDARD.encode([7u8; 16]);
        let error = KeyRing::from_env_value(&Secret::new(format!("a:{short}"))).unwrap_err();
        assert!(matches!(error, KeyError::WeakSecret(_)));
        assert!(!error.to_string().contains(&short));
    }

    #[test]
    fn malformed_entries_and_kids_are_refused() {
        let ok = secret_b64();
        assert!(matches!(
            KeyRing::from_env_value(&Secret::new(ok.clone())),
            Err(KeyError::MalformedEntry { position: 1 })
        ));
        assert!(matches!(
            KeyRing::from_env_value(&Secret::new(format!("bad/kid:{ok}"))),
            Err(KeyError::InvalidKid(_))
        ));
        assert!(matches!(
            KeyRing::from_env_value(&Secret::new(format!("a:{ok},a:{ok}"))),
            Err(KeyError::DuplicateKid(_))
        ));
    }

    #[test]
    fn versions_derive_distinct_keys_from_distinct_secrets() {
        let a = KeyVersion::derive("a", &[1u8; 32]).expect("a");
        let b = KeyVersion::derive("b", &[2u8; 32]).expect("b");
        assert_ne!(a.fingerprint(&[b"x"]), b.fingerprint(&[b"x"]));
        assert_ne!(a.fingerprint(&[b"ab", b"c"]), a.fingerprint(&[b"a", b"bc"]));
    }

    #[test]
    fn folder_keys_use_the_named_active_version_or_the_newest() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_key_file(dir.path(), "k1").expect("k1");
        let second = write_key_file(dir.path(), "k2").expect("k2");
        let later = SystemTime::now() + std::time::Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&second)
            .and_then(|f| f.set_modified(later))
            .expect("touch");
        let ring = KeyRing::from_dir(dir.path(), None)
            .expect("load")
            .expect("some");
        assert_eq!(ring.active().kid, "k2");
        let ring = KeyRing::from_dir(dir.path(), Some("k1"))
            .expect("load")
            .expect("some");
        assert_eq!(ring.active().kid, "k1");
        assert!(matches!(
            KeyRing::from_dir(dir.path(), Some("nope")),
            Err(KeyError::UnknownActive(_))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn key_files_are_private_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_key_file(dir.path(), "k1").expect("write");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(write_key_file(dir.path(), "k1").is_err());
    }

    #[test]
    fn development_key_is_created_only_outside_production() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = dir.path().join("keys");
        assert!(matches!(
            load(None, &keys, None, true),
            Err(KeyError::MissingInProduction)
        ));
        let (ring, source) = load(None, &keys, None, false).expect("dev key");
        assert_eq!(ring.active().kid, "dev");
        assert_eq!(
            source,
            KeySource::CreatedDevelopmentKey(keys.join("dev.key"))
        );
        let (_, source) = load(None, &keys, None, false).expect("folder now has a key");
        assert_eq!(source, KeySource::Folder(keys.clone()));
        assert!(matches!(
            load(None, &keys, None, true),
            Err(KeyError::DevelopmentKeyInProduction)
        ));
    }
}
