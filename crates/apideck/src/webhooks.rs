//! Apideck's Vault webhooks, pure: the signature check and the typed event.
//!
//! Signature (Apideck's webhook-signature-verification guide): HMAC-SHA256 keyed with the API
//! key over the whole request body with every object's keys sorted alphabetically, recursively,
//! arrays kept in order. The serialisation and digest encoding are not stated: we compute the
//! compact serialisation and a hex digest (the spec's example signature is 64 hex digits), and
//! also accept an HMAC of the raw body bytes. Both are keyed by the secret, so the fallback does
//! not weaken the check. Comparison is constant-time (`hmac`'s `verify_slice`).
//!
//! The event ([`ConnectionEvent`]) keeps only documented fields that are not secrets: the
//! connection's `settings` and `metadata` are never read.

use authport_core::TargetRef;
use hmac::{Hmac, Mac as _};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::Sha256;

/// Sent with every delivery, but not signed: never read. The event type is the signed body's.
pub const EVENT_TYPE_HEADER: &str = "x-apideck-event-type";
pub const SIGNATURE_HEADER: &str = "x-apideck-signature";
/// Sent with every delivery, but not signed: deliveries are deduplicated on the signed
/// `payload.event_id` instead, so a replay under a fresh key is still recognised.
pub const IDEMPOTENCY_HEADER: &str = "x-apideck-idempotency-key";

/// Why a delivery was refused. Messages never quote the body or a header value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the webhook signature is missing or does not match")]
    BadSignature,
    #[error("the webhook body is not the JSON Apideck documents: {0}")]
    Malformed(String),
}

/// The body as Apideck signs it: keys sorted recursively, arrays in order, compact.
pub fn canonical_body(value: &Value) -> Vec<u8> {
    serde_json::to_vec(&sorted(value)).unwrap_or_default()
}

// Explicit sort: the workspace may enable serde_json's `preserve_order` some day.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for key in keys {
                out.insert(key.clone(), sorted(&map[key]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

fn mac(api_key: &SecretString, bytes: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(api_key.expose_secret().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(bytes);
    mac
}

/// The hex signature Apideck sends for `body` (the sorted form; used by tests and the sandbox
/// benchmark driver).
pub fn sign(api_key: &SecretString, body: &Value) -> String {
    let digest = mac(api_key, &canonical_body(body)).finalize().into_bytes();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks `signature` (hex, either case) against `raw` in constant time: over the sorted form
/// of `parsed` when the body is JSON, then over the raw bytes.
pub fn verify(
    api_key: &SecretString,
    raw: &[u8],
    parsed: Option<&Value>,
    signature: Option<&str>,
) -> Result<(), WebhookError> {
    let expected = signature
        .and_then(decode_hex)
        .ok_or(WebhookError::BadSignature)?;
    if let Some(value) = parsed
        && mac(api_key, &canonical_body(value))
            .verify_slice(&expected)
            .is_ok()
    {
        return Ok(());
    }
    mac(api_key, raw)
        .verify_slice(&expected)
        .map_err(|_| WebhookError::BadSignature)
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// A Vault webhook body: `{"payload": ConnectionEvent}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Envelope {
    pub payload: ConnectionEvent,
}

/// `ConnectionEvent` (spec `components.schemas.ConnectionEvent`), documented fields only.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ConnectionEvent {
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    /// Always `apideck-vault` in Apideck's examples; the connector is `entity.service_id`.
    pub service_id: Option<String>,
    pub entity_id: Option<String>,
    pub entity_type: Option<String>,
    pub execution_attempt: Option<f64>,
    pub occurred_at: Option<String>,
    pub entity: Option<EventConnection>,
}

/// The non-secret fields of the event's `ConsumerConnection` (no `settings`, no `metadata`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EventConnection {
    pub id: Option<String>,
    pub consumer_id: Option<String>,
    pub unified_api: Option<String>,
    pub service_id: Option<String>,
    pub auth_type: Option<String>,
    pub enabled: Option<bool>,
    pub state: Option<String>,
    pub health: Option<String>,
    #[serde(default, deserialize_with = "timestamp")]
    pub created_at: Option<String>,
    #[serde(default, deserialize_with = "timestamp")]
    pub updated_at: Option<String>,
    #[serde(default, deserialize_with = "timestamp")]
    pub credentials_expire_at: Option<String>,
    #[serde(default, deserialize_with = "timestamp")]
    pub last_refresh_failed_at: Option<String>,
}

/// ConsumerConnection's times are ISO 8601 strings; `Connection`'s are Unix ms. A number is
/// read as ms (0 = none) so the type trap of §3 cannot reject a delivery.
fn timestamp<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(text)) if !text.is_empty() => Some(text),
        Some(Value::Number(n)) => n
            .as_i64()
            .filter(|ms| *ms > 0)
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        _ => None,
    })
}

/// Parses a body into its event. The message names the JSON path, never a value.
pub fn parse_event(value: &Value) -> Result<ConnectionEvent, WebhookError> {
    let envelope: Envelope = serde_path_to_error::deserialize(value)
        .map_err(|e| WebhookError::Malformed(format!("at `{}`", e.path())))?;
    Ok(envelope.payload)
}

impl ConnectionEvent {
    /// When the event happened: `occurred_at` ("ISO Datetime", the spec's example is RFC 3339
    /// with milliseconds and `Z`), as UTC; `None` when absent or not RFC 3339.
    pub fn occurred_at_utc(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let text = self.occurred_at.as_deref()?;
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    }

    /// The connection key of the event's connection (see [`connection_key`]), when the entity
    /// names its consumer, unified API and connector.
    pub fn connection_key(&self) -> Option<String> {
        let entity = self.entity.as_ref()?;
        Some(connection_key(
            entity.consumer_id.as_deref()?,
            entity.unified_api.as_deref()?,
            entity.service_id.as_deref()?,
        ))
    }
}

/// The event store's key of a Vault connection: its consumer, unified API and connector, as a
/// JSON array (unambiguous whatever the ids hold).
pub fn connection_key(consumer_id: &str, unified_api: &str, service_id: &str) -> String {
    serde_json::to_string(&[consumer_id, unified_api, service_id]).unwrap_or_default()
}

/// The connection key of a journal target ref ([`crate::ApideckRef`]).
pub fn connection_key_of(target: &TargetRef) -> Option<String> {
    let reference = crate::ApideckRef::try_from(target).ok()?;
    Some(connection_key(
        &reference.consumer_id,
        &reference.unified_api,
        &reference.service_id,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> SecretString {
        SecretString::from("canary-api-key".to_owned())
    }

    fn body() -> Value {
        json!({"payload": {"event_type": "vault.connection.token_refresh.failed", "event_id": "e1",
            "entity": {"unified_api": "crm", "consumer_id": "c1", "service_id": "hubspot",
                "health": "needs_auth", "last_refresh_failed_at": "2026-11-25T10:00:00.000Z",
                "settings": {"api_key": "canary-secret"}}}})
    }

    #[test]
    fn a_signature_over_the_sorted_body_verifies_whatever_the_key_order_sent() {
        let value = body();
        let signature = sign(&key(), &value);
        // Sent with keys in another order: the sorted form still matches.
        let raw = br#"{"payload":{"event_id":"e1","entity":{"service_id":"hubspot","consumer_id":"c1","unified_api":"crm","health":"needs_auth","last_refresh_failed_at":"2026-11-25T10:00:00.000Z","settings":{"api_key":"canary-secret"}},"event_type":"vault.connection.token_refresh.failed"}}"#;
        let parsed: Value = serde_json::from_slice(raw).unwrap();
        verify(&key(), raw, Some(&parsed), Some(&signature)).unwrap();
        verify(&key(), raw, Some(&parsed), Some(&signature.to_uppercase())).unwrap();
        // The sorted form is what JSON.stringify gives for sorted keys.
        assert!(canonical_body(&parsed).starts_with(br#"{"payload":{"entity":{"consumer_id""#));
    }

    #[test]
    fn a_raw_body_signature_is_accepted_and_anything_else_refused() {
        let raw = br#"{"payload":{"event_id":"e1"}}"#;
        let digest = mac(&key(), raw).finalize().into_bytes();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        verify(&key(), raw, None, Some(&hex)).unwrap();

        let tampered = br#"{"payload":{"event_id":"e2"}}"#;
        let parsed: Value = serde_json::from_slice(tampered).unwrap();
        let refused = [
            verify(&key(), tampered, Some(&parsed), Some(&hex)),
            verify(&key(), raw, None, None),
            verify(&key(), raw, None, Some("not-hex")),
            verify(&key(), raw, None, Some(&hex[..62])),
            verify(
                &SecretString::from("other".to_owned()),
                raw,
                None,
                Some(&hex),
            ),
        ];
        for outcome in refused {
            assert_eq!(outcome, Err(WebhookError::BadSignature));
        }
    }

    #[test]
    fn the_event_keeps_documented_non_secret_fields_only() {
        let event = parse_event(&body()).unwrap();
        let entity = event.entity.as_ref().unwrap();
        assert_eq!(entity.health.as_deref(), Some("needs_auth"));
        assert_eq!(
            event.connection_key().unwrap(),
            connection_key("c1", "crm", "hubspot")
        );
        assert!(!format!("{event:?}").contains("canary-secret"));
        let millis = json!({"payload": {"entity": {"last_refresh_failed_at": 1_764_064_800_000_i64, "credentials_expire_at": 0}}});
        let entity = parse_event(&millis).unwrap().entity.unwrap();
        assert_eq!(
            entity.last_refresh_failed_at.as_deref(),
            Some("2025-11-25T10:00:00.000Z")
        );
        assert_eq!(entity.credentials_expire_at, None);
        let dated = |text: Value| {
            parse_event(&json!({"payload": {"occurred_at": text}}))
                .unwrap()
                .occurred_at_utc()
        };
        assert_eq!(
            dated(json!("2021-10-01T03:14:55.419Z")).map(|t| t.timestamp_millis()),
            Some(1_633_058_095_419)
        );
        assert_eq!(
            dated(json!("2021-10-01T05:14:55.419+02:00")),
            dated(json!("2021-10-01T03:14:55.419Z"))
        );
        assert_eq!(dated(json!("yesterday")), None);
        assert_eq!(dated(json!("2021-10-01")), None);
        let error = parse_event(&json!({"payload": {"event_id": 7}})).unwrap_err();
        assert_eq!(
            error,
            WebhookError::Malformed("at `payload.event_id`".to_owned())
        );
        assert!(parse_event(&json!({"nothing": true})).is_err());
    }

    #[test]
    fn journal_refs_and_events_share_one_connection_key() {
        let reference = crate::ApideckRef {
            consumer_id: "c1".to_owned(),
            unified_api: "crm".to_owned(),
            service_id: "hubspot".to_owned(),
            connection_id: Some("crm+hubspot".to_owned()),
        };
        let key = connection_key_of(&TargetRef::from(&reference)).unwrap();
        assert_eq!(key, parse_event(&body()).unwrap().connection_key().unwrap());
    }
}
