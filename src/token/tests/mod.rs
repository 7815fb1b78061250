//! Unit tests of token issue and verification: every tampering and policy case of
//! the design is refused with the right reason.

mod issue;
mod keys_and_policy;
mod lifetime;
mod tampering;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::*;
use crate::db::params::{Engine, SslMode};
use crate::error::{AppError, ErrorCode};
use crate::secret::Secret;

const SECRET_1: [u8; 32] = [1; 32];
const SECRET_2: [u8; 32] = [2; 32];

fn policy() -> TokenPolicy {
    TokenPolicy {
        issuer: "querygate".into(),
        audience: "querygate".into(),
        ttl: 3600,
        max_lifetime: 86_400,
        leeway: 30,
        algorithm: TokenAlgorithm::Hs256,
    }
}

fn service(keys: &[(&str, &[u8])]) -> TokenService {
    TokenService::new(
        KeyRing::from_secrets(keys.iter().copied()).expect("ring"),
        policy(),
    )
}

fn params() -> ConnParams {
    ConnParams {
        engine: Engine::Postgresql,
        host: "db.internal.example".into(),
        port: 5432,
        username: "shop_admin".into(),
        password: Secret::new("correct horse battery staple"),
        database: "shopdb".into(),
        ssl: SslMode::Prefer,
    }
}

fn issue(service: &TokenService) -> String {
    service
        .issue(&params(), None)
        .expect("issue")
        .token
        .expose()
        .to_owned()
}

/// Flips the lowest bit of byte `index` of segment `segment` (0 header, 1 payload,
/// 2 signature), re-encoding the segment.
fn flip_bit(token: &str, segment: usize, index: usize) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut raw = URL_SAFE_NO_PAD.decode(&parts[segment]).expect("segment");
    raw[index] ^= 1;
    parts[segment] = URL_SAFE_NO_PAD.encode(raw);
    parts.join(".")
}

fn decode_claims(token: &str) -> Claims {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("claims")
}

fn chain(orig: i64) -> Chain {
    Chain {
        orig,
        id: "chain".to_owned(),
    }
}
