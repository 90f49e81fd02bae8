//! Vault webhooks from the emulator, and the control that makes token refreshes fail.
//!
//! Deliveries follow apideck-api.md §8 and the spec's `x-webhooks`: `POST` to the configured
//! URL with `x-apideck-event-type`, `x-apideck-signature` (hex HMAC-SHA256 keyed with the API
//! key over the body with its keys sorted recursively) and `x-apideck-idempotency-key`; body
//! `{"payload": ConnectionEvent}` whose `entity` is a `ConsumerConnection` (ISO 8601 times).
//! A delivery answered with anything but 2xx is tried again (up to [`ATTEMPTS`] times) with the
//! same idempotency key and the next `execution_attempt`, as Apideck retries.
//!
//! Which events an import emits is not documented [assume]: a new connection gives `created`,
//! an existing one `updated`, and a connection that becomes `callable` then `callable` (the
//! documented sequence of a new OAuth connection is created → updated → callable).
//!
//! Refreshes: Vault refreshes OAuth tokens in the background; here a refresh runs when asked
//! ([`ApideckState::run_refreshes`], `POST /_sandbox/apideck/refresh`). A refresh fails for a
//! connection or a refresh-token value marked by [`ApideckState::fail_refreshes`]
//! (`POST /_sandbox/apideck/refresh-failures`): the connection then reads health
//! `pending_refresh` with `last_refresh_failed_at` and `credentials_expire_at` (48 h retention
//! window [assume hours]) and `vault.connection.token_refresh.failed` is sent; a later
//! successful refresh sends `vault.connection.token_refresh.recovered`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use hmac::{Hmac, Mac as _};
use rand::RngCore as _;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::{mpsc, watch};

use super::{ApideckState, AuthType, ConnectionKey, Inner, StoredConnection, now_ms};

/// Tries per delivery (the first and the retries).
pub const ATTEMPTS: u32 = 3;

/// The credentials retention window after a failed refresh (changelog: "48 retention period").
pub(crate) const RETENTION_MS: i64 = 48 * 3600 * 1000;

/// What may make a refresh fail.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailRefresh {
    Connection(ConnectionKey),
    RefreshToken(String),
}

/// One delivery as the sandbox made it (for tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentWebhook {
    pub idempotency_key: String,
    pub event_type: String,
    pub connection: ConnectionKey,
    /// The receiver's status of the last attempt (`None`: not reachable).
    pub status: Option<u16>,
    pub attempts: u32,
}

struct Job {
    body: Value,
    event_type: String,
    idempotency_key: String,
    connection: ConnectionKey,
}

/// The outbox of webhook deliveries: one worker sends them in order.
pub(crate) struct Outbox {
    url: Mutex<Option<String>>,
    sender: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    pending: watch::Sender<usize>,
    sent: Arc<Mutex<Vec<SentWebhook>>>,
    failing: Mutex<BTreeSet<FailRefresh>>,
}

impl Outbox {
    pub(crate) fn new() -> Self {
        Self {
            url: Mutex::new(None),
            sender: Mutex::new(None),
            pending: watch::channel(0).0,
            sent: Arc::new(Mutex::new(Vec::new())),
            failing: Mutex::new(BTreeSet::new()),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The hex signature of `body` under `api_key`, as Vault computes it: HMAC-SHA256 over the
/// compact JSON with every object's keys sorted, recursively.
pub fn sign(api_key: &str, body: &Value) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(api_key.as_bytes()).expect("any key length");
    mac.update(&serde_json::to_vec(&sort_keys(body)).unwrap_or_default());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sort_keys(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sort_keys(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sort_keys).collect()),
        other => other.clone(),
    }
}

fn uuid_like() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn iso(ms: i64) -> Value {
    chrono::DateTime::from_timestamp_millis(ms).map_or(Value::Null, |t| {
        json!(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    })
}

/// The `ConsumerConnection` of a webhook: documented fields, ISO 8601 times.
pub(crate) fn consumer_connection(
    inner: &Inner,
    key: &ConnectionKey,
    stored: &StoredConnection,
) -> Value {
    let (consumer_id, unified_api, service_id) = key;
    let mut entity = json!({
        "id": format!("{unified_api}+{service_id}"),
        "consumer_id": consumer_id,
        "unified_api": unified_api,
        "service_id": service_id,
        "enabled": true,
        "settings": Value::Object(stored.settings.clone()),
        "metadata": Value::Object(stored.metadata.clone()),
        "created_at": iso(stored.created_at_ms),
        "updated_at": iso(stored.updated_at_ms),
    });
    let object = entity.as_object_mut().expect("an object");
    if let Some(connector) = inner.find_connector(unified_api, service_id) {
        let (state, health) = super::derive_state(connector, Some(stored), chrono::Utc::now());
        object.insert("name".to_owned(), json!(connector.name));
        object.insert("auth_type".to_owned(), json!(connector.auth_type.as_str()));
        object.insert("state".to_owned(), json!(state));
        object.insert("health".to_owned(), json!(health));
    }
    if stored.refresh_failed_at_ms > 0 {
        object.insert(
            "last_refresh_failed_at".to_owned(),
            iso(stored.refresh_failed_at_ms),
        );
        object.insert(
            "credentials_expire_at".to_owned(),
            iso(stored.refresh_failed_at_ms + RETENTION_MS),
        );
    }
    entity
}

impl ApideckState {
    /// Sends the Vault webhooks to `url` from now on (`None`: stop sending).
    pub fn set_webhook_url(&self, url: Option<String>) {
        *lock(&self.outbox.url) = url;
    }

    /// Makes refreshes fail (`fail`) or succeed again for these connections or token values.
    pub fn fail_refreshes(&self, targets: impl IntoIterator<Item = FailRefresh>, fail: bool) {
        let mut failing = lock(&self.outbox.failing);
        for target in targets {
            if fail {
                failing.insert(target);
            } else {
                failing.remove(&target);
            }
        }
    }

    /// Runs Vault's background refresh of every OAuth connection holding a refresh token once:
    /// a marked one fails (→ `token_refresh.failed` on its first failure), an unmarked one that
    /// had failed recovers (→ `token_refresh.recovered`). Returns (failed, recovered).
    pub fn run_refreshes(&self) -> (usize, usize) {
        let failing = lock(&self.outbox.failing).clone();
        let mut inner = self.lock();
        let now = now_ms();
        let mut changed = Vec::new();
        let oauth: BTreeSet<(String, String)> = inner
            .catalogue
            .iter()
            .filter(|c| c.auth_type == AuthType::OAuth2)
            .map(|c| (c.unified_api.clone(), c.service_id.clone()))
            .collect();
        for (key, stored) in inner.connections.iter_mut() {
            if !oauth.contains(&(key.1.clone(), key.2.clone())) {
                continue;
            }
            let Some(refresh_token) = stored
                .credentials
                .as_ref()
                .and_then(|c| c.get("refresh_token"))
                .and_then(Value::as_str)
            else {
                continue;
            };
            let fails = failing.contains(&FailRefresh::Connection(key.clone()))
                || failing.contains(&FailRefresh::RefreshToken(refresh_token.to_owned()));
            if fails && stored.refresh_failed_at_ms == 0 {
                stored.refresh_failed_at_ms = now;
                changed.push((key.clone(), "vault.connection.token_refresh.failed"));
            } else if !fails && stored.refresh_failed_at_ms > 0 {
                stored.refresh_failed_at_ms = 0;
                changed.push((key.clone(), "vault.connection.token_refresh.recovered"));
            }
        }
        let failed = changed
            .iter()
            .filter(|(_, e)| e.ends_with("failed"))
            .count();
        for (key, event_type) in &changed {
            self.emit(&inner, key, event_type);
        }
        (failed, changed.len() - failed)
    }

    /// Queues one event about the connection `key` (no URL configured: nothing is sent).
    pub(crate) fn emit(&self, inner: &Inner, key: &ConnectionKey, event_type: &str) {
        let Some(url) = lock(&self.outbox.url).clone() else {
            return;
        };
        let Some(stored) = inner.connections.get(key) else {
            return;
        };
        let body = json!({"payload": {
            "event_id": uuid_like(),
            "event_type": event_type,
            "service_id": "apideck-vault",
            "entity_id": format!("{}+{}", key.1, key.2),
            "entity_type": "Connection",
            "entity": consumer_connection(inner, key, stored),
            "execution_attempt": 1,
            "occurred_at": iso(now_ms()),
        }});
        let job = Job {
            body,
            event_type: event_type.to_owned(),
            idempotency_key: uuid_like(),
            connection: key.clone(),
        };
        self.outbox.pending.send_modify(|n| *n += 1);
        let mut sender = lock(&self.outbox.sender);
        let sender = sender.get_or_insert_with(|| self.start_worker(url));
        if let Err(error) = sender.send(job) {
            drop(error);
            self.outbox.pending.send_modify(|n| *n -= 1);
        }
    }

    /// Events an import emits (see the module docs): `was` is the connection's state before.
    pub(crate) fn emit_import(&self, inner: &Inner, key: &ConnectionKey, was: Option<&str>) {
        self.emit(
            inner,
            key,
            if was.is_none() {
                "vault.connection.created"
            } else {
                "vault.connection.updated"
            },
        );
        let now = inner
            .connections
            .get(key)
            .zip(inner.find_connector(&key.1, &key.2))
            .map(|(stored, connector)| {
                super::derive_state(connector, Some(stored), chrono::Utc::now()).0
            });
        if now == Some("callable") && was != Some("callable") {
            self.emit(inner, key, "vault.connection.callable");
        }
    }

    fn start_worker(&self, url: String) -> mpsc::UnboundedSender<Job> {
        let (sender, mut jobs) = mpsc::unbounded_channel::<Job>();
        let api_key = self.api_key.clone();
        let pending = self.outbox.pending.clone();
        let sent = self.outbox.sent.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap_or_default();
            while let Some(job) = jobs.recv().await {
                let record = deliver(&client, &url, &api_key, job).await;
                lock(&sent).push(record);
                pending.send_modify(|n| *n -= 1);
            }
        });
        sender
    }

    /// Waits until every queued webhook was delivered (or given up on).
    pub async fn webhooks_settled(&self) {
        let mut pending = self.outbox.pending.subscribe();
        let _ = pending.wait_for(|n| *n == 0).await;
    }

    /// Every delivery made so far, in order.
    pub fn sent_webhooks(&self) -> Vec<SentWebhook> {
        lock(&self.outbox.sent).clone()
    }
}

async fn deliver(client: &reqwest::Client, url: &str, api_key: &str, job: Job) -> SentWebhook {
    let mut body = job.body;
    let mut status = None;
    let mut attempts = 0;
    while attempts < ATTEMPTS {
        attempts += 1;
        body["payload"]["execution_attempt"] = json!(attempts);
        let answer = client
            .post(url)
            .header("content-type", "application/json")
            .header("x-apideck-event-type", &job.event_type)
            .header("x-apideck-signature", sign(api_key, &body))
            .header("x-apideck-idempotency-key", &job.idempotency_key)
            .body(serde_json::to_vec(&body).unwrap_or_default())
            .send()
            .await;
        status = answer.ok().map(|r| r.status().as_u16());
        if status.is_some_and(|s| (200..300).contains(&s)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50 * u64::from(attempts))).await;
    }
    SentWebhook {
        idempotency_key: job.idempotency_key,
        event_type: job.event_type,
        connection: job.connection,
        status,
        attempts,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FailRequest {
    consumer_id: Option<String>,
    unified_api: Option<String>,
    service_id: Option<String>,
    refresh_token: Option<String>,
    #[serde(default = "yes")]
    fail: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UrlRequest {
    url: Option<String>,
}

/// The sandbox's own control routes (not Apideck's): set the webhook URL, mark refreshes to
/// fail, run the background refresh. Reachable from tests and from `authport sandbox`.
pub(super) fn routes(state: Arc<ApideckState>) -> Router {
    Router::new()
        .route("/_sandbox/apideck/webhook-url", post(set_url))
        .route("/_sandbox/apideck/refresh-failures", post(set_failure))
        .route("/_sandbox/apideck/refresh", post(refresh))
        .with_state(state)
}

async fn set_url(
    State(state): State<Arc<ApideckState>>,
    Json(body): Json<UrlRequest>,
) -> StatusCode {
    state.set_webhook_url(body.url);
    StatusCode::NO_CONTENT
}

async fn set_failure(
    State(state): State<Arc<ApideckState>>,
    Json(body): Json<FailRequest>,
) -> Result<StatusCode, (StatusCode, &'static str)> {
    let fail = body.fail;
    let target = match body {
        FailRequest {
            consumer_id: Some(c),
            unified_api: Some(u),
            service_id: Some(s),
            refresh_token: None,
            ..
        } => FailRefresh::Connection((c, u, s)),
        FailRequest {
            consumer_id: None,
            unified_api: None,
            service_id: None,
            refresh_token: Some(token),
            ..
        } => FailRefresh::RefreshToken(token),
        _ => {
            return Err((
                StatusCode::BAD_REQUEST,
                "give consumer_id, unified_api and service_id, or refresh_token",
            ));
        }
    };
    state.fail_refreshes([target], fail);
    Ok(StatusCode::NO_CONTENT)
}

async fn refresh(State(state): State<Arc<ApideckState>>) -> Json<Value> {
    let (failed, recovered) = state.run_refreshes();
    state.webhooks_settled().await;
    Json(json!({"failed": failed, "recovered": recovered}))
}
