//! Every way a vendor may echo a secret back in its error text is scrubbed (issue 17, item 10):
//! raw, JSON-escaped, `\uXXXX` for any character (ASCII letters included), `\/`, the HTML-safe
//! escapes some JSON encoders emit (`\u003c`, `\u003e`, `\u0026`, `\u0027`) and URL-encoded.

use authport_core::REDACTED;
use authport_core::transport::{scrub, vendor_text};

/// A canary with a slash, the HTML-sensitive characters, a quote, a backslash, non-ASCII and a
/// character outside the Basic Multilingual Plane (a surrogate pair when `\u`-escaped).
const SECRET: &str = "CANARY-sk/<a&b>'c\"d\\é€😀-5ecret";

/// `\uXXXX` for one UTF-16 unit, in lower or upper case hex.
fn unit(unit: u16, upper: bool) -> String {
    if upper {
        format!("\\u{unit:04X}")
    } else {
        format!("\\u{unit:04x}")
    }
}

/// Every character written as `\uXXXX` (surrogate pairs beyond the BMP).
fn all_escaped(text: &str, upper: bool) -> String {
    text.encode_utf16().map(|u| unit(u, upper)).collect()
}

/// JSON with non-ASCII as `\uXXXX` (Python's `ensure_ascii`), the rest as serde_json writes it.
fn ascii_only(text: &str) -> String {
    let json = serde_json::to_string(text).unwrap();
    let inner = &json[1..json.len() - 1];
    inner
        .chars()
        .map(|c| {
            if c.is_ascii() {
                c.to_string()
            } else {
                let mut units = [0u16; 2];
                c.encode_utf16(&mut units)
                    .iter()
                    .map(|u| unit(*u, true))
                    .collect()
            }
        })
        .collect()
}

/// JSON as an HTML-safe encoder writes it (Go's `encoding/json`, Rails): `<`, `>`, `&` and `'`
/// as `\u00XX`, and `/` as `\/` (PHP's `json_encode`).
fn html_safe(text: &str) -> String {
    let json = serde_json::to_string(text).unwrap();
    json[1..json.len() - 1]
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\'', "\\u0027")
        .replace('/', "\\/")
}

fn percent(text: &str, space: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else if b == b' ' {
                space.to_owned()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The forms a vendor may echo, by name.
fn forms() -> Vec<(&'static str, String)> {
    let json = serde_json::to_string(SECRET).unwrap();
    vec![
        ("raw", SECRET.to_owned()),
        ("json", json[1..json.len() - 1].to_owned()),
        ("json, quoted", json.clone()),
        ("every character \\u, lower hex", all_escaped(SECRET, false)),
        ("every character \\u, upper hex", all_escaped(SECRET, true)),
        ("ascii-only json", ascii_only(SECRET)),
        ("html-safe json with \\/", html_safe(SECRET)),
        ("url-encoded", percent(SECRET, "%20")),
    ]
}

/// Each form, alone and inside a vendor's JSON error body, is gone after the scrub and the
/// text around it is kept.
#[test]
fn every_escaped_form_of_a_secret_echoed_by_a_vendor_is_scrubbed() {
    for (name, form) in forms() {
        for text in [
            form.clone(),
            format!("{{\"error\":\"invalid token {form} for user\"}}"),
            format!("before {form}after"),
        ] {
            let scrubbed = scrub(&text, &[SECRET]);
            assert!(scrubbed.contains(REDACTED), "{name}: {text} -> {scrubbed}");
            assert!(!scrubbed.contains("CANARY"), "{name}: {text} -> {scrubbed}");
            assert!(!scrubbed.contains(&form), "{name}: {text} -> {scrubbed}");
            // Nothing of the secret is left in any encoding: the tail (`5ecret`) and its
            // escaped first letter are gone too.
            for left in [
                "5ecret", "\\u0043", "\\u0035", "\\u00e9", "\\u00E9", "%C3%A9",
            ] {
                assert!(!scrubbed.contains(left), "{name}: {text} -> {scrubbed}");
            }
            let shown = vendor_text(&text, &[SECRET]);
            assert!(!shown.contains("CANARY"), "{name}: {shown}");
        }
    }
}

/// Text without a secret keeps its words; a decoded escape shows as the character it stands
/// for, and an escape that is not JSON's stays as it was.
#[test]
fn text_without_the_secret_keeps_its_words() {
    let check = |text: &str, expect: &str| {
        assert_eq!(scrub(text, &[SECRET]), expect, "{text}");
    };
    check("plain words", "plain words");
    check("a \\u00e9t\\u00e9 b", "a \\u00e9t\\u00e9 b");
    check("bad \\x escape \\u12", "bad \\x escape \\u12");
    check("", "");
    assert_eq!(
        scrub("x \\u0061bc y", &["abc"]),
        format!("x {REDACTED} y"),
        "an ASCII letter written as \\u0061"
    );
    assert_eq!(scrub("a\\/b", &["a/b"]), REDACTED);
}
