//! Tokens changed after issue, forged or malformed: every one refused.

use super::*;

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
    let version = service.ring.get("k1").expect("k1");
    let token = jsonwebtoken::encode(&header, &claims, &version.signing).expect("encode");
    assert_eq!(
        service.verify(&token).unwrap_err(),
        TokenError::WrongAlgorithm
    );
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
