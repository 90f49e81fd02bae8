//! The `budget` bench (issue 22): `--budget-share 0.3` against the sandbox's Nango at its free
//! plan's 200 requests a minute, while a second client (the account's live traffic) spends part
//! of every window with the same secret key.
//!
//! authport runs as the runner wires `import --provider nango --budget-share 0.3` (the vendor's
//! documented rate scaled by the share, the window's reserve of `ceil(0.7 × 200)` requests).
//! Its importer's requests pass a counting gate in front of the run's gate, which sees every
//! answer's rate window: the lowest budget an answer to authport carried is authport's own
//! figure. The sandbox's lowest `remaining` covers both clients: the other client may spend
//! into the reserve (it is kept for it), so that figure is reported, not judged.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use authport_core::{AuthImporter, RequestGate, Status};
use authport_engine::{ImportOptions, RunGate, StateStore};
use authport_sandbox::SandboxConfig;
use authport_sandbox::nango::RateLimit;
use authport_testkit::CountingGate;
use serde_json::{Value, json};

/// The share the scenario runs with (the figure).
const SHARE: f64 = 0.3;

/// What the second client did.
#[derive(Default)]
struct OtherClient {
    requests: AtomicU64,
    rate_limited: AtomicU64,
    /// The lowest `X-RateLimit-Remaining` it was answered (`u64::MAX`: none).
    lowest_remaining: AtomicU64,
}

/// `budget RECORDS WINDOW_SECS OTHER_PER_WINDOW`: the import of RECORDS records (one owner
/// each) into Nango limited to 200 requests per window of WINDOW_SECS seconds, while the other
/// client sends OTHER_PER_WINDOW requests evenly spread over each window.
pub async fn budget(
    records: usize,
    window_secs: u32,
    other_per_window: u32,
) -> anyhow::Result<Value> {
    let limit = RateLimit::FREE;
    let dir = super::tempdir()?;
    let sandbox = authport_testkit::sandbox_with(SandboxConfig::default()).await;
    sandbox.nango.set_rate_limit(Some(limit));
    sandbox.nango.set_rate_window_secs(window_secs);
    let env = sandbox.provider_env();

    let input = dir.join("input.jsonl");
    super::generate(&input, records, records)?;
    let state = StateStore::open(&dir.join("state.db"))?;
    let run_gate = RunGate::new();
    let counting = CountingGate::wrapping(run_gate.clone());
    let importer = build_nango(env.clone(), &state, counting.clone())?;
    let limits = authport_core::find_provider("nango")
        .map(|plugin| plugin.limits)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // As the runner sets them for `--budget-share 0.3` and no other flag.
    let mut options = ImportOptions::new("nango", limits, &input);
    options.gate = run_gate;
    options.budget_share = SHARE;

    let other = Arc::new(OtherClient {
        lowest_remaining: AtomicU64::new(u64::MAX),
        ..OtherClient::default()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let spacing =
        Duration::from_secs_f64(f64::from(window_secs) / f64::from(other_per_window.max(1)));
    let traffic = tokio::spawn(other_traffic(env, spacing, other.clone(), stop.clone()));

    let started = Instant::now();
    let summary =
        authport_engine::import(importer, &state, &options, std::future::pending()).await?;
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    traffic.await??;

    let all_rate_limited = sandbox.nango.rate_limited_count();
    let other_rate_limited = other.rate_limited.load(Ordering::SeqCst);
    let authport_requests = counting.count();
    let authport_rate_limited = all_rate_limited.saturating_sub(other_rate_limited);
    let accepted = authport_requests.saturating_sub(authport_rate_limited);
    let window_minutes = f64::from(window_secs) / 60.0;
    let other_lowest = other.lowest_remaining.load(Ordering::SeqCst);
    Ok(json!({
        "records": records,
        "imported": summary.count(Status::Imported),
        "limit": limit.per_minute,
        "window_seconds": window_secs,
        "share": SHARE,
        "reserve": authport_engine::share::reserve(SHARE, u64::from(limit.per_minute)),
        "authport_requests": authport_requests,
        // Every request the sandbox saw less the other client's: equal to the gate's count
        // unless a request went around the gate.
        "authport_requests_at_sandbox": sandbox
            .faults
            .requests_seen()
            .saturating_sub(other.requests.load(Ordering::SeqCst)),
        "authport_rate_limited": authport_rate_limited,
        // The lowest budget left that an answer to authport's own requests carried.
        "authport_lowest_remaining": counting.lowest_remaining(),
        "other_requests": other.requests.load(Ordering::SeqCst),
        "other_per_window": other_per_window,
        "other_rate_limited": other_rate_limited,
        "other_lowest_remaining": (other_lowest != u64::MAX).then_some(other_lowest),
        // Both clients: the other may spend into the reserve, which is kept for it.
        "sandbox_lowest_remaining": sandbox.nango.min_remaining(),
        "seconds": seconds,
        "authport_accepted_per_minute": accepted as f64 / (seconds / 60.0),
        // The share of the plan, per minute of the clock (a shortened window gives more).
        "share_per_minute": SHARE * f64::from(limit.per_minute) / window_minutes,
        "pacing": summary.pacing,
        "bounded_by": summary.to_json()["bounded_by"],
        "exit_code": summary.to_json()["exit_code"],
    }))
}

/// The Nango importer with every request through `gate` (which passes them to the run's gate).
fn build_nango(
    env: Vec<(String, String)>,
    state: &StateStore,
    gate: Arc<CountingGate>,
) -> anyhow::Result<Arc<dyn AuthImporter>> {
    let gate: Arc<dyn RequestGate> = gate;
    let importer = super::bench_context(env, state, gate)
        .try_provider("nango")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Arc::from(importer))
}

/// The account's live traffic: a read of the integrations every `spacing`, with the same key,
/// until `stop`.
async fn other_traffic(
    env: Vec<(String, String)>,
    spacing: Duration,
    other: Arc<OtherClient>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let value = |name: &str| {
        env.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .with_context(|| format!("the sandbox sets {name}"))
    };
    let url = format!(
        "{}/integrations",
        value("NANGO_API_URL")?.trim_end_matches('/')
    );
    let key = value("NANGO_SECRET_KEY")?;
    let client = reqwest::Client::new();
    let mut ticks = tokio::time::interval(spacing);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::SeqCst) {
        ticks.tick().await;
        let answer = client.get(&url).bearer_auth(&key).send().await?;
        other.requests.fetch_add(1, Ordering::SeqCst);
        if answer.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
            other.rate_limited.fetch_add(1, Ordering::SeqCst);
        } else if let Some(remaining) = answer
            .headers()
            .get("x-ratelimit-remaining")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
        {
            other
                .lowest_remaining
                .fetch_min(remaining, Ordering::SeqCst);
        }
    }
    Ok(())
}
