//! `cargo xtask bench`: the benchmarks of BENCHMARKS.md.
//!
//! The work is done by the `bench_driver` binary of `crates/engine-e2e` (release build), which
//! links the engine, the providers and the sandbox; this module orchestrates it, runs the
//! reference load generator (`wrk`; for `apideck`, `oha` when only it is on the PATH) and prints
//! the figures, each a ratio taken within the same run.
//!
//! ```text
//! cargo xtask bench [--quick] [--debug] [--only overhead|apideck|memory|ratelimit|ratelimit-short|autorate|budget|faults|crash|webhooks|migrate]
//! ```
//! `--quick` shrinks every input (a smoke run, not figures); `--debug` skips the release build.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{Context, bail};
use serde_json::Value;

#[path = "bench_apideck.rs"]
mod bench_apideck;
#[path = "bench_budget.rs"]
mod bench_budget;
#[path = "bench_migrate.rs"]
mod bench_migrate;
#[path = "bench_support.rs"]
mod bench_support;
#[path = "bench_webhooks.rs"]
mod bench_webhooks;

/// Input sizes of one bench run.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    overhead_records: usize,
    memory_small: usize,
    memory_large: usize,
    ratelimit_records: usize,
    /// A short run (about 400 requests with Tray's user look-ups), where the burst counts.
    ratelimit_short_records: usize,
    fault_records: usize,
    crash_records: usize,
    crash_kills: usize,
    concurrency: usize,
    wrk_seconds: u32,
}

const FULL: Sizes = Sizes {
    overhead_records: 100_000,
    memory_small: 10_000,
    memory_large: 1_000_000,
    ratelimit_records: 3_000,
    ratelimit_short_records: 370,
    fault_records: 10_000,
    crash_records: 10_000,
    crash_kills: 10,
    concurrency: 16,
    wrk_seconds: 10,
};

const QUICK: Sizes = Sizes {
    overhead_records: 5_000,
    memory_small: 1_000,
    memory_large: 20_000,
    ratelimit_records: 300,
    ratelimit_short_records: 370,
    fault_records: 1_000,
    crash_records: 1_000,
    crash_kills: 4,
    concurrency: 16,
    wrk_seconds: 3,
};

/// The names `--only` takes, in the order `cargo xtask bench` runs them.
const SCENARIOS: [&str; 11] = [
    "overhead",
    "apideck",
    "memory",
    "ratelimit",
    "ratelimit-short",
    "autorate",
    "budget",
    "faults",
    "crash",
    "webhooks",
    "migrate",
];

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let debug = args.iter().any(|a| a == "--debug");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str);
    if let Some(name) = only
        && !SCENARIOS.contains(&name)
    {
        bail!(
            "no bench scenario `{name}` (scenarios: {})",
            SCENARIOS.join(", ")
        );
    }
    let sizes = if quick { QUICK } else { FULL };
    let root = crate::workspace_root()?;
    let driver = build_driver(&root, debug)?;
    let work = root.join("target").join("bench");
    std::fs::create_dir_all(&work)?;
    let wanted = |name: &str| only.is_none_or(|o| o == name);

    let mut results = serde_json::Map::new();
    results.insert(
        "build".into(),
        Value::from(if debug { "debug" } else { "release" }),
    );
    results.insert("quick".into(), Value::from(quick));
    if wanted("overhead") {
        let figure = overhead(&driver, &work, sizes)?;
        print_figure("overhead", &figure);
        results.insert("overhead".into(), figure);
    }
    if wanted("apideck") {
        // Apideck: overhead vs wrk (or oha) and vs the aiohttp peer, concurrency 64, rate
        // limit off; then peak RSS at the memory bench's two sizes.
        let run = bench_apideck::ApideckRun {
            records: if quick { 5_000 } else { 100_000 },
            concurrency: 64,
            reference_seconds: sizes.wrk_seconds,
            rounds: if quick { 1 } else { 3 },
            rss_records: [sizes.memory_small, sizes.memory_large],
        };
        let figure = bench_apideck::apideck(&root, &driver, &work, run)?;
        print_figure("apideck", &figure);
        results.insert("apideck".into(), figure);
    }
    if wanted("memory") {
        let figure = memory(&driver, &work, sizes)?;
        print_figure("memory", &figure);
        results.insert("memory".into(), figure);
    }
    if wanted("ratelimit") {
        let figure = driver_json(
            &driver,
            &["ratelimit", &sizes.ratelimit_records.to_string()],
        )?;
        print_figure("ratelimit", &figure);
        results.insert("ratelimit".into(), figure);
    }
    if wanted("ratelimit-short") {
        let figure = driver_json(
            &driver,
            &["ratelimit", &sizes.ratelimit_short_records.to_string()],
        )?;
        print_figure("ratelimit-short", &figure);
        results.insert("ratelimit_short".into(), figure);
    }
    if wanted("autorate") {
        // `--rate auto` against a hidden 40 req/s; as many records as the rate-limit case.
        let figure = driver_json(&driver, &["autorate", &sizes.ratelimit_records.to_string()])?;
        print_figure("autorate", &figure);
        results.insert("autorate".into(), figure);
    }
    if wanted("budget") {
        // --budget-share 0.3 into Nango's 200 a minute while another client spends 40 of each.
        let run = if quick {
            bench_budget::QUICK
        } else {
            bench_budget::FULL
        };
        let figure = bench_budget::budget(&driver, run)?;
        print_figure("budget", &figure);
        results.insert("budget".into(), figure);
    }
    if wanted("faults") {
        let figure = driver_json(&driver, &["faults", &sizes.fault_records.to_string()])?;
        print_figure("faults", &figure);
        results.insert("faults".into(), figure);
    }
    if wanted("crash") {
        let figure = driver_json(
            &driver,
            &[
                "crash",
                &sizes.crash_records.to_string(),
                &sizes.crash_kills.to_string(),
            ],
        )?;
        print_figure("crash", &figure);
        results.insert("crash".into(), figure);
    }
    if wanted("webhooks") {
        // Signed deliveries/s into `authport webhooks` while an import runs on the same state.
        let deliveries = if quick { 2_000 } else { 20_000 };
        let figure = bench_webhooks::webhooks(&root, debug, &work, deliveries)?;
        print_figure("webhooks", &figure);
        results.insert("webhooks".into(), figure);
    }
    if wanted("migrate") {
        // `authport migrate --from tray --to nango` of 10,000 auths, rate limits off.
        let auths = if quick { 1_000 } else { 10_000 };
        let figure = bench_migrate::migrate(&root, debug, &work, auths)?;
        print_figure("migrate", &figure);
        results.insert("migrate".into(), figure);
    }
    let out = work.join("results.json");
    std::fs::write(&out, serde_json::to_string_pretty(&Value::Object(results))?)?;
    eprintln!("all figures: {}", out.display());
    Ok(())
}

fn print_figure(name: &str, figure: &Value) {
    println!("{name}: {figure}");
}

fn build_driver(root: &Path, debug: bool) -> anyhow::Result<PathBuf> {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(root).args([
        "build",
        "-p",
        "authport-engine-e2e",
        "--bin",
        "bench_driver",
    ]);
    if !debug {
        command.arg("--release");
    }
    let status = command.status().context("cannot run cargo build")?;
    if !status.success() {
        bail!("building the bench driver failed");
    }
    let profile = if debug { "debug" } else { "release" };
    Ok(root.join("target").join(profile).join("bench_driver"))
}

/// Runs the driver and parses its one JSON line.
fn driver_json(driver: &Path, args: &[&str]) -> anyhow::Result<Value> {
    driver_json_from(driver, args, None)
}

/// Runs the driver with the file `stdin` piped into its standard input (through `cat`, so the
/// driver reads a real pipe), when given.
fn driver_json_from(driver: &Path, args: &[&str], stdin: Option<&Path>) -> anyhow::Result<Value> {
    eprintln!("bench: bench_driver {}", args.join(" "));
    let mut cat = match stdin {
        Some(path) => Some(
            Command::new("cat")
                .arg(path)
                .stdout(Stdio::piped())
                .spawn()
                .context("cannot run cat")?,
        ),
        None => None,
    };
    let stdin = match cat.as_mut().and_then(|cat| cat.stdout.take()) {
        Some(pipe) => Stdio::from(pipe),
        None => Stdio::null(),
    };
    let output = Command::new(driver)
        .args(args)
        .stdin(stdin)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", driver.display()))?;
    if let Some(mut cat) = cat {
        cat.wait()?;
    }
    if !output.status.success() {
        bail!("bench_driver {} failed", args.join(" "));
    }
    let text = String::from_utf8(output.stdout)?;
    let last = text
        .lines()
        .last()
        .context("bench_driver printed nothing")?;
    Ok(serde_json::from_str(last)?)
}

/// A sandbox in its own process; its stats arrive when its stdin closes.
struct Sandbox {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    hello: Value,
}

impl Sandbox {
    fn start(driver: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(driver)
            .arg("serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start the sandbox")?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("no sandbox stdout")?;
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let hello: Value = serde_json::from_str(&line).context("the sandbox did not say hello")?;
        Ok(Self {
            child,
            stdin,
            stdout,
            hello,
        })
    }

    fn env_file(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, self.hello["env"].to_string())?;
        Ok(())
    }

    /// Stops the sandbox and returns what it holds (objects, 429s, requests).
    fn stop(mut self) -> anyhow::Result<Value> {
        drop(self.stdin.take());
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        self.child.wait()?;
        Ok(serde_json::from_str(&line).unwrap_or(Value::Null))
    }
}

fn fresh(path: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        if file.exists() {
            std::fs::remove_file(file)?;
        }
    }
    Ok(())
}

/// authport's imports/s against `wrk` sending the same create request, same concurrency.
fn overhead(driver: &Path, work: &Path, sizes: Sizes) -> anyhow::Result<Value> {
    let sandbox = Sandbox::start(driver)?;
    let env = work.join("overhead-env.json");
    sandbox.env_file(&env)?;
    let input = work.join(format!("overhead-{}.jsonl", sizes.overhead_records));
    driver_json(
        driver,
        &[
            "generate",
            &input.display().to_string(),
            &sizes.overhead_records.to_string(),
            "50",
        ],
    )?;

    let base = sandbox.hello["base_url"]
        .as_str()
        .context("no base url")?
        .to_owned();
    let master = sandbox.hello["env"]
        .as_array()
        .and_then(|pairs| pairs.iter().find(|p| p[0] == "TRAY_MASTER_TOKEN"))
        .and_then(|p| p[1].as_str())
        .context("no master token")?
        .to_owned();
    let script = work.join("reference.lua");
    let body = sandbox.hello["reference_body"].to_string();
    let mut lua = std::fs::File::create(&script)?;
    writeln!(lua, "wrk.method = \"POST\"")?;
    writeln!(lua, "wrk.headers[\"Content-Type\"] = \"application/json\"")?;
    writeln!(lua, "wrk.headers[\"Authorization\"] = \"Bearer {master}\"")?;
    writeln!(lua, "wrk.body = {}", lua_string(&body))?;
    drop(lua);
    let path = sandbox.hello["reference_path"]
        .as_str()
        .unwrap_or("/core/v1/authentications");
    let reference = wrk(
        &format!("{base}{path}"),
        &script,
        sizes.concurrency,
        sizes.wrk_seconds,
    )?;

    let state = work.join("overhead-state.db");
    fresh(&state)?;
    let ours = driver_json(
        driver,
        &[
            "import",
            &env.display().to_string(),
            &input.display().to_string(),
            &state.display().to_string(),
            &sizes.concurrency.to_string(),
            "0",
        ],
    )?;
    let held = sandbox.stop()?;
    let ours_rate = ours["records_per_second"].as_f64().unwrap_or(0.0);
    Ok(serde_json::json!({
        "records": sizes.overhead_records,
        "concurrency": sizes.concurrency,
        "authport_imports_per_second": ours_rate,
        "wrk_requests_per_second": reference,
        "ratio": ours_rate / reference.max(f64::MIN_POSITIVE),
        "authport_exit_code": ours["summary"]["exit_code"],
        "sandbox": held,
    }))
}

fn lua_string(text: &str) -> String {
    let mut quoted = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// Runs wrk and returns its requests/second.
fn wrk(url: &str, script: &Path, connections: usize, seconds: u32) -> anyhow::Result<f64> {
    eprintln!("bench: wrk -t1 -c{connections} -d{seconds}s {url}");
    let output = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "-s",
        ])
        .arg(script)
        .arg(url)
        .output()
        .context("cannot run wrk (install it: apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if text.contains("Non-2xx") {
        bail!("wrk got error answers; the reference request is wrong:\n{text}");
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk output:\n{text}"))
}

/// Peak RSS of the importer for a small and a large input.
/// Peak RSS at two input sizes, reading a file, and again reading the same records from stdin
/// (`--input -`: the driver's stdin is the file, read once through the pipe-capable path).
fn memory(driver: &Path, work: &Path, sizes: Sizes) -> anyhow::Result<Value> {
    let from_file = memory_of(driver, work, sizes, false)?;
    let from_stdin = memory_of(driver, work, sizes, true)?;
    Ok(serde_json::json!({"file": from_file, "stdin": from_stdin}))
}

fn memory_of(driver: &Path, work: &Path, sizes: Sizes, stdin: bool) -> anyhow::Result<Value> {
    let sizes_run = [sizes.memory_small, sizes.memory_large];
    peak_rss_at(driver, work, "memory", sizes_run, 50, |records, input| {
        let sandbox = Sandbox::start(driver)?;
        let env = work.join("memory-env.json");
        sandbox.env_file(&env)?;
        let state = work.join(format!("memory-{records}.db"));
        fresh(&state)?;
        let input_arg = if stdin {
            "-".to_owned()
        } else {
            input.display().to_string()
        };
        let result = driver_json_from(
            driver,
            &[
                "import",
                &env.display().to_string(),
                &input_arg,
                &state.display().to_string(),
                &sizes.concurrency.to_string(),
                "0",
            ],
            stdin.then_some(input),
        )?;
        let held = sandbox.stop()?;
        anyhow::ensure!(
            held["distinct_auth_names"].as_u64() == Some(records as u64),
            "the memory run did not import every record exactly once: {held}"
        );
        Ok(result)
    })
}

/// The importer's peak RSS (`VmHWM` of the driver process, its `peak_rss_kib`) at a small and
/// a large input: for each size, generates `records` records (`owners` end users, `0`: one
/// per record) to `WORK/NAME-RECORDS.jsonl`, runs `import` on it (which returns the driver's
/// figure) and deletes the file. Reports both peaks and their ratio.
fn peak_rss_at(
    driver: &Path,
    work: &Path,
    name: &str,
    sizes: [usize; 2],
    owners: usize,
    mut import: impl FnMut(usize, &Path) -> anyhow::Result<Value>,
) -> anyhow::Result<Value> {
    let mut peaks = Vec::new();
    for records in sizes {
        let input = work.join(format!("{name}-{records}.jsonl"));
        let owners = if owners == 0 { records } else { owners };
        driver_json(
            driver,
            &[
                "generate",
                &input.display().to_string(),
                &records.to_string(),
                &owners.to_string(),
            ],
        )?;
        let result = import(records, &input)?;
        std::fs::remove_file(&input)?;
        peaks.push((
            records,
            result["peak_rss_kib"].as_u64().unwrap_or(0),
            result["records_per_second"].clone(),
        ));
    }
    let (small, large) = (peaks[0].1 as f64, peaks[1].1 as f64);
    Ok(serde_json::json!({
        "small_records": peaks[0].0, "small_peak_rss_mib": small / 1024.0,
        "large_records": peaks[1].0, "large_peak_rss_mib": large / 1024.0,
        "ratio": large / small.max(1.0),
        "large_records_per_second": peaks[1].2,
    }))
}
