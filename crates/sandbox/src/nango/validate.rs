//! Checks of `POST /connections` bodies, after the spec's request schema: required
//! `provider_config_key` and `credentials`; closed credential objects (`OAuth2Credentials`,
//! `ApiKeyCredentials`, `BasicApiCredentials`, ...); `Tags` (≤ 10 string values of ≤ 255
//! characters). Problems name a location and a rule, never a value (bodies hold secrets).

use serde_json::{Map, Value};

/// `(type, required keys, allowed keys)` of the credential objects the upsert takes.
const CREDENTIALS: [(&str, &[&str], &[&str]); 7] = [
    (
        "OAUTH2",
        &["access_token"],
        &[
            "access_token",
            "refresh_token",
            "expires_at",
            "config_override",
        ],
    ),
    ("API_KEY", &["apiKey"], &["apiKey"]),
    (
        "BASIC",
        &["username", "password"],
        &["username", "password"],
    ),
    (
        "OAUTH1",
        &["oauth_token", "oauth_token_secret"],
        &["oauth_token", "oauth_token_secret"],
    ),
    (
        "OAUTH2_CC",
        &["token"],
        &[
            "token",
            "expires_at",
            "client_id",
            "client_secret",
            "client_certificate",
            "client_private_key",
        ],
    ),
    (
        "TBA",
        &["token_id", "token_secret"],
        &["token_id", "token_secret", "config_override"],
    ),
    (
        "APP",
        &["app_id", "installation_id"],
        &["app_id", "installation_id"],
    ),
];

/// Every problem of an upsert body; empty when it is valid.
pub fn upsert_body_problems(body: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(body) = body.as_object() else {
        return vec!["body: must be an object".to_owned()];
    };
    // The request schema is open at the top level (no `additionalProperties: false`).
    match body.get("provider_config_key") {
        Some(Value::String(_)) => {}
        Some(_) => problems.push("provider_config_key: must be a string".to_owned()),
        None => problems.push("provider_config_key: is required".to_owned()),
    }
    if let Some(id) = body.get("connection_id")
        && !id.is_string()
    {
        problems.push("connection_id: must be a string".to_owned());
    }
    for key in ["metadata", "connection_config"] {
        if let Some(value) = body.get(key)
            && !value.is_object()
        {
            problems.push(format!("{key}: must be an object"));
        }
    }
    match body.get("credentials") {
        Some(Value::Object(credentials)) => credential_problems(credentials, &mut problems),
        Some(_) => problems.push("credentials: must be an object".to_owned()),
        None => problems.push("credentials: is required".to_owned()),
    }
    if let Some(tags) = body.get("tags") {
        tag_problems(tags, &mut problems);
    }
    problems
}

fn credential_problems(credentials: &Map<String, Value>, problems: &mut Vec<String>) {
    let Some(kind) = credentials.get("type").and_then(Value::as_str) else {
        problems.push("credentials.type: is required and must be a string".to_owned());
        return;
    };
    if kind == "NONE" {
        return;
    }
    let Some((_, required, allowed)) = CREDENTIALS.iter().find(|(name, _, _)| *name == kind) else {
        problems.push("credentials.type: is not one of the documented types".to_owned());
        return;
    };
    for key in *required {
        if !credentials.contains_key(*key) {
            problems.push(format!("credentials.{key}: is required for {kind}"));
        }
    }
    for (key, value) in credentials {
        if key == "type" {
            continue;
        }
        if !allowed.contains(&key.as_str()) {
            problems.push(format!("credentials.{key}: is not allowed for {kind}"));
            continue;
        }
        let is_object_key = key == "config_override";
        if is_object_key {
            match value.as_object() {
                Some(config) => {
                    for (inner, inner_value) in config {
                        if !["client_id", "client_secret"].contains(&inner.as_str()) {
                            problems.push(format!(
                                "credentials.config_override.{inner}: is not allowed"
                            ));
                        } else if !inner_value.is_string() {
                            problems.push(format!(
                                "credentials.config_override.{inner}: must be a string"
                            ));
                        }
                    }
                }
                None => problems.push("credentials.config_override: must be an object".to_owned()),
            }
        } else if !value.is_string() {
            problems.push(format!("credentials.{key}: must be a string"));
        } else if key == "expires_at" && !is_date_time(value.as_str().unwrap_or_default()) {
            problems.push("credentials.expires_at: must be an RFC 3339 date-time".to_owned());
        }
    }
}

fn tag_problems(tags: &Value, problems: &mut Vec<String>) {
    let Some(tags) = tags.as_object() else {
        problems.push("tags: must be an object".to_owned());
        return;
    };
    if tags.len() > 10 {
        problems.push("tags: at most 10 tags".to_owned());
    }
    for (key, value) in tags {
        match value.as_str() {
            None => problems.push(format!("tags.{key}: must be a string")),
            Some(text) if text.chars().count() > 255 => {
                problems.push(format!("tags.{key}: at most 255 characters"));
            }
            Some(_) => {}
        }
    }
}

fn is_date_time(text: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(text).is_ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn bodies_are_checked_like_the_spec_says() {
        let check = |body: Value, expect: &[&str]| {
            assert_eq!(upsert_body_problems(&body), expect, "{body}");
        };
        check(
            json!({"provider_config_key": "hubspot", "connection_id": "c",
                   "credentials": {"type": "OAUTH2", "access_token": "a",
                                   "expires_at": "2026-11-01T10:00:00Z"}}),
            &[],
        );
        check(
            json!({"provider_config_key": "g", "credentials": {"type": "API_KEY", "api_key": "k"}}),
            &[
                "credentials.apiKey: is required for API_KEY",
                "credentials.api_key: is not allowed for API_KEY",
            ],
        );
        check(
            json!({"credentials": {"type": "BASIC", "username": "u", "password": 5}}),
            &[
                "provider_config_key: is required",
                "credentials.password: must be a string",
            ],
        );
        check(
            json!({"provider_config_key": "h", "credentials": {"type": "OAUTH2", "access_token": "a",
                   "expires_at": "tomorrow", "scopes": "x"}}),
            &[
                "credentials.expires_at: must be an RFC 3339 date-time",
                "credentials.scopes: is not allowed for OAUTH2",
            ],
        );
        let many: Map<String, Value> = (0..11).map(|i| (format!("k{i}"), json!("v"))).collect();
        check(
            json!({"provider_config_key": "h", "credentials": {"type": "NONE"}, "tags": many}),
            &["tags: at most 10 tags"],
        );
    }
}
