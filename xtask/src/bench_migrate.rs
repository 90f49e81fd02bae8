//! The `migrate` bench: `authport migrate --from tray --to nango` of N auths between sandboxes
//! (one `authport sandbox` process), rate limits off on both sides, next to the time the
//! vendors' documented limits imply for the same run.
//!
//! The Tray sandbox is seeded first with `authport import --provider tray` (not timed): N
//! API-key auths, ten per end user. The timed run exports them (users, each user's
//! authentications, Get full authentication per auth) and upserts each into Nango.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::bench_support::{build_authport, start_sandbox};

/// Auths per end user in the seeded Tray.
const AUTHS_PER_USER: usize = 10;
/// Nango's free plan: 200 requests a minute (docs/nango.md), the plugin's default.
const NANGO_REQUESTS_PER_MINUTE: f64 = 200.0;
/// Tray: 30 requests a second (docs/tray.md).
const TRAY_REQUESTS_PER_SECOND: f64 = 30.0;

pub fn migrate(root: &Path, debug: bool, work: &Path, auths: usize) -> anyhow::Result<Value> {
    let binary = build_authport(root, debug)?;
    let dir = work.join("migrate");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let (mut sandbox, env) = start_sandbox(&binary, &["NANGO_SECRET_KEY"])?;
    let result = measure(&binary, &dir, &env, auths);
    let _ = sandbox.kill();
    let _ = sandbox.wait();
    result
}

fn measure(
    binary: &Path,
    dir: &Path,
    env: &[(String, String)],
    auths: usize,
) -> anyhow::Result<Value> {
    let input = dir.join("seed.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&input)?);
    for i in 0..auths {
        let owner = i / AUTHS_PER_USER;
        let record = json!({
            "id": format!("seed-{i}"),
            "owner": {"id": format!("owner-{owner}")},
            "service": "greenhouse",
            "name": format!("Greenhouse {i}"),
            "auth": {"type": "api_key", "api_key": format!("bench-key-{i}")},
            "targets": {"tray": {"service_environment": "Production"}},
        });
        writeln!(out, "{record}")?;
    }
    out.flush()?;
    drop(out);

    let seed = run(
        binary,
        dir,
        env,
        &[
            "-q",
            "import",
            "--provider",
            "tray",
            "--input",
            "seed.jsonl",
            "--rate",
            "0",
            "--concurrency",
            "32",
            "--report",
            "seed-report.jsonl",
        ],
    )?;
    if !seed.status.success() {
        bail!(
            "seeding the tray sandbox failed: {}",
            String::from_utf8_lossy(&seed.stderr)
        );
    }

    let started = Instant::now();
    let migrated = run(
        binary,
        dir,
        env,
        &[
            "-q",
            "migrate",
            "--from",
            "tray",
            "--to",
            "nango",
            "--rate",
            "0",
            "--source-rate",
            "0",
            "--concurrency",
            "32",
            "--state",
            "migrate.db",
            "--report",
            "report.jsonl",
            "--format",
            "json",
        ],
    )?;
    let elapsed = started.elapsed().as_secs_f64();
    if !migrated.status.success() {
        bail!(
            "the migrate failed: {}",
            String::from_utf8_lossy(&migrated.stderr)
        );
    }
    let summary: Value = serde_json::from_slice(&migrated.stdout).unwrap_or(Value::Null);
    let report = std::fs::read_to_string(dir.join("report.jsonl"))?;
    let imported = report
        .lines()
        .filter(|l| l.contains("\"status\":\"imported\""))
        .count();
    if imported != auths {
        bail!("the migrate imported {imported} of {auths} auths");
    }
    // Lower bounds: one Nango upsert per auth; one Get full authentication per auth at Tray.
    let nango_secs = auths as f64 / (NANGO_REQUESTS_PER_MINUTE / 60.0);
    let tray_secs = auths as f64 / TRAY_REQUESTS_PER_SECOND;
    Ok(json!({
        "auths": auths,
        "secs": round(elapsed),
        "auths_per_sec": round(auths as f64 / elapsed),
        "nango_free_plan_implies_secs_at_least": round(nango_secs),
        "tray_limit_implies_secs_at_least": round(tray_secs),
        "summary": summary,
    }))
}

fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

fn run(
    binary: &Path,
    dir: &Path,
    env: &[(String, String)],
    args: &[&str],
) -> anyhow::Result<std::process::Output> {
    eprintln!("bench: authport {}", args.join(" "));
    Command::new(binary)
        .current_dir(dir)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", binary.display()))
}
