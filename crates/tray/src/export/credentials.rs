//! Tray's `credentials` object typed into a canonical auth, by its key set: Tray stores
//! whatever keys the service's connector uses (`access_token` or `accessToken`, `email` +
//! `api_token`, ...), so a set that is exactly one canonical kind becomes that kind, and any
//! other set becomes `custom` with a warning naming its keys, never dropped. The import puts a
//! record's `settings` into `credentials` too (Salesforce's `instance_url`, QuickBooks'
//! `realm_id`), so keys with a well-known non-secret setting's name are read back as settings
//! when what remains is exactly one canonical kind. Pure.

use std::collections::BTreeMap;

use authport_core::{Auth, Expiry, OAuth2, ProviderError, RecordWarning, SecretValue};
use chrono::{DateTime, Utc};

/// `accessToken` → `access_token`; snake_case keys stay as they are.
pub fn snake_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for (i, c) in key.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c == '-' {
            out.push('_');
        } else {
            out.push(c);
        }
    }
    out
}

const OAUTH_KEYS: &[&str] = &[
    "access_token",
    "refresh_token",
    "token_type",
    "scope",
    "scopes",
    "expires_in",
    "expires_at",
    "client_id",
];
const API_KEY_KEYS: &[&str] = &["api_key", "api_token", "token", "key"];
/// Names that are connection settings, never secrets (design.md's examples and their kin):
/// only these move from Tray's `credentials` to the record's `settings`, a lane that is
/// printed. Any other extra key keeps the whole set `custom` (secret) instead.
const SETTING_KEYS: &[&str] = &[
    "instance_url",
    "realm_id",
    "dc",
    "subdomain",
    "domain",
    "region",
    "site",
    "base_url",
    "api_domain",
    "account_id",
    "company_id",
    "tenant_id",
];

/// The names the import's mapping (`map.rs`) gives a basic auth's two halves, read back the
/// same way, so an auth imported as basic (Zendesk's `email` + `api_token`) exports as basic.
const USERNAME_KEYS: &[&str] = &["username", "email", "user", "login"];
const PASSWORD_KEYS: &[&str] = &["password", "api_token", "token", "secret"];

/// A typed credentials object: the auth, the scopes an OAuth `scope` string names, and the
/// settings that were stored among the credentials.
pub(super) struct Typed {
    pub auth: Auth,
    pub scopes: Option<Vec<String>>,
    pub settings: serde_json::Map<String, serde_json::Value>,
}

fn warn(warnings: &mut Vec<RecordWarning>, field: impl Into<String>, message: impl Into<String>) {
    warnings.push(RecordWarning {
        field: field.into(),
        message: message.into(),
    });
}

/// The credentials by key set: oauth2 (an access token and only OAuth keys), api_key (one key
/// of an API key's usual names), basic (`username` + `password`), else custom. Also returns
/// the scopes an OAuth `scope` string names.
pub(super) fn type_credentials(
    credentials: BTreeMap<String, SecretValue>,
    warnings: &mut Vec<RecordWarning>,
) -> Result<Typed, ProviderError> {
    let mut values: BTreeMap<String, (String, SecretValue)> = BTreeMap::new();
    for (key, value) in credentials {
        let name = snake_case(&key);
        if values.contains_key(&name) {
            // Two spellings of one key (`access_token` and `accessToken`): keep both, typed
            // as custom below under their own names.
            values.insert(key.clone(), (key, value));
        } else {
            values.insert(name, (key, value));
        }
    }
    let is_setting = |name: &str, value: &SecretValue| {
        SETTING_KEYS.contains(&name)
            && matches!(value, SecretValue::Text(_) | SecretValue::Number(_))
    };
    let rest: Vec<&str> = values
        .iter()
        .filter(|(name, (_, value))| !is_setting(name, value))
        .map(|(name, _)| name.as_str())
        .collect();
    let mut settings = serde_json::Map::new();
    if rest.len() < values.len() && is_exact_kind(&rest) {
        let (found, others): (BTreeMap<_, _>, BTreeMap<_, _>) = std::mem::take(&mut values)
            .into_iter()
            .partition(|(name, (_, value))| is_setting(name, value));
        values = others;
        settings = found
            .into_iter()
            .map(|(name, (_, value))| (name, setting_value(value)))
            .collect();
    }
    let (auth, scopes) = type_set(values, warnings)?;
    Ok(Typed {
        auth,
        scopes,
        settings,
    })
}

/// Whether these key names are exactly one canonical kind (the rules of `type_set`).
fn is_exact_kind(names: &[&str]) -> bool {
    (names.contains(&"access_token") && names.iter().all(|n| OAUTH_KEYS.contains(n)))
        || (names.len() == 1 && API_KEY_KEYS.contains(&names[0]))
        || basic_pair(names).is_some()
}

/// A setting's value for the record's (printed) `settings`.
fn setting_value(value: SecretValue) -> serde_json::Value {
    use authport_core::ExposeSecret as _;
    match value {
        SecretValue::Text(text) => serde_json::Value::String(text.expose_secret().to_owned()),
        SecretValue::Number(number) => serde_json::Value::Number(number),
        _ => serde_json::Value::Null,
    }
}

/// Types one key set (see the module comment).
fn type_set(
    mut values: BTreeMap<String, (String, SecretValue)>,
    warnings: &mut Vec<RecordWarning>,
) -> Result<(Auth, Option<Vec<String>>), ProviderError> {
    let names: Vec<&str> = values.keys().map(String::as_str).collect();
    let only = |allowed: &[&str]| names.iter().all(|n| allowed.contains(n));
    if names.contains(&"access_token") && only(OAUTH_KEYS) {
        return oauth2(values, warnings);
    }
    if names.len() == 1 && API_KEY_KEYS.contains(&names[0]) {
        let (_, (_, value)) = values.into_iter().next().unwrap_or_else(|| unreachable!());
        if let Some(api_key) = value.into_secret() {
            return Ok((Auth::ApiKey { api_key }, None));
        }
        return Err(ProviderError::rejected("tray auth has an empty API key"));
    }
    if let Some((user_key, password_key)) = basic_pair(&names) {
        let mut take = |name: &str| values.remove(name).and_then(|(_, v)| v.into_secret());
        if let (Some(username), Some(password)) = (take(&user_key), take(&password_key)) {
            return Ok((Auth::Basic { username, password }, None));
        }
        return Err(ProviderError::rejected(
            "tray auth has an empty username or password",
        ));
    }
    if !values.is_empty() {
        warn(
            warnings,
            "auth",
            format!(
                "tray credentials ({}) are not exactly an oauth2, api_key or basic set: exported as custom",
                values
                    .values()
                    .map(|(key, _)| key.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    let mut fields = BTreeMap::new();
    for (_, (key, value)) in values {
        match value.into_secret() {
            Some(secret) => {
                fields.insert(key, secret);
            }
            None => warn(
                warnings,
                format!("auth.fields.{key}"),
                "empty in tray: left out",
            ),
        }
    }
    if fields.is_empty() {
        return Err(ProviderError::rejected("tray auth has no credentials"));
    }
    Ok((Auth::Custom { fields }, None))
}

/// Two keys, one a username's name and the other a password's: their names.
fn basic_pair(names: &[&str]) -> Option<(String, String)> {
    let [a, b] = names else {
        return None;
    };
    for (user, password) in [(a, b), (b, a)] {
        if USERNAME_KEYS.contains(user) && PASSWORD_KEYS.contains(password) {
            return Some(((*user).to_owned(), (*password).to_owned()));
        }
    }
    None
}

fn oauth2(
    mut values: BTreeMap<String, (String, SecretValue)>,
    warnings: &mut Vec<RecordWarning>,
) -> Result<(Auth, Option<Vec<String>>), ProviderError> {
    use authport_core::ExposeSecret as _;
    let mut take = |name: &str| values.remove(name).map(|(_, value)| value);
    let access_token = take("access_token")
        .and_then(SecretValue::into_secret)
        .ok_or_else(|| ProviderError::rejected("tray auth has an empty access token"))?;
    let refresh_token = take("refresh_token").and_then(SecretValue::into_secret);
    let text = |value: Option<SecretValue>| {
        value
            .and_then(SecretValue::into_secret)
            .map(|s| s.expose_secret().to_owned())
    };
    let token_type = text(take("token_type"));
    let client_id = text(take("client_id"));
    let scope = match take("scope") {
        Some(value) => Some(value),
        None => take("scopes"),
    };
    let scopes = text(scope)
        .map(|s| parse_scopes(&s))
        .filter(|s| !s.is_empty());
    let expiry = match take("expires_at") {
        None => None,
        Some(value) => {
            let at = expires_at(value);
            if at.is_none() {
                warn(
                    warnings,
                    "auth.expires_at",
                    "tray's expires_at is not an RFC 3339 instant or Unix seconds: expiry left out",
                );
            }
            at.map(|expires_at| Expiry {
                expires_at,
                issued_at: None,
                suspect_milliseconds: false,
            })
        }
    };
    if expiry.is_none() && take("expires_in").is_some() {
        warn(
            warnings,
            "auth.expires_in",
            "tray keeps a token lifetime without the moment it was issued: expiry unknown, left out",
        );
    }
    Ok((
        Auth::OAuth2(OAuth2 {
            access_token,
            refresh_token,
            token_type,
            scopes: Vec::new(),
            expiry,
            client_id,
        }),
        scopes,
    ))
}

/// `"a b"`, `"a,b"` or a JSON array's text.
fn parse_scopes(text: &str) -> Vec<String> {
    if let Ok(list) = serde_json::from_str::<Vec<String>>(text) {
        return list;
    }
    text.split([' ', ','])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn expires_at(value: SecretValue) -> Option<DateTime<Utc>> {
    use authport_core::ExposeSecret as _;
    match value {
        SecretValue::Text(text) => DateTime::parse_from_rfc3339(text.expose_secret())
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        SecretValue::Number(n) => n.as_i64().and_then(|s| DateTime::from_timestamp(s, 0)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn camel_case_keys_become_snake_case() {
        for (key, expect) in [
            ("accessToken", "access_token"),
            ("access_token", "access_token"),
            ("expiresIn", "expires_in"),
            ("apiKey", "api_key"),
            ("api-key", "api_key"),
            ("dc", "dc"),
        ] {
            assert_eq!(snake_case(key), expect, "{key}");
        }
    }

    #[test]
    fn credentials_are_typed_by_their_key_set() {
        let read = |value: Value| {
            let credentials: BTreeMap<String, SecretValue> = serde_json::from_value(value).unwrap();
            let mut warnings = Vec::new();
            let typed = type_credentials(credentials, &mut warnings);
            (typed.map(|typed| typed.auth.kind()), warnings.len())
        };
        assert_eq!(read(json!({"apiKey": "k"})), (Ok("api_key"), 0));
        assert_eq!(read(json!({"token": "k"})), (Ok("api_key"), 0));
        assert_eq!(
            read(json!({"username": "u", "password": "p"})),
            (Ok("basic"), 0)
        );
        assert_eq!(
            read(json!({"access_token": "a", "scope": "x y"})),
            (Ok("oauth2"), 0)
        );
        assert_eq!(
            read(json!({"email": "u", "api_token": "p"})),
            (Ok("basic"), 0)
        );
        assert_eq!(read(json!({"key": "k", "secret": "s"})), (Ok("custom"), 1));
        // An empty value is left out with a warning of its own.
        assert_eq!(read(json!({"key": "k", "secret": ""})), (Ok("custom"), 2));
        assert!(read(json!({})).0.is_err());
        assert!(read(json!({"api_key": ""})).0.is_err());
    }

    #[test]
    fn settings_stored_among_the_credentials_come_back_as_settings() {
        let read = |value: Value| {
            let credentials: BTreeMap<String, SecretValue> = serde_json::from_value(value).unwrap();
            let mut warnings = Vec::new();
            let typed = type_credentials(credentials, &mut warnings).unwrap();
            (
                typed.auth.kind(),
                Value::Object(typed.settings),
                warnings.len(),
            )
        };
        // Salesforce and QuickBooks as Tray stores them after an import.
        assert_eq!(
            read(
                json!({"access_token": "a", "refresh_token": "r", "token_type": "Bearer",
                "instance_url": "https://acme.my.salesforce.com"})
            ),
            (
                "oauth2",
                json!({"instance_url": "https://acme.my.salesforce.com"}),
                0
            )
        );
        assert_eq!(
            read(json!({"access_token": "a", "refresh_token": "r", "realm_id": 4620816365_u64})),
            ("oauth2", json!({"realm_id": 4620816365_u64}), 0)
        );
        assert_eq!(
            read(json!({"api_key": "k", "subdomain": "acme"})),
            ("api_key", json!({"subdomain": "acme"}), 0)
        );
        // An unknown extra key keeps every key secret, in custom.
        assert_eq!(
            read(json!({"access_token": "a", "instance_url": "u", "signing_secret": "s"})),
            ("custom", json!({}), 1)
        );
    }

    #[test]
    fn scopes_parse_from_the_usual_spellings() {
        assert_eq!(parse_scopes("a b"), ["a", "b"]);
        assert_eq!(parse_scopes("a,b"), ["a", "b"]);
        assert_eq!(parse_scopes(r#"["a","b"]"#), ["a", "b"]);
    }
}
