//! Nango's auth webhooks, sent by the emulator when a test asks (nango-api.md §8).
//!
//! A delivery is `POST <url>` with the JSON body of an auth webhook (`NangoAuthWebhookBody`,
//! exactly the documented fields: `type`, `operation`, `success`, `connectionId`,
//! `providerConfigKey`, `provider`, `environment`, `authMode`, `error` on a failure, `tags`
//! when the connection has some) and two headers: `X-Nango-Hmac-Sha256`, the hex HMAC-SHA256 of
//! the raw body keyed with the webhook signing key (`NANGO_WEBHOOK_SECRET`, the sandbox's is
//! [`super::SANDBOX_WEBHOOK_SECRET`]), and the legacy `X-Nango-Signature` (hex SHA-256 of the
//! key then the body), which Nango still sends and receivers must not trust. A delivery not
//! answered 2xx is tried again, twice, as Nango retries.
//!
//! The control (not Nango's API): `POST /_sandbox/nango/auth-webhook` with
//! `{"url", "provider_config_key", "connection_id", "success", "operation"?: "refresh",
//! "error"?: {"type", "description"}}` sends one and answers `{"status", "attempts"}` once it
//! was delivered or given up on (`status` null: the receiver was not reachable); 404 when the
//! connection does not exist. [assume] A failed refresh also records an `auth` error on the
//! connection (its reads show it in `errors[]`); a successful one clears the `auth` errors.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use hmac::{Hmac, Mac as _};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use super::{ConnectionKey, NangoState};

/// Tries per delivery: the first and Nango's two retries.
pub const ATTEMPTS: u32 = 3;

/// Each try's timeout (Nango's changelog: 20 s).
const TIMEOUT: Duration = Duration::from_secs(20);

/// The environment the sandbox's connections live in, as the webhook names it [assume].
pub const SANDBOX_ENVIRONMENT: &str = "prod";

/// The error a failed refresh carries when the test names none [assume: Nango's type for a
/// refresh the provider refused].
const DEFAULT_ERROR_TYPE: &str = "refresh_token_external_error";

/// One auth webhook to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthWebhook {
    pub provider_config_key: String,
    pub connection_id: String,
    /// `creation`, `override` or `refresh`.
    pub operation: String,
    pub success: bool,
    /// Only on a failure; a default one when `None`.
    pub error: Option<WebhookError>,
}

impl AuthWebhook {
    /// A refresh of this connection that failed (`success: false`) or worked.
    pub fn refresh(provider_config_key: &str, connection_id: &str, success: bool) -> Self {
        Self {
            provider_config_key: provider_config_key.to_owned(),
            connection_id: connection_id.to_owned(),
            operation: refresh(),
            success,
            error: None,
        }
    }
}

fn refresh() -> String {
    "refresh".to_owned()
}

/// The `error` of a failed auth webhook.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookError {
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
}

/// One delivery as the sandbox made it (for tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentWebhook {
    pub connection: ConnectionKey,
    pub operation: String,
    pub success: bool,
    /// The raw body sent (what the signature covers).
    pub body: Vec<u8>,
    /// The receiver's status of the last try (`None`: not reachable).
    pub status: Option<u16>,
    pub attempts: u32,
}

/// The connection named by a webhook does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoSuchConnection;

/// `X-Nango-Hmac-Sha256`: the hex HMAC-SHA256 of the raw `body` keyed with `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    hex(&mac.finalize().into_bytes())
}

/// The legacy `X-Nango-Signature`: hex SHA-256 of the key followed by the body.
pub fn legacy_signature(secret: &str, body: &[u8]) -> String {
    let mut digest = Sha256::new();
    digest.update(secret.as_bytes());
    digest.update(body);
    hex(&digest.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The webhook's body: the documented fields, `error` only on a failure, `tags` only when the
/// connection has some.
fn body(
    event: &AuthWebhook,
    provider: &str,
    auth_mode: &str,
    tags: &std::collections::BTreeMap<String, String>,
) -> Value {
    let mut body = json!({
        "type": "auth",
        "operation": event.operation,
        "success": event.success,
        "connectionId": event.connection_id,
        "providerConfigKey": event.provider_config_key,
        "provider": provider,
        "environment": SANDBOX_ENVIRONMENT,
        "authMode": auth_mode,
    });
    let object = body.as_object_mut().expect("an object");
    if !event.success {
        let (kind, description) = event.error.as_ref().map_or(
            (
                DEFAULT_ERROR_TYPE,
                "The provider refused to refresh the token",
            ),
            |e| (e.kind.as_str(), e.description.as_str()),
        );
        object.insert(
            "error".to_owned(),
            json!({"type": kind, "description": description}),
        );
    }
    if !tags.is_empty() {
        let tags: Map<String, Value> = tags.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        object.insert("tags".to_owned(), Value::Object(tags));
    }
    body
}

impl NangoState {
    /// Sends `event` to `url`, signed, and returns once it was delivered or given up on. A
    /// refresh also changes the connection's `auth` errors (see the module docs).
    pub async fn send_auth_webhook(
        &self,
        url: &str,
        event: &AuthWebhook,
    ) -> Result<SentWebhook, NoSuchConnection> {
        let key = (
            event.provider_config_key.clone(),
            event.connection_id.clone(),
        );
        let body = {
            let mut inner = self.lock();
            let auth_mode = inner
                .integrations
                .iter()
                .find(|i| i.unique_key == event.provider_config_key)
                .map(|i| i.auth_mode.clone())
                .unwrap_or_default();
            let stored = inner.connections.get_mut(&key).ok_or(NoSuchConnection)?;
            if event.operation == "refresh" {
                record_refresh(&mut stored.errors, event.success);
            }
            body(event, &stored.provider, &auth_mode, &stored.tags)
        };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let (status, attempts) = deliver(url, &self.webhook_secret, &body).await;
        let sent = SentWebhook {
            connection: key,
            operation: event.operation.clone(),
            success: event.success,
            body,
            status,
            attempts,
        };
        self.sent_webhooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sent.clone());
        Ok(sent)
    }

    /// Every delivery made so far, in order.
    pub fn sent_webhooks(&self) -> Vec<SentWebhook> {
        self.sent_webhooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A failed refresh adds an `auth` error (once); a successful one clears them.
fn record_refresh(errors: &mut Vec<Value>, success: bool) {
    let is_auth = |e: &Value| e.get("type").and_then(Value::as_str) == Some("auth");
    if success {
        errors.retain(|e| !is_auth(e));
    } else if !errors.iter().any(is_auth) {
        let log_id = format!("log{}", errors.len() + 1);
        errors.push(json!({"type": "auth", "log_id": log_id}));
    }
}

/// POSTs `body` until a 2xx or [`ATTEMPTS`] tries: (last status, tries).
async fn deliver(url: &str, secret: &str, body: &[u8]) -> (Option<u16>, u32) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(TIMEOUT)
        .build()
        .unwrap_or_default();
    let mut status = None;
    let mut attempts = 0;
    while attempts < ATTEMPTS {
        attempts += 1;
        let answer = client
            .post(url)
            .header("content-type", "application/json")
            .header("x-nango-hmac-sha256", sign(secret, body))
            .header("x-nango-signature", legacy_signature(secret, body))
            .body(body.to_vec())
            .send()
            .await;
        status = answer.ok().map(|r| r.status().as_u16());
        if status.is_some_and(|s| (200..300).contains(&s)) {
            break;
        }
        // Backoff between retries, as Nango spaces them (shortened: a test waits for it).
        tokio::time::sleep(Duration::from_millis(50 * u64::from(attempts))).await;
    }
    (status, attempts)
}

/// The control's request: where to send, and the webhook (see the module docs).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendRequest {
    url: String,
    provider_config_key: String,
    connection_id: String,
    #[serde(default = "refresh")]
    operation: String,
    success: bool,
    #[serde(default)]
    error: Option<WebhookError>,
}

/// The sandbox's own control route (not Nango's): send one auth webhook.
pub(super) fn routes(state: Arc<NangoState>) -> Router {
    Router::new()
        .route("/_sandbox/nango/auth-webhook", post(send))
        .with_state(state)
}

async fn send(
    State(state): State<Arc<NangoState>>,
    Json(request): Json<SendRequest>,
) -> Result<Json<Value>, (StatusCode, &'static str)> {
    let event = AuthWebhook {
        provider_config_key: request.provider_config_key,
        connection_id: request.connection_id,
        operation: request.operation,
        success: request.success,
        error: request.error,
    };
    let sent = state
        .send_auth_webhook(&request.url, &event)
        .await
        .map_err(|NoSuchConnection| {
            (
                StatusCode::NOT_FOUND,
                "no connection with this provider_config_key and connection_id",
            )
        })?;
    Ok(Json(
        json!({"status": sent.status, "attempts": sent.attempts}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hex_hmac_sha256_of_the_raw_body() {
        // RFC 4231 test case 2: key "Jefe".
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // The raw bytes, not the JSON value: the same JSON spaced differently signs differently.
        assert_ne!(sign("k", br#"{"a":1}"#), sign("k", br#"{"a": 1}"#));
        assert_ne!(sign("k", b"body"), sign("other", b"body"));
    }

    #[test]
    fn the_legacy_signature_is_sha256_of_key_then_body() {
        // SHA-256("abc").
        assert_eq!(
            legacy_signature("a", b"bc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_failed_refresh_carries_exactly_the_documented_fields() {
        let event = AuthWebhook::refresh("hubspot", "c1", false);
        let sent = body(&event, "hubspot", "OAUTH2", &Default::default());
        let mut keys: Vec<&str> = sent
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "authMode",
                "connectionId",
                "environment",
                "error",
                "operation",
                "provider",
                "providerConfigKey",
                "success",
                "type"
            ]
        );
        assert_eq!(sent["type"], "auth");
        assert_eq!(sent["operation"], "refresh");
        assert_eq!(sent["success"], false);
        assert_eq!(sent["error"]["type"], DEFAULT_ERROR_TYPE);
        let recovered = body(
            &AuthWebhook::refresh("hubspot", "c1", true),
            "hubspot",
            "OAUTH2",
            &[("end_user_id".to_owned(), "u1".to_owned())].into(),
        );
        assert!(recovered.get("error").is_none());
        assert_eq!(recovered["tags"]["end_user_id"], "u1");
    }

    #[test]
    fn refreshes_add_one_auth_error_and_a_success_clears_it() {
        let mut errors = vec![json!({"type": "sync", "log_id": "log1"})];
        record_refresh(&mut errors, false);
        record_refresh(&mut errors, false);
        assert_eq!(errors.len(), 2);
        record_refresh(&mut errors, true);
        assert_eq!(errors, [json!({"type": "sync", "log_id": "log1"})]);
    }

    /// What the receiver got: (hmac header, legacy header, raw body).
    type Received = Arc<std::sync::Mutex<Vec<(String, String, Vec<u8>)>>>;

    /// A receiver on loopback answering `status` and keeping what it got.
    async fn receiver(status: StatusCode) -> (String, Received) {
        let received: Received = Arc::default();
        let kept = received.clone();
        let app = Router::new().route(
            "/hook",
            post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    kept.lock().expect("not poisoned").push((
                        header("x-nango-hmac-sha256"),
                        header("x-nango-signature"),
                        body.to_vec(),
                    ));
                    status
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let url = format!("http://{}/hook", listener.local_addr().expect("an address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, received)
    }

    async fn control(sandbox: &crate::RunningSandbox, request: Value) -> (u16, Value) {
        let answer = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("a client")
            .post(format!(
                "{}/_sandbox/nango/auth-webhook",
                sandbox.base_url()
            ))
            .json(&request)
            .send()
            .await
            .expect("the sandbox answers");
        let status = answer.status().as_u16();
        (status, answer.json().await.unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn the_control_sends_a_signed_refresh_failure_and_its_recovery() {
        let sandbox = crate::start(
            Default::default(),
            "127.0.0.1:0".parse().expect("an address"),
        )
        .await
        .expect("the sandbox starts");
        sandbox
            .nango
            .precreate_connection("hubspot", "c1", Map::new());
        let (url, received) = receiver(StatusCode::OK).await;

        let request = json!({"url": url, "provider_config_key": "hubspot",
                             "connection_id": "c1", "success": false});
        assert_eq!(
            control(&sandbox, request).await,
            (200, json!({"status": 200, "attempts": 1}))
        );
        let connection = sandbox.nango.connection("hubspot", "c1").expect("kept");
        assert_eq!(connection.errors.len(), 1, "{connection:?}");

        let request = json!({"url": url, "provider_config_key": "hubspot",
                             "connection_id": "c1", "success": true});
        assert_eq!(control(&sandbox, request).await.0, 200);
        let connection = sandbox.nango.connection("hubspot", "c1").expect("kept");
        assert!(connection.errors.is_empty(), "{connection:?}");

        let received = received.lock().expect("not poisoned").clone();
        assert_eq!(received.len(), 2);
        for (hmac, legacy, body) in &received {
            assert_eq!(*hmac, sign(crate::nango::SANDBOX_WEBHOOK_SECRET, body));
            assert_eq!(
                *legacy,
                legacy_signature(crate::nango::SANDBOX_WEBHOOK_SECRET, body)
            );
        }
        let first: Value = serde_json::from_slice(&received[0].2).expect("JSON");
        assert_eq!(
            (&first["type"], &first["operation"], &first["success"]),
            (&json!("auth"), &json!("refresh"), &json!(false))
        );
        assert_eq!(first["connectionId"], "c1");
        assert_eq!(first["providerConfigKey"], "hubspot");
        assert_eq!(first["authMode"], "OAUTH2");
        let second: Value = serde_json::from_slice(&received[1].2).expect("JSON");
        assert_eq!(second["success"], true);
        assert_eq!(sandbox.nango.sent_webhooks().len(), 2);
    }

    #[tokio::test]
    async fn unknown_connections_and_unknown_fields_are_refused_and_failures_retried() {
        let sandbox = crate::start(
            Default::default(),
            "127.0.0.1:0".parse().expect("an address"),
        )
        .await
        .expect("the sandbox starts");
        let (url, received) = receiver(StatusCode::INTERNAL_SERVER_ERROR).await;
        let unknown = json!({"url": url, "provider_config_key": "hubspot",
                             "connection_id": "nobody", "success": false});
        assert_eq!(control(&sandbox, unknown).await.0, 404);
        let extra = json!({"url": url, "provider_config_key": "hubspot",
                           "connection_id": "c1", "success": false, "timestamp": 1});
        assert_eq!(control(&sandbox, extra).await.0, 422);
        assert!(received.lock().expect("not poisoned").is_empty());

        sandbox
            .nango
            .precreate_connection("hubspot", "c1", Map::new());
        let refused = json!({"url": url, "provider_config_key": "hubspot",
                             "connection_id": "c1", "success": false});
        assert_eq!(
            control(&sandbox, refused).await,
            (200, json!({"status": 500, "attempts": ATTEMPTS}))
        );
        let received = received.lock().expect("not poisoned");
        assert_eq!(received.len(), ATTEMPTS as usize);
        // Every retry is the same delivery: the same bytes, the same signature.
        assert!(received.iter().all(|r| *r == received[0]));
    }
}
