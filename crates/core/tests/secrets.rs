//! Canary secrets in records never show in `Debug`, errors or redacted plans.

use std::io::Cursor;

use authport_core::input::InputReader;
use authport_core::{SecretJson, redact_json};
use chrono::Utc;

const CANARIES: [&str; 6] = [
    "CANARY-access-7f3a",
    "CANARY-refresh-19bc",
    "CANARY-apikey-55d1",
    "CANARY-user-0a0a",
    "CANARY-pass-e2e2",
    "CANARY-custom-4b4b",
];

fn input() -> String {
    [
        format!(r#"{{"id":"a","owner":{{"id":"o"}},"service":"s","auth":{{"type":"oauth2","access_token":"{}","refresh_token":"{}","issued_at":"2026-01-01T00:00:00Z","expires_in":3600}}}}"#, CANARIES[0], CANARIES[1]),
        format!(r#"{{"id":"b","owner":{{"id":"o"}},"service":"s","auth":{{"type":"api_key","api_key":"{}"}}}}"#, CANARIES[2]),
        format!(r#"{{"id":"c","owner":{{"id":"o"}},"service":"s","auth":{{"type":"basic","username":"{}","password":"{}"}}}}"#, CANARIES[3], CANARIES[4]),
        format!(r#"{{"id":"d","owner":{{"id":"o"}},"service":"s","auth":{{"type":"custom","fields":{{"k":"{}"}}}}}}"#, CANARIES[5]),
        // Secrets in the wrong places: errors must name the field, not quote the value.
        format!(r#"{{"id":"e","owner":{{"id":"o"}},"service":"s","auth":{{"type":"oauth2","access_token":"t","issued_at":"2026-01-01T00:00:00Z","expires_in":"{}"}}}}"#, CANARIES[0]),
        format!(r#"{{"id":"f","owner":{{"id":"o"}},"service":"s","auth":{{"type":"api_key","api_key":["{}"]}}}}"#, CANARIES[2]),
        format!(r#"{{"id":"g","owner":{{"id":"o"}},"service":"s","auth":{{"type":"{}"}}}}"#, "oauth3"),
        format!(r#"{{"id":"h","owner":{{"id":"o"}},"service":"s","auth":{{"type":"basic","username":"{}","password":"{}","oops":1}},"x":"{}"}}"#, CANARIES[3], CANARIES[4], CANARIES[4]),
        format!(r#"{{"id":"i","owner":{{"id":"o"}},"service":"s","auth":{{"type":"api_key","api_key":"{}"}}"#, CANARIES[2]),
    ]
    .join("\n")
}

#[test]
fn no_canary_in_debug_or_error_output() {
    let items: Vec<_> =
        InputReader::from_reader("in.jsonl", Cursor::new(input().into_bytes()), Utc::now())
            .collect();
    assert_eq!(items.len(), 9);
    let mut printed = String::new();
    for item in &items {
        printed.push_str(&format!("{item:?}\n{:#?}\n", item.result));
        match &item.result {
            Ok(record) => {
                printed.push_str(&format!("{record:?} {:?}\n", record.auth));
                // The plan a provider derives from a body is redacted by value.
                let body = serde_json::json!({"nested": {"token": format!("Bearer {}", record.secret_values().join(" "))}, "list": record.secret_values()});
                printed.push_str(&redact_json(&body, &record.secret_values()).to_string());
                printed.push_str(&format!("{:?}", SecretJson::new(body)));
            }
            Err(error) => printed.push_str(&format!("{error}\n")),
        }
    }
    assert_eq!(
        items.iter().filter(|i| i.result.is_ok()).count(),
        4,
        "{printed}"
    );
    for canary in CANARIES {
        assert!(
            !printed.contains(canary),
            "canary {canary} leaked:\n{printed}"
        );
    }
    // The output is not empty: the check above would pass vacuously otherwise.
    assert!(printed.contains("[redacted]"));
    assert!(printed.contains("auth.expires_in: expected an integer, found a string"));
}

#[test]
fn fingerprint_keys_depend_on_credential_and_salt_and_never_print() {
    use authport_core::{FingerprintKey, SecretString};
    let credential = SecretString::from("CANARY-master-1");
    let key = FingerprintKey::derive(&credential, b"salt-a");
    let same = FingerprintKey::derive(&SecretString::from("CANARY-master-1"), b"salt-a");
    let other_credential =
        FingerprintKey::derive(&SecretString::from("CANARY-master-2"), b"salt-a");
    let other_salt = FingerprintKey::derive(&credential, b"salt-b");
    let parts: [&[u8]; 2] = [b"body", b"target"];
    let fingerprint = key.fingerprint(&parts);
    assert_eq!(fingerprint.len(), 64);
    assert_eq!(fingerprint, same.fingerprint(&parts));
    assert_ne!(fingerprint, other_credential.fingerprint(&parts));
    assert_ne!(fingerprint, other_salt.fingerprint(&parts));
    // Parts are length-prefixed: moving a byte between parts changes the fingerprint.
    assert_ne!(fingerprint, key.fingerprint(&[b"bodyt", b"arget"]));
    assert_eq!(format!("{key:?}"), "FingerprintKey([redacted])");
}

/// State files written before keep matching: the fingerprint is exactly
/// `HMAC(HMAC(credential, LABEL || salt), len || part ...)` in lower-case hex (the expected
/// value was computed with Python's `hmac`, independently of this crate).
#[test]
fn fingerprints_and_tags_match_an_independent_computation() {
    use authport_core::{FingerprintKey, SecretString, record_tag};
    let key = FingerprintKey::derive(&SecretString::from("CANARY-master-1"), b"salt-a");
    let parts: [&[u8]; 2] = [b"body", b"target"];
    assert_eq!(
        key.fingerprint(&parts),
        "903237c815f7f307b56db19dead45e70434c62b92ccbd3400621d864eeb077b2"
    );
    // The cloned MAC state does not leak between calls.
    assert_eq!(key.fingerprint(&parts), key.fingerprint(&parts));
    assert_eq!(record_tag("abc"), "ba7816bf8f01cfea");
}
