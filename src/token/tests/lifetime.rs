//! Expiry, the leeway, and a chain's maximum lifetime.

use super::*;

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
    let version = service.ring.active();
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
