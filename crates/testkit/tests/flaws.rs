//! The conformance suite fails for a provider that breaks a shared guarantee, and passes for
//! one that keeps them all: a small provider on the kit, against a small loopback emulator,
//! with one flaw switched on by its config.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use authport_core::{
    AuthImporter, BuildContext, ConfigError, CredentialRecord, DiscoveryKey, Disposition,
    ImportOutcome, MappedRecord, MappingError, PriorImport, ProviderError, ProviderLimits, Removal,
    SecretJson, SecretString, TargetIdentity, TargetRef, Ungated, VerifyReport,
};
use authport_kit::{Call, DEFAULT_MAX_RESPONSE_BYTES, Effect, HttpClient, Method, Url, Vendor};
use authport_testkit::conformance::{self, Subject, WriteRequest};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::FutureExt as _;
use serde_json::{Map, Value, json};

const NAME: &str = "conformance-probe";

const VENDOR: Vendor = Vendor {
    name: NAME,
    user_agent: "authport-testkit-flaws",
    error_text: |_, _| None,
    status_override: None,
    max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
    rate_headers: None,
};

/// What the provider gets wrong, from `config.flaw`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Flaw {
    None,
    /// Verify sends its request around the run's gate.
    Unpaced,
    /// Errors quote the record's secret.
    Leaky,
    /// An import with `prior` creates a second object.
    Duplicating,
}

#[derive(Debug)]
struct Probe {
    flaw: Flaw,
    base: Url,
    key: SecretString,
    http: HttpClient,
    unpaced: HttpClient,
}

fn build(context: &BuildContext) -> Result<Box<dyn AuthImporter>, ConfigError> {
    let flaw = match context.config["flaw"].as_str() {
        None => Flaw::None,
        Some("unpaced") => Flaw::Unpaced,
        Some("leaky") => Flaw::Leaky,
        Some("duplicating") => Flaw::Duplicating,
        Some(_) => return Err(ConfigError::new("unknown flaw")),
    };
    let base = context.env.get("PROBE_URL").unwrap_or("http://127.0.0.1:9");
    let key = SecretString::from(context.env.get("PROBE_KEY").unwrap_or_default());
    let mut ungated = context.clone();
    ungated.gate = Arc::new(Ungated);
    Ok(Box::new(Probe {
        flaw,
        base: authport_kit::parse_base_url("PROBE_URL", base)?,
        http: HttpClient::new(VENDOR, context, vec![key.clone()])?,
        unpaced: HttpClient::new(VENDOR, &ungated, vec![key.clone()])?,
        key,
    }))
}

authport_core::inventory::submit! {
    authport_core::ProviderPlugin {
        name: NAME,
        description: "a provider with switchable flaws, for the suite's own tests",
        limits: ProviderLimits { rate: authport_core::VendorRate::Documented { per_second: 100.0, burst: 10 }, default_concurrency: 2 },
        build,
        capabilities: authport_core::Capabilities::NONE,
    }
}

impl Probe {
    fn url(&self, path: &str) -> Url {
        self.base.join(path).expect("a valid path")
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        effect: Effect,
        body: Option<&Value>,
        secrets: &[&str],
    ) -> Result<Option<Value>, ProviderError> {
        let client = match (self.flaw, &method) {
            (Flaw::Unpaced, &Method::GET) => &self.unpaced,
            _ => &self.http,
        };
        let mut call = Call::new(method, url, effect, "call")
            .bearer(&self.key)
            .secrets(secrets);
        if let Some(body) = body {
            call = call.json(body);
        }
        match client.send(call).await {
            Ok(answer) => Ok(serde_json::from_slice(answer.body.bytes()).ok()),
            Err(failure) if failure.is_not_found() => Ok(None),
            Err(failure) if self.flaw == Flaw::Leaky => {
                Err(quoting(failure.error, &secrets.join(",")))
            }
            Err(failure) => Err(failure.error),
        }
    }

    fn outcome(disposition: Disposition, item: &Value) -> ImportOutcome {
        let mut target = Map::new();
        target.insert("id".to_owned(), item["id"].clone());
        ImportOutcome {
            disposition,
            target: TargetRef(target),
            note: None,
        }
    }
}

/// The same error, with `extra` appended to its message (the leaky provider's mistake).
fn quoting(error: ProviderError, extra: &str) -> ProviderError {
    let more = |message: String| format!("{message} with {extra}");
    match error {
        ProviderError::Transient { message } => ProviderError::transient(more(message)),
        ProviderError::RateLimited {
            retry_after,
            message,
        } => ProviderError::rate_limited(retry_after, more(message)),
        ProviderError::OutcomeUnknown { message } => ProviderError::outcome_unknown(more(message)),
        ProviderError::Rejected { message } => ProviderError::rejected(more(message)),
        ProviderError::Fatal { message } => ProviderError::fatal(more(message)),
    }
}

fn id_of(target: &TargetRef) -> Result<&str, ProviderError> {
    target
        .get_str("id")
        .ok_or_else(|| ProviderError::rejected("no id"))
}

#[async_trait]
impl AuthImporter for Probe {
    async fn discover(&self, _keys: &[DiscoveryKey]) -> Result<(), ProviderError> {
        Ok(())
    }

    fn map(&self, record: &CredentialRecord) -> Result<MappedRecord, MappingError> {
        let body = json!({"external_id": record.id, "secrets": record.secret_values()});
        let mut target = Map::new();
        target.insert("external_id".to_owned(), json!(record.id));
        Ok(MappedRecord {
            target,
            body: SecretJson::new(body),
            notes: Vec::new(),
            payload: Default::default(),
        })
    }

    async fn import(
        &self,
        record: &CredentialRecord,
        mapped: &MappedRecord,
        prior: Option<&PriorImport>,
    ) -> Result<ImportOutcome, ProviderError> {
        let secrets = record.secret_values();
        let body = Some(mapped.body.expose());
        if let (Some(prior), false) = (prior, self.flaw == Flaw::Duplicating) {
            let url = self.url(&format!("/items/{}", id_of(&prior.target)?));
            if let Some(item) = self
                .send(Method::PUT, url, Effect::IdempotentWrite, body, &secrets)
                .await?
            {
                return Ok(Self::outcome(Disposition::Updated, &item));
            }
        }
        let item = self
            .send(
                Method::POST,
                self.url("/items"),
                Effect::Create,
                body,
                &secrets,
            )
            .await?
            .ok_or_else(|| ProviderError::outcome_unknown("no answer"))?;
        let disposition = match prior {
            Some(_) => Disposition::Updated,
            None => Disposition::Created,
        };
        Ok(Self::outcome(disposition, &item))
    }

    async fn reconcile(
        &self,
        record: &CredentialRecord,
        _mapped: &MappedRecord,
    ) -> Result<Option<ImportOutcome>, ProviderError> {
        let mut url = self.url("/items");
        url.query_pairs_mut().append_pair("external_id", &record.id);
        let found = self.send(Method::GET, url, Effect::Read, None, &[]).await?;
        Ok(found
            .and_then(|list| list.as_array().and_then(|items| items.first().cloned()))
            .map(|item| Self::outcome(Disposition::Created, &item)))
    }

    async fn verify(&self, target: &TargetRef) -> Result<VerifyReport, ProviderError> {
        let url = self.url(&format!("/items/{}", id_of(target)?));
        let found = self.send(Method::GET, url, Effect::Read, None, &[]).await?;
        Ok(VerifyReport {
            health: if found.is_some() {
                authport_core::Health::Healthy
            } else {
                authport_core::Health::Missing
            },
            status: if found.is_some() {
                "present"
            } else {
                "missing"
            }
            .to_owned(),
            detail: Map::new(),
        })
    }

    async fn remove(&self, target: &TargetRef) -> Result<Removal, ProviderError> {
        let url = self.url(&format!("/items/{}", id_of(target)?));
        match self
            .send(Method::DELETE, url, Effect::IdempotentWrite, None, &[])
            .await?
        {
            Some(_) => Ok(Removal::Removed),
            None => Ok(Removal::AlreadyGone),
        }
    }

    fn identity(&self) -> TargetIdentity {
        TargetIdentity {
            endpoints: vec![self.base.to_string()],
            account: None,
            credential: self.key.clone(),
        }
    }
}

/// The emulator: items by id, each with the record id it was written for.
#[derive(Debug, Default)]
struct Items {
    next: AtomicU64,
    stored: Mutex<BTreeMap<String, String>>,
}

impl Items {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.stored.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn item(id: &str, external_id: &str) -> Value {
    json!({"id": id, "external_id": external_id})
}

fn emulator(items: Arc<Items>) -> Router {
    async fn create(State(items): State<Arc<Items>>, Json(body): Json<Value>) -> Response {
        let id = format!("item-{}", items.next.fetch_add(1, Ordering::SeqCst));
        let external_id = body["external_id"].as_str().unwrap_or_default().to_owned();
        let answer = item(&id, &external_id);
        items.lock().insert(id, external_id);
        (StatusCode::CREATED, Json(answer)).into_response()
    }
    async fn find(
        State(items): State<Arc<Items>>,
        Query(query): Query<BTreeMap<String, String>>,
    ) -> Response {
        let wanted = query.get("external_id").cloned().unwrap_or_default();
        let found: Vec<Value> = items
            .lock()
            .iter()
            .filter(|(_, external_id)| **external_id == wanted)
            .map(|(id, external_id)| item(id, external_id))
            .collect();
        Json(json!(found)).into_response()
    }
    async fn read(State(items): State<Arc<Items>>, Path(id): Path<String>) -> Response {
        match items.lock().get(&id) {
            Some(external_id) => Json(item(&id, external_id)).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        }
    }
    async fn update(
        State(items): State<Arc<Items>>,
        Path(id): Path<String>,
        Json(_body): Json<Value>,
    ) -> Response {
        match items.lock().get(&id) {
            Some(external_id) => Json(item(&id, external_id)).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        }
    }
    async fn remove(State(items): State<Arc<Items>>, Path(id): Path<String>) -> Response {
        match items.lock().remove(&id) {
            Some(_) => Json(json!({})).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        }
    }
    Router::new()
        .route("/items", get(find).post(create))
        .route("/items/{id}", get(read).put(update).delete(remove))
        .with_state(items)
}

fn fixture(id: &str, secret: &str) -> Value {
    json!({"id": id, "owner": {"id": "o"}, "service": "greenhouse",
           "auth": {"type": "api_key", "api_key": secret}})
}

/// Runs the whole suite against the probe with `flaw`; the failure message, if it failed.
async fn suite(flaw: Option<&str>) -> Option<String> {
    let items = Arc::new(Items::default());
    let served = authport_testkit::serve(emulator(items.clone()), |url| {
        vec![
            ("PROBE_URL".to_owned(), url.to_owned()),
            (
                "PROBE_KEY".to_owned(),
                authport_testkit::canary("probe-key"),
            ),
        ]
    })
    .await;
    let subject = Subject::new(NAME, served.target(), fixture)
        .config(json!({"flaw": flaw}))
        .write(WriteRequest::new("POST", "/items"))
        .objects(move || items.lock().len());
    let result = AssertUnwindSafe(conformance::run_all(&subject))
        .catch_unwind()
        .await;
    result.err().map(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_keeps_the_guarantees_passes() {
    assert_eq!(suite(None).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_broken_guarantee_fails_the_suite() {
    let check = |flaw: &'static str, expect: &'static str| async move {
        let failure = suite(Some(flaw)).await;
        let message = failure.unwrap_or_else(|| panic!("the suite passed a {flaw} provider"));
        assert!(message.contains(expect), "{flaw}: {message}");
    };
    check("unpaced", "the gate gave").await;
    check("leaky", "leaks a secret").await;
    check(
        "duplicating",
        "update_on_changed_content: after the update: objects",
    )
    .await;
}
