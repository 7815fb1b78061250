//! Unit tests of token issue and verification: every tampering and policy case of
//! the design is refused with the right reason.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::*;
use crate::db::params::{Engine, SslMode};
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

#[test]
fn issued_token_round_trips_to_the_same_parameters() {
    let service = service(&[("k1", &SECRET_1)]);
    let verified = service.verify(&issue(&service)).expect("verify");
    assert_eq!(verified.params, params());
    assert_eq!(verified.claims.iss, "querygate");
    assert_eq!(verified.claims.exp - verified.claims.iat, 3600);
    assert_eq!(verified.claims.orig, verified.claims.iat);
}

#[test]
fn header_names_algorithm_type_and_key_version() {
    let service = service(&[("k1", &SECRET_1)]);
    let header = jsonwebtoken::decode_header(issue(&service)).expect("header");
    assert_eq!(header.alg, Algorithm::HS256, "HS256 by default");
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(header.kid.as_deref(), Some("k1"));
}

#[test]
fn nothing_identifying_or_secret_appears_in_clear() {
    let service = service(&[("k1", &SECRET_1)]);
    let token = issue(&service);
    let payload = String::from_utf8(
        URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).expect("payload"))
            .expect("b64"),
    )
    .expect("utf8");
    for clear in [
        "db.internal.example",
        "shop_admin",
        "shopdb",
        "correct horse",
        "5432",
    ] {
        assert!(
            !payload.contains(clear),
            "{clear} is visible in the payload"
        );
    }
}

#[test]
fn token_ids_are_random_and_128_bits_or_more() {
    let service = service(&[("k1", &SECRET_1)]);
    let a = decode_claims(&issue(&service));
    let b = decode_claims(&issue(&service));
    assert_ne!(a.jti, b.jti);
    assert!(URL_SAFE_NO_PAD.decode(&a.jti).expect("jti").len() >= 16);
    assert_eq!(a.sub, b.sub, "the same connection has the same fingerprint");
}

#[test]
fn one_flipped_bit_in_header_payload_or_signature_is_rejected() {
    let service = service(&[("k1", &SECRET_1)]);
    let token = issue(&service);
    for segment in 0..3 {
        let length = URL_SAFE_NO_PAD
            .decode(token.split('.').nth(segment).expect("segment"))
            .expect("b64")
            .len();
        for index in [0, length / 2, length - 1] {
            let tampered = flip_bit(&token, segment, index);
            assert!(
                service.verify(&tampered).is_err(),
                "segment {segment} byte {index} tampered but accepted"
            );
        }
    }
}

#[test]
fn tampered_cx_is_rejected_even_when_re_signed() {
    let service = service(&[("k1", &SECRET_1)]);
    let mut claims = decode_claims(&issue(&service));
    let mut raw = URL_SAFE_NO_PAD.decode(&claims.cx).expect("cx");
    raw[20] ^= 1;
    claims.cx = URL_SAFE_NO_PAD.encode(raw);
    let resigned = service.sign("k1", &claims).expect("sign");
    assert_eq!(
        service.verify(resigned.expose()).unwrap_err(),
        TokenError::Undecryptable
    );
}

#[test]
fn cx_transplanted_between_two_valid_tokens_is_rejected() {
    let service = service(&[("k1", &SECRET_1)]);
    let donor = decode_claims(&issue(&service));
    let mut target = decode_claims(&issue(&service));
    target.cx = donor.cx;
    let forged = service.sign("k1", &target).expect("sign");
    assert_eq!(
        service.verify(forged.expose()).unwrap_err(),
        TokenError::Undecryptable
    );
}

#[test]
fn alg_none_is_rejected() {
    let service = service(&[("k1", &SECRET_1)]);
    let token = issue(&service);
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#);
    let payload = token.split('.').nth(1).expect("payload");
    for unsigned in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        assert!(service.verify(&unsigned).is_err());
    }
}

#[test]
fn another_algorithm_than_the_configured_one_is_rejected() {
    let service = service(&[("k1", &SECRET_1)]);
    let claims = decode_claims(&issue(&service));
    let mut header = Header::new(Algorithm::HS512);
    header.kid = Some("k1".into());
    let version = service.ring().get("k1").expect("k1");
    let token = jsonwebtoken::encode(&header, &claims, &version.signing).expect("encode");
    assert_eq!(
        service.verify(&token).unwrap_err(),
        TokenError::WrongAlgorithm
    );
}

#[test]
fn unknown_kid_is_rejected() {
    let issuer = service(&[("k9", &SECRET_1)]);
    let verifier = service(&[("k1", &SECRET_1)]);
    assert_eq!(
        verifier.verify(&issue(&issuer)).unwrap_err(),
        TokenError::UnknownKid
    );
}

#[test]
fn expired_token_is_rejected_as_expired() {
    let service = service(&[("k1", &SECRET_1)]);
    let now = chrono::Utc::now().timestamp();
    let old = service
        .issue_at(&params(), None, now - 3600 - 31)
        .expect("issue");
    let error = service.verify(old.token.expose()).unwrap_err();
    assert_eq!(error, TokenError::Expired);
    assert_eq!(AppError::from(error).code, ErrorCode::TokenExpired);
}

#[test]
fn expiry_within_the_leeway_is_accepted() {
    let service = service(&[("k1", &SECRET_1)]);
    let now = chrono::Utc::now().timestamp();
    let recent = service
        .issue_at(&params(), None, now - 3600 - 10)
        .expect("issue");
    assert!(service.verify(recent.token.expose()).is_ok());
}

#[test]
fn not_yet_valid_token_is_rejected_as_invalid() {
    let service = service(&[("k1", &SECRET_1)]);
    let now = chrono::Utc::now().timestamp();
    let future = service.issue_at(&params(), None, now + 600).expect("issue");
    let error = service.verify(future.token.expose()).unwrap_err();
    assert_eq!(error, TokenError::NotYetValid);
    assert_eq!(AppError::from(error).code, ErrorCode::TokenInvalid);
}

#[test]
fn wrong_issuer_or_audience_is_rejected() {
    let issuer = service(&[("k1", &SECRET_1)]);
    let token = issue(&issuer);
    let ring = || KeyRing::from_secrets([("k1", &SECRET_1[..])]).expect("ring");
    let other_iss = TokenService::new(
        ring(),
        TokenPolicy {
            issuer: "other".into(),
            ..policy()
        },
    );
    let other_aud = TokenService::new(
        ring(),
        TokenPolicy {
            audience: "other".into(),
            ..policy()
        },
    );
    assert!(matches!(
        other_iss.verify(&token),
        Err(TokenError::Rejected(_))
    ));
    assert!(matches!(
        other_aud.verify(&token),
        Err(TokenError::Rejected(_))
    ));
}

#[test]
fn oversized_token_is_rejected_before_parsing() {
    let service = service(&[("k1", &SECRET_1)]);
    let huge = format!("{}.{}.sig", "e".repeat(MAX_TOKEN_BYTES), "e".repeat(10));
    assert_eq!(service.verify(&huge).unwrap_err(), TokenError::TooLarge);
}

#[test]
fn garbage_is_rejected_as_invalid() {
    let service = service(&[("k1", &SECRET_1)]);
    for garbage in ["", "abc", "a.b.c", "....", "eyJhbGciOiJIUzI1NiJ9.e30."] {
        let error = service.verify(garbage).unwrap_err();
        assert_eq!(
            AppError::from(error).code,
            ErrorCode::TokenInvalid,
            "{garbage:?}"
        );
    }
}

#[test]
fn rotated_out_version_is_rejected_and_a_listed_older_one_accepted() {
    let old = service(&[("k1", &SECRET_1)]);
    let token = issue(&old);
    let rotated = service(&[("k2", &SECRET_2), ("k1", &SECRET_1)]);
    assert!(
        rotated.verify(&token).is_ok(),
        "older listed version still verifies"
    );
    let new_token = issue(&rotated);
    assert_eq!(
        jsonwebtoken::decode_header(&new_token)
            .expect("header")
            .kid
            .as_deref(),
        Some("k2")
    );
    let retired = service(&[("k2", &SECRET_2)]);
    assert_eq!(retired.verify(&token).unwrap_err(), TokenError::UnknownKid);
}

#[test]
fn same_kid_with_another_secret_is_rejected() {
    let issuer = service(&[("k1", &SECRET_1)]);
    let impostor = service(&[("k1", &SECRET_2)]);
    assert!(matches!(
        impostor.verify(&issue(&issuer)),
        Err(TokenError::Rejected(_))
    ));
}

#[test]
fn refresh_never_extends_a_chain_past_the_maximum_lifetime() {
    let service = service(&[("k1", &SECRET_1)]);
    let now = chrono::Utc::now().timestamp();
    let orig = now - 86_400 + 100;
    let refreshed = service
        .issue_at(&params(), Some(chain(orig)), now)
        .expect("issue");
    assert_eq!(refreshed.claims.exp, orig + 86_400);
    assert_eq!(refreshed.claims.orig, orig);
    let too_late = service.issue_at(&params(), Some(chain(now - 86_400)), now);
    assert_eq!(too_late.unwrap_err(), TokenError::Expired);
}

#[test]
fn token_of_a_chain_past_its_maximum_lifetime_is_expired() {
    let service = service(&[("k1", &SECRET_1)]);
    let now = chrono::Utc::now().timestamp();
    let orig = now - 86_400 - 60;
    let mut claims = service
        .issue_at(&params(), Some(chain(orig + 120)), now)
        .expect("issue")
        .claims;
    claims.orig = orig;
    // Re-seal so that only the lifetime rule can fail.
    let version = service.ring().active();
    let aad = seal::associated_data("k1", &claims.jti, &claims.sub, orig);
    claims.cx = seal::seal(
        &version.cipher,
        &aad,
        &serde_json::to_vec(&params()).expect("json"),
    )
    .expect("seal");
    let token = service.sign("k1", &claims).expect("sign");
    assert_eq!(
        service.verify(token.expose()).unwrap_err(),
        TokenError::Expired
    );
}

#[test]
fn a_configured_hs512_deployment_accepts_only_hs512() {
    let ring = || KeyRing::from_secrets([("k1", &SECRET_1[..])]).expect("ring");
    let hs512 = TokenService::new(
        ring(),
        TokenPolicy {
            algorithm: TokenAlgorithm::Hs512,
            ..policy()
        },
    );
    let token = hs512
        .issue(&params(), None)
        .expect("issue")
        .token
        .expose()
        .to_owned();
    assert_eq!(
        jsonwebtoken::decode_header(&token).expect("header").alg,
        Algorithm::HS512
    );
    assert!(hs512.verify(&token).is_ok());
    let hs256 = service(&[("k1", &SECRET_1)]);
    assert_eq!(
        hs256.verify(&token).unwrap_err(),
        TokenError::WrongAlgorithm
    );
    assert_eq!(
        hs512.verify(&issue(&hs256)).unwrap_err(),
        TokenError::WrongAlgorithm
    );
}

#[test]
fn a_remembered_token_is_still_refused_once_it_expires() {
    let service = service(&[("k1", &SECRET_1)]);
    let token = issue(&service);
    let now = chrono::Utc::now().timestamp();
    assert!(service.verify(&token).is_ok(), "verified and remembered");
    assert!(
        service.verify_at(&token, now + 60).is_ok(),
        "remembered, still valid"
    );
    assert_eq!(
        service.verify_at(&token, now + 10 * 86_400).unwrap_err(),
        TokenError::Expired
    );
}

#[test]
fn a_token_that_differs_from_a_remembered_one_is_verified_again() {
    let service = service(&[("k1", &SECRET_1)]);
    let token = issue(&service);
    assert!(service.verify(&token).is_ok());
    // Same signature, another payload: the cache must not take it for the first.
    let (rest, signature) = token.rsplit_once('.').expect("jws");
    let (header, _) = rest.split_once('.').expect("jws");
    let forged = format!("{header}.eyJzdWIiOiJ4In0.{signature}");
    assert!(service.verify(&forged).is_err());
}

fn chain(orig: i64) -> Chain {
    Chain {
        orig,
        id: "chain".to_owned(),
    }
}

#[test]
fn a_refresh_keeps_the_chain_id_and_a_new_chain_starts_with_its_own_jti() {
    let service = service(&[("k1", &SECRET_1)]);
    let first = service.issue(&params(), None).expect("issue");
    assert_eq!(first.claims.cid.as_deref(), Some(first.claims.jti.as_str()));
    let refreshed = service
        .issue(&params(), Some(first.claims.chain()))
        .expect("refresh");
    assert_ne!(refreshed.claims.jti, first.claims.jti);
    assert_eq!(refreshed.claims.chain(), first.claims.chain());
    let verified = service.verify(refreshed.token.expose()).expect("verifies");
    assert_eq!(verified.claims.chain().id, first.claims.jti);
}
