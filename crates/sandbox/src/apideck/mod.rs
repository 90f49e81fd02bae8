//! The Apideck Vault emulator: the connection endpoints authport uses, per vault.yml 10.34.0.
//!
//! What it models (see `docs/apideck.md` for the documented-vs-assumed split):
//! - headers: `Authorization: Bearer <key>` (401 `UnauthorizedError`), `x-apideck-app-id` and,
//!   on `/vault/connections/{unified_api}/{service_id}/...`, `x-apideck-consumer-id`
//!   (400 `RequestHeadersValidationError`, detail `Missing Header: <name>`);
//! - import bodies validated against `ConnectionImportData` (closed `credentials`, `nullable`);
//! - import is an upsert per (consumer, unified API, service); consumers are created on import;
//! - `state`/`health` derived from what was imported; `*_at` fields in Unix milliseconds;
//!   credentials are never echoed (settings are, as in Apideck's example);
//! - delete answers 204; a switchable plan limit answers 402 `RequestLimitError`;
//! - `GET /vault/consumers`: cursor pages of consumers with the services they hold;
//! - every request is counted by operation (`GET /vault/consumers`, ...) for tests.

mod catalogue;
mod consumers;
mod handlers;
pub mod sessions;
mod validate;
pub mod webhooks;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use catalogue::{AuthType, Connector, FormField, IntegrationState, default_catalogue};
pub use validate::import_body_problems;
pub use webhooks::{FailRefresh, SentWebhook};

/// The fake API key the sandbox accepts (also handed out by [`ApideckState::credentials_env`]).
pub const SANDBOX_API_KEY: &str = "sandbox-apideck-api-key";
/// The fake Unify application id the sandbox accepts.
pub const SANDBOX_APP_ID: &str = "sandbox-apideck-app";

/// Options of the Apideck emulator. `Default` is a ready-to-use catalogue.
#[derive(Clone)]
pub struct ApideckOptions {
    pub api_key: String,
    pub app_id: String,
    pub catalogue: Vec<Connector>,
    /// After this many accepted imports, every further import answers 402 `RequestLimitError`.
    pub import_limit: Option<u64>,
    /// Answer `GET /vault/connections/{u}/{s}` with 404 `ConnectionNotFoundError` when the
    /// consumer has no such connection, instead of the connector in state `available`. Vault's
    /// behaviour here is not documented; this switch lets tests cover both readings.
    pub missing_connection_answers_404: bool,
}

impl Default for ApideckOptions {
    fn default() -> Self {
        Self {
            api_key: SANDBOX_API_KEY.to_owned(),
            app_id: SANDBOX_APP_ID.to_owned(),
            catalogue: default_catalogue(),
            import_limit: None,
            missing_connection_answers_404: false,
        }
    }
}

impl fmt::Debug for ApideckOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApideckOptions")
            .field("app_id", &self.app_id)
            .field("connectors", &self.catalogue.len())
            .field("import_limit", &self.import_limit)
            .finish_non_exhaustive()
    }
}

/// Identity of a connection: (consumer id, unified API, service id).
pub type ConnectionKey = (String, String, String);

/// A stored connection. `credentials` keeps the imported object as sent, so tests can check what
/// arrived; the HTTP API never returns it. `Serialize` is for the sandbox's own data file only
/// ([`crate::persist`]).
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredConnection {
    pub credentials: Option<Map<String, Value>>,
    pub settings: Map<String, Value>,
    pub metadata: Map<String, Value>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Made by [`ApideckState::precreate_connection`] (a connection the consumer set up before
    /// authport ran), not by an import.
    pub pre_existing: bool,
    /// When the last background refresh failed (Unix ms), 0 when it did not ([`webhooks`]).
    pub refresh_failed_at_ms: i64,
}

impl fmt::Debug for StoredConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredConnection")
            .field("has_credentials", &self.credentials.is_some())
            .field("settings", &self.settings.keys().collect::<Vec<_>>())
            .field("pre_existing", &self.pre_existing)
            .finish_non_exhaustive()
    }
}

/// What a test can read back about one connection.
#[derive(Debug, Clone)]
pub struct ConnectionView {
    pub state: String,
    pub health: String,
    pub stored: StoredConnection,
}

pub(crate) struct Inner {
    pub(crate) catalogue: Vec<Connector>,
    pub(crate) consumers: BTreeSet<String>,
    pub(crate) connections: BTreeMap<ConnectionKey, StoredConnection>,
    pub(crate) imports_accepted: u64,
    pub(crate) import_limit: Option<u64>,
    pub(crate) forced_refreshes: u64,
    pub(crate) missing_connection_answers_404: bool,
    /// `GET /vault/consumers` answers 500 while set.
    pub(crate) consumers_listing_broken: bool,
    /// Requests received, by `METHOD /route/template`.
    pub(crate) requests: BTreeMap<String, u64>,
}

/// What a durable sandbox keeps of Apideck ([`crate::persist`]): consumers, their connections
/// and the count of accepted imports (the plan limit counts them).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApideckData {
    consumers: Vec<String>,
    connections: Vec<(ConnectionKey, StoredConnection)>,
    imports_accepted: u64,
}

/// The Apideck emulator's state.
pub struct ApideckState {
    pub(crate) api_key: String,
    pub(crate) app_id: String,
    pub(crate) inner: Mutex<Inner>,
    pub(crate) outbox: webhooks::Outbox,
}

impl fmt::Debug for ApideckState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("ApideckState")
            .field("app_id", &self.app_id)
            .field("consumers", &inner.consumers.len())
            .field("connections", &inner.connections.len())
            .finish_non_exhaustive()
    }
}

impl ApideckState {
    pub fn new(options: ApideckOptions) -> Arc<Self> {
        Arc::new(Self {
            api_key: options.api_key,
            app_id: options.app_id,
            inner: Mutex::new(Inner {
                catalogue: options.catalogue,
                consumers: BTreeSet::new(),
                connections: BTreeMap::new(),
                imports_accepted: 0,
                import_limit: options.import_limit,
                forced_refreshes: 0,
                missing_connection_answers_404: options.missing_connection_answers_404,
                consumers_listing_broken: false,
                requests: BTreeMap::new(),
            }),
            outbox: webhooks::Outbox::new(),
        })
    }

    /// Environment variables holding the sandbox's fake credentials for this vendor.
    pub fn credentials_env(&self) -> Vec<(String, String)> {
        vec![
            ("APIDECK_API_KEY".to_owned(), self.api_key.clone()),
            ("APIDECK_APP_ID".to_owned(), self.app_id.clone()),
        ]
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Switches the plan limit while the server runs: after `limit` accepted imports in total
    /// (counting those already made), imports answer 402. `None` lifts it.
    pub fn set_import_limit(&self, limit: Option<u64>) {
        self.lock().import_limit = limit;
    }

    /// Enables, disables or un-configures a connector of the catalogue.
    pub fn set_integration_state(
        &self,
        unified_api: &str,
        service_id: &str,
        state: IntegrationState,
    ) {
        let mut inner = self.lock();
        for connector in &mut inner.catalogue {
            if connector.unified_api == unified_api && connector.service_id == service_id {
                connector.integration_state = state;
            }
        }
    }

    /// Creates a connection as if the consumer had connected it in Vault before authport ran
    /// (pre-existing object). `credentials: None` makes an `added` connection without a grant.
    pub fn precreate_connection(
        &self,
        consumer_id: &str,
        unified_api: &str,
        service_id: &str,
        settings: Map<String, Value>,
        credentials: Option<Map<String, Value>>,
    ) {
        let now = now_ms();
        let mut inner = self.lock();
        inner.consumers.insert(consumer_id.to_owned());
        inner.connections.insert(
            (
                consumer_id.to_owned(),
                unified_api.to_owned(),
                service_id.to_owned(),
            ),
            StoredConnection {
                credentials,
                settings,
                metadata: Map::new(),
                created_at_ms: now,
                updated_at_ms: now,
                pre_existing: true,
                refresh_failed_at_ms: 0,
            },
        );
    }

    /// Creates a consumer without connections (as `POST /vault/consumers` would).
    pub fn precreate_consumer(&self, consumer_id: &str) {
        self.lock().consumers.insert(consumer_id.to_owned());
    }

    /// Makes `GET /vault/consumers` answer 500 `UnexpectedError` (or work again).
    pub fn set_consumers_listing_broken(&self, broken: bool) {
        self.lock().consumers_listing_broken = broken;
    }

    /// Requests that reached the Vault routes so far for one operation, named
    /// `METHOD /route/template` (e.g. `GET /vault/connections/{unified_api}/{service_id}`).
    /// Requests the fault injector answered in their place are not counted.
    pub fn request_count(&self, operation: &str) -> u64 {
        self.lock().requests.get(operation).copied().unwrap_or(0)
    }

    /// Every request received so far, by operation.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.lock().requests.clone()
    }

    /// One connection with its derived state and health, if it exists.
    pub fn connection(
        &self,
        consumer_id: &str,
        unified_api: &str,
        service_id: &str,
    ) -> Option<ConnectionView> {
        let inner = self.lock();
        let key = (
            consumer_id.to_owned(),
            unified_api.to_owned(),
            service_id.to_owned(),
        );
        let stored = inner.connections.get(&key)?.clone();
        let connector = inner.find_connector(unified_api, service_id)?;
        let (state, health) = derive_state(connector, Some(&stored), chrono::Utc::now());
        Some(ConnectionView {
            state: state.to_owned(),
            health: health.to_owned(),
            stored,
        })
    }

    /// Every connection key, sorted.
    pub fn connection_keys(&self) -> Vec<ConnectionKey> {
        self.lock().connections.keys().cloned().collect()
    }

    pub fn connection_count(&self) -> usize {
        self.lock().connections.len()
    }

    pub fn consumer_ids(&self) -> Vec<String> {
        self.lock().consumers.iter().cloned().collect()
    }

    /// Imports accepted so far (each upsert counts once).
    pub fn import_count(&self) -> u64 {
        self.lock().imports_accepted
    }

    /// How many times `validate` forced an OAuth refresh (which would rotate refresh tokens).
    pub fn forced_refresh_count(&self) -> u64 {
        self.lock().forced_refreshes
    }
}

impl Inner {
    pub(crate) fn find_connector(&self, unified_api: &str, service_id: &str) -> Option<&Connector> {
        self.catalogue
            .iter()
            .find(|c| c.unified_api == unified_api && c.service_id == service_id)
    }
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `(state, health)` of a connection, derived from what it holds:
/// - no connection: `available`;
/// - OAuth without an access token: `added` / `needs_auth`; with one but a required form field
///   missing: `authorized` / `missing_settings`; otherwise `callable`, with health
///   `pending_refresh` when the expiry was omitted or has passed (Vault queues a refresh);
/// - other auth types: `callable` / `ok` when every required form field is present, else
///   `added` / `missing_settings`.
pub fn derive_state(
    connector: &Connector,
    stored: Option<&StoredConnection>,
    now: chrono::DateTime<chrono::Utc>,
) -> (&'static str, &'static str) {
    let Some(stored) = stored else {
        return ("available", "needs_auth");
    };
    let settings_complete = connector
        .required_field_ids()
        .all(|id| stored.settings.get(id).is_some_and(is_filled));
    match connector.auth_type {
        AuthType::OAuth2 => {
            let credentials = stored.credentials.as_ref();
            let has_token = credentials
                .and_then(|c| c.get("access_token"))
                .is_some_and(is_filled);
            if !has_token {
                return ("added", "needs_auth");
            }
            if !settings_complete {
                return ("authorized", "missing_settings");
            }
            // A failed background refresh: credentials kept for the retention window.
            if stored.refresh_failed_at_ms > 0 {
                return ("callable", "pending_refresh");
            }
            match credentials.and_then(token_expiry) {
                Some(expires_at) if expires_at > now => ("callable", "ok"),
                _ => ("callable", "pending_refresh"),
            }
        }
        AuthType::ApiKey | AuthType::Basic | AuthType::Custom => {
            if settings_complete {
                ("callable", "ok")
            } else {
                ("added", "missing_settings")
            }
        }
        AuthType::None => ("callable", "ok"),
    }
}

/// `issued_at + expires_in` (seconds), when both were imported.
fn token_expiry(credentials: &Map<String, Value>) -> Option<chrono::DateTime<chrono::Utc>> {
    let issued_at = credentials.get("issued_at")?.as_str()?;
    let issued_at = chrono::DateTime::parse_from_rfc3339(issued_at).ok()?;
    let expires_in = credentials.get("expires_in")?.as_i64()?;
    let lifetime = chrono::TimeDelta::try_seconds(expires_in)?;
    issued_at
        .with_timezone(&chrono::Utc)
        .checked_add_signed(lifetime)
}

fn is_filled(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(text) => !text.trim().is_empty(),
        _ => true,
    }
}

impl crate::Emulator for ApideckState {
    type Options = ApideckOptions;
    type Data = ApideckData;

    const NAME: &'static str = "apideck";
    const ENV_PREFIX: &'static str = "APIDECK_";

    fn new(options: ApideckOptions) -> Arc<Self> {
        ApideckState::new(options)
    }

    fn router(self: Arc<Self>) -> axum::Router {
        handlers::routes(self.clone()).merge(webhooks::routes(self))
    }

    fn env(&self, base_url: &str) -> Vec<(String, String)> {
        let mut env = vec![("APIDECK_API_URL".to_owned(), base_url.to_owned())];
        env.extend(self.credentials_env());
        env
    }

    fn canary_credentials(&self) -> Vec<String> {
        vec![self.api_key.clone()]
    }

    fn secrets_mut(options: &mut ApideckOptions) -> Vec<(&'static str, &mut String)> {
        vec![("apideck-api-key", &mut options.api_key)]
    }

    fn data(&self) -> Self::Data {
        let inner = self.lock();
        ApideckData {
            consumers: inner.consumers.iter().cloned().collect(),
            connections: inner
                .connections
                .iter()
                .map(|(key, stored)| (key.clone(), stored.clone()))
                .collect(),
            imports_accepted: inner.imports_accepted,
        }
    }

    fn restore(&self, data: Self::Data) {
        let mut inner = self.lock();
        inner.consumers = data.consumers.into_iter().collect();
        inner.connections = data.connections.into_iter().collect();
        inner.imports_accepted = data.imports_accepted;
    }
}
