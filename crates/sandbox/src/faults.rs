//! Switchable, seeded fault injection for both vendors.
//!
//! A [`FaultPlan`] holds rules; each request is matched against them in order and the first rule
//! that matches and triggers decides the fault. "After apply" faults run the real handler first
//! (so the write happens) and then hide the outcome from the client: that is the ambiguous
//! failure that authport must reconcile.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The largest request body the injector buffers to match `body_contains`.
const MAX_MATCHED_BODY: usize = 4 * 1024 * 1024;

/// What to do to a request.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// Answer 500 without running the handler: nothing was applied.
    ErrorBeforeApply,
    /// Run the handler (the write is applied), then answer 500.
    ErrorAfterApply,
    /// Abort the connection without running the handler.
    DropBeforeApply,
    /// Run the handler, then abort the connection instead of answering.
    DropAfterApply,
    /// Answer 429, with `Retry-After` when given; nothing was applied.
    TooManyRequests { retry_after_secs: Option<u64> },
}

/// When a rule fires.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// On these 1-based occurrences among the requests that match the rule.
    Nth(Vec<u64>),
    /// On each matching request with this probability (from the plan's seeded generator).
    Probability(f64),
}

/// One rule: which requests it matches, and what it does to them.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// `Some("POST")` to match one method only.
    pub method: Option<String>,
    /// The request path must start with this (`""` matches every path).
    pub path_prefix: String,
    /// The request body must contain this text (e.g. a GraphQL operation name).
    pub body_contains: Option<String>,
    pub kind: FaultKind,
    pub trigger: Trigger,
}

impl FaultRule {
    pub fn new(method: Option<&str>, path_prefix: &str, kind: FaultKind, trigger: Trigger) -> Self {
        Self {
            method: method.map(str::to_owned),
            path_prefix: path_prefix.to_owned(),
            body_contains: None,
            kind,
            trigger,
        }
    }

    pub fn body_contains(mut self, text: &str) -> Self {
        self.body_contains = Some(text.to_owned());
        self
    }
}

/// Which faults to inject, and with which seed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    pub seed: u64,
    pub rules: Vec<FaultRule>,
    /// Added latency, uniformly drawn between the two bounds, on every request.
    pub latency: Option<(Duration, Duration)>,
}

/// Counts of what was injected, for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InjectedCounts {
    pub error_before: u64,
    pub error_after: u64,
    pub drop_before: u64,
    pub drop_after: u64,
    pub too_many_requests: u64,
}

#[derive(Debug)]
struct Live {
    plan: FaultPlan,
    rng: SmallRng,
    /// Matching requests seen so far, per rule.
    seen: Vec<u64>,
    injected: InjectedCounts,
}

/// The live fault injector.
#[derive(Debug)]
pub struct Faults {
    live: Mutex<Live>,
    requests: AtomicU64,
}

impl Faults {
    pub fn new(plan: FaultPlan) -> Arc<Self> {
        Arc::new(Self {
            live: Mutex::new(Live::new(plan)),
            requests: AtomicU64::new(0),
        })
    }

    /// Replaces the plan (and resets its counters and generator) while the server runs.
    pub fn set(&self, plan: FaultPlan) {
        *self.lock() = Live::new(plan);
    }

    /// What was injected since the plan was set.
    pub fn injected(&self) -> InjectedCounts {
        self.lock().injected
    }

    /// Every request the sandbox received, faulted or not.
    pub fn requests_seen(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn needs_body(&self) -> bool {
        self.lock().plan.rules.iter().any(|r| r.body_contains.is_some())
    }

    /// Decides the fault for one request and the latency to add.
    fn decide(&self, method: &str, path: &str, body: Option<&[u8]>) -> (Option<FaultKind>, Duration) {
        let mut live = self.lock();
        let live = &mut *live;
        let latency = match live.plan.latency {
            Some((low, high)) if high > low => live.rng.random_range(low..=high),
            Some((low, _)) => low,
            None => Duration::ZERO,
        };
        for (index, rule) in live.plan.rules.iter().enumerate() {
            if !rule_matches(rule, method, path, body) {
                continue;
            }
            live.seen[index] += 1;
            let fires = match &rule.trigger {
                Trigger::Nth(occurrences) => occurrences.contains(&live.seen[index]),
                Trigger::Probability(p) => live.rng.random_bool(p.clamp(0.0, 1.0)),
            };
            if fires {
                let counts = &mut live.injected;
                match rule.kind {
                    FaultKind::ErrorBeforeApply => counts.error_before += 1,
                    FaultKind::ErrorAfterApply => counts.error_after += 1,
                    FaultKind::DropBeforeApply => counts.drop_before += 1,
                    FaultKind::DropAfterApply => counts.drop_after += 1,
                    FaultKind::TooManyRequests { .. } => counts.too_many_requests += 1,
                }
                return (Some(rule.kind.clone()), latency);
            }
        }
        (None, latency)
    }
}

impl Live {
    fn new(plan: FaultPlan) -> Self {
        Self {
            rng: SmallRng::seed_from_u64(plan.seed),
            seen: vec![0; plan.rules.len()],
            plan,
            injected: InjectedCounts::default(),
        }
    }
}

fn rule_matches(rule: &FaultRule, method: &str, path: &str, body: Option<&[u8]>) -> bool {
    if rule.method.as_deref().is_some_and(|m| !m.eq_ignore_ascii_case(method)) {
        return false;
    }
    if !path.starts_with(&rule.path_prefix) {
        return false;
    }
    match (&rule.body_contains, body) {
        (None, _) => true,
        (Some(needle), Some(body)) => contains(body, needle.as_bytes()),
        (Some(_), None) => false,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// The middleware.
pub async fn inject(State(faults): State<Arc<Faults>>, request: Request, next: Next) -> Response {
    faults.requests.fetch_add(1, Ordering::Relaxed);
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let (request, body) = if faults.needs_body() {
        let (parts, body) = request.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_MATCHED_BODY).await else {
            return StatusCode::PAYLOAD_TOO_LARGE.into_response();
        };
        (Request::from_parts(parts, Body::from(bytes.clone())), Some(bytes))
    } else {
        (request, None)
    };
    let (fault, latency) = faults.decide(&method, &path, body.as_deref());
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault {
        None => next.run(request).await,
        Some(FaultKind::ErrorBeforeApply) => internal_error(),
        Some(FaultKind::ErrorAfterApply) => {
            let _applied = next.run(request).await;
            internal_error()
        }
        Some(FaultKind::DropBeforeApply) => aborted_response(),
        Some(FaultKind::DropAfterApply) => {
            let _applied = next.run(request).await;
            aborted_response()
        }
        Some(FaultKind::TooManyRequests { retry_after_secs }) => {
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(serde_json::json!({"message": "Too Many Requests"})),
            )
                .into_response();
            if let Some(seconds) = retry_after_secs {
                response
                    .headers_mut()
                    .insert("retry-after", HeaderValue::from(seconds));
            }
            response
        }
    }
}

fn internal_error() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(serde_json::json!({"message": "Internal server error"})),
    )
        .into_response()
}

/// A response whose body fails at once: hyper aborts the connection, so the client sees a
/// connection error rather than an answer.
fn aborted_response() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "sandbox fault: connection dropped",
        ))
    });
    Response::new(Body::from_stream(failing))
}
