//! Helpers shared by the input reader's test files: a fixed clock, a good record, and an
//! outline of what the reader yields.

use std::io::Cursor;

use authport_core::input::{InputItem, InputReader};
use chrono::{DateTime, TimeZone, Utc};

pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
}

/// A valid record with id `acme-42/mailchimp`.
pub const GOOD: &str = r#"{"id":"acme-42/mailchimp","owner":{"id":"acme-42","name":"Acme Inc"},"service":"mailchimp","auth":{"type":"api_key","api_key":"k-1"}}"#;

/// [`GOOD`] with another id.
pub fn good(id: &str) -> String {
    GOOD.replace("acme-42/mailchimp", id)
}

pub fn read(name: &str, bytes: &[u8]) -> Vec<InputItem> {
    InputReader::from_reader(name, Cursor::new(bytes.to_vec()), now()).collect()
}

/// One line per item: `line ok id` or `line err <display>`.
pub fn outline(items: &[InputItem]) -> Vec<String> {
    items
        .iter()
        .map(|item| match &item.result {
            Ok(record) => format!("{} ok {}", item.line, record.id),
            Err(error) => format!("{} err {error}", item.line),
        })
        .collect()
}

/// Reads `GOOD`, then `bad`, then `GOOD` with another id: the bad line must fail with exactly
/// `expect`, and the good lines around it must still be read.
#[track_caller]
pub fn check(bad: &str, expect: &str) {
    let text = format!("{GOOD}\n{bad}\n{}\n", good("after"));
    let lines = outline(&read("in.jsonl", text.as_bytes()));
    assert_eq!(
        lines,
        vec![
            "1 ok acme-42/mailchimp".to_owned(),
            format!("2 err in.jsonl:2: {expect}"),
            "3 ok after".to_owned(),
        ]
    );
}
