//! The Tray emulator: REST `/core/v1` (connectors, service environments, authentications) and
//! the GraphQL Embedded API (`/graphql`: users, tokens, authentications, solution instances),
//! stateful and faithful to Tray's published spec (`shared/docs/tray-api.md`).
//!
//! Token rules: one master token (the org's); user tokens minted by `authorize`, owned by one
//! end user, expiring after 48 hours, or after [`TrayOptions::user_token_max_uses`] uses, or all
//! at once with [`TrayState::expire_user_tokens`] (so tests never sleep). A user token sees only
//! its own user's authentications (another user's id answers 404); the master token sees all.

mod catalogue;
mod dialog;
mod graphql;
mod rest;
mod rotate;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use chrono::{DateTime, Duration as TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use catalogue::{
    AuthSlotDef, Catalogue, EnvironmentDef, ServiceDef, SolutionDef, environment_id, stable_uuid,
};
pub use validate::{check_object, check_value_shapes};

/// The master token the sandbox accepts unless configured otherwise.
pub const DEFAULT_MASTER_TOKEN: &str = "sandbox-tray-master-token-0000000000000000";

/// The Embedded ID the sandbox hands out for Tray's auth-only dialog (`reconnect --links`).
pub const SANDBOX_EMBEDDED_ID: &str = "sandbox-embedded-id";

/// How long a user token lives: "This access token expires after 2 days".
const USER_TOKEN_LIFETIME_HOURS: i64 = 48;

/// Tray's documented limit: 30 requests per second with bursts up to 50.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl RateLimit {
    pub const DOCUMENTED: RateLimit = RateLimit {
        per_second: 30.0,
        burst: 50,
    };
}

/// Options of the Tray emulator. `Default` is a ready-to-use catalogue with no rate limit.
#[derive(Clone)]
pub struct TrayOptions {
    pub master_token: String,
    pub catalogue: Catalogue,
    /// When set, requests beyond the bucket get REST 429 / the GraphQL rate-limit error.
    pub rate_limit: Option<RateLimit>,
    /// When set, a user token is rejected (401) after this many uses: expiry without sleeping.
    pub user_token_max_uses: Option<u64>,
}

impl Default for TrayOptions {
    fn default() -> Self {
        Self {
            master_token: DEFAULT_MASTER_TOKEN.to_owned(),
            catalogue: Catalogue::default(),
            rate_limit: None,
            user_token_max_uses: None,
        }
    }
}

impl fmt::Debug for TrayOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrayOptions")
            .field("services", &self.catalogue.services.len())
            .field("rate_limit", &self.rate_limit)
            .field("user_token_max_uses", &self.user_token_max_uses)
            .finish_non_exhaustive()
    }
}

/// Who owns an authentication or instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Owner {
    /// Created with the master token: lands in the org's own admin account.
    Org,
    /// An embedded end user (Tray user id).
    User(String),
}

/// An embedded end user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredUser {
    pub id: String,
    pub name: String,
    pub external_user_id: String,
    pub is_test_user: bool,
}

/// An authentication as stored. `Debug` hides credentials; `Serialize` is for the sandbox's
/// own data file only ([`crate::persist`]).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAuth {
    pub id: String,
    pub owner: Owner,
    pub name: String,
    pub service_environment_id: String,
    pub credentials: Map<String, Value>,
    pub user_data: Map<String, Value>,
    pub scopes: Vec<String>,
    /// How many times it was overwritten with PUT.
    pub updates: u32,
}

impl fmt::Debug for StoredAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredAuth")
            .field("id", &self.id)
            .field("owner", &self.owner)
            .field("name", &self.name)
            .field("service_environment_id", &self.service_environment_id)
            .field(
                "credential_keys",
                &self.credentials.keys().collect::<Vec<_>>(),
            )
            .field("user_data", &self.user_data)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// A solution instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredInstance {
    pub id: String,
    pub owner: Owner,
    pub solution_id: String,
    pub name: String,
    pub enabled: bool,
    pub created: DateTime<Utc>,
    /// `(externalId, authId)` pairs.
    pub auth_values: Vec<(String, String)>,
    /// `(externalId, value)` pairs; values as sent (`Json`, usually a JSON-encoded string).
    pub config_values: Vec<(String, Option<Value>)>,
}

#[derive(Debug, Clone)]
struct UserToken {
    user_id: String,
    minted_at: DateTime<Utc>,
    uses: u64,
    expired: bool,
}

/// A `generateAuthorizationCode` code: single use, 5 minutes (Tray's docs).
#[derive(Debug, Clone)]
struct AuthCode {
    user_id: String,
    minted_at: DateTime<Utc>,
    used: bool,
}

#[derive(Debug)]
struct Bucket {
    limit: RateLimit,
    tokens: f64,
    refilled_at: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    users: BTreeMap<String, StoredUser>,
    tokens: BTreeMap<String, UserToken>,
    auth_codes: BTreeMap<String, AuthCode>,
    auths: BTreeMap<String, StoredAuth>,
    instances: BTreeMap<String, StoredInstance>,
    /// Requests per operation (`GET /core/v1/connectors`, `graphql users`, ...).
    calls: BTreeMap<String, u64>,
    bucket: Option<Bucket>,
    rate_limited: u64,
    /// Auth id → full reads still followed by a rotation (`rotate.rs`, a test control).
    rotate_after_read: BTreeMap<String, u32>,
    rotations: u64,
}

/// What a durable sandbox keeps of Tray ([`crate::persist`]): the end users, their
/// authentications and solution instances. User tokens and dialog codes are not kept: they are
/// short-lived, and each authport command mints its own.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrayData {
    users: Vec<StoredUser>,
    auths: Vec<StoredAuth>,
    instances: Vec<StoredInstance>,
}

/// The Tray emulator's state.
pub struct TrayState {
    master_token: String,
    catalogue: Catalogue,
    user_token_max_uses: Option<u64>,
    /// See [`TrayState::set_authentications_page_size`]; `usize::MAX` is "no limit".
    authentications_page_size: std::sync::atomic::AtomicUsize,
    inner: Mutex<Inner>,
    /// Woken on every created instance, so tests wait for an event, never for time.
    instances_changed: tokio::sync::Notify,
}

impl fmt::Debug for TrayState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrayState").finish_non_exhaustive()
    }
}

/// The bearer of a request, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    Master,
    User(String),
}

impl Caller {
    fn owner(&self) -> Owner {
        match self {
            Caller::Master => Owner::Org,
            Caller::User(id) => Owner::User(id.clone()),
        }
    }

    /// The master token sees everything; a user token only its own objects.
    fn can_see(&self, owner: &Owner) -> bool {
        match self {
            Caller::Master => true,
            Caller::User(id) => *owner == Owner::User(id.clone()),
        }
    }
}

/// Why a bearer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Unauthorized,
    RateLimited,
}

impl TrayState {
    pub fn new(options: TrayOptions) -> Arc<Self> {
        let inner = Inner {
            bucket: options.rate_limit.map(new_bucket),
            ..Inner::default()
        };
        Arc::new(Self {
            master_token: options.master_token,
            catalogue: options.catalogue,
            user_token_max_uses: options.user_token_max_uses,
            authentications_page_size: std::sync::atomic::AtomicUsize::new(usize::MAX),
            inner: Mutex::new(inner),
            instances_changed: tokio::sync::Notify::new(),
        })
    }

    /// Environment variables holding the sandbox's fake credentials for this vendor.
    pub fn credentials_env(&self) -> Vec<(String, String)> {
        vec![("TRAY_MASTER_TOKEN".to_owned(), self.master_token.clone())]
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Switches the rate limit while the server runs (`None` = unlimited).
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        self.lock().bucket = limit.map(new_bucket);
    }

    /// How many auths one `viewer.authentications` answer holds at most (`None`: all of them,
    /// the default). Tray documents `pageInfo { hasNextPage }` on that connection but no paging
    /// argument and no page size (tray-api.md §5.5, §7), so a client cannot ask for the rest:
    /// this control lets a test produce the `hasNextPage: true` a client must not ignore.
    pub fn set_authentications_page_size(&self, size: Option<usize>) {
        self.authentications_page_size.store(
            size.unwrap_or(usize::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    pub(crate) fn authentications_page_size(&self) -> usize {
        self.authentications_page_size
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Requests answered with a rate-limit error so far.
    pub fn rate_limited_count(&self) -> u64 {
        self.lock().rate_limited
    }

    /// Expires every user token minted so far (the next use answers 401).
    pub fn expire_user_tokens(&self) {
        for token in self.lock().tokens.values_mut() {
            token.expired = true;
        }
    }

    /// How many user tokens `authorize` has minted.
    pub fn minted_token_count(&self) -> usize {
        self.lock().tokens.len()
    }

    /// Requests seen per operation, e.g. `GET /core/v1/connectors`, `graphql users`.
    pub fn call_count(&self, operation: &str) -> u64 {
        self.lock().calls.get(operation).copied().unwrap_or(0)
    }

    pub fn users(&self) -> Vec<StoredUser> {
        self.lock().users.values().cloned().collect()
    }

    pub fn user_by_external_id(&self, external_user_id: &str) -> Option<StoredUser> {
        self.lock()
            .users
            .values()
            .find(|u| u.external_user_id == external_user_id)
            .cloned()
    }

    pub fn auth(&self, id: &str) -> Option<StoredAuth> {
        self.lock().auths.get(id).cloned()
    }

    pub fn auth_count(&self) -> usize {
        self.lock().auths.len()
    }

    pub fn auths(&self) -> Vec<StoredAuth> {
        self.lock().auths.values().cloned().collect()
    }

    /// The authentications owned by the end user with this external id.
    pub fn auths_of_external_user(&self, external_user_id: &str) -> Vec<StoredAuth> {
        let Some(user) = self.user_by_external_id(external_user_id) else {
            return Vec::new();
        };
        let owner = Owner::User(user.id);
        self.lock()
            .auths
            .values()
            .filter(|a| a.owner == owner)
            .cloned()
            .collect()
    }

    pub fn instances(&self) -> Vec<StoredInstance> {
        self.lock().instances.values().cloned().collect()
    }

    /// Returns once at least `count` solution instances exist (an event, not a timer: tests
    /// use it to act at a known point of a client's run).
    pub async fn wait_for_instances(&self, count: usize) {
        loop {
            let changed = self.instances_changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            if self.lock().instances.len() >= count {
                return;
            }
            changed.await;
        }
    }

    /// Inserts an end user directly (test set-up of pre-existing users).
    pub fn insert_user(&self, name: &str, external_user_id: &str) -> StoredUser {
        let user = StoredUser {
            id: random_uuid(),
            name: name.to_owned(),
            external_user_id: external_user_id.to_owned(),
            is_test_user: false,
        };
        self.lock().users.insert(user.id.clone(), user.clone());
        user
    }

    /// Inserts an authentication directly (test set-up of pre-existing objects).
    pub fn insert_auth(&self, auth: StoredAuth) {
        self.lock().auths.insert(auth.id.clone(), auth);
    }

    fn count_call(&self, operation: &str) {
        *self.lock().calls.entry(operation.to_owned()).or_default() += 1;
    }

    /// Checks the bearer and the rate limit, in that order of effect: a rate-limited request
    /// is refused before anything else (it does not use up a token use either).
    pub(crate) fn admit(&self, bearer: Option<&str>) -> Result<Caller, Refusal> {
        let mut inner = self.lock();
        if let Some(bucket) = inner.bucket.as_mut()
            && !take_token(bucket)
        {
            inner.rate_limited += 1;
            return Err(Refusal::RateLimited);
        }
        let Some(bearer) = bearer else {
            return Err(Refusal::Unauthorized);
        };
        if bearer == self.master_token {
            return Ok(Caller::Master);
        }
        let max_uses = self.user_token_max_uses;
        let Some(token) = inner.tokens.get_mut(bearer) else {
            return Err(Refusal::Unauthorized);
        };
        let too_old = Utc::now() - token.minted_at > TimeDelta::hours(USER_TOKEN_LIFETIME_HOURS);
        if token.expired || too_old {
            return Err(Refusal::Unauthorized);
        }
        token.uses += 1;
        if max_uses.is_some_and(|max| token.uses > max) {
            token.expired = true;
            return Err(Refusal::Unauthorized);
        }
        Ok(Caller::User(token.user_id.clone()))
    }
}

fn new_bucket(limit: RateLimit) -> Bucket {
    Bucket {
        limit,
        tokens: f64::from(limit.burst),
        refilled_at: Instant::now(),
    }
}

fn take_token(bucket: &mut Bucket) -> bool {
    let now = Instant::now();
    let elapsed = now.duration_since(bucket.refilled_at).as_secs_f64();
    bucket.refilled_at = now;
    bucket.tokens =
        (bucket.tokens + elapsed * bucket.limit.per_second).min(f64::from(bucket.limit.burst));
    if bucket.tokens >= 1.0 {
        bucket.tokens -= 1.0;
        true
    } else {
        false
    }
}

/// A random version-4 UUID.
pub(crate) fn random_uuid() -> String {
    let bytes: [u8; 16] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

/// A random 64-hex-character user token, like Tray's examples.
pub(crate) fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bearer token of a request, if any.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

impl crate::Emulator for TrayState {
    type Options = TrayOptions;
    type Data = TrayData;

    const NAME: &'static str = "tray";
    const ENV_PREFIX: &'static str = "TRAY_";

    fn new(options: TrayOptions) -> Arc<Self> {
        TrayState::new(options)
    }

    fn router(self: Arc<Self>) -> axum::Router {
        rest::routes()
            .merge(graphql::routes())
            .merge(dialog::routes())
            .merge(rotate::routes())
            .with_state(self)
    }

    fn env(&self, base_url: &str) -> Vec<(String, String)> {
        let mut env = vec![
            ("TRAY_API_URL".to_owned(), base_url.to_owned()),
            ("TRAY_GRAPHQL_URL".to_owned(), format!("{base_url}/graphql")),
            // The auth-only dialog Tray's reconnect links open is served here too.
            ("TRAY_AUTH_DIALOG_URL".to_owned(), base_url.to_owned()),
            (
                "TRAY_EMBEDDED_ID".to_owned(),
                SANDBOX_EMBEDDED_ID.to_owned(),
            ),
        ];
        env.extend(self.credentials_env());
        env
    }

    fn canary_credentials(&self) -> Vec<String> {
        vec![self.master_token.clone()]
    }

    fn secrets_mut(options: &mut TrayOptions) -> Vec<(&'static str, &mut String)> {
        vec![("tray-master-token", &mut options.master_token)]
    }

    fn data(&self) -> Self::Data {
        let inner = self.lock();
        TrayData {
            users: inner.users.values().cloned().collect(),
            auths: inner.auths.values().cloned().collect(),
            instances: inner.instances.values().cloned().collect(),
        }
    }

    fn restore(&self, data: Self::Data) {
        let mut inner = self.lock();
        inner.users = data.users.into_iter().map(|u| (u.id.clone(), u)).collect();
        inner.auths = data.auths.into_iter().map(|a| (a.id.clone(), a)).collect();
        inner.instances = data
            .instances
            .into_iter()
            .map(|i| (i.id.clone(), i))
            .collect();
    }
}
