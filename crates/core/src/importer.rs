//! The provider contract: the [`AuthImporter`] trait and the values that cross it.
//!
//! The engine drives every provider through the same five steps:
//!
//! 1. [`AuthImporter::discover`] once per run, with the distinct services the input needs
//!    (read-only calls; the provider caches the target's catalogue inside itself);
//! 2. [`AuthImporter::map`] per record: pure, no IO, validated against the discovered catalogue;
//! 3. [`AuthImporter::import`] per record (create, or update when the state knows a previous
//!    import of this record);
//! 4. [`AuthImporter::reconcile`] when an earlier write's outcome is unknown (lost response,
//!    crash between intent and outcome): finds out whether the write happened;
//! 5. [`AuthImporter::verify`] / [`AuthImporter::remove`] from the state file.
//!
//! Providers classify failures into [`ProviderError`]; the engine alone decides whether to retry,
//! wait, reconcile, give up on the record or stop the run.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{MappingError, ProviderError};
use crate::record::CredentialRecord;
use crate::secret::{SecretJson, SecretString, redact_json};

/// What the engine tells a provider to discover: one entry per distinct
/// (`service`, `targets.<provider>`) pair found in the input.
/// Compare keys with `==` (or by their JSON form) to deduplicate them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiscoveryKey {
    pub service: String,
    /// The record's `targets.<provider>` object, if any (non-secret overrides).
    pub target: Option<Value>,
}

impl DiscoveryKey {
    pub fn for_record(record: &CredentialRecord, provider: &str) -> Self {
        Self {
            service: record.service.clone(),
            target: record.targets.get(provider).cloned(),
        }
    }
}

/// A record mapped to the provider's request, ready to send. Built by [`AuthImporter::map`].
///
/// `target` is safe to print; `body` is not (it holds the secrets and is only exposed where the
/// request is built): a plan prints [`MappedRecord::redacted_body`] instead. `payload` is the provider's own typed value for
/// `import`, `reconcile` and `predict_skip`, so a provider never parses its printable `target`
/// back.
#[derive(Debug, Clone)]
pub struct MappedRecord {
    /// Where the record goes, as non-secret ids and names (e.g. consumer, unified API, service;
    /// or Tray's service environment and auth name). Shown in the plan and report, and
    /// fingerprinted by the engine; the provider reads its typed `payload` instead.
    pub target: Map<String, Value>,
    /// The request body as it will be sent, with one allowance: a value that depends on the
    /// moment of sending is stated here in a form that does not (e.g. an absolute expiry where
    /// the vendor wants issue time + lifetime) and is rendered, when sent, by one named pure
    /// function of the provider that its plan notes name and its docs describe. So the plan
    /// shows what is sent and a re-run on another day compares the same body. The engine
    /// fingerprints it to tell `unchanged` from `updated` on re-runs.
    pub body: SecretJson,
    /// Things the operator should know (e.g. "expiry omitted: Vault will queue a refresh").
    pub notes: Vec<String>,
    /// The provider's typed form of where the record goes, put in by `map` and read back with
    /// [`MappedRecord::payload`]. Never printed, fingerprinted or stored.
    pub payload: Payload,
}

impl MappedRecord {
    /// The provider's typed payload, if `map` put one of type `T` in.
    pub fn payload<T: Any>(&self) -> Option<&T> {
        self.payload.get()
    }

    /// The body with every string holding one of `record`'s secrets replaced by `"[redacted]"`:
    /// the printable plan of `--dry-run`. Computed on demand, not by `map`, because only a plan
    /// reads it and it is a second JSON tree per record. Redacting by value here, for every
    /// provider, means a new body field can never slip a secret into a plan.
    pub fn redacted_body(&self, record: &CredentialRecord) -> Value {
        redact_json(self.body.expose(), &record.secret_values())
    }
}

/// A provider's typed value carried by a [`MappedRecord`] from `map` to `import`. Cheap to
/// clone (shared). Its `Debug` says only whether one is present, so nothing inside it can reach
/// a log or a plan; even so, put in ids and names only, never a secret-bearing type (the body
/// already carries the secrets).
#[derive(Clone, Default)]
pub struct Payload(Option<Arc<dyn Any + Send + Sync>>);

impl Payload {
    pub fn new<T: Any + Send + Sync>(value: T) -> Self {
        Self(Some(Arc::new(value)))
    }

    /// No payload (a provider that needs none, or a test's hand-built record).
    pub fn none() -> Self {
        Self(None)
    }

    /// The value, if one of type `T` is present.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.as_deref().and_then(|value| value.downcast_ref())
    }

    pub fn is_present(&self) -> bool {
        self.0.is_some()
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_present() {
            "Payload(present)"
        } else {
            "Payload(none)"
        })
    }
}

/// Non-secret handle of what an import created or updated at the target, as the provider needs
/// it later for update, verify and rollback (e.g. `{"authentication_id": "...", "user_id": "..."}`).
/// Stored in the state file and shown in the report: it must never hold a secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TargetRef(pub Map<String, Value>);

impl TargetRef {
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }
}

/// How an import ended at the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// The import created a new object at the target (rollback may remove it).
    Created,
    /// The import overwrote an object (ours from an earlier run, or a pre-existing one the
    /// operator allowed us to overwrite).
    Updated,
    /// The import deliberately did nothing (e.g. a pre-existing connection we must not
    /// overwrite). `ImportOutcome::note` says why.
    Skipped,
}

/// The result of [`AuthImporter::import`] or a successful [`AuthImporter::reconcile`].
#[derive(Debug, Clone, PartialEq)]
pub struct ImportOutcome {
    pub disposition: Disposition,
    pub target: TargetRef,
    /// A short, non-secret remark for the report (e.g. the connection's state after import).
    pub note: Option<String>,
}

/// What the state knows of an earlier import of the same record, handed to
/// [`AuthImporter::import`] so the provider updates instead of creating a second object.
#[derive(Debug, Clone, PartialEq)]
pub struct PriorImport {
    pub target: TargetRef,
}

/// The live status of one imported object, from [`AuthImporter::verify`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    /// What the provider's words mean for the operator: each provider maps its vendor's words
    /// here (the engine never reads `status` or `detail` to decide anything).
    pub health: crate::health::Health,
    /// The vendor's own word, for display: `present`, `missing`, `callable`, `pending_refresh`,
    /// `auth_error`, `changed`, ...
    pub status: String,
    /// Non-secret details (state, health, name, ...), for display.
    pub detail: Map<String, Value>,
}

impl VerifyReport {
    /// The object exists and holds a token the target can use ([`Health::is_usable`]).
    ///
    /// [`Health::is_usable`]: crate::health::Health::is_usable
    pub fn healthy(&self) -> bool {
        self.health.is_usable()
    }
}

/// The result of [`AuthImporter::remove`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Removal {
    Removed,
    /// It was not there any more (404): nothing to do.
    AlreadyGone,
}

/// Provider-specific defaults the engine uses when the operator gives none. Declared on the
/// [`crate::ProviderPlugin`], so the run's gate is configured once, before the provider is built.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProviderLimits {
    /// What the vendor says about its rate: the engine's default pacing.
    pub rate: VendorRate,
    /// Records in flight at once by default.
    pub default_concurrency: usize,
}

/// What a vendor publishes about its request rate. Two different facts, so two variants: a
/// documented limit is the pace to keep; without one, the engine finds the pace (`--rate auto`)
/// and never goes above the ceiling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VendorRate {
    /// The vendor's published limit: requests per second and the burst it tolerates above it.
    Documented { per_second: f64, burst: u32 },
    /// No published limit: the default is `--rate auto`, never above `ceiling` requests per
    /// second.
    Undocumented { ceiling: f64 },
}

impl VendorRate {
    /// The most requests per second the engine sends by default: the documented rate, or the
    /// ceiling of the adaptive rate.
    pub fn ceiling(self) -> f64 {
        match self {
            Self::Documented { per_second, .. } => per_second,
            Self::Undocumented { ceiling } => ceiling,
        }
    }

    /// The documented burst, if the vendor publishes one.
    pub fn burst(self) -> Option<u32> {
        match self {
            Self::Documented { burst, .. } => Some(burst),
            Self::Undocumented { .. } => None,
        }
    }
}

/// A provider's importer. Object-safe: the runner holds a `Box<dyn AuthImporter>`.
#[async_trait]
pub trait AuthImporter: std::any::Any + Send + Sync + fmt::Debug {
    /// Read-only calls that learn what the target offers for these services (connectors,
    /// environments, form fields...). Called once per run before any write; the provider keeps
    /// the catalogue inside itself. An error here is fatal for the run (nothing was written).
    async fn discover(&self, keys: &[DiscoveryKey]) -> Result<(), ProviderError>;

    /// Pure mapping of one record to the provider's request, validated against the catalogue
    /// that `discover` learned. No IO.
    fn map(&self, record: &CredentialRecord) -> Result<MappedRecord, MappingError>;

    /// Writes one record to the target: creates it, or updates `prior` when the state knows an
    /// earlier import of this record. Providers must only return
    /// [`ProviderError::OutcomeUnknown`] when the write may have been applied.
    async fn import(
        &self,
        record: &CredentialRecord,
        mapped: &MappedRecord,
        prior: Option<&PriorImport>,
    ) -> Result<ImportOutcome, ProviderError>;

    /// Finds out whether an earlier write of this record reached the target (after
    /// `OutcomeUnknown`, or after a crash between intent and outcome). `Ok(Some)` adopts what
    /// is there (no second write); `Ok(None)` means it is safe to import again.
    async fn reconcile(
        &self,
        record: &CredentialRecord,
        mapped: &MappedRecord,
    ) -> Result<Option<ImportOutcome>, ProviderError>;

    /// Reads back one imported object. Must never print or return a secret.
    async fn verify(&self, target: &TargetRef) -> Result<VerifyReport, ProviderError>;

    /// Removes one object this tool created (rollback). A missing object is `AlreadyGone`.
    async fn remove(&self, target: &TargetRef) -> Result<Removal, ProviderError>;

    /// Which target this importer writes to (base URLs, account, credential), so a state file
    /// is bound to one target and fingerprints are keyed by the credential. No IO.
    fn identity(&self) -> TargetIdentity;

    /// Called once after the last record of an import run (not on `--dry-run`, nor after an
    /// interrupt), for work a provider deferred so it would not hold a record up (e.g. Tray's
    /// wait before enabling a solution instance). An error stops the run with its message.
    async fn finish(&self) -> Result<(), ProviderError> {
        Ok(())
    }

    /// For `--dry-run`: the read-only half of [`AuthImporter::import`] (the same pre-existing
    /// checks, no write). `Ok(Some(note))` predicts that the import would skip the record as
    /// `pre_existing` with that note; `Ok(None)` that it would write. The default predicts a
    /// write: a provider without a pre-existing check.
    async fn predict_skip(
        &self,
        _record: &CredentialRecord,
        _mapped: &MappedRecord,
        _prior: Option<&PriorImport>,
    ) -> Result<Option<String>, ProviderError> {
        Ok(None)
    }
}

/// The target an importer writes to. The engine records `endpoints` and `account` (or a keyed
/// hash of the credential) in the state file, and keys fingerprints with `credential`.
#[derive(Clone)]
pub struct TargetIdentity {
    /// The base URLs the provider calls (non-secret: no userinfo, no query).
    pub endpoints: Vec<String>,
    /// A non-secret account name when the vendor has one (e.g. Apideck's app id).
    pub account: Option<String>,
    /// The vendor credential the run uses (Tray's master token, Apideck's API key).
    pub credential: SecretString,
}

impl fmt::Debug for TargetIdentity {
    // An allow-list: the credential is never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetIdentity")
            .field("endpoints", &self.endpoints)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// Paces the HTTP requests a provider sends. The engine hands every provider one at build time
/// and sets its rate when a run starts, so the vendor's documented limit counts every request a
/// record needs (discovery, user look-ups, token mints, writes), not only the engine's calls.
#[async_trait]
pub trait RequestGate: Send + Sync + fmt::Debug {
    /// Waits until one more request may be sent. Call it right before each request.
    async fn ready(&self);

    /// The target said its budget is spent for `wait` (e.g. `X-RateLimit-Remaining: 0` with a
    /// reset time): no request should be sent before then, by any sender. The default does
    /// nothing (a gate that paces nothing).
    fn hold_for(&self, wait: Duration) {
        let _ = wait;
    }

    /// The request the last `ready()` let through has ended (answered or not); `window`: what
    /// the vendor's rate headers said of its current window, when it sends them. Lets a gate
    /// count requests in flight and pace on the window's budget (`--budget-share`). The
    /// default does nothing.
    fn answered(&self, window: Option<crate::transport::RateWindow>) {
        let _ = window;
    }
}

/// A gate that never waits: for tests and tools that pace nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ungated;

#[async_trait]
impl RequestGate for Ungated {
    async fn ready(&self) {}
}

/// Small, durable key-value notes a provider keeps across runs in the state file (e.g. Tray's
/// owner id -> Tray user id), so a re-run does not repeat rate-limit-prone look-ups.
/// Values must never be secrets.
pub trait Memo: Send + Sync + fmt::Debug {
    fn get(&self, namespace: &str, key: &str) -> Option<String>;
    fn put(&self, namespace: &str, key: &str, value: &str);
}

/// A [`Memo`] that lives for one process: used by runs without `--state` and by `--dry-run`.
#[derive(Debug, Default)]
pub struct InMemoryMemo {
    entries: std::sync::Mutex<BTreeMap<(String, String), String>>,
}

impl Memo for InMemoryMemo {
    fn get(&self, namespace: &str, key: &str) -> Option<String> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(&(namespace.to_owned(), key.to_owned()))
            .cloned()
    }

    fn put(&self, namespace: &str, key: &str, value: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.insert((namespace.to_owned(), key.to_owned()), value.to_owned());
    }
}

/// A snapshot of the process environment. Its `Debug` shows variable names only, because the
/// environment holds the vendor credentials.
#[derive(Clone, Default)]
pub struct EnvSnapshot(BTreeMap<String, String>);

impl EnvSnapshot {
    pub fn from_process() -> Self {
        Self(std::env::vars().collect())
    }

    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// A non-empty value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }
}

impl fmt::Debug for EnvSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// What a provider is built from. Its `Debug` is allow-list: how many settings the config
/// section has, never its keys or values (which hold the provider's secrets).
#[derive(Clone)]
pub struct BuildContext {
    /// The provider's section of the config file (`[tray]`, `[apideck]`...), as JSON;
    /// `Value::Null` when the file has none. May hold secrets: never print it.
    pub config: Value,
    /// The process environment (which overrides the config file).
    pub env: EnvSnapshot,
    /// Durable notes across runs.
    pub memo: Arc<dyn Memo>,
    /// Call `ready()` before every HTTP request (see [`RequestGate`]).
    pub gate: Arc<dyn RequestGate>,
    /// Per-request timeout the operator chose.
    pub request_timeout: Duration,
}

impl fmt::Debug for BuildContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A count, not the keys: a secret pasted as a key name must not be printed either.
        let settings = self.config.as_object().map_or(0, serde_json::Map::len);
        f.debug_struct("BuildContext")
            .field("config_settings", &settings)
            .field("env", &self.env)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

/// Configuration problems found while building a provider (exit code 2: nothing was sent).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    pub message: String,
}

impl ConfigError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;
    use crate::record::from_json_located;

    #[test]
    fn the_redacted_body_hides_every_secret_and_keeps_the_rest() {
        let record = from_json_located(
            &json!({"id": "r-1", "owner": {"id": "o"}, "service": "s",
                    "auth": {"type": "basic", "username": "CANARY-user", "password": "CANARY-pass"}}),
            Utc::now(),
        )
        .unwrap();
        let mapped = MappedRecord {
            target: Map::new(),
            body: SecretJson::new(json!({
                "id": "r-1",
                "credentials": {"username": "CANARY-user", "header": "Basic CANARY-pass"},
                "list": ["CANARY-pass", 3],
            })),
            notes: Vec::new(),
            payload: Payload::none(),
        };
        assert_eq!(
            mapped.redacted_body(&record),
            json!({
                "id": "r-1",
                "credentials": {"username": "[redacted]", "header": "[redacted]"},
                "list": ["[redacted]", 3],
            })
        );
    }
}
