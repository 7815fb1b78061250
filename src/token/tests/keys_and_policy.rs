//! Key versions, issuers and algorithms: a token verifies only where its key and policy are.

use super::*;

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
