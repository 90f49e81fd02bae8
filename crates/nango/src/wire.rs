//! Nango's JSON, as far as authport reads it, from `nango.yaml`. Only documented fields;
//! optional where a future answer might leave them out. Credentials are never deserialized:
//! authport reads a connection's ids, tags, metadata and `errors[]`, and an integration's
//! public client id and scopes, nothing secret.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

/// `Integration`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Integration {
    pub unique_key: String,
    pub provider: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

/// `IntegrationCredentials` as far as the binding check reads it: the OAuth client id and
/// scopes. No `client_secret` field: serde skips it unread, so it is never kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct IntegrationClient {
    pub client_id: Option<String>,
    /// `"a,b"` or null.
    pub scopes: Option<String>,
}

/// `IntegrationFull` reduced to its `credentials` (null for an integration without any).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct IntegrationWithClient {
    pub credentials: Option<IntegrationClient>,
}

/// `GET /integrations/{uniqueKey}?include=credentials` -> `{"data": IntegrationFull}`.
#[derive(Debug, Deserialize)]
pub struct IntegrationAnswer {
    pub data: IntegrationWithClient,
}

/// `GET /integrations` -> `{"data": [Integration]}`.
#[derive(Debug, Deserialize)]
pub struct IntegrationList {
    pub data: Vec<Integration>,
}

/// `ConnectionError`: `type` is `auth` or `sync`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ConnectionError {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub log_id: Option<String>,
}

/// `ConnectionFull` without `credentials` (serde skips the field unread), or an item of
/// `GET /connections`, which has the same non-secret fields.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Connection {
    pub id: Option<u64>,
    pub connection_id: String,
    pub provider_config_key: String,
    pub provider: Option<String>,
    pub errors: Vec<ConnectionError>,
    pub metadata: Option<Map<String, Value>>,
    pub tags: BTreeMap<String, String>,
}

/// `GET /connections` -> `{"connections": [...]}`.
#[derive(Debug, Deserialize)]
pub struct ConnectionList {
    pub connections: Vec<Connection>,
}

/// `StdError`: `{"error": {"code", "message"?, "errors"?}}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StdError {
    pub error: Option<StdErrorBody>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StdErrorBody {
    pub code: Option<String>,
    pub message: Option<String>,
    /// Validation details; each may quote what was sent, so only their count is shown.
    pub errors: Option<Vec<Value>>,
}

/// Nango's error text: `code: message (N validation errors)`. The kit scrubs and shortens it.
pub fn error_text(_status: u16, body: &[u8]) -> Option<String> {
    let error = serde_json::from_slice::<StdError>(body).ok()?.error?;
    let mut text = error.code.unwrap_or_default();
    if let Some(message) = error.message.filter(|m| !m.is_empty()) {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&message);
    }
    if let Some(errors) = error.errors.filter(|e| !e.is_empty()) {
        text.push_str(&format!(" ({} validation errors)", errors.len()));
    }
    (!text.is_empty()).then_some(text)
}

/// `ConnectSession`, the `data` of a `POST /connect/sessions` (or `/reconnect`) answer. The
/// token opens the owner's Connect UI until it expires: a secret (`Debug` redacts it).
/// `connect_link` is not read: the link is built from `[nango] connect_url` (see `links`).
#[derive(Debug, Deserialize)]
pub struct ConnectSession {
    pub token: authport_core::SecretString,
    pub expires_at: String,
}

/// `{"data": ConnectSession}`.
#[derive(Debug, Deserialize)]
pub struct ConnectSessionAnswer {
    pub data: ConnectSession,
}
