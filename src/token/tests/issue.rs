//! What an issued token holds, and what it keeps to itself.

use super::*;

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
    ] {
        assert!(
            !payload.contains(clear),
            "{clear} is visible in the payload"
        );
    }
    // The port, as a value: the timestamps' digits may contain "5432" by chance.
    let claims: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&payload).expect("json");
    for (name, value) in &claims {
        assert_ne!(
            value,
            &serde_json::json!(5432),
            "the port is visible as {name}"
        );
        assert_ne!(
            value,
            &serde_json::json!("5432"),
            "the port is visible as {name}"
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
