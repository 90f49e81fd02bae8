//! Request-body validation for `ConnectionImportData` (vault.yml), written out by hand because
//! the sandbox has no schema validator at runtime. The contract tests check that it agrees with
//! a JSON-Schema validator run on the spec itself.

use serde_json::{Map, Value};

/// The only keys the closed `credentials` object admits.
const CREDENTIAL_KEYS: [&str; 4] = ["access_token", "refresh_token", "issued_at", "expires_in"];

/// Every way `body` violates `ConnectionImportData`, as `path: problem` strings that name
/// fields, never values (the body holds secrets).
pub fn import_body_problems(body: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(top) = body.as_object() else {
        problems.push(format!("body: expected an object, found {}", kind(body)));
        return problems;
    };
    if let Some(credentials) = top.get("credentials") {
        match credentials {
            Value::Object(map) => credential_problems(map, &mut problems),
            other => problems.push(format!(
                "credentials: expected an object, found {}",
                kind(other)
            )),
        }
    }
    for open_object in ["settings", "metadata"] {
        match top.get(open_object) {
            None | Some(Value::Null | Value::Object(_)) => {}
            Some(other) => problems.push(format!(
                "{open_object}: expected an object or null, found {}",
                kind(other)
            )),
        }
    }
    problems
}

fn credential_problems(credentials: &Map<String, Value>, problems: &mut Vec<String>) {
    for key in credentials.keys() {
        if !CREDENTIAL_KEYS.contains(&key.as_str()) {
            problems.push(format!(
                "credentials.{key}: additional properties are not allowed"
            ));
        }
    }
    // `access_token` is not nullable; the other three are.
    match credentials.get("access_token") {
        None | Some(Value::String(_)) => {}
        Some(other) => problems.push(format!(
            "credentials.access_token: expected a string, found {}",
            kind(other)
        )),
    }
    match credentials.get("refresh_token") {
        None | Some(Value::Null | Value::String(_)) => {}
        Some(other) => problems.push(format!(
            "credentials.refresh_token: expected a string or null, found {}",
            kind(other)
        )),
    }
    match credentials.get("issued_at") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => {
            if chrono::DateTime::parse_from_rfc3339(text).is_err() {
                problems.push("credentials.issued_at: expected an RFC 3339 date-time".to_owned());
            }
        }
        Some(other) => problems.push(format!(
            "credentials.issued_at: expected a date-time string or null, found {}",
            kind(other)
        )),
    }
    match credentials.get("expires_in") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => {}
        Some(other) => problems.push(format!(
            "credentials.expires_in: expected an integer or null, found {}",
            kind(other)
        )),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
