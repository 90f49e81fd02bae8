//! The benchmark driver that `cargo xtask bench` runs (release build). Each subcommand prints
//! one JSON object on stdout; xtask turns them into the figures of BENCHMARKS.md.
//!
//! ```text
//! bench_driver generate OUT RECORDS OWNERS
//! bench_driver serve [--tray-rate-limit]     # sandbox in its own process; stats on stdin EOF
//! bench_driver import ENV_FILE INPUT STATE CONCURRENCY RATE   # RATE 0 = no limit
//! bench_driver faults RECORDS
//! bench_driver ratelimit RECORDS
//! bench_driver autorate RECORDS               # --rate auto against a hidden 40 req/s
//! bench_driver crash RECORDS KILLS
//! bench_driver apideck-serve                  # fixed-response Vault; counts on stdin EOF
//! bench_driver apideck-import BASE_URL INPUT STATE CONCURRENCY   # rate limit off
//! bench_driver budget RECORDS WINDOW_SECS OTHER_PER_WINDOW   # Nango, --budget-share 0.3
//! ```

use std::collections::BTreeSet;
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use authport_core::{AuthImporter, CredentialRecord, MappedRecord, Status};
use authport_engine::{ImportOptions, RunGate, StateStore};
use authport_sandbox::faults::{FaultKind, FaultPlan, FaultRule, Trigger};
use authport_sandbox::{RunningSandbox, SandboxConfig};
use rand::{Rng as _, SeedableRng as _};
use serde_json::{Value, json};

use authport_apideck as _;
use authport_nango as _;
use authport_tray as _;

mod bench_apideck;
mod bench_budget;

/// The allocator of the `authport` binary, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> anyhow::Result<&str> {
        args.get(i)
            .map(String::as_str)
            .context("missing argument (see the usage in the source)")
    };
    let number = |i: usize| -> anyhow::Result<usize> { Ok(arg(i)?.parse()?) };
    let result = match arg(0)? {
        "generate" => {
            generate(Path::new(arg(1)?), number(2)?, number(3)?)?;
            json!({"generated": number(2)?})
        }
        "serve" => serve(args.iter().any(|a| a == "--tray-rate-limit")).await?,
        "import" => {
            let env: Vec<(String, String)> =
                serde_json::from_str(&std::fs::read_to_string(arg(1)?)?)?;
            let rate: f64 = arg(5)?.parse()?;
            import(
                &env,
                Path::new(arg(2)?),
                Path::new(arg(3)?),
                number(4)?,
                rate,
            )
            .await?
        }
        "faults" => faults(number(1)?).await?,
        "ratelimit" => ratelimit(number(1)?).await?,
        "autorate" => autorate(number(1)?).await?,
        "crash" => crash(number(1)?, number(2)?).await?,
        "apideck-serve" => bench_apideck::serve(record(0, 1)).await?,
        "apideck-import" => {
            bench_apideck::import(arg(1)?, Path::new(arg(2)?), Path::new(arg(3)?), number(4)?)
                .await?
        }
        "budget" => bench_budget::budget(number(1)?, arg(2)?.parse()?, arg(3)?.parse()?).await?,
        other => bail!("unknown subcommand `{other}`"),
    };
    println!("{result}");
    Ok(())
}

/// Peak resident set size of this process (Linux), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn record(index: usize, owners: usize) -> Value {
    let owner = format!("owner-{}", index % owners.max(1));
    json!({
        "id": format!("rec-{index:08}"),
        "owner": {"id": owner, "name": format!("Owner {owner}")},
        "service": "hubspot",
        "name": format!("HubSpot {index}"),
        "auth": {"type": "oauth2", "access_token": format!("bench-access-{index}"),
                 "refresh_token": format!("bench-refresh-{index}"), "token_type": "Bearer",
                 "scopes": ["crm.objects.contacts.read"], "expires_at": "2036-11-01T10:00:00Z"},
        "targets": {"tray": {"service_environment": "acme hubspot oauth"},
                    "apideck": {"unified_api": "crm", "service_id": "hubspot"}}
    })
}

fn generate(out: &Path, records: usize, owners: usize) -> anyhow::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    for index in 0..records {
        writeln!(file, "{}", record(index, owners))?;
    }
    file.flush()?;
    Ok(())
}

/// The Tray importer wired as the runner wires it: every request it sends goes through `gate`,
/// which the engine configures when the run starts (set `ImportOptions::gate` to the same one).
fn build_tray(
    env: &[(String, String)],
    state: &StateStore,
    gate: &Arc<RunGate>,
) -> anyhow::Result<Arc<dyn AuthImporter>> {
    let importer = bench_context(env.to_vec(), state, gate.clone())
        .try_provider("tray")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Arc::from(importer))
}

/// The context a bench importer is built with: the testkit's, with the state's memo, the
/// run's gate (or a gate in front of it) and the binary's 30-second request timeout.
fn bench_context(
    env: Vec<(String, String)>,
    state: &StateStore,
    gate: Arc<dyn authport_core::RequestGate>,
) -> authport_testkit::ContextBuilder {
    authport_testkit::context()
        .env(env)
        .memo(state.memo())
        .gate(gate)
        .timeout(Duration::from_secs(30))
}

fn tray_limits() -> authport_core::ProviderLimits {
    authport_core::find_provider("tray")
        .map(|plugin| plugin.limits)
        .unwrap_or_else(|_| panic!("the tray provider is linked"))
}

fn options(
    input: &Path,
    report: Option<PathBuf>,
    concurrency: usize,
    rate: f64,
    gate: &Arc<RunGate>,
) -> ImportOptions {
    let mut options = ImportOptions::new("tray", tray_limits(), input);
    options.gate = gate.clone();
    options.report = report;
    options.concurrency = Some(concurrency);
    // The bench's RATE argument: 0 is no limit, as `--rate 0`.
    options.rate = if rate == 0.0 {
        authport_engine::RateChoice::Unlimited
    } else {
        authport_engine::RateChoice::Fixed {
            per_second: rate,
            burst: None,
        }
    };
    options.max_attempts = 12;
    options.retry_base_delay = Duration::from_millis(20);
    options.retry_max_delay = Duration::from_secs(2);
    options
}

/// A sandbox in its own process, so the importer's memory and CPU are measured alone.
async fn serve(tray_rate_limit: bool) -> anyhow::Result<Value> {
    let mut config = SandboxConfig::default();
    if tray_rate_limit {
        config.tray.rate_limit = Some(authport_sandbox::tray::RateLimit::DOCUMENTED);
    }
    let sandbox = authport_testkit::sandbox_with(config).await;
    // The body the reference load generator sends: what authport sends for one record.
    let state = StateStore::temporary()?;
    let importer = build_tray(&sandbox.provider_env(), &state, &RunGate::new())?;
    let (_, mapped) = reference_mapping(importer.as_ref(), record(0, 1), "tray").await?;
    let hello = json!({
        "base_url": sandbox.base_url(),
        "env": sandbox.provider_env(),
        "reference_path": "/core/v1/authentications",
        "reference_body": mapped.body.expose(),
    });
    say_hello_and_serve(&hello).await?;
    Ok(sandbox_stats(&sandbox))
}

/// `record` as the importer maps it after discovering its key: the request authport sends for
/// it, which the reference load generator replays.
async fn reference_mapping(
    importer: &dyn AuthImporter,
    record: Value,
    provider: &str,
) -> anyhow::Result<(CredentialRecord, MappedRecord)> {
    let sample = std::io::Cursor::new(format!("{record}\n").into_bytes());
    let record =
        authport_core::input::InputReader::from_reader("sample", sample, chrono::Utc::now())
            .next()
            .context("no sample record")?
            .result
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    importer
        .discover(&[authport_core::DiscoveryKey::for_record(&record, provider)])
        .await?;
    let mapped = importer.map(&record)?;
    Ok((record, mapped))
}

/// Prints the server's hello line, then serves until stdin closes (the orchestrator's stop).
async fn say_hello_and_serve(hello: &Value) -> anyhow::Result<()> {
    println!("{hello}");
    std::io::stdout().flush()?;
    tokio::task::spawn_blocking(|| for _ in std::io::stdin().lock().lines() {}).await?;
    Ok(())
}

fn sandbox_stats(sandbox: &RunningSandbox) -> Value {
    let auths = sandbox.tray.auths();
    let distinct: BTreeSet<&str> = auths.iter().map(|a| a.name.as_str()).collect();
    json!({
        "auths": auths.len(),
        "distinct_auth_names": distinct.len(),
        "rate_limited": sandbox.tray.rate_limited_count(),
        "requests": sandbox.faults.requests_seen(),
    })
}

async fn import(
    env: &[(String, String)],
    input: &Path,
    state: &Path,
    concurrency: usize,
    rate: f64,
) -> anyhow::Result<Value> {
    let state = StateStore::open(state)?;
    let gate = RunGate::new();
    let importer = build_tray(env, &state, &gate)?;
    let options = options(input, None, concurrency, rate, &gate);
    let started = Instant::now();
    let summary =
        authport_engine::import(importer, &state, &options, std::future::pending()).await?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(json!({
        "summary": summary.to_json(),
        "seconds": seconds,
        "records_per_second": summary.total() as f64 / seconds,
        "peak_rss_kib": peak_rss_kib(),
    }))
}

/// 10% 5xx (half after the write), 5% dropped connections (half after), added latency.
async fn faults(records: usize) -> anyhow::Result<Value> {
    let dir = tempdir()?;
    let sandbox = authport_testkit::sandbox_with(SandboxConfig::default()).await;
    let rule = |kind, p| FaultRule::new(None, "/", kind, Trigger::Probability(p));
    sandbox.faults.set(FaultPlan {
        seed: 2026,
        rules: vec![
            rule(FaultKind::ErrorBeforeApply, 0.05),
            rule(FaultKind::ErrorAfterApply, 0.05 / 0.95),
            rule(FaultKind::DropBeforeApply, 0.025 / 0.90),
            rule(FaultKind::DropAfterApply, 0.025 / 0.875),
        ],
        latency: Some((Duration::from_millis(1), Duration::from_millis(10))),
    });
    let input = dir.join("input.jsonl");
    generate(&input, records, 50)?;
    let report = dir.join("report.jsonl");
    let state = StateStore::open(&dir.join("state.db"))?;
    let gate = RunGate::new();
    let importer = build_tray(&sandbox.provider_env(), &state, &gate)?;
    let started = Instant::now();
    let summary = authport_engine::import(
        importer,
        &state,
        &options(&input, Some(report.clone()), 16, 0.0, &gate),
        std::future::pending(),
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();

    let mut ids = BTreeSet::new();
    let mut lines = 0usize;
    let mut report_imported = 0usize;
    for line in std::fs::read_to_string(&report)?.lines() {
        let line: Value = serde_json::from_str(line)?;
        lines += 1;
        ids.insert(line["id"].as_str().unwrap_or_default().to_owned());
        if line["status"] == "imported" {
            report_imported += 1;
        }
    }
    let stats = sandbox_stats(&sandbox);
    let injected = sandbox.faults.injected();
    Ok(json!({
        "records": records,
        "report_lines": lines,
        "distinct_ids_in_report": ids.len(),
        "report_imported": report_imported,
        "journal_objects": state.objects("tray")?.len(),
        "sandbox": stats,
        "summary": summary.to_json(),
        "injected": {"error_before": injected.error_before, "error_after": injected.error_after,
                     "drop_before": injected.drop_before, "drop_after": injected.drop_after},
        "seconds": seconds,
    }))
}

/// Tray's documented 30 req/s, burst 50, enforced by the sandbox; authport at its defaults.
async fn ratelimit(records: usize) -> anyhow::Result<Value> {
    let dir = tempdir()?;
    let mut config = SandboxConfig::default();
    config.tray.rate_limit = Some(authport_sandbox::tray::RateLimit::DOCUMENTED);
    let sandbox = authport_testkit::sandbox_with(config).await;
    let input = dir.join("input.jsonl");
    generate(&input, records, 10)?;
    let state = StateStore::open(&dir.join("state.db"))?;
    let gate = RunGate::new();
    let importer = build_tray(&sandbox.provider_env(), &state, &gate)?;
    let mut options = ImportOptions::new("tray", tray_limits(), &input);
    options.gate = gate;
    options.max_attempts = 12;
    let started = Instant::now();
    let summary =
        authport_engine::import(importer, &state, &options, std::future::pending()).await?;
    let seconds = started.elapsed().as_secs_f64();
    let requests = sandbox.faults.requests_seen();
    let limited = sandbox.tray.rate_limited_count();
    Ok(json!({
        "records": records,
        "imported": summary.count(Status::Imported),
        "seconds": seconds,
        "requests": requests,
        "requests_per_second": requests as f64 / seconds,
        "rate_limited": limited,
        "rate_limited_fraction": limited as f64 / requests.max(1) as f64,
        // Requests the target accepted per second, against its documented 30/s.
        "accepted_per_second": (requests - limited) as f64 / seconds,
        "efficiency": ((requests - limited) as f64 / seconds) / 30.0,
        // The shortest time the target allows for what it accepted: the burst at once, the rest
        // at the documented rate. On a short run the burst matters; this ratio counts it.
        "ideal_seconds": ideal_seconds(requests - limited),
        "efficiency_vs_ideal": ideal_seconds(requests - limited) / seconds,
    }))
}

/// The limit the `autorate` case hides in the sandbox (Tray's emulator, 429 beyond it).
const HIDDEN: authport_sandbox::tray::RateLimit = authport_sandbox::tray::RateLimit {
    per_second: 40.0,
    burst: 40,
};

/// `--rate auto` (ceiling 100/s) against a target that accepts 40 req/s and answers 429
/// beyond: how close to the hidden limit it gets, and how many requests it spends on 429s.
async fn autorate(records: usize) -> anyhow::Result<Value> {
    let dir = tempdir()?;
    let mut config = SandboxConfig::default();
    config.tray.rate_limit = Some(HIDDEN);
    let sandbox = authport_testkit::sandbox_with(config).await;
    let input = dir.join("input.jsonl");
    generate(&input, records, 10)?;
    let state = StateStore::open(&dir.join("state.db"))?;
    let gate = RunGate::new();
    let importer = build_tray(&sandbox.provider_env(), &state, &gate)?;
    let mut options = ImportOptions::new("tray", tray_limits(), &input);
    options.gate = gate;
    options.rate = authport_engine::RateChoice::Auto { ceiling: None };
    options.rate_ceiling = Some(100.0);
    // Enough records in flight that the client is not what bounds the run.
    options.concurrency = Some(16);
    options.max_attempts = 12;
    // The target's counters every 100 ms: the rate from the first 429 on is the one auto keeps.
    let samples = Arc::new(std::sync::Mutex::new(Vec::<(f64, u64, u64)>::new()));
    let started = Instant::now();
    let sampler = {
        let (samples, sandbox_faults, tray) = (
            samples.clone(),
            sandbox.faults.clone(),
            sandbox.tray.clone(),
        );
        tokio::spawn(async move {
            loop {
                let sample = (
                    started.elapsed().as_secs_f64(),
                    sandbox_faults.requests_seen(),
                    tray.rate_limited_count(),
                );
                samples
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(sample);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let summary =
        authport_engine::import(importer, &state, &options, std::future::pending()).await?;
    sampler.abort();
    let seconds = started.elapsed().as_secs_f64();
    let requests = sandbox.faults.requests_seen();
    let limited = sandbox.tray.rate_limited_count();
    let accepted = (requests - limited) as f64 / seconds;
    let samples = samples.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let steady =
        samples
            .iter()
            .find(|(_, _, limited)| *limited > 0)
            .map(|&(at, seen, limited_then)| {
                let accepted_since = (requests - limited) - (seen - limited_then);
                accepted_since as f64 / (seconds - at).max(f64::MIN_POSITIVE)
            });
    Ok(json!({
        "records": records,
        "imported": summary.count(Status::Imported),
        "seconds": seconds,
        "hidden_limit_per_second": HIDDEN.per_second,
        "requests": requests,
        "rate_limited": limited,
        "rate_limited_fraction": limited as f64 / requests.max(1) as f64,
        "accepted_per_second": accepted,
        // Against the hidden limit, the start-up ramp from the conservative start included.
        "fraction_of_limit": accepted / HIDDEN.per_second,
        // From the first 429 (the limit found) to the end: the rate auto keeps.
        "steady_fraction_of_limit": steady.map(|rate| rate / HIDDEN.per_second),
        "pacing": summary.pacing,
        "bounded_by": summary.to_json()["bounded_by"],
    }))
}

/// Seconds Tray's documented limit (30 req/s, burst 50) needs for `accepted` requests.
fn ideal_seconds(accepted: u64) -> f64 {
    let limit = authport_sandbox::tray::RateLimit::DOCUMENTED;
    accepted.saturating_sub(u64::from(limit.burst)) as f64 / limit.per_second
}

/// SIGKILL the importer (a child process) at random points, resume each time.
async fn crash(records: usize, kills: usize) -> anyhow::Result<Value> {
    let dir = tempdir()?;
    let sandbox = authport_testkit::sandbox_with(SandboxConfig::default()).await;
    sandbox.faults.set(FaultPlan {
        seed: 5,
        rules: Vec::new(),
        latency: Some((Duration::ZERO, Duration::from_millis(4))),
    });
    let input = dir.join("input.jsonl");
    generate(&input, records, 50)?;
    let env_file = dir.join("env.json");
    std::fs::write(&env_file, serde_json::to_string(&sandbox.provider_env())?)?;
    let state = dir.join("state.db");
    let child = || -> anyhow::Result<std::process::Child> {
        Ok(Command::new(std::env::current_exe()?)
            .args([
                "import".as_ref(),
                env_file.as_os_str(),
                input.as_os_str(),
                state.as_os_str(),
                "16".as_ref(),
                "0".as_ref(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?)
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let mut kill_points = Vec::new();
    for _ in 0..kills {
        let before = sandbox.tray.auth_count();
        let step = (records / (kills + 1)).max(1);
        let kill_at = rng.random_range(before + 1..=(before + 2 * step).min(records));
        let mut process = child()?;
        loop {
            if process.try_wait()?.is_some() {
                break;
            }
            if sandbox.tray.auth_count() >= kill_at {
                process.kill()?;
                process.wait()?;
                kill_points.push(sandbox.tray.auth_count());
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let finished = child()?.wait()?;
    let stats = sandbox_stats(&sandbox);
    let journal = StateStore::open(&state)?;
    Ok(json!({
        "records": records,
        "kills": kill_points.len(),
        "kill_points": kill_points,
        "final_run_ok": finished.success(),
        "sandbox": stats,
        "duplicates": stats["auths"].as_u64().unwrap_or(0) - stats["distinct_auth_names"].as_u64().unwrap_or(0),
        "lost": records as u64 - stats["distinct_auth_names"].as_u64().unwrap_or(0).min(records as u64),
        "journal_objects": journal.objects("tray")?.len(),
        "journal_pending": journal.pending("tray")?.len(),
    }))
}

fn tempdir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "authport-bench-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
