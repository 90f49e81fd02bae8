//! Switchable, seeded fault injection for both vendors.
//!
//! A [`FaultPlan`] holds rules; each request is matched against them in order and the first rule
//! that matches and triggers decides the fault. "After apply" faults run the real handler first
//! (so the write happens) and then hide the outcome from the client: that is the ambiguous
//! failure that authport must reconcile.
//!
//! Kinds: 500 before / after the write, a dropped connection before / after the write (the
//! socket closes before any status line), 429 with or without `Retry-After`, plus added latency
//! on every request. Triggers: the n-th matching requests, a burst of consecutive ones, or a
//! probability drawn from the plan's seeded generator, so a plan replays the same faults for the
//! same sequence of requests.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
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
    /// On `count` consecutive matching requests from the `first` (1-based): a burst, e.g. of
    /// 429s.
    Burst { first: u64, count: u64 },
}

impl Trigger {
    /// Whether the `seen`-th matching request (1-based) fires; `draw` is a uniform draw in
    /// `[0, 1)`, used by `Probability` only.
    fn fires(&self, seen: u64, draw: impl FnOnce() -> f64) -> bool {
        match self {
            Trigger::Nth(occurrences) => occurrences.contains(&seen),
            Trigger::Probability(p) => draw() < p.clamp(0.0, 1.0),
            Trigger::Burst { first, count } => seen >= *first && seen - first < *count,
        }
    }
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
        self.lock()
            .plan
            .rules
            .iter()
            .any(|r| r.body_contains.is_some())
    }

    /// Decides the fault for one request and the latency to add.
    fn decide(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> (Option<FaultKind>, Duration) {
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
            let seen = live.seen[index];
            let rng = &mut live.rng;
            let fires = rule.trigger.fires(seen, || rng.random::<f64>());
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
    if rule
        .method
        .as_deref()
        .is_some_and(|m| !m.eq_ignore_ascii_case(method))
    {
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
        (
            Request::from_parts(parts, Body::from(bytes.clone())),
            Some(bytes),
        )
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

/// Drops the connection without an answer: the client sees a reset or an early end of stream
/// before any status line, as when a proxy or the network dies.
///
/// axum gives a middleware no handle on the socket, so this unwinds the connection's task
/// (`resume_unwind` skips the panic hook: nothing is printed). Each HTTP/1 connection is served
/// by a task of its own; the server and other connections go on. A response with a failing
/// body is not enough: hyper sends the status line first, and a client that trusts the status
/// would take the write as applied.
fn aborted_response() -> Response {
    std::panic::resume_unwind(Box::new("sandbox fault: connection dropped"))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::AtomicUsize;

    #[test]
    fn triggers_fire_on_their_occurrences() {
        let check = |trigger: Trigger, expect: &[u64]| {
            let fired: Vec<u64> = (1..=10)
                .filter(|seen| trigger.fires(*seen, || 0.5))
                .collect();
            assert_eq!(fired, expect, "{trigger:?}");
        };
        check(Trigger::Nth(vec![1, 3, 9]), &[1, 3, 9]);
        check(Trigger::Nth(vec![]), &[]);
        check(Trigger::Burst { first: 4, count: 3 }, &[4, 5, 6]);
        check(Trigger::Burst { first: 1, count: 0 }, &[]);
        check(Trigger::Probability(1.0), &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        check(Trigger::Probability(0.0), &[]);
        check(Trigger::Probability(0.6), &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        check(Trigger::Probability(0.4), &[]);
    }

    fn plan(seed: u64, rules: Vec<FaultRule>) -> FaultPlan {
        FaultPlan {
            seed,
            rules,
            latency: None,
        }
    }

    #[test]
    fn rules_match_method_path_and_body_and_the_first_firing_rule_wins() {
        let faults = Faults::new(plan(
            1,
            vec![
                FaultRule::new(
                    Some("POST"),
                    "/core/v1/authentications",
                    FaultKind::ErrorAfterApply,
                    Trigger::Nth(vec![2]),
                )
                .body_contains("oauth"),
                FaultRule::new(
                    None,
                    "/vault",
                    FaultKind::DropBeforeApply,
                    Trigger::Burst { first: 1, count: 2 },
                ),
            ],
        ));
        let decide = |method: &str, path: &str, body: Option<&str>| {
            faults.decide(method, path, body.map(str::as_bytes)).0
        };
        assert_eq!(
            decide("POST", "/core/v1/authentications", Some("oauth")),
            None
        );
        assert_eq!(
            decide("GET", "/core/v1/authentications", Some("oauth")),
            None,
            "method differs"
        );
        assert_eq!(
            decide("POST", "/core/v1/authentications", Some("token")),
            None,
            "body differs"
        );
        assert_eq!(
            decide("post", "/core/v1/authentications", Some("oauth")),
            Some(FaultKind::ErrorAfterApply)
        );
        assert_eq!(
            decide("GET", "/vault/connections", None),
            Some(FaultKind::DropBeforeApply)
        );
        assert_eq!(
            decide("GET", "/vault/connections", None),
            Some(FaultKind::DropBeforeApply)
        );
        assert_eq!(decide("GET", "/vault/connections", None), None);
        assert_eq!(
            faults.injected(),
            InjectedCounts {
                error_after: 1,
                drop_before: 2,
                ..InjectedCounts::default()
            }
        );
    }

    #[test]
    fn the_same_seed_injects_the_same_faults() {
        let run = |seed: u64| {
            let faults = Faults::new(plan(
                seed,
                vec![FaultRule::new(
                    None,
                    "/",
                    FaultKind::ErrorBeforeApply,
                    Trigger::Probability(0.3),
                )],
            ));
            (0..200)
                .map(|_| faults.decide("GET", "/x", None).0.is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
        let fired = run(9).iter().filter(|f| **f).count();
        assert!((30..=90).contains(&fired), "{fired} of 200 at p = 0.3");
    }

    /// Serves `inject` around a handler that counts the writes it applies.
    async fn serve(plan: FaultPlan) -> (String, Arc<AtomicUsize>) {
        let applied = Arc::new(AtomicUsize::new(0));
        let counter = applied.clone();
        let app = axum::Router::new()
            .route(
                "/write",
                axum::routing::post(move || {
                    let counter = counter.clone();
                    async move {
                        counter.fetch_add(1, Ordering::SeqCst);
                        axum::Json(serde_json::json!({"id": "created"}))
                    }
                }),
            )
            .layer(axum::middleware::from_fn_with_state(
                Faults::new(plan),
                inject,
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (format!("http://{addr}/write"), applied)
    }

    /// What a client sees: a status with its Retry-After, no answer at all, or a broken body.
    #[derive(Debug, PartialEq)]
    enum Seen {
        Answer(u16, Option<String>),
        NoAnswer,
        BrokenBody,
    }

    async fn send(url: &str) -> Seen {
        let client = reqwest::Client::new();
        let response = match client.post(url).body("{}").send().await {
            Ok(response) => response,
            Err(_) => return Seen::NoAnswer,
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match response.bytes().await {
            Ok(_) => Seen::Answer(status, retry_after),
            Err(_) => Seen::BrokenBody,
        }
    }

    #[tokio::test]
    async fn each_kind_hides_or_applies_the_write_as_documented() {
        let check = |kind: FaultKind, expect_seen: Seen, expect_applied: usize| async move {
            let rule = FaultRule::new(Some("POST"), "/write", kind.clone(), Trigger::Nth(vec![1]));
            let (url, applied) = serve(plan(0, vec![rule])).await;
            assert_eq!(send(&url).await, expect_seen, "{kind:?}");
            assert_eq!(applied.load(Ordering::SeqCst), expect_applied, "{kind:?}");
            // The rule fired once; the next request goes through.
            assert_eq!(send(&url).await, Seen::Answer(200, None), "{kind:?}");
            assert_eq!(
                applied.load(Ordering::SeqCst),
                expect_applied + 1,
                "{kind:?}"
            );
        };
        check(FaultKind::ErrorBeforeApply, Seen::Answer(500, None), 0).await;
        check(FaultKind::ErrorAfterApply, Seen::Answer(500, None), 1).await;
        check(FaultKind::DropBeforeApply, Seen::NoAnswer, 0).await;
        check(FaultKind::DropAfterApply, Seen::NoAnswer, 1).await;
        check(
            FaultKind::TooManyRequests {
                retry_after_secs: None,
            },
            Seen::Answer(429, None),
            0,
        )
        .await;
        check(
            FaultKind::TooManyRequests {
                retry_after_secs: Some(3),
            },
            Seen::Answer(429, Some("3".to_owned())),
            0,
        )
        .await;
    }
}
