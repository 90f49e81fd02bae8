//! The conformance suite: the guarantees every provider keeps, checked the same way for each,
//! in the manner of `object_store`'s shared integration tests. A provider crate runs it in a
//! few lines (`tests/conformance.rs`):
//!
//! ```text
//! use authport_testkit::conformance::{self, Subject, WriteRequest};
//!
//! // One valid record per id, with every secret field set to `secret`. Different ids must map
//! // to different objects at the target (e.g. derive the owner from the id).
//! fn fixture(id: &str, secret: &str) -> serde_json::Value {
//!     serde_json::json!({"id": id, "owner": {"id": id.replace('/', "-")}, "service": "greenhouse",
//!                        "auth": {"type": "api_key", "api_key": secret}})
//! }
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn tray_keeps_the_shared_guarantees() {
//!     let sandbox = authport_testkit::sandbox().await;
//!     let tray = sandbox.tray.clone();
//!     let subject = Subject::new("tray", sandbox.target(), fixture)
//!         // The request that creates a record's object: the suite drops its answer.
//!         .write(WriteRequest::new("POST", "/core/v1/authentications"))
//!         // How many of this provider's objects the target holds now.
//!         .objects(move || tray.auth_count());
//!     // Optional: a record that maps but the target refuses, to check its error is scrubbed.
//!     // .refused(refused_fixture)
//!     conformance::run_all(&subject).await;
//! }
//! ```
//!
//! The provider's crate must be linked into the test (naming it in `use authport_x as _;` is
//! enough) so its plugin is registered. Each check uses record ids of its own, resets the
//! server's faults when it starts, and compares object counts before and after, so the checks
//! share one server but must run one at a time ([`run_all`] does).
//!
//! What is checked:
//! - [`import_once`]: an import creates exactly one object, which verifies healthy;
//! - [`update_on_changed_content`]: with `prior`, changed content is `Updated`, no second object;
//! - [`unchanged_on_rerun`]: through the engine with a state file: a re-run sends no write and
//!   reports `unchanged`, a changed record `updated`; rollback removes what the runs created;
//! - [`reconcile_adopts_after_lost_answer`]: a write applied but answered by a dropped
//!   connection is `OutcomeUnknown`; reconcile (then import, if it found nothing) leaves exactly
//!   one object, reported `Created`; [`lost_answer_through_the_engine`]: the engine does the
//!   same unaided, every record `imported` once;
//! - [`verify_reads_back`]: healthy after import, unhealthy (not an error) once removed;
//! - [`rollback_removes_only_what_was_created`]: `remove` takes one object and no other, and is
//!   `AlreadyGone` the second time; the engine's rollback leaves objects it did not create;
//! - [`every_error_scrubbed`]: canary secrets in records and credentials never show in an
//!   error, a `Debug`, a target ref, a note, a plan, a report or the state file, whatever
//!   failure the server injects, nor in the target's own refusal of a [`Subject::refused`]
//!   record;
//! - [`every_request_paced`]: every request the server sees was preceded by a gate permit;
//! - [`export_writes_valid_records`] (when the plugin declares `export`): imported records
//!   come back out as valid v1 records holding their secrets, a failed read is retried, and no
//!   `Debug`, failure or error holds a secret;
//! - [`webhooks_verify_and_parse`] (when the plugin declares `webhooks`): a delivery signed as
//!   the vendor signs it ([`Subject::webhook`]) parses to a `HealthEvent`; a tampered body, a
//!   wrong and a missing signature are refused with 401; nothing printed holds a secret.
//!
//! Every check also asserts pacing for the requests it caused.

mod capabilities;
mod direct;
mod engine;

use std::fmt;
use std::sync::Arc;

use authport_core::{
    AuthImporter, CredentialRecord, DiscoveryKey, InMemoryMemo, MappedRecord, Memo, ProviderPlugin,
    RequestGate, find_provider,
};
use authport_sandbox::faults::{FaultKind, FaultPlan, FaultRule, Trigger};
use serde_json::Value;

pub use capabilities::{
    Delivery, SignedDelivery, export_writes_valid_records, webhooks_verify_and_parse,
};
pub use direct::{
    every_error_scrubbed, every_request_paced, import_once, reconcile_adopts_after_lost_answer,
    rollback_removes_only_what_was_created, update_on_changed_content, verify_reads_back,
};
pub use engine::{lost_answer_through_the_engine, unchanged_on_rerun};

use crate::canary::assert_no_canary;
use crate::context::context;
use crate::gate::CountingGate;
use crate::server::Target;

/// Builds a valid record with this id whose every secret field holds `secret` (or values made
/// from it). Records with different ids must map to different objects at the target.
pub type Fixture = fn(id: &str, secret: &str) -> Value;

/// Counts the provider's objects at the target (authentications, connections...).
type ObjectCount = Box<dyn Fn() -> usize + Send + Sync>;

/// The request that creates (or upserts) a record's object at the target, as the server sees
/// it. The suite injects faults on it, e.g. drops its answer after the write is applied.
#[derive(Debug, Clone)]
pub struct WriteRequest {
    method: &'static str,
    path_prefix: &'static str,
    body_contains: Option<&'static str>,
}

impl WriteRequest {
    pub const fn new(method: &'static str, path_prefix: &'static str) -> Self {
        Self {
            method,
            path_prefix,
            body_contains: None,
        }
    }

    /// Only requests whose body contains `text` (e.g. a GraphQL mutation's name).
    pub const fn body_contains(mut self, text: &'static str) -> Self {
        self.body_contains = Some(text);
        self
    }

    fn rule(&self, kind: FaultKind, trigger: Trigger) -> FaultRule {
        let rule = FaultRule::new(Some(self.method), self.path_prefix, kind, trigger);
        match self.body_contains {
            Some(text) => rule.body_contains(text),
            None => rule,
        }
    }
}

/// One provider under test: its plugin, its server, fixtures valid for it, and how to observe
/// its writes at the target.
pub struct Subject {
    plugin: &'static ProviderPlugin,
    config: Value,
    target: Target,
    fixture: Fixture,
    write: Option<WriteRequest>,
    objects: Option<ObjectCount>,
    refused: Option<Fixture>,
    webhook: Option<SignedDelivery>,
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subject")
            .field("provider", &self.plugin.name)
            .field("write", &self.write)
            .finish_non_exhaustive()
    }
}

impl Subject {
    /// `provider` is the registered name; `target` the server it talks to (`sandbox.target()`
    /// or `served.target()`).
    #[track_caller]
    pub fn new(provider: &str, target: Target, fixture: Fixture) -> Self {
        let plugin = find_provider(provider).unwrap_or_else(|unknown| panic!("{unknown}"));
        Self {
            plugin,
            config: Value::Null,
            target,
            fixture,
            write: None,
            objects: None,
            refused: None,
            webhook: None,
        }
    }

    /// The provider's config section (`Value::Null` by default).
    pub fn config(mut self, config: Value) -> Self {
        self.config = config;
        self
    }

    /// The request that writes a record's object (required).
    pub fn write(mut self, write: WriteRequest) -> Self {
        self.write = Some(write);
        self
    }

    /// How many of the provider's objects the target holds now (required).
    pub fn objects(mut self, count: impl Fn() -> usize + Send + Sync + 'static) -> Self {
        self.objects = Some(Box::new(count));
        self
    }

    /// A record that maps but the target refuses (its validation): [`every_error_scrubbed`]
    /// then also checks that the vendor's own error text, which may quote what was sent,
    /// reaches the engine as `Rejected` and without the secret.
    pub fn refused(mut self, fixture: Fixture) -> Self {
        self.refused = Some(fixture);
        self
    }

    /// A webhook delivery signed as the vendor signs it, about a connection's health, built
    /// from the subject's environment (where the signing secret is). Required when the
    /// provider declares webhooks: [`webhooks_verify_and_parse`] checks it and forgeries of it.
    pub fn webhook(
        mut self,
        delivery: impl Fn(&[(String, String)]) -> Delivery + Send + Sync + 'static,
    ) -> Self {
        self.webhook = Some(Box::new(delivery));
        self
    }

    pub fn name(&self) -> &'static str {
        self.plugin.name
    }

    fn object_count(&self) -> usize {
        let count = self
            .objects
            .as_ref()
            .expect("Subject::objects is required: how many objects the target holds");
        count()
    }

    fn write_rule(&self, kind: FaultKind, trigger: Trigger) -> FaultRule {
        self.write
            .as_ref()
            .expect("Subject::write is required: the request that writes a record's object")
            .rule(kind, trigger)
    }

    fn set_faults(&self, rules: Vec<FaultRule>) {
        self.target.faults.set(FaultPlan {
            seed: 7,
            rules,
            latency: None,
        });
    }

    fn clear_faults(&self) {
        self.target.faults.set(FaultPlan::default());
    }

    /// A fresh importer, as a new run would build it.
    fn importer(&self, gate: Arc<dyn RequestGate>, memo: Arc<dyn Memo>) -> Arc<dyn AuthImporter> {
        let built = context()
            .config(self.config.clone())
            .env(self.target.env.clone())
            .memo(memo)
            .gate(gate)
            .build();
        let importer = (self.plugin.build)(&built)
            .unwrap_or_else(|e| panic!("{} does not build: {e}", self.name()));
        Arc::from(importer)
    }

    /// The fixture as JSON, checked to carry its secret (or the leak checks would be vacuous).
    fn fixture_json(&self, id: &str, secret: &str) -> Value {
        self.checked(self.fixture, id, secret)
    }

    fn checked(&self, fixture: Fixture, id: &str, secret: &str) -> Value {
        let value = fixture(id, secret);
        assert!(
            holds(&value, secret),
            "the {} fixture does not hold the secret it was given",
            self.name()
        );
        value
    }

    /// The fixture as a validated record, at the real time (the engine reads it then too).
    fn record(&self, id: &str, secret: &str) -> CredentialRecord {
        crate::files::record_at(&self.fixture_json(id, secret), chrono::Utc::now())
    }
}

/// Whether some string in `value` contains `secret`.
fn holds(value: &Value, secret: &str) -> bool {
    match value {
        Value::String(text) => text.contains(secret),
        Value::Array(items) => items.iter().any(|item| holds(item, secret)),
        Value::Object(fields) => fields.values().any(|field| holds(field, secret)),
        _ => false,
    }
}

/// Runs every check, in order, on one server.
pub async fn run_all(subject: &Subject) {
    import_once(subject).await;
    update_on_changed_content(subject).await;
    unchanged_on_rerun(subject).await;
    reconcile_adopts_after_lost_answer(subject).await;
    lost_answer_through_the_engine(subject).await;
    verify_reads_back(subject).await;
    rollback_removes_only_what_was_created(subject).await;
    every_error_scrubbed(subject).await;
    every_request_paced(subject).await;
    export_writes_valid_records(subject).await;
    webhooks_verify_and_parse(subject);
    subject.clear_faults();
}

/// One check's view of the provider: importers built with a counting gate, and the server's
/// request count when the check started, so the check can prove every request was paced.
struct Probe<'a> {
    subject: &'a Subject,
    check: &'static str,
    gate: Arc<CountingGate>,
    requests_before: u64,
}

impl<'a> Probe<'a> {
    fn start(subject: &'a Subject, check: &'static str) -> Self {
        subject.clear_faults();
        Self::wrapping(subject, check, None)
    }

    /// A probe whose gate passes each permit on to `inner` (the engine's run gate).
    fn wrapping(
        subject: &'a Subject,
        check: &'static str,
        inner: Option<Arc<dyn RequestGate>>,
    ) -> Self {
        Self {
            subject,
            check,
            gate: match inner {
                Some(inner) => CountingGate::wrapping(inner),
                None => CountingGate::new(),
            },
            requests_before: subject.target.requests_seen(),
        }
    }

    fn importer(&self) -> Arc<dyn AuthImporter> {
        self.subject
            .importer(self.gate.clone(), Arc::new(InMemoryMemo::default()))
    }

    fn what(&self, step: &str) -> String {
        format!("{} {}: {step}", self.subject.name(), self.check)
    }

    /// Every request the server saw since the probe started went through the gate.
    #[track_caller]
    fn assert_paced(&self) {
        let seen = self.subject.target.requests_seen() - self.requests_before;
        let permits = self.gate.count();
        assert!(
            seen > 0,
            "{}: the check sent no request",
            self.what("pacing")
        );
        assert_eq!(
            permits,
            seen,
            "{}: the gate gave {permits} permits but the server saw {seen} requests",
            self.what("pacing")
        );
    }

    #[track_caller]
    fn assert_objects(&self, expected: usize, step: &str) {
        assert_eq!(
            self.subject.object_count(),
            expected,
            "{}: objects at the target",
            self.what(step)
        );
    }
}

/// Discovers what `records` need, as the engine does before any write.
async fn discover(probe: &Probe<'_>, importer: &dyn AuthImporter, records: &[&CredentialRecord]) {
    let mut keys: Vec<DiscoveryKey> = Vec::new();
    for record in records {
        let key = DiscoveryKey::for_record(record, probe.subject.name());
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    if let Err(error) = importer.discover(&keys).await {
        assert_no_canary(&probe.what("discover error"), &format!("{error} {error:?}"));
        panic!("{}: {error}", probe.what("discover"));
    }
}

/// Maps `record`, checking that nothing printable about the mapping holds a secret.
fn map(probe: &Probe<'_>, importer: &dyn AuthImporter, record: &CredentialRecord) -> MappedRecord {
    let mapped = importer.map(record).unwrap_or_else(|error| {
        assert_no_canary(&probe.what("mapping error"), &format!("{error} {error:?}"));
        panic!("{}: {error}", probe.what("map"))
    });
    assert_no_canary(
        &probe.what("Debug of the mapped record"),
        &format!("{mapped:?}"),
    );
    assert_no_canary(
        &probe.what("the plan (target, redacted body, notes)"),
        &format!(
            "{} {} {:?}",
            Value::Object(mapped.target.clone()),
            mapped.redacted_body(record),
            mapped.notes
        ),
    );
    mapped
}
