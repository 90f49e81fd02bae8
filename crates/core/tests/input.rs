//! The input reader: one case per kind of bad input, asserting the located message; JSON
//! arrays; constant memory on a large file.

use crate::input_support;

use std::io::{BufReader, Cursor, Read};

use authport_core::input::{InputReader, MAX_RECORD_BYTES};
use authport_core::{Auth, ExposeSecret};
use chrono::{TimeZone, Utc};
use input_support::{GOOD, check, good, now, outline, read};

#[test]
fn each_kind_of_bad_input_is_located_and_does_not_stop_the_rest() {
    check(
        "{\"id\": \"x\",",
        "malformed JSON: EOF while parsing a value (column 11)",
    );
    check("not json", "malformed JSON: expected ident (column 2)");
    check("[1, 2]", "expected a JSON object, found an array");
    check(
        r#"{"id":"b","owner":{"id":"o"},"service":"s","auth":{"type":"api_key","api_key":"k"},"servcie":"typo"}"#,
        "unknown top-level field (its name is not shown; did you mean `service`?); expected one of: id, owner, service, name, auth, settings, metadata, targets",
    );
    check(
        r#"{"id":"b","owner":{"id":"o","nmae":"x"},"service":"s","auth":{"type":"api_key","api_key":"k"}}"#,
        "owner: unknown field (its name is not shown; did you mean `name`?); expected one of: id, name, email",
    );
    check(
        r#"{"id":"b","owner":{"id":"o"},"service":"s","auth":{"type":"api_key","api_key":"k","apikey":"k"}}"#,
        "auth: unknown field (its name is not shown; did you mean `api_key`?); expected one of: type, api_key",
    );
    check(
        r#"{"id":"b","owner":{"id":"o"},"auth":{"type":"api_key","api_key":"k"}}"#,
        "service: is required",
    );
    check(
        r#"{"id":"b","service":"s","auth":{"type":"api_key","api_key":"k"}}"#,
        "owner: is required",
    );
    check(
        r#"{"id":"b","owner":{"id":"o"},"service":"s","auth":{"type":"oauth2"}}"#,
        "auth.access_token: is required",
    );
    check(
        r#"{"id":7,"owner":{"id":"o"},"service":"s","auth":{"type":"api_key","api_key":"k"}}"#,
        "id: expected a string, found a number",
    );
    check(
        r#"{"id":"b","owner":{"id":"o"},"service":"s","auth":{"type":"oauth2","access_token":"t","scopes":"a b"}}"#,
        "auth.scopes: expected an array of strings, found a string",
    );
    check(
        r#"{"id":"b","owner":{"id":"o"},"service":"s","auth":{"type":"oauth2","access_token":"t","issued_at":"2026-11-01T10:00:00Z","expires_in":"3600"}}"#,
        "auth.expires_in: expected an integer, found a string",
    );
    check(
        r#"{"id":"b","owner":{"id":"o"},"service":"s","auth":{"type":"api_key","api_key":"  "}}"#,
        "auth.api_key: secret is empty",
    );
    check(
        r#"{"id":"b","owner":{"id":"o"},"service":"s","auth":{"type":"custom","fields":{"key":""}}}"#,
        "auth.fields.key: secret is empty",
    );
    check(
        r#"{"id":"b","owner":{"id":"o"},"service":"s","auth":{"type":"bearer","token":"t"}}"#,
        "auth.type: unknown auth type; expected one of: oauth2, api_key, basic, custom",
    );
    check(
        r#"{"id":"b","owner":{"id":"o"},"service":"s","auth":{"type":"oauth2","access_token":"t","expires_in":3600}}"#,
        "auth.expires_in: needs issued_at: expires_in counts from the moment the token was issued",
    );
    check(
        r#"{"id":"b","owner":{"id":"o"},"service":"s","auth":{"type":"oauth2","access_token":"t","expires_at":"tomorrow"}}"#,
        "auth.expires_at: expected an RFC 3339 date-time such as 2026-11-01T10:00:00Z",
    );
    check(
        r#"{"id":"b","owner":{"id":"o"},"service":"s","auth":{"type":"api_key","api_key":"k"},"targets":{"tray":"x"}}"#,
        "targets.tray: expected an object of overrides, found a string",
    );
    check(
        r#"{"id":"acme-42/mailchimp","owner":{"id":"o"},"service":"s","auth":{"type":"api_key","api_key":"k"}}"#,
        "id: duplicate id: an earlier record in this file has the same id",
    );
}

#[test]
fn a_record_with_several_problems_reports_all_of_them() {
    check(
        r#"{"owner":{"id":""},"service":"s","auth":{"type":"basic","username":"u"},"extra":1}"#,
        "id: is required; owner.id: must not be empty; auth.password: is required; unknown top-level field (its name is not shown); expected one of: id, owner, service, name, auth, settings, metadata, targets",
    );
}

#[test]
fn invalid_utf8_is_located() {
    let mut text = format!("{GOOD}\n").into_bytes();
    text.extend_from_slice(b"{\"id\":\"\xff\"}\n");
    text.extend_from_slice(GOOD.replace("acme-42/mailchimp", "after").as_bytes());
    let lines = outline(&read("in.jsonl", &text));
    assert_eq!(
        lines,
        vec![
            "1 ok acme-42/mailchimp",
            "2 err in.jsonl:2: invalid UTF-8 at byte 8 of the record",
            "3 ok after",
        ]
    );
}

#[test]
fn a_line_over_the_limit_is_skipped_without_buffering_it() {
    let huge = format!("{{\"id\":\"{}\"}}", "x".repeat(MAX_RECORD_BYTES + 10));
    let text = format!(
        "{GOOD}\n{huge}\n{}\n",
        GOOD.replace("acme-42/mailchimp", "after")
    );
    let mut reader = InputReader::from_reader("in.jsonl", Cursor::new(text.into_bytes()), now());
    let lines = outline(&reader.by_ref().collect::<Vec<_>>());
    assert_eq!(
        lines,
        vec![
            "1 ok acme-42/mailchimp".to_owned(),
            format!(
                "2 err in.jsonl:2: record is longer than the {MAX_RECORD_BYTES}-byte limit; it was skipped"
            ),
            "3 ok after".to_owned(),
        ]
    );
    assert!(reader.largest_buffer() <= 2 * MAX_RECORD_BYTES);
}

#[test]
fn a_line_of_exactly_the_limit_is_read_and_one_byte_more_is_skipped() {
    // Padded with trailing blanks, which JSON allows after the value.
    let sized = |id: &str, bytes: usize| {
        let record = good(id);
        format!("{record}{}", " ".repeat(bytes - record.len()))
    };
    let fits = sized("fits", MAX_RECORD_BYTES);
    let over = sized("over", MAX_RECORD_BYTES + 1);
    let skipped = |line: u32| {
        format!(
            "{line} err in.jsonl:{line}: record is longer than the {MAX_RECORD_BYTES}-byte limit; it was skipped"
        )
    };
    // Each size followed by a newline, and last in a file that does not end with one.
    for end in ["\n", ""] {
        let last = sized("last", MAX_RECORD_BYTES);
        let text = format!("{fits}\n{over}\n{last}{end}");
        assert_eq!(
            outline(&read("in.jsonl", text.as_bytes())),
            vec!["1 ok fits".to_owned(), skipped(2), "3 ok last".to_owned()]
        );
        let text = format!("{fits}\n{over}{end}");
        assert_eq!(
            outline(&read("in.jsonl", text.as_bytes())),
            vec!["1 ok fits".to_owned(), skipped(2)]
        );
    }
}

#[test]
fn blank_lines_are_skipped_and_line_numbers_stay_true() {
    let text = format!(
        "\n\n{GOOD}\n   \n\r\n{}\n\n",
        GOOD.replace("acme-42/mailchimp", "b")
    );
    assert_eq!(
        outline(&read("in.jsonl", text.as_bytes())),
        vec!["3 ok acme-42/mailchimp", "6 ok b"]
    );
}

#[test]
fn crlf_line_endings_are_accepted() {
    let text = format!("{GOOD}\r\n{}\r\n", GOOD.replace("acme-42/mailchimp", "b"));
    assert_eq!(
        outline(&read("in.jsonl", text.as_bytes())),
        vec!["1 ok acme-42/mailchimp", "2 ok b"]
    );
}

#[test]
fn json_array_files_are_read_element_by_element_with_their_lines() {
    let text = format!(
        "[\n  {GOOD},\n  {{\"id\": \"bad\", \"owner\": {{\"id\": \"o\"}},\n   \"service\": \"s\", \"auth\": {{\"type\": \"nope\"}}}},\n  {}\n]\n",
        GOOD.replace("acme-42/mailchimp", "c")
    );
    assert_eq!(
        outline(&read("in.json", text.as_bytes())),
        vec![
            "2 ok acme-42/mailchimp",
            "3 err in.json:3: auth.type: unknown auth type; expected one of: oauth2, api_key, basic, custom",
            "5 ok c",
        ]
    );
}

#[test]
fn an_unclosed_json_array_reports_where_it_broke() {
    let text = format!("[\n{GOOD},\n{{\"id\": \"x\"");
    let lines = outline(&read("in.json", text.as_bytes()));
    assert_eq!(
        lines,
        vec![
            "2 ok acme-42/mailchimp",
            "3 err in.json:3: unexpected end of file inside this array element",
        ]
    );
}

#[test]
fn a_failed_record_keeps_its_id_for_the_report() {
    let items = read(
        "in.jsonl",
        br#"{"id":"keep-me","owner":{"id":"o"},"service":"s","auth":{"type":"api_key"}}"#,
    );
    let error = items[0].result.as_ref().unwrap_err();
    assert_eq!(error.id.as_deref(), Some("keep-me"));
}

#[test]
fn expiry_is_normalised_to_one_instant_and_flagged() {
    let parse = |auth: &str| {
        let line = format!(r#"{{"id":"e","owner":{{"id":"o"}},"service":"s","auth":{auth}}}"#);
        let mut items = read("in.jsonl", line.as_bytes());
        items.remove(0).result.unwrap()
    };
    let record = parse(
        r#"{"type":"oauth2","access_token":"t","issued_at":"2026-11-22T11:30:00Z","expires_in":3600}"#,
    );
    let Auth::OAuth2(oauth) = &record.auth else {
        panic!("not oauth2")
    };
    let expiry = oauth.expiry.unwrap();
    assert_eq!(
        expiry.expires_at,
        Utc.with_ymd_and_hms(2026, 11, 22, 12, 30, 0).unwrap()
    );
    assert_eq!(
        expiry.issued_at,
        Some(Utc.with_ymd_and_hms(2026, 11, 22, 11, 30, 0).unwrap())
    );
    assert!(!expiry.suspect_milliseconds);
    assert!(record.warnings.is_empty());

    let record =
        parse(r#"{"type":"oauth2","access_token":"t","expires_at":"2026-11-23T00:00:00+02:00"}"#);
    let Auth::OAuth2(oauth) = &record.auth else {
        panic!("not oauth2")
    };
    assert_eq!(
        oauth.expiry.unwrap().expires_at,
        Utc.with_ymd_and_hms(2026, 11, 22, 22, 0, 0).unwrap()
    );

    let record = parse(
        r#"{"type":"oauth2","access_token":"t","issued_at":"2026-11-22T11:30:00Z","expires_in":3600000}"#,
    );
    let Auth::OAuth2(oauth) = &record.auth else {
        panic!("not oauth2")
    };
    assert!(oauth.expiry.unwrap().suspect_milliseconds);
    let warnings: Vec<String> = record.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        vec![
            "auth.expires_in: 3600000 looks like milliseconds (3600 s); expires_in is in seconds (41 days as given)"
        ]
    );

    let record = parse(
        r#"{"type":"oauth2","access_token":"t","refresh_token":"r","expires_at":"2026-11-01T00:00:00Z"}"#,
    );
    let warnings: Vec<String> = record.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        vec!["auth.access_token: already expired at 2026-11-01T00:00:00Z"]
    );
    let Auth::OAuth2(oauth) = &record.auth else {
        panic!("not oauth2")
    };
    assert_eq!(oauth.refresh_token.as_ref().unwrap().expose_secret(), "r");
}

/// Produces a large JSON Lines file on the fly, without holding it in memory.
struct GeneratedLines {
    remaining: u64,
    next_id: u64,
    pending: Vec<u8>,
    offset: usize,
}

impl Read for GeneratedLines {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.offset == self.pending.len() {
            if self.remaining == 0 {
                return Ok(0);
            }
            self.remaining -= 1;
            self.next_id += 1;
            self.pending = format!(
                "{{\"id\":\"r-{}\",\"owner\":{{\"id\":\"o\"}},\"service\":\"s\",\"auth\":{{\"type\":\"api_key\",\"api_key\":\"k\"}}}}\n",
                self.next_id
            )
            .into_bytes();
            self.offset = 0;
        }
        let n = out.len().min(self.pending.len() - self.offset);
        out[..n].copy_from_slice(&self.pending[self.offset..self.offset + n]);
        self.offset += n;
        Ok(n)
    }
}

#[test]
fn a_million_lines_are_read_with_a_bounded_buffer() {
    let source = GeneratedLines {
        remaining: 1_000_000,
        next_id: 0,
        pending: Vec::new(),
        offset: 0,
    };
    let mut reader = InputReader::from_reader("big.jsonl", BufReader::new(source), now());
    let mut good = 0u64;
    for item in reader.by_ref() {
        assert!(item.result.is_ok(), "line {} failed", item.line);
        good += 1;
    }
    assert_eq!(good, 1_000_000);
    assert_eq!(reader.records_read(), 1_000_000);
    // One short record at a time: the buffer never grows with the file.
    assert!(
        reader.largest_buffer() < 1024,
        "buffer grew to {}",
        reader.largest_buffer()
    );
}

#[test]
fn deep_nesting_is_read_up_to_serde_json_limit_and_refused_beyond_it() {
    let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let line = |depth: usize| {
        GOOD.replace(
            "\"service\"",
            &format!("\"metadata\":{{\"deep\":{}}},\"service\"", nested(depth)),
        )
    };
    let items = read("in.jsonl", line(100).as_bytes());
    assert!(items[0].result.is_ok());
    assert_eq!(
        outline(&read("in.jsonl", line(10_000).as_bytes())),
        vec!["1 err in.jsonl:1: malformed JSON: recursion limit exceeded (column 214)"]
    );
}
