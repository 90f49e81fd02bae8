//! Apideck Vault's JSON, as far as authport reads it. Every field is optional and enums are
//! kept as strings: Apideck adds values over time (vault.yml marks almost nothing required).

use serde::Deserialize;
use serde_json::{Map, Value};

/// `Connection` (the parts authport uses). `settings` may echo secrets of apiKey/basic
/// connectors: never print it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Connection {
    pub id: Option<String>,
    pub service_id: Option<String>,
    pub unified_api: Option<String>,
    pub name: Option<String>,
    pub state: Option<String>,
    pub health: Option<String>,
    /// When a token refresh last failed (a string in vault.yml; the number `0` or null when
    /// none did): kept as read, for `status`.
    pub last_refresh_failed_at: Option<Value>,
    pub integration_state: Option<String>,
    pub auth_type: Option<String>,
    pub enabled: Option<bool>,
    pub form_fields: Vec<FormField>,
    pub metadata: Option<Map<String, Value>>,
    pub settings_required_for_authorization: Vec<String>,
}

/// The parts of the import's answer (a `Connection`) that the import reads: the id for the
/// stored reference and the words of its note. serde skips the other fields without building
/// them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ImportedConnection {
    pub id: Option<String>,
    pub state: Option<String>,
    pub health: Option<String>,
    pub auth_type: Option<String>,
}

/// `FormField` (the parts authport uses).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct FormField {
    pub id: String,
    pub label: Option<String>,
    #[serde(rename = "type")]
    pub field_type: Option<String>,
    pub required: Option<bool>,
    pub sensitive: Option<bool>,
    pub hidden: Option<bool>,
    pub disabled: Option<bool>,
    pub deprecated: Option<bool>,
}

impl FormField {
    /// Must be filled for the connection to work (hidden, disabled and deprecated fields are
    /// not the user's to fill).
    pub fn is_required(&self) -> bool {
        self.required == Some(true)
            && self.hidden != Some(true)
            && self.disabled != Some(true)
            && self.deprecated != Some(true)
    }

    /// Holds a secret (masked input).
    pub fn is_sensitive(&self) -> bool {
        self.sensitive == Some(true) || self.field_type.as_deref() == Some("password")
    }
}

/// The success envelope `{status_code, status, data}`.
#[derive(Debug, Deserialize)]
pub struct Envelope<T> {
    pub data: T,
}

/// `ValidateConnectionStateResponse.data`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ValidatedState {
    pub id: Option<String>,
    pub state: Option<String>,
}

/// Apideck's error envelope; no key is required and `detail` is a string or an object.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ErrorEnvelope {
    pub status_code: Option<f64>,
    pub error: Option<String>,
    pub type_name: Option<String>,
    pub message: Option<String>,
    pub detail: Option<Value>,
    #[serde(rename = "ref")]
    pub reference: Option<String>,
}

/// One page of `GET /vault/consumers` (`GetConsumersResponse`): `data` and the next cursor.
#[derive(Debug, Deserialize)]
pub struct ConsumersPage {
    pub data: Vec<ConsumerItem>,
    #[serde(default)]
    pub meta: Option<PageMeta>,
}

/// An item of `GetConsumersResponse.data` (the parts authport uses). Neither key is required
/// by vault.yml: a missing one is told apart from an empty one.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ConsumerItem {
    pub consumer_id: Option<String>,
    /// The service ids (`salesforce`, ...) the consumer holds a connection to.
    pub services: Option<Vec<String>>,
}

/// `Meta` (the cursors only).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PageMeta {
    pub cursors: Option<PageCursors>,
}

/// `Meta.cursors` (the next one only; it is `null` on the last page).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PageCursors {
    pub next: Option<String>,
}
