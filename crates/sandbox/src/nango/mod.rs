//! The Nango emulator: the endpoints authport uses, per Nango's `nango.yaml` (OpenAPI 3.1).
//!
//! What it models (see `docs/nango.md` for the documented-vs-assumed split):
//! - `Authorization: Bearer <secret key>` on every call (401 `StdError` otherwise);
//! - `GET /integrations` (the configured integrations, `unique_key` = provider config key);
//!   `GET /integrations/{uniqueKey}` (`include=credentials` adds `IntegrationCredentials`, with
//!   a canary client secret);
//! - `POST /connections`, the documented upsert per `(provider_config_key, connection_id)`, its
//!   body checked against the spec's request schema (closed credential objects, tags);
//! - `GET /connections/{id}` (`refresh_token=true` adds the refresh token), with `errors[]` and
//!   424 for a connection whose refresh is exhausted; `GET /connections` (no credentials);
//!   `DELETE /connections/{id}` (200 `{"success": true}`, 404 when absent);
//! - the plan's rate limit when switched on: a fixed one-minute window, `X-RateLimit-*` on
//!   every answer, 429 with `Retry-After` over the limit;
//! - Connect sessions (`POST /connect/sessions`, `POST /connect/sessions/reconnect`) and a
//!   stand-in for the hosted Connect UI ([`connect`]);
//! - signed auth webhooks, sent when a test asks (`POST /_sandbox/nango/auth-webhook`,
//!   [`webhooks`]).
//!
//! Fault injection is the sandbox's common layer (`crate::faults`).

pub mod connect;
mod handlers;
mod rotate;
#[cfg(feature = "contract")]
pub mod spec;
mod validate;
pub mod webhooks;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use validate::upsert_body_problems;
pub use webhooks::{AuthWebhook, SentWebhook};

/// The fake secret key the sandbox accepts (also handed out by [`NangoState::credentials_env`]).
pub const SANDBOX_SECRET_KEY: &str = "sandbox-nango-secret-key";
/// The fake webhook signing key the sandbox signs its webhooks with (handed out as
/// `NANGO_WEBHOOK_SECRET`; see [`webhooks`]).
pub const SANDBOX_WEBHOOK_SECRET: &str = "sandbox-nango-webhook-secret";

/// One integration (`Integration` in the spec).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Integration {
    /// The provider config key.
    pub unique_key: String,
    /// Nango's API configuration name (`hubspot`, `salesforce`, ...).
    pub provider: String,
    pub display_name: String,
    /// The provider's auth mode (`OAUTH2`, `API_KEY`, `BASIC`...): Nango's import takes only
    /// credentials of this type. Not part of the `Integration` answer.
    pub auth_mode: String,
    /// The OAuth client of an `OAUTH2` integration, served with `include=credentials`
    /// (default: `sandbox-<unique_key>-client`).
    #[serde(default)]
    pub client_id: Option<String>,
    /// Its scopes as Nango writes them (`"a,b"`); none by default.
    #[serde(default)]
    pub scopes: Option<String>,
}

impl Integration {
    pub fn new(unique_key: &str, provider: &str, display_name: &str, auth_mode: &str) -> Self {
        Self {
            unique_key: unique_key.to_owned(),
            provider: provider.to_owned(),
            display_name: display_name.to_owned(),
            auth_mode: auth_mode.to_owned(),
            client_id: None,
            scopes: None,
        }
    }

    /// The OAuth client id served with `include=credentials` (`OAUTH2` integrations only).
    pub fn oauth_client_id(&self) -> Option<String> {
        (self.auth_mode == "OAUTH2").then(|| {
            self.client_id
                .clone()
                .unwrap_or_else(|| format!("sandbox-{}-client", self.unique_key))
        })
    }
}

/// The client secret every `OAUTH2` integration serves with `include=credentials`: a canary
/// that must never appear in anything authport writes.
pub const SANDBOX_CLIENT_SECRET_CANARY: &str = "canary-nango-client-secret-7f3a";

/// One integration per service of `examples/records.jsonl` (and Slack), keyed by the
/// provider's name, with the auth mode of the example's record: seeded from
/// `fixtures/nango-integrations.json`.
pub fn default_integrations() -> Vec<Integration> {
    static BUNDLED: LazyLock<Vec<Integration>> = LazyLock::new(|| {
        serde_json::from_str(include_str!("../../fixtures/nango-integrations.json"))
            .expect("the bundled Nango integrations fixture is valid")
    });
    BUNDLED.clone()
}

/// The plan's limit: requests per fixed one-minute window (Nango: 200 free, 1,000 starter,
/// 2,000 growth).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_minute: u32,
}

impl RateLimit {
    /// The free plan's documented limit.
    pub const FREE: RateLimit = RateLimit { per_minute: 200 };
}

/// Options of the Nango emulator. `Default` serves [`default_integrations`] without a limit.
#[derive(Clone)]
pub struct NangoOptions {
    pub secret_key: String,
    /// The key [`webhooks`] are signed with (`X-Nango-Hmac-Sha256`).
    pub webhook_secret: String,
    pub integrations: Vec<Integration>,
    pub rate_limit: Option<RateLimit>,
}

impl Default for NangoOptions {
    fn default() -> Self {
        Self {
            secret_key: SANDBOX_SECRET_KEY.to_owned(),
            webhook_secret: SANDBOX_WEBHOOK_SECRET.to_owned(),
            integrations: default_integrations(),
            rate_limit: None,
        }
    }
}

impl fmt::Debug for NangoOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NangoOptions")
            .field("integrations", &self.integrations.len())
            .field("rate_limit", &self.rate_limit)
            .finish_non_exhaustive()
    }
}

/// `(provider_config_key, connection_id)`: a connection's identity.
pub type ConnectionKey = (String, String);

/// A stored connection. `credentials` is kept as sent so tests can check what arrived; only
/// `GET /connections/{id}` returns it. `Serialize` is for the sandbox's own data file only
/// ([`crate::persist`]).
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredConnection {
    pub id: u64,
    pub provider: String,
    pub credentials: Map<String, Value>,
    pub connection_config: Map<String, Value>,
    pub metadata: Map<String, Value>,
    pub tags: BTreeMap<String, String>,
    /// `ConnectionError` objects (`{"type": "auth"|"sync", "log_id"}`).
    pub errors: Vec<Value>,
    /// Nango can no longer refresh it: reads answer 424.
    pub refresh_exhausted: bool,
    pub created_at: String,
    pub updated_at: String,
    /// Made by [`NangoState::precreate_connection`], not by an upsert.
    pub pre_existing: bool,
    /// Upserts that reached this connection.
    pub upserts: u64,
}

impl fmt::Debug for StoredConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredConnection")
            .field("id", &self.id)
            .field("provider", &self.provider)
            .field(
                "credential_keys",
                &self.credentials.keys().collect::<Vec<_>>(),
            )
            .field("tags", &self.tags.keys().collect::<Vec<_>>())
            .field("errors", &self.errors.len())
            .field("pre_existing", &self.pre_existing)
            .finish_non_exhaustive()
    }
}

/// The current rate window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    /// Unix second the window started.
    pub(crate) start: i64,
    pub(crate) used: u32,
}

pub(crate) struct Inner {
    pub(crate) integrations: Vec<Integration>,
    pub(crate) connections: BTreeMap<ConnectionKey, StoredConnection>,
    pub(crate) next_id: u64,
    pub(crate) rate_limit: Option<RateLimit>,
    pub(crate) window: Window,
    /// The window's length in seconds: Nango's minute, shorter in tests
    /// ([`NangoState::set_rate_window_secs`]).
    pub(crate) window_secs: i64,
    /// The lowest `X-RateLimit-Remaining` answered to an admitted request (`--budget-share`
    /// tests: it must never go below the reserve).
    pub(crate) min_remaining: Option<u32>,
    pub(crate) upserts_accepted: u64,
    pub(crate) rate_limited: u64,
    /// Connect sessions minted ([`connect`]); not persisted (they live 30 minutes).
    pub(crate) sessions: Vec<connect::CreatedSession>,
    /// Connection → reads still followed by a rotation (`rotate.rs`, a test control).
    pub(crate) rotate_after_read: BTreeMap<ConnectionKey, u32>,
    pub(crate) rotations: u64,
}

/// What a durable sandbox keeps of Nango ([`crate::persist`]): the connections, the next
/// connection id and the count of accepted upserts.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NangoData {
    connections: Vec<(ConnectionKey, StoredConnection)>,
    next_id: u64,
    upserts_accepted: u64,
}

/// The Nango emulator's state.
pub struct NangoState {
    pub(crate) secret_key: String,
    pub(crate) webhook_secret: String,
    pub(crate) inner: Mutex<Inner>,
    pub(crate) sent_webhooks: Mutex<Vec<SentWebhook>>,
}

impl fmt::Debug for NangoState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("NangoState")
            .field("integrations", &inner.integrations.len())
            .field("connections", &inner.connections.len())
            .finish_non_exhaustive()
    }
}

impl NangoState {
    pub fn new(options: NangoOptions) -> Arc<Self> {
        Arc::new(Self {
            secret_key: options.secret_key,
            webhook_secret: options.webhook_secret,
            sent_webhooks: Mutex::new(Vec::new()),
            inner: Mutex::new(Inner {
                integrations: options.integrations,
                connections: BTreeMap::new(),
                next_id: 1,
                rate_limit: options.rate_limit,
                window: Window { start: 0, used: 0 },
                window_secs: 60,
                min_remaining: None,
                upserts_accepted: 0,
                rate_limited: 0,
                sessions: Vec::new(),
                rotate_after_read: BTreeMap::new(),
                rotations: 0,
            }),
        })
    }

    /// Environment variables holding the sandbox's fake credentials for this vendor.
    pub fn credentials_env(&self) -> Vec<(String, String)> {
        vec![
            ("NANGO_SECRET_KEY".to_owned(), self.secret_key.clone()),
            (
                "NANGO_WEBHOOK_SECRET".to_owned(),
                self.webhook_secret.clone(),
            ),
        ]
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Switches the plan's limit while the server runs (`None`: no limit, no headers).
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        let mut inner = self.lock();
        inner.rate_limit = limit;
        inner.window = Window { start: 0, used: 0 };
    }

    /// Shortens (or restores) the plan's window, in seconds (at least 1), so a test can
    /// cross windows quickly; starts a new window and forgets the lowest remaining.
    pub fn set_rate_window_secs(&self, seconds: u32) {
        let mut inner = self.lock();
        inner.window_secs = i64::from(seconds.max(1));
        inner.window = Window { start: 0, used: 0 };
        inner.min_remaining = None;
    }

    /// The lowest `X-RateLimit-Remaining` answered to an admitted request so far (`None`
    /// without a limit or before the first request).
    pub fn min_remaining(&self) -> Option<u32> {
        self.lock().min_remaining
    }

    /// Adds an integration while the server runs.
    pub fn add_integration(&self, integration: Integration) {
        self.lock().integrations.push(integration);
    }

    /// Creates a connection as if the end user had connected in Nango before authport ran.
    pub fn precreate_connection(
        &self,
        provider_config_key: &str,
        connection_id: &str,
        credentials: Map<String, Value>,
    ) {
        let now = now_text();
        let mut inner = self.lock();
        let provider = inner
            .integrations
            .iter()
            .find(|i| i.unique_key == provider_config_key)
            .map(|i| i.provider.clone())
            .unwrap_or_default();
        let id = inner.next_id;
        inner.next_id += 1;
        inner.connections.insert(
            (provider_config_key.to_owned(), connection_id.to_owned()),
            StoredConnection {
                id,
                provider,
                credentials,
                connection_config: Map::new(),
                metadata: Map::new(),
                tags: BTreeMap::new(),
                errors: Vec::new(),
                refresh_exhausted: false,
                created_at: now.clone(),
                updated_at: now,
                pre_existing: true,
                upserts: 0,
            },
        );
    }

    /// Replaces a connection's tags (Nango's `PATCH /connections/{id}` does the same for an
    /// end user's own connection, e.g. `end_user_id` set by Nango Connect).
    pub fn set_tags(
        &self,
        provider_config_key: &str,
        connection_id: &str,
        tags: BTreeMap<String, String>,
    ) {
        let mut inner = self.lock();
        if let Some(stored) = inner
            .connections
            .get_mut(&(provider_config_key.to_owned(), connection_id.to_owned()))
        {
            stored.tags = tags;
        }
    }

    /// Adds a `ConnectionError` of `kind` (`auth` or `sync`) to a connection.
    pub fn add_connection_error(&self, provider_config_key: &str, connection_id: &str, kind: &str) {
        let mut inner = self.lock();
        if let Some(stored) = inner
            .connections
            .get_mut(&(provider_config_key.to_owned(), connection_id.to_owned()))
        {
            let log_id = format!("log{}", stored.errors.len() + 1);
            stored
                .errors
                .push(serde_json::json!({"type": kind, "log_id": log_id}));
        }
    }

    /// Marks a connection as one Nango can no longer refresh (reads answer 424).
    pub fn exhaust_refresh(&self, provider_config_key: &str, connection_id: &str) {
        let mut inner = self.lock();
        if let Some(stored) = inner
            .connections
            .get_mut(&(provider_config_key.to_owned(), connection_id.to_owned()))
        {
            stored.refresh_exhausted = true;
        }
    }

    pub fn connection(
        &self,
        provider_config_key: &str,
        connection_id: &str,
    ) -> Option<StoredConnection> {
        self.lock()
            .connections
            .get(&(provider_config_key.to_owned(), connection_id.to_owned()))
            .cloned()
    }

    /// Every connection key, sorted.
    pub fn connection_keys(&self) -> Vec<ConnectionKey> {
        self.lock().connections.keys().cloned().collect()
    }

    pub fn connection_count(&self) -> usize {
        self.lock().connections.len()
    }

    /// Upserts accepted so far.
    pub fn upsert_count(&self) -> u64 {
        self.lock().upserts_accepted
    }

    /// Requests answered 429 so far.
    pub fn rate_limited_count(&self) -> u64 {
        self.lock().rate_limited
    }
}

pub(crate) fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl crate::Emulator for NangoState {
    type Options = NangoOptions;
    type Data = NangoData;

    const NAME: &'static str = "nango";
    const ENV_PREFIX: &'static str = "NANGO_";

    fn new(options: NangoOptions) -> Arc<Self> {
        NangoState::new(options)
    }

    fn router(self: Arc<Self>) -> axum::Router {
        handlers::routes(self.clone())
            .merge(connect::routes(self.clone()))
            .merge(rotate::routes(self.clone()))
            .merge(webhooks::routes(self))
    }

    fn env(&self, base_url: &str) -> Vec<(String, String)> {
        let mut env = vec![
            ("NANGO_API_URL".to_owned(), base_url.to_owned()),
            // Reconnect links open the sandbox's Connect page.
            (
                "NANGO_CONNECT_URL".to_owned(),
                format!("{}{}", base_url.trim_end_matches('/'), connect::PAGE_PATH),
            ),
        ];
        env.extend(self.credentials_env());
        env
    }

    fn canary_credentials(&self) -> Vec<String> {
        vec![self.secret_key.clone(), self.webhook_secret.clone()]
    }

    fn secrets_mut(options: &mut NangoOptions) -> Vec<(&'static str, &mut String)> {
        vec![
            ("nango-secret-key", &mut options.secret_key),
            ("nango-webhook-secret", &mut options.webhook_secret),
        ]
    }

    fn data(&self) -> Self::Data {
        let inner = self.lock();
        NangoData {
            connections: inner
                .connections
                .iter()
                .map(|(key, stored)| (key.clone(), stored.clone()))
                .collect(),
            next_id: inner.next_id,
            upserts_accepted: inner.upserts_accepted,
        }
    }

    fn restore(&self, data: Self::Data) {
        let mut inner = self.lock();
        inner.connections = data.connections.into_iter().collect();
        // Ids are never reused, even by a hand-edited file.
        let highest = inner.connections.values().map(|c| c.id).max().unwrap_or(0);
        inner.next_id = data.next_id.max(highest + 1);
        inner.upserts_accepted = data.upserts_accepted;
    }
}
