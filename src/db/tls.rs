//! TLS to PostgreSQL, with libpq's `sslmode` meanings, on a connection that was
//! dialled to an address the host policy checked.
//!
//! The certificate is verified against the host *name* the client gave (and sent
//! as SNI), while the TCP connection goes to the checked *address*: no second DNS
//! lookup happens, in any mode. MySQL's driver does the same through its
//! hostname override (see `db::mysql`).
//!
//! - `verify-full`: a chain to a trusted root (the Mozilla set of `webpki-roots`)
//!   and the host name in the certificate.
//! - `verify-ca`: the chain only.
//! - `require` and `prefer`: encryption without authentication, as in libpq.

use std::sync::{Arc, LazyLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::db::params::SslMode;

/// The client configurations, built once.
struct Configs {
    verify_full: Arc<ClientConfig>,
    verify_ca: Arc<ClientConfig>,
    encrypt_only: Arc<ClientConfig>,
}

static CONFIGS: LazyLock<Option<Configs>> = LazyLock::new(build);

fn build() -> Option<Configs> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = Arc::new(RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    });
    let webpki = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
        .build()
        .ok()?;
    let config = |verifier: Arc<dyn ServerCertVerifier>| {
        ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map(|builder| {
                Arc::new(
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(verifier)
                        .with_no_client_auth(),
                )
            })
            .ok()
    };
    let relaxed = |relax| {
        Arc::new(Relaxed {
            webpki: Arc::clone(&webpki),
            relax,
        })
    };
    Some(Configs {
        verify_full: config(webpki.clone())?,
        verify_ca: config(relaxed(Relax::AnyName))?,
        encrypt_only: config(relaxed(Relax::AnyCertificate))?,
    })
}

/// The configuration for `mode`, or `None` for `disable` (or when the TLS library
/// could not be set up, which the caller reports as a TLS failure).
pub(crate) fn client_config(mode: SslMode) -> Option<Arc<ClientConfig>> {
    let configs = CONFIGS.as_ref()?;
    match mode {
        SslMode::Disable => None,
        SslMode::Prefer | SslMode::Require => Some(Arc::clone(&configs.encrypt_only)),
        SslMode::VerifyCa => Some(Arc::clone(&configs.verify_ca)),
        SslMode::VerifyFull => Some(Arc::clone(&configs.verify_full)),
    }
}

/// The name to present (SNI) and verify: the host as the client gave it.
pub(crate) fn server_name(host: &str) -> Option<ServerName<'static>> {
    ServerName::try_from(host.to_owned()).ok()
}

/// What a relaxed mode asks of the server's certificate. Either way the
/// handshake's signatures are checked, so the session keys belong to whoever
/// holds the certificate's key.
#[derive(Debug, Clone, Copy)]
enum Relax {
    /// `verify-ca`: a trusted chain, whatever name the certificate carries.
    AnyName,
    /// `require`/`prefer`: any certificate at all.
    AnyCertificate,
}

/// The WebPKI verifier with one of its checks relaxed.
#[derive(Debug)]
struct Relaxed {
    webpki: Arc<WebPkiServerVerifier>,
    relax: Relax,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.relax {
            Relax::AnyCertificate => Ok(ServerCertVerified::assertion()),
            Relax::AnyName => match self.webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp,
                now,
            ) {
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. },
                )) => Ok(ServerCertVerified::assertion()),
                other => other,
            },
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}
