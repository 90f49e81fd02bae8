use super::*;

fn key(byte: u8) -> LinkKey {
    LinkKey::from_bytes([byte; 32])
}

fn claims() -> LinkClaims {
    LinkClaims {
        provider: "apideck".to_owned(),
        owner_id: "owner-1".to_owned(),
        service: "salesforce".to_owned(),
        reason: Health::RefreshFailed,
        expires_at: 2_000_000_000,
    }
}

const NOW: i64 = 1_900_000_000;

#[test]
fn a_signed_token_verifies_to_its_claims() {
    let token = sign(&key(7), &claims());
    assert_eq!(verify(&key(7), &token, NOW), Ok(claims()));
}

#[test]
fn the_same_claims_and_key_give_the_same_token() {
    assert_eq!(sign(&key(7), &claims()), sign(&key(7), &claims()));
    assert_ne!(sign(&key(7), &claims()), sign(&key(8), &claims()));
}

#[test]
fn the_token_is_url_safe_compact_and_holds_the_claims_in_short_keys() {
    let token = sign(&key(7), &claims());
    assert!(
        token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')),
        "{token}"
    );
    assert!(token.len() < 200, "{}", token.len());
    let (payload, tag) = token.split_once('.').unwrap();
    assert_eq!(URL_SAFE_NO_PAD.decode(tag).unwrap().len(), 32);
    let json: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"p": "apideck", "o": "owner-1", "s": "salesforce",
            "r": "refresh_failed", "e": 2_000_000_000})
    );
}

#[test]
fn a_token_verifies_until_its_expiry_and_not_at_it() {
    let token = sign(&key(7), &claims());
    assert!(verify(&key(7), &token, 2_000_000_000 - 1).is_ok());
    assert_eq!(
        verify(&key(7), &token, 2_000_000_000),
        Err(TokenError::Expired)
    );
    assert_eq!(verify(&key(7), &token, i64::MAX), Err(TokenError::Expired));
}

#[test]
fn an_expired_token_with_a_bad_signature_is_a_bad_signature() {
    let token = sign(&key(8), &claims());
    assert_eq!(
        verify(&key(7), &token, i64::MAX),
        Err(TokenError::BadSignature)
    );
}

/// Re-signs the payload with the same key after editing the JSON: only possible with the key.
fn forged_payload(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let token = sign(&key(7), &claims());
    let (payload, tag) = token.split_once('.').unwrap();
    let mut json: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    edit(&mut json);
    let edited = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&json).unwrap());
    format!("{edited}.{tag}")
}

#[test]
fn every_malformed_or_tampered_token_is_a_bad_signature() {
    let good = sign(&key(7), &claims());
    let (payload, tag) = good.split_once('.').unwrap();
    let flipped_tag = {
        let mut bytes = URL_SAFE_NO_PAD.decode(tag).unwrap();
        bytes[31] ^= 1;
        URL_SAFE_NO_PAD.encode(bytes)
    };
    let short_tag = URL_SAFE_NO_PAD.encode(&URL_SAFE_NO_PAD.decode(tag).unwrap()[..16]);
    let cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("garbage", "not-a-token".to_owned()),
        ("no tag", payload.to_owned()),
        ("empty tag", format!("{payload}.")),
        ("empty payload", format!(".{tag}")),
        ("flipped tag bit", format!("{payload}.{flipped_tag}")),
        ("truncated tag", format!("{payload}.{short_tag}")),
        ("padded tag", format!("{payload}.{tag}=")),
        ("two dots", format!("{payload}.{tag}.{tag}")),
        ("other key", sign(&key(8), &claims())),
        (
            "owner changed",
            forged_payload(|j| j["o"] = "owner-2".into()),
        ),
        (
            "expiry pushed",
            forged_payload(|j| j["e"] = i64::MAX.into()),
        ),
        (
            "tag of the csrf",
            format!("{payload}.{}", csrf_token(&key(7), payload)),
        ),
        ("too long", format!("{}{good}", "A".repeat(MAX_TOKEN_LEN))),
        ("non ascii", format!("{payload}é.{tag}")),
    ];
    for (name, token) in cases {
        assert_eq!(
            verify(&key(7), &token, NOW),
            Err(TokenError::BadSignature),
            "{name}"
        );
    }
}

#[test]
fn a_signed_payload_that_is_not_claims_is_a_bad_signature() {
    // Signed with the right key (as a future format might be), but not claims of this version.
    for json in [
        "{}",
        "[]",
        r#"{"p":"a","o":"b","s":"c","r":"refresh_failed","e":1,"x":1}"#,
        r#"{"p":"a","o":"b","s":"c","r":"no_such_reason","e":1}"#,
    ] {
        let payload = URL_SAFE_NO_PAD.encode(json);
        let tag = URL_SAFE_NO_PAD.encode(tag_of(&key(7), &[payload.as_bytes()]));
        assert_eq!(
            verify(&key(7), &format!("{payload}.{tag}"), 0),
            Err(TokenError::BadSignature),
            "{json}"
        );
    }
}

#[test]
fn the_csrf_token_is_bound_to_its_link_and_key() {
    let token = sign(&key(7), &claims());
    let other = sign(
        &key(7),
        &LinkClaims {
            service: "hubspot".to_owned(),
            ..claims()
        },
    );
    let csrf = csrf_token(&key(7), &token);
    assert_eq!(csrf, csrf_token(&key(7), &token));
    assert!(csrf_matches(&key(7), &token, &csrf));
    assert!(!csrf_matches(&key(7), &other, &csrf));
    assert!(!csrf_matches(&key(8), &token, &csrf));
    for bad in ["", "x", &csrf[..42], &format!("{csrf}A"), &token] {
        assert!(!csrf_matches(&key(7), &token, bad), "{bad}");
    }
    // The CSRF token is not the link's tag: one cannot stand for the other.
    assert!(!token.ends_with(&csrf));
}

#[test]
fn the_key_debug_shows_nothing_of_it_and_generated_keys_differ() {
    let generated = LinkKey::generate();
    assert_eq!(format!("{generated:?}"), "LinkKey(..)");
    assert_eq!(format!("{:?}", key(0x41)), "LinkKey(..)");
    assert_ne!(generated.expose_bytes(), LinkKey::generate().expose_bytes());
    let restored = LinkKey::from_bytes(*generated.expose_bytes());
    assert_eq!(sign(&generated, &claims()), sign(&restored, &claims()));
}

#[test]
fn the_errors_say_nothing_of_the_token() {
    assert_eq!(
        TokenError::BadSignature.to_string(),
        "link token is not valid"
    );
    assert_eq!(TokenError::Expired.to_string(), "link has expired");
}
