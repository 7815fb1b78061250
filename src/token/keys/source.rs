//! Where key versions come from: `QUERYGATE_KEYS`, `<kid>.key` files in the keys
//! folder, or a development key created at the first start outside production.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose::STANDARD};
use zeroize::Zeroizing;

use super::{DEV_KID, KeyError, KeyRing, MIN_SECRET_BYTES, validate_kid};
use crate::secret::Secret;

/// Standard base64 that accepts the secret with or without padding.
const LENIENT_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

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

impl KeyRing {
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
}

/// Loads the ring the configuration asks for, creating a development key when
/// nothing is configured outside production.
pub(crate) fn load(
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
    let ring = KeyRing::from_dir(dir, Some(DEV_KID))?.ok_or(KeyError::NoKeys)?;
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
