//! Connection parameters: the engine, where, who, and how securely.
//!
//! These travel only inside a token's sealed `cx` claim. The password is a
//! [`Secret`], so `Debug` never prints it.

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// The database engines querygate speaks. Matched in one place per operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// PostgreSQL.
    Postgresql,
    /// MySQL or MariaDB.
    Mysql,
    /// A SQLite file in the server's SQLite folder.
    Sqlite,
}

impl Engine {
    /// Parses `dbType`, aliases included, ignoring case.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "postgresql" | "postgres" => Some(Self::Postgresql),
            "mysql" | "mariadb" => Some(Self::Mysql),
            "sqlite" => Some(Self::Sqlite),
            _ => None,
        }
    }

    /// Checks a `dbType` field: required, one of the engines or their aliases.
    pub(crate) fn from_field(value: Option<String>) -> Result<Self, crate::error::AppError> {
        use crate::error::AppError;
        let value = value.ok_or_else(|| {
            AppError::validation(
                "dbType",
                "`dbType` is required: postgresql, mysql or sqlite.",
            )
        })?;
        Self::parse(&value).ok_or_else(|| {
            AppError::validation(
                "dbType",
                "`dbType` must be postgresql (or postgres), mysql (or mariadb) or sqlite.",
            )
        })
    }

    /// The canonical `dbType`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgresql => "postgresql",
            Self::Mysql => "mysql",
            Self::Sqlite => "sqlite",
        }
    }

    /// The port used when the client gives none.
    pub(crate) fn default_port(self) -> u16 {
        match self {
            Self::Postgresql => 5432,
            Self::Mysql => 3306,
            Self::Sqlite => 0,
        }
    }
}

/// TLS mode for the network engines, with libpq's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it.
    #[default]
    Prefer,
    /// TLS or fail, without checking the certificate.
    Require,
    /// TLS with a certificate signed by a trusted authority.
    VerifyCa,
    /// As `verify-ca`, and the certificate must name the host.
    VerifyFull,
}

impl SslMode {
    /// Parses `ssl`: a mode name, or a boolean as the replaced app sent
    /// (`true` → `require`, `false` → `disable`).
    pub fn parse(value: &serde_json::Value) -> Option<Self> {
        match value {
            serde_json::Value::Bool(true) => Some(Self::Require),
            serde_json::Value::Bool(false) => Some(Self::Disable),
            serde_json::Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "disable" => Some(Self::Disable),
                "prefer" => Some(Self::Prefer),
                "require" => Some(Self::Require),
                "verify-ca" => Some(Self::VerifyCa),
                "verify-full" => Some(Self::VerifyFull),
                _ => None,
            },
            _ => None,
        }
    }

    /// The mode's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// Everything needed to open a connection. Short field names keep tokens small.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnParams {
    /// The engine.
    #[serde(rename = "e")]
    pub engine: Engine,
    /// Host name or address; empty for SQLite.
    #[serde(rename = "h")]
    pub host: String,
    /// TCP port; 0 for SQLite.
    #[serde(rename = "p")]
    pub port: u16,
    /// User name; empty for SQLite.
    #[serde(rename = "u")]
    pub username: String,
    /// Password; empty for SQLite.
    #[serde(rename = "w")]
    pub password: Secret,
    /// Database name (for SQLite, a file name in the SQLite folder).
    #[serde(rename = "d")]
    pub database: String,
    /// TLS mode.
    #[serde(rename = "s")]
    pub ssl: SslMode,
}

impl ConnParams {
    /// The built-in demo database.
    pub fn demo() -> Self {
        Self {
            engine: Engine::Sqlite,
            host: String::new(),
            port: 0,
            username: String::new(),
            password: Secret::default(),
            database: crate::db::sqlite_dir::DEMO.to_owned(),
            ssl: SslMode::Disable,
        }
    }

    /// The parts that identify the connection, without the password, for the
    /// token's `sub` fingerprint.
    pub(crate) fn identity_parts(&self) -> [Vec<u8>; 5] {
        [
            self.engine.as_str().as_bytes().to_vec(),
            self.host.to_ascii_lowercase().into_bytes(),
            self.port.to_be_bytes().to_vec(),
            self.database.as_bytes().to_vec(),
            self.username.as_bytes().to_vec(),
        ]
    }

    /// `host` as shown to clients: `null` for SQLite.
    pub(crate) fn public_host(&self) -> Option<&str> {
        match self.engine {
            Engine::Sqlite => None,
            Engine::Postgresql | Engine::Mysql => Some(&self.host),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_aliases_map_to_canonical_names() {
        assert_eq!(Engine::parse("Postgres"), Some(Engine::Postgresql));
        assert_eq!(Engine::parse("mariadb"), Some(Engine::Mysql));
        assert_eq!(Engine::parse("sqlite"), Some(Engine::Sqlite));
        assert_eq!(Engine::parse("oracle"), None);
    }

    #[test]
    fn ssl_accepts_mode_names_and_booleans() {
        assert_eq!(
            SslMode::parse(&serde_json::json!("verify-full")),
            Some(SslMode::VerifyFull)
        );
        assert_eq!(
            SslMode::parse(&serde_json::json!(true)),
            Some(SslMode::Require)
        );
        assert_eq!(
            SslMode::parse(&serde_json::json!(false)),
            Some(SslMode::Disable)
        );
        assert_eq!(SslMode::parse(&serde_json::json!("sometimes")), None);
        assert_eq!(SslMode::parse(&serde_json::json!(3)), None);
    }

    #[test]
    fn debug_output_hides_the_password() {
        let params = ConnParams {
            engine: Engine::Postgresql,
            host: "db".into(),
            port: 5432,
            username: "app".into(),
            password: Secret::new("pa55word"),
            database: "shop".into(),
            ssl: SslMode::Prefer,
        };
        assert!(!format!("{params:?}").contains("pa55word"));
    }
}
