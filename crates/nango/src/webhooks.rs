//! Nango's auth webhooks as a [`WebhookSource`] (nango-api.md §8). Pure: no IO.
//!
//! - Signature: `X-Nango-Hmac-Sha256` is the hex HMAC-SHA256 of the **raw** body keyed with the
//!   environment's webhook signing key (`NANGO_WEBHOOK_SECRET`), compared in constant time. The
//!   legacy `X-Nango-Signature` (plain SHA-256 of key and body) is never read. A missing or
//!   wrong signature is refused (401) before anything of the body is read.
//! - Health: `type: auth, operation: refresh, success: false` means Nango could not refresh the
//!   connection's token (refresh failed); a later `success: true` refresh means it recovered
//!   (healthy). Other auth operations (`creation`, `override`) and other webhook types say
//!   nothing of an imported connection's health (`None`).
//! - The payload has no event id and no timestamp [assume, as nango-api.md §8 does]: the
//!   dedupe id is the SHA-256 of the raw body, so a retried delivery (the same bytes) is stored
//!   once, and events are ordered by arrival (`occurred_at: None`). Two genuine refresh
//!   failures of one connection with identical bodies are one event; the second changes
//!   nothing that the first did not say.
//! - The connection key is `providerConfigKey` and `connectionId`, as the journal's
//!   [`NangoRef`] holds them.
//!
//! The event keeps the documented non-secret fields only; `error.description`, `tags` and
//! `endUser` are never read.

use authport_core::{
    BuildContext, ConfigError, ExposeSecret as _, Health, HealthEvent, SecretString,
    TargetIdentity, TargetRef, WebhookHeaders, WebhookRefusal, WebhookSource,
    hmac_sha256_hex_matches, sha256_hex,
};
use serde::Deserialize;

use crate::config::NangoConfig;
use crate::target::NangoRef;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "x-nango-hmac-sha256";

/// The environment variable of the webhook signing key.
pub const WEBHOOK_SECRET_VARIABLE: &str = "NANGO_WEBHOOK_SECRET";

/// The webhook source of one Nango environment.
pub struct NangoWebhooks {
    config: NangoConfig,
    /// `None`: not set; the receiver refuses to start ([`WebhookSource::missing_setting`]).
    secret: Option<SecretString>,
}

impl std::fmt::Debug for NangoWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config's own Debug is allow-list; the secret is only said to be there.
        f.debug_struct("NangoWebhooks")
            .field("config", &self.config)
            .field("secret", &self.secret.as_ref().map(|_| "set"))
            .finish()
    }
}

impl NangoWebhooks {
    pub fn new(config: NangoConfig, secret: Option<SecretString>) -> Self {
        Self { config, secret }
    }
}

/// Builds the source from the `[nango]` section and the environment: the importer's settings
/// (the event store is bound to the same environment as the state) and, when set,
/// `NANGO_WEBHOOK_SECRET` (trimmed; an empty one is no secret). No network IO.
pub fn build_webhooks(context: &BuildContext) -> Result<Box<dyn WebhookSource>, ConfigError> {
    let config = NangoConfig::from_sources(&context.config, &context.env)?;
    let secret = context
        .env
        .get(WEBHOOK_SECRET_VARIABLE)
        .map(str::trim)
        .filter(|secret| !secret.is_empty())
        .map(|secret| SecretString::from(secret.to_owned()));
    Ok(Box::new(NangoWebhooks::new(config, secret)))
}

/// `NangoAuthWebhookBody` (and the shared fields of other webhook types): what is read of it.
#[derive(Debug, Deserialize)]
struct Body {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    success: Option<bool>,
    #[serde(rename = "connectionId", default)]
    connection_id: Option<String>,
    #[serde(rename = "providerConfigKey", default)]
    provider_config_key: Option<String>,
}

impl WebhookSource for NangoWebhooks {
    fn signature_header(&self) -> &'static str {
        SIGNATURE_HEADER
    }

    fn verify(&self, headers: &WebhookHeaders, body: &[u8]) -> Result<(), WebhookRefusal> {
        let unsigned =
            || WebhookRefusal::unsigned("the webhook signature is missing or does not match");
        let secret = self.secret.as_ref().ok_or_else(unsigned)?;
        let signature = headers.get(SIGNATURE_HEADER).ok_or_else(unsigned)?;
        if hmac_sha256_hex_matches(secret.expose_secret().as_bytes(), body, signature) {
            Ok(())
        } else {
            Err(unsigned())
        }
    }

    fn parse(&self, body: &[u8]) -> Result<HealthEvent, WebhookRefusal> {
        let parsed: Body = serde_json::from_slice(body).map_err(|_| {
            WebhookRefusal::malformed(
                "malformed",
                "the webhook body is not the JSON Nango documents",
            )
        })?;
        let (kind, health) = meaning(&parsed);
        let connection = match (&parsed.provider_config_key, &parsed.connection_id) {
            (Some(key), Some(id)) if !key.is_empty() && !id.is_empty() => Some(NangoRef {
                provider_config_key: key.clone(),
                connection_id: id.clone(),
            }),
            _ => None,
        };
        Ok(HealthEvent {
            id: sha256_hex(body),
            connection_key: connection.as_ref().map(key_of).unwrap_or_default(),
            health,
            occurred_at: None,
            kind: kind.to_owned(),
            connection_id: connection.map(|c| c.connection_id),
        })
    }

    fn connection_key(&self, target: &TargetRef) -> Option<String> {
        NangoRef::try_from(target).ok().as_ref().map(key_of)
    }

    fn identity(&self) -> TargetIdentity {
        TargetIdentity {
            endpoints: vec![self.config.api_base().to_owned()],
            account: None,
            credential: self.config.secret_key.clone(),
        }
    }

    fn missing_setting(&self) -> Option<String> {
        self.secret.is_none().then(|| {
            format!(
                "nango needs its webhook signing key to verify deliveries: set {WEBHOOK_SECRET_VARIABLE}"
            )
        })
    }
}

/// The event store's key of a Nango connection: its integration and connection id, as a JSON
/// array (unambiguous whatever the ids hold).
pub fn key_of(reference: &NangoRef) -> String {
    serde_json::to_string(&[&reference.provider_config_key, &reference.connection_id])
        .unwrap_or_default()
}

/// The event's kind (one of a fixed set, so no payload value reaches a log) and what it says
/// of the connection's health.
fn meaning(body: &Body) -> (&'static str, Option<Health>) {
    if body.kind != "auth" {
        return (
            match body.kind.as_str() {
                "sync" => "sync",
                "forward" => "forward",
                _ => "other",
            },
            None,
        );
    }
    match (body.operation.as_deref(), body.success) {
        (Some("refresh"), Some(false)) => ("auth.refresh.failed", Some(Health::RefreshFailed)),
        (Some("refresh"), Some(true)) => ("auth.refresh.succeeded", Some(Health::Healthy)),
        (Some("creation"), Some(true)) => ("auth.creation.succeeded", None),
        (Some("creation"), _) => ("auth.creation.failed", None),
        (Some("override"), Some(true)) => ("auth.override.succeeded", None),
        (Some("override"), _) => ("auth.override.failed", None),
        _ => ("auth.other", None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use authport_core::{EnvSnapshot, hmac_sha256_hex};
    use serde_json::{Value, json};

    const SECRET: &str = "canary-webhook-secret";

    fn source(secret: Option<&str>) -> Box<dyn WebhookSource> {
        let mut pairs = vec![("NANGO_SECRET_KEY", "canary-secret-key")];
        if let Some(secret) = secret {
            pairs.push((WEBHOOK_SECRET_VARIABLE, secret));
        }
        let context = BuildContext {
            config: Value::Null,
            env: EnvSnapshot::from_pairs(pairs),
            memo: std::sync::Arc::new(authport_core::InMemoryMemo::default()),
            gate: std::sync::Arc::new(authport_core::Ungated),
            request_timeout: std::time::Duration::from_secs(1),
        };
        build_webhooks(&context).unwrap()
    }

    fn refresh(success: bool) -> Vec<u8> {
        let mut body = json!({"type": "auth", "operation": "refresh", "success": success,
            "connectionId": "acme-42-hubspot", "providerConfigKey": "hubspot",
            "provider": "hubspot", "environment": "prod", "authMode": "OAUTH2",
            "tags": {"end_user_email": "canary-tag@example.com"}});
        if !success {
            body["error"] = json!({"type": "refresh_token_external_error",
                "description": "canary-description"});
        }
        serde_json::to_vec(&body).unwrap()
    }

    fn signed(body: &[u8], key: &str) -> WebhookHeaders {
        let signature = hmac_sha256_hex(key.as_bytes(), body);
        WebhookHeaders::from_pairs([("X-Nango-Hmac-Sha256", Some(signature.as_str()))])
    }

    #[test]
    fn a_signature_over_the_raw_body_verifies_and_a_forged_or_missing_one_is_401() {
        let source = source(Some(SECRET));
        let body = refresh(false);
        source.verify(&signed(&body, SECRET), &body).unwrap();
        let upper = hmac_sha256_hex(SECRET.as_bytes(), &body).to_uppercase();
        let headers = WebhookHeaders::from_pairs([(SIGNATURE_HEADER, Some(upper.as_str()))]);
        source.verify(&headers, &body).unwrap();

        let legacy = WebhookHeaders::from_pairs([(
            "x-nango-signature",
            Some(authport_core::sha256_hex(
                &[SECRET.as_bytes(), &body].concat(),
            ))
            .as_deref(),
        )]);
        let respaced = String::from_utf8(body.clone()).unwrap().replace(':', ": ");
        let forged = [
            ("wrong key", signed(&body, "another-secret"), body.clone()),
            ("missing", WebhookHeaders::default(), body.clone()),
            ("legacy header only", legacy, body.clone()),
            // The same JSON spaced otherwise is other bytes: the raw body is what is signed.
            ("other bytes", signed(&body, SECRET), respaced.into_bytes()),
            ("tampered", signed(&body, SECRET), refresh(true)),
        ];
        for (what, headers, body) in forged {
            let refusal = source.verify(&headers, &body).unwrap_err();
            assert_eq!(
                (refusal.status, refusal.reason),
                (401, "signature"),
                "{what}"
            );
            assert!(!refusal.message.contains("canary"), "{what}");
        }
    }

    #[test]
    fn without_the_secret_nothing_verifies_and_the_receiver_is_told_which_setting() {
        let source = source(None);
        let body = refresh(false);
        let refusal = source.verify(&signed(&body, SECRET), &body).unwrap_err();
        assert_eq!(refusal.status, 401);
        let missing = source.missing_setting().unwrap();
        assert!(missing.contains(WEBHOOK_SECRET_VARIABLE), "{missing}");
        assert_eq!(self::source(Some(SECRET)).missing_setting(), None);
        assert!(self::source(Some("  ")).missing_setting().is_some());
        let debug = format!("{:?}", self::source(Some(SECRET)));
        assert!(!debug.contains("canary"), "{debug}");
    }

    #[test]
    fn each_operation_parses_to_its_health() {
        let source = source(Some(SECRET));
        let event = |body: Value| source.parse(&serde_json::to_vec(&body).unwrap()).unwrap();
        let with = |operation: &str, success: bool| {
            event(
                json!({"type": "auth", "operation": operation, "success": success,
                "connectionId": "c1", "providerConfigKey": "hubspot"}),
            )
        };
        let cases = [
            (
                with("refresh", false),
                "auth.refresh.failed",
                Some(Health::RefreshFailed),
            ),
            (
                with("refresh", true),
                "auth.refresh.succeeded",
                Some(Health::Healthy),
            ),
            (with("creation", true), "auth.creation.succeeded", None),
            (with("creation", false), "auth.creation.failed", None),
            (with("override", true), "auth.override.succeeded", None),
            (with("override", false), "auth.override.failed", None),
            (with("something-new", true), "auth.other", None),
            (
                event(
                    json!({"type": "sync", "connectionId": "c1", "providerConfigKey": "hubspot"}),
                ),
                "sync",
                None,
            ),
            (event(json!({"type": "canary-type"})), "other", None),
        ];
        for (event, kind, health) in cases {
            assert_eq!((event.kind.as_str(), event.health), (kind, health));
            assert_eq!(event.occurred_at, None, "{kind}: Nango sends no time");
        }
        let refusal = source.parse(b"{\"type\": ").unwrap_err();
        assert_eq!((refusal.status, refusal.reason), (400, "malformed"));
        let refusal = source.parse(b"[1, 2]").unwrap_err();
        assert_eq!(refusal.status, 400);
    }

    #[test]
    fn the_dedupe_id_is_the_body_hash_and_the_key_matches_the_journal_ref() {
        let source = source(Some(SECRET));
        let body = refresh(false);
        let event = source.parse(&body).unwrap();
        assert_eq!(event.id, authport_core::sha256_hex(&body));
        assert_eq!(
            source.parse(&body).unwrap().id,
            event.id,
            "a retry is the same event"
        );
        assert_ne!(source.parse(&refresh(true)).unwrap().id, event.id);
        let reference = NangoRef {
            provider_config_key: "hubspot".to_owned(),
            connection_id: "acme-42-hubspot".to_owned(),
        };
        assert_eq!(
            source.connection_key(&TargetRef::from(&reference)),
            Some(event.connection_key.clone())
        );
        assert_eq!(event.connection_id.as_deref(), Some("acme-42-hubspot"));
        // No payload value but the connection's ids reaches the event.
        let printed = format!("{event:?}");
        assert!(!printed.contains("canary"), "{printed}");
        // An event that names no connection has an empty key (it matches no journal ref).
        let bare = source.parse(br#"{"type": "auth", "operation": "refresh", "success": false}"#);
        assert_eq!(bare.unwrap().connection_key, "");
        assert_eq!(source.identity().account, None);
    }
}
