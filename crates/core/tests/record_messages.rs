//! What a bad record's message may say: repeated keys are refused and located by their path,
//! texts with control characters are refused, and no message quotes a value or a key the
//! format does not know (a canary secret is planted in each of those places).

use crate::input_support;

use authport_core::input::InputItem;
use input_support::{GOOD, check, good, outline, read};

const CANARY: &str = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
const REPEATED: &str = "repeated key: each key may appear only once in an object";

/// A record line with `id` b whose `auth` object is `auth` and with `extra` appended to the
/// top-level object (start it with a comma).
fn record(auth: &str, extra: &str) -> String {
    format!(r#"{{"id":"b","owner":{{"id":"o"}},"service":"s","auth":{auth}{extra}}}"#)
}

const API_KEY: &str = r#"{"type":"api_key","api_key":"k"}"#;

/// The only item of a one-line input, which must be an error.
fn only_error(line: &str) -> authport_core::input::InputError {
    let mut items: Vec<InputItem> = read("in.jsonl", line.as_bytes());
    assert_eq!(items.len(), 1);
    items.remove(0).result.unwrap_err()
}

#[test]
fn a_repeated_key_is_refused_and_located_by_its_path() {
    check(
        &format!(
            r#"{{"id":"b","id":"{CANARY}","owner":{{"id":"o"}},"service":"s","auth":{API_KEY}}}"#
        ),
        &format!("id: {REPEATED}"),
    );
    check(
        &record(
            API_KEY,
            &format!(r#","auth":{{"type":"api_key","api_key":"{CANARY}"}}"#),
        ),
        &format!("auth: {REPEATED}"),
    );
    check(
        &record(
            &format!(r#"{{"type":"oauth2","access_token":"t","access_token":"{CANARY}"}}"#),
            "",
        ),
        &format!("auth.access_token: {REPEATED}"),
    );
    check(
        &format!(
            r#"{{"id":"b","owner":{{"id":"o","id":"{CANARY}"}},"service":"s","auth":{API_KEY}}}"#
        ),
        &format!("owner.id: {REPEATED}"),
    );
    check(
        &record(
            &format!(r#"{{"type":"custom","fields":{{"secret":"x","secret":"{CANARY}"}}}}"#),
            "",
        ),
        &format!("auth.fields.secret: {REPEATED}"),
    );
    check(
        &record(API_KEY, r#","metadata":{"plan":"a","plan":"b"}"#),
        &format!("metadata.plan: {REPEATED}"),
    );
    check(
        &record(API_KEY, r#","settings":{"list":[{"x":1},{"x":1,"x":2}]}"#),
        &format!("settings.list[1].x: {REPEATED}"),
    );
}

#[test]
fn a_repeated_key_keeps_the_id_for_the_report_unless_the_id_is_repeated() {
    let error = only_error(&record(API_KEY, r#","service":"t""#));
    assert_eq!(error.id.as_deref(), Some("b"));
    let error = only_error(&format!(
        r#"{{"id":"b","id":"c","owner":{{"id":"o"}},"service":"s","auth":{API_KEY}}}"#
    ));
    assert_eq!(error.id, None);
}

#[test]
fn a_repeated_key_in_a_json_array_is_located_to_its_own_line() {
    let text = format!(
        "[\n{},\n{{\"id\": \"b\", \"owner\": {{\"id\": \"o\"}}, \"service\": \"s\",\n \"auth\": {{\"type\": \"api_key\",\n  \"api_key\": \"k\", \"api_key\": \"{CANARY}\"}}}},\n{}\n]",
        good("a"),
        good("c")
    );
    assert_eq!(
        outline(&read("in.json", text.as_bytes())),
        vec![
            "2 ok a".to_owned(),
            format!("3 err in.json:5: auth.api_key: {REPEATED}"),
            "6 ok c".to_owned(),
        ]
    );
}

#[test]
fn a_repeated_unknown_key_is_refused_without_its_name() {
    let withheld = format!("{REPEATED} (at or inside an unknown field, whose name is not shown)");
    check(
        &record(API_KEY, &format!(r#","{CANARY}":1,"{CANARY}":2"#)),
        &withheld,
    );
    check(
        &record(
            &format!(r#"{{"type":"api_key","api_key":"k","x":{{"{CANARY}":1,"{CANARY}":2}}}}"#),
            "",
        ),
        &format!("auth: {withheld}"),
    );
}

#[test]
fn control_characters_are_refused_in_every_text_field() {
    let control = r"a\u001b[2Jb";
    check(
        &format!(r#"{{"id":"{control}","owner":{{"id":"o"}},"service":"s","auth":{API_KEY}}}"#),
        "id: must not contain control characters",
    );
    check(
        &format!(r#"{{"id":"b","owner":{{"id":"{control}"}},"service":"s","auth":{API_KEY}}}"#),
        "owner.id: must not contain control characters",
    );
    check(
        &format!(r#"{{"id":"b","owner":{{"id":"o"}},"service":"s\n","auth":{API_KEY}}}"#),
        "service: must not contain control characters",
    );
    check(
        &record(API_KEY, r#","name":"Acme\r\nforged line""#),
        "name: must not contain control characters",
    );
    check(
        &format!(
            r#"{{"id":"b","owner":{{"id":"o","name":"\t","email":"{control}"}},"service":"s","auth":{API_KEY}}}"#
        ),
        "owner.name: must not contain control characters; owner.email: must not contain control characters",
    );
    check(
        &record(
            r#"{"type":"oauth2","access_token":"t","scopes":["read","\u0007"]}"#,
            "",
        ),
        "auth.scopes[1]: must not contain control characters",
    );
}

#[test]
fn a_refused_id_is_not_carried_to_the_report() {
    let error = only_error(&format!(
        r#"{{"id":"a\u001b[2Jb","owner":{{"id":"o"}},"service":"s","auth":{API_KEY}}}"#
    ));
    assert_eq!(error.id, None);
}

#[test]
fn an_unknown_auth_type_is_not_echoed() {
    check(
        &record(&format!(r#"{{"type":"{CANARY}","token":"t"}}"#), ""),
        "auth.type: unknown auth type; expected one of: oauth2, api_key, basic, custom",
    );
    // A near miss is answered with our own name, never with the input.
    check(
        &record(r#"{"type":"OAuth2","access_token":"t"}"#, ""),
        "auth.type: unknown auth type (did you mean `oauth2`?); expected one of: oauth2, api_key, basic, custom",
    );
}

#[test]
fn unknown_keys_are_counted_not_named() {
    check(
        &record(API_KEY, &format!(r#","{CANARY}":"x""#)),
        "unknown top-level field (its name is not shown); expected one of: id, owner, service, name, auth, settings, metadata, targets",
    );
    check(
        &format!(
            r#"{{"id":"b","owner":{{"id":"o","{CANARY}":"x","emial":"e"}},"service":"s","auth":{API_KEY}}}"#
        ),
        "owner: 2 unknown fields (their names are not shown; did you mean `email`?); expected one of: id, name, email",
    );
    check(
        &record(
            &format!(r#"{{"type":"basic","username":"u","password":"p","{CANARY}":"x"}}"#),
            "",
        ),
        "auth: unknown field (its name is not shown); expected one of: type, username, password",
    );
}

#[test]
fn a_field_of_another_auth_type_is_named_it_is_ours() {
    check(
        &record(
            &format!(r#"{{"type":"api_key","api_key":"k","access_token":"t","{CANARY}":1}}"#),
            "",
        ),
        "auth.access_token: belongs to another auth type; expected one of: type, api_key; auth: unknown field (its name is not shown); expected one of: type, api_key",
    );
}

#[test]
fn operator_named_keys_are_shown_escaped() {
    check(
        &record(r#"{"type":"custom","fields":{"a\u001bb":7}}"#, ""),
        r"auth.fields.a\u{1b}b: expected a string, found a number",
    );
    check(
        &record(API_KEY, r#","targets":{"tray\n":"x"}"#),
        r"targets.tray\n: expected an object of overrides, found a string",
    );
}

/// A canary secret in every place a careless export can put one: no message, and no id read
/// back for the report, ever contains it.
#[test]
fn no_message_quotes_a_planted_secret() {
    let bad_lines = [
        record(&format!(r#"{{"type":"{CANARY}"}}"#), ""),
        record(&format!(r#"{{"type":"api_key","{CANARY}":"k"}}"#), ""),
        record(
            &format!(r#"{{"type":"api_key","api_key":"k","{CANARY}":1}}"#),
            "",
        ),
        record(API_KEY, &format!(r#","{CANARY}":"{CANARY}""#)),
        record(API_KEY, &format!(r#","{CANARY}":1,"{CANARY}":2"#)),
        record(
            &format!(r#"{{"type":"oauth2","access_token":"t","expires_at":"{CANARY}"}}"#),
            "",
        ),
        record(
            &format!(
                r#"{{"type":"oauth2","access_token":"t","issued_at":"{CANARY}","expires_in":"{CANARY}"}}"#
            ),
            "",
        ),
        record(
            &format!(r#"{{"type":"oauth2","access_token":"t","scopes":"{CANARY}"}}"#),
            "",
        ),
        record(
            &format!(r#"{{"type":"basic","username":{{"{CANARY}":1}}}}"#),
            "",
        ),
        format!(r#"{{"id":{CANARY},"owner":{{"id":"o"}}}}"#),
        format!(r#""{CANARY}""#),
        format!(r#"{{"{CANARY}":"{CANARY}"}}"#),
        format!(r#"{{"id":"{CANARY}\u0000"}}"#),
    ];
    let text = format!("{GOOD}\n{}\n", bad_lines.join("\n"));
    let items = read("in.jsonl", text.as_bytes());
    assert_eq!(items.len(), bad_lines.len() + 1);
    assert!(items[0].result.is_ok());
    for item in &items[1..] {
        let error = item.result.as_ref().expect_err("every planted line is bad");
        let shown = format!("{error} {error:?}");
        assert!(
            !shown.contains(CANARY) && !shown.contains("sk_live"),
            "line {}: {shown}",
            item.line
        );
    }
}
