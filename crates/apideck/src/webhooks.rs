//! Apideck's Vault webhooks as a [`WebhookSource`]: the signature check, the typed event, and
//! what its words mean for a connection's [`Health`]. Pure: no IO.
//!
//! Signature (Apideck's webhook-signature-verification guide): HMAC-SHA256 keyed with the API
//! key over the whole request body with every object's keys sorted alphabetically, recursively,
//! arrays kept in order. The serialisation and digest encoding are not stated: we compute the
//! compact serialisation and a hex digest (the spec's example signature is 64 hex digits), and
//! also accept an HMAC of the raw body bytes. Both are keyed by the secret, so the fallback does
//! not weaken the check. Comparison is constant-time (the core's [`hmac_sha256_hex_matches`]).
//!
//! Only the signed body decides: the unsigned `x-apideck-event-type` and
//! `x-apideck-idempotency-key` headers are never read. A signed body without `event_id` (nothing
//! to deduplicate on), `event_type`, or a readable `occurred_at` (nothing to order by) is
//! refused (400). The event ([`ConnectionEvent`]) keeps only documented fields that are not
//! secrets: the connection's `settings` and `metadata` are never read.

use authport_core::{
    BuildContext, ConfigError, Health, HealthEvent, StoredWords, TargetIdentity, TargetRef,
    WebhookHeaders, WebhookRefusal, WebhookSource, hmac_sha256_hex, hmac_sha256_hex_matches,
};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::ApideckConfig;

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

/// The webhook source of one Apideck app: deliveries are signed with its API key.
pub struct ApideckWebhooks {
    config: ApideckConfig,
}

impl std::fmt::Debug for ApideckWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config's own Debug is allow-list (no API key).
        f.debug_struct("ApideckWebhooks")
            .field("config", &self.config)
            .finish()
    }
}

impl ApideckWebhooks {
    pub fn new(config: ApideckConfig) -> Self {
        Self { config }
    }
}

/// Builds the source from the `[apideck]` section and the environment (the same settings as
/// the importer: the API key signs deliveries; no network IO).
pub fn build_webhooks(context: &BuildContext) -> Result<Box<dyn WebhookSource>, ConfigError> {
    let config = ApideckConfig::from_sources(&context.config, &context.env)?;
    Ok(Box::new(ApideckWebhooks::new(config)))
}

impl WebhookSource for ApideckWebhooks {
    fn signature_header(&self) -> &'static str {
        SIGNATURE_HEADER
    }

    fn verify(&self, headers: &WebhookHeaders, body: &[u8]) -> Result<(), WebhookRefusal> {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        verify(
            &self.config.api_key,
            body,
            parsed.as_ref(),
            headers.get(SIGNATURE_HEADER),
        )
        .map_err(|e| WebhookRefusal::unsigned(e.to_string()))
    }

    fn parse(&self, body: &[u8]) -> Result<HealthEvent, WebhookRefusal> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|_| WebhookRefusal::malformed("malformed", "the body is not JSON"))?;
        let event = parse_event(&value)
            .map_err(|e| WebhookRefusal::malformed("malformed", e.to_string()))?;
        health_event(&event)
    }

    fn connection_key(&self, target: &TargetRef) -> Option<String> {
        connection_key_of(target)
    }

    fn identity(&self) -> TargetIdentity {
        TargetIdentity {
            endpoints: vec![self.config.api_base().to_owned()],
            account: Some(self.config.app_id.clone()),
            credential: self.config.api_key.clone(),
        }
    }

    /// Schema 1 and 2 event stores kept Vault's words; the event type alone decided then, and
    /// still does ([`health_of_event`]).
    fn stored_health(&self, words: &StoredWords) -> Option<Health> {
        health_of_event(words.get("event_type")?)
    }
}

/// What a Vault event type says of the connection: deleted, revoked and a failed refresh are
/// the events `status` acts on; a recovery or a transition to callable says healthy, a pending
/// refresh says so; the others (created, updated, disabled, migrated, downstream...) say
/// nothing of the connection's token. The entity's own words are left to the live read-back.
pub fn health_of_event(event_type: &str) -> Option<Health> {
    match event_type {
        "vault.connection.deleted" => Some(Health::Deleted),
        "vault.connection.revoked" => Some(Health::Revoked),
        "vault.connection.token_refresh.failed" => Some(Health::RefreshFailed),
        "vault.connection.token_refresh.pending" => Some(Health::PendingRefresh),
        "vault.connection.token_refresh.recovered" | "vault.connection.callable" => {
            Some(Health::Healthy)
        }
        _ => None,
    }
}

/// The typed event of a parsed delivery: refused (400) without an event id (nothing to
/// deduplicate on), an event type (a header's is not signed) or a readable date (nothing to
/// order by).
pub fn health_event(event: &ConnectionEvent) -> Result<HealthEvent, WebhookRefusal> {
    let id = event
        .event_id
        .clone()
        .filter(|id| !id.is_empty() && id.len() <= 200)
        .ok_or_else(|| {
            WebhookRefusal::malformed("no event id", "the event has no payload.event_id")
        })?;
    let kind = event
        .event_type
        .clone()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            WebhookRefusal::malformed("no event type", "the event has no payload.event_type")
        })?;
    let occurred_at = event.occurred_at_utc().ok_or_else(|| {
        WebhookRefusal::malformed(
            "no date",
            "the event has no payload.occurred_at in ISO 8601 (RFC 3339) form",
        )
    })?;
    Ok(HealthEvent {
        id,
        connection_key: event.connection_key().unwrap_or_default(),
        health: health_of_event(&kind),
        occurred_at: Some(occurred_at),
        kind,
        connection_id: event.entity.as_ref().and_then(|e| e.id.clone()),
    })
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

/// The hex signature Apideck sends for `body` (the sorted form; used by tests and the sandbox
/// benchmark driver).
pub fn sign(api_key: &SecretString, body: &Value) -> String {
    hmac_sha256_hex(api_key.expose_secret().as_bytes(), &canonical_body(body))
}

/// Checks `signature` (hex, either case) against `raw` in constant time: over the sorted form
/// of `parsed` when the body is JSON, then over the raw bytes.
pub fn verify(
    api_key: &SecretString,
    raw: &[u8],
    parsed: Option<&Value>,
    signature: Option<&str>,
) -> Result<(), WebhookError> {
    let signature = signature.ok_or(WebhookError::BadSignature)?;
    let key = api_key.expose_secret().as_bytes();
    let sorted_matches =
        parsed.is_some_and(|value| hmac_sha256_hex_matches(key, &canonical_body(value), signature));
    if sorted_matches || hmac_sha256_hex_matches(key, raw, signature) {
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
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
        let hex = hmac_sha256_hex(b"canary-api-key", raw);
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

    fn source() -> ApideckWebhooks {
        let env = authport_core::EnvSnapshot::from_pairs([
            ("APIDECK_API_KEY", "canary-api-key"),
            ("APIDECK_APP_ID", "app-1"),
        ]);
        ApideckWebhooks::new(ApideckConfig::from_sources(&Value::Null, &env).unwrap())
    }

    fn headers(signature: Option<&str>) -> WebhookHeaders {
        WebhookHeaders::from_pairs([(SIGNATURE_HEADER, signature)])
    }

    #[test]
    fn the_source_verifies_then_parses_a_signed_delivery_into_its_typed_event() {
        let source = source();
        let mut value = body();
        value["payload"]["occurred_at"] = json!("2026-11-25T10:00:00.000Z");
        let raw = serde_json::to_vec(&value).unwrap();
        let signature = sign(&key(), &value);
        source.verify(&headers(Some(&signature)), &raw).unwrap();
        for forged in [
            None,
            Some("00"),
            Some(&sign(&SecretString::from("other"), &value)[..]),
        ] {
            let refusal = source.verify(&headers(forged), &raw).unwrap_err();
            assert_eq!(refusal.status, 401, "{forged:?}");
            assert!(!refusal.message.contains("canary"));
        }
        let event = source.parse(&raw).unwrap();
        assert_eq!(event.id, "e1");
        assert_eq!(event.kind, "vault.connection.token_refresh.failed");
        assert_eq!(event.health, Some(Health::RefreshFailed));
        assert_eq!(event.connection_key, connection_key("c1", "crm", "hubspot"));
        assert_eq!(
            event.occurred_at.map(|t| t.timestamp()),
            Some(1_795_600_800)
        );
        assert!(!format!("{event:?}").contains("canary-secret"));
        assert_eq!(source.identity().account.as_deref(), Some("app-1"));
        assert!(!format!("{source:?}").contains("canary-api-key"));
    }

    #[test]
    fn a_signed_body_without_id_type_or_date_is_refused_by_rule() {
        let source = source();
        let mut dated = body();
        dated["payload"]["occurred_at"] = json!("2026-11-25T10:00:00.000Z");
        for (field, reason) in [
            ("event_id", "no event id"),
            ("event_type", "no event type"),
            ("occurred_at", "no date"),
        ] {
            let mut value = dated.clone();
            value["payload"].as_object_mut().unwrap().remove(field);
            let refusal = source
                .parse(&serde_json::to_vec(&value).unwrap())
                .unwrap_err();
            assert_eq!((refusal.status, refusal.reason), (400, reason), "{field}");
        }
        let refusal = source.parse(b"{\"payload\": ").unwrap_err();
        assert_eq!((refusal.status, refusal.reason), (400, "malformed"));
    }

    #[test]
    fn each_event_type_maps_to_its_health_explicitly_and_old_stored_words_alike() {
        let cases = [
            ("vault.connection.deleted", Some(Health::Deleted)),
            ("vault.connection.revoked", Some(Health::Revoked)),
            (
                "vault.connection.token_refresh.failed",
                Some(Health::RefreshFailed),
            ),
            (
                "vault.connection.token_refresh.pending",
                Some(Health::PendingRefresh),
            ),
            (
                "vault.connection.token_refresh.recovered",
                Some(Health::Healthy),
            ),
            ("vault.connection.callable", Some(Health::Healthy)),
            ("vault.connection.created", None),
            ("vault.connection.updated", None),
            ("vault.connection.disabled", None),
        ];
        for (event_type, health) in cases {
            assert_eq!(health_of_event(event_type), health, "{event_type}");
            let words: StoredWords = [
                ("event_type".to_owned(), event_type.to_owned()),
                ("health".to_owned(), "needs_auth".to_owned()),
            ]
            .into();
            assert_eq!(source().stored_health(&words), health, "{event_type}");
        }
        assert_eq!(source().stored_health(&StoredWords::new()), None);
    }
}
