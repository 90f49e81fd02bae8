//! The Apideck client-overhead and peer figures (issue 10, item 5; issue 22): authport's
//! imports/s against a fixed-response Vault (`bench_driver apideck-serve`, its own process)
//! divided by a load generator POSTing the same import request (`wrk`, or `oha` when only it
//! is on the PATH), and by the asyncio + aiohttp importer of `xtask/peer/apideck_import.py`
//! doing the same imports. Same server, same records, same concurrency, rate limit off; the two
//! importers take turns and the figures are medians. Then the importer's peak RSS for a small
//! and a large input against the same server (fresh state each), as the `memory` bench
//! measures it.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::{driver_json, fresh, lua_string, peak_rss_at, wrk};

/// One run's shape.
#[derive(Debug, Clone, Copy)]
pub struct ApideckRun {
    pub records: usize,
    pub concurrency: usize,
    /// How long the load generator fires.
    pub reference_seconds: u32,
    /// Alternating runs of the importer and the peer.
    pub rounds: usize,
    /// The small and the large input of the peak-RSS figure.
    pub rss_records: [usize; 2],
}

pub fn apideck(root: &Path, driver: &Path, work: &Path, run: ApideckRun) -> anyhow::Result<Value> {
    let ApideckRun {
        records,
        concurrency,
        reference_seconds,
        rounds,
        rss_records,
    } = run;
    // One consumer per record: Vault keeps one connection per consumer and service.
    let input = work.join(format!("apideck-{records}.jsonl"));
    let (count, consumers) = (records.to_string(), records.to_string());
    driver_json(
        driver,
        &["generate", &input.display().to_string(), &count, &consumers],
    )?;

    let mut server = Command::new(driver)
        .arg("apideck-serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start the fixed-response server")?;
    let server_stdin = server.stdin.take();
    let mut server_stdout = BufReader::new(server.stdout.take().context("no server stdout")?);
    let mut line = String::new();
    server_stdout.read_line(&mut line)?;
    let hello: Value = serde_json::from_str(&line).context("the server did not say hello")?;
    let base = hello["base_url"]
        .as_str()
        .context("no base url")?
        .to_owned();

    let tool = reference_tool(&std::env::var_os("PATH").unwrap_or_default())?;
    let reference = match tool {
        Tool::Wrk => wrk_reference(&hello, &base, work, concurrency, reference_seconds)?,
        Tool::Oha => oha_reference(&hello, &base, concurrency, reference_seconds)?,
    };

    // The importer and the peer take turns, `rounds` times: a single run on a small shared
    // machine (a virtual disk whose sync latency varies) moves by a fifth, so the figures are
    // medians, with every run kept.
    let state = work.join("apideck-state.db");
    // One authport run on a fresh state. A rate only counts when every record was imported,
    // as the peer's must be.
    let import = |input: &Path, records: usize| -> anyhow::Result<Value> {
        fresh(&state)?;
        let figure = driver_json(
            driver,
            &[
                "apideck-import",
                &base,
                &input.display().to_string(),
                &state.display().to_string(),
                &concurrency.to_string(),
            ],
        )?;
        let imported = figure["summary"]["counts"]["imported"].as_u64();
        if imported != Some(records as u64) {
            bail!("authport imported {imported:?} of {records} records: {figure}");
        }
        Ok(figure)
    };
    let (mut ours, mut peers) = (Vec::new(), Vec::new());
    let mut last = Value::Null;
    for _ in 0..rounds {
        last = import(&input, records)?;
        ours.push(last["records_per_second"].as_f64().unwrap_or(0.0));
        let peer = peer(root, &base, &input, concurrency)?;
        if peer["failed"].as_u64() != Some(0) {
            bail!("the peer importer failed records: {peer}");
        }
        peers.push(peer["records_per_second"].as_f64().unwrap_or(0.0));
    }

    // Peak RSS: the same server, a fresh state for each size, one consumer per record.
    let rss = peak_rss_at(
        driver,
        work,
        "apideck-rss",
        rss_records,
        0,
        |records, input| import(input, records),
    )?;

    drop(server_stdin);
    line.clear();
    server_stdout.read_line(&mut line)?;
    server.wait()?;
    let requests: Value = serde_json::from_str(&line).unwrap_or(Value::Null);

    let (ours_rate, peer_rate) = (median(&ours), median(&peers));
    Ok(json!({
        "records": records,
        "concurrency": concurrency,
        "rounds": rounds,
        "authport_records_per_second": ours_rate,
        "authport_runs": ours,
        "authport_exit_code": last["summary"]["exit_code"],
        "authport_bounded_by": last["summary"]["bounded_by"],
        "reference_tool": tool.name(),
        "reference_requests_per_second": reference,
        "overhead_ratio": ours_rate / reference.max(f64::MIN_POSITIVE),
        "peer_records_per_second": peer_rate,
        "peer_runs": peers,
        "peer_ratio": ours_rate / peer_rate.max(f64::MIN_POSITIVE),
        "server_requests": requests,
        "peak_rss": rss,
    }))
}

/// The load generator that sets the reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Wrk,
    Oha,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Wrk => "wrk",
            Tool::Oha => "oha",
        }
    }
}

/// `wrk` when it is on `path` (the figures so far were taken with it), else `oha`.
fn reference_tool(path: &std::ffi::OsStr) -> anyhow::Result<Tool> {
    let on_path = |name: &str| std::env::split_paths(path).any(|dir| dir.join(name).is_file());
    if on_path("wrk") {
        Ok(Tool::Wrk)
    } else if on_path("oha") {
        Ok(Tool::Oha)
    } else {
        bail!("neither wrk nor oha is on the PATH (apt-get install wrk, or cargo install oha)")
    }
}

/// `wrk` POSTing the request the server's hello describes; its requests/second.
fn wrk_reference(
    hello: &Value,
    base: &str,
    work: &Path,
    concurrency: usize,
    seconds: u32,
) -> anyhow::Result<f64> {
    let script = work.join("apideck-reference.lua");
    let mut lua = std::fs::File::create(&script)?;
    writeln!(lua, "wrk.method = \"POST\"")?;
    for (name, value) in reference_headers(hello)? {
        writeln!(
            lua,
            "wrk.headers[{}] = {}",
            lua_string(name),
            lua_string(value)
        )?;
    }
    writeln!(
        lua,
        "wrk.body = {}",
        lua_string(&hello["reference_body"].to_string())
    )?;
    drop(lua);
    wrk(&reference_url(hello, base)?, &script, concurrency, seconds)
}

/// `oha` POSTing the request the server's hello describes; its requests/second.
fn oha_reference(
    hello: &Value,
    base: &str,
    concurrency: usize,
    seconds: u32,
) -> anyhow::Result<f64> {
    let url = reference_url(hello, base)?;
    eprintln!("bench: oha --no-tui -j -z {seconds}s -c {concurrency} -m POST {url}");
    let mut command = Command::new("oha");
    command.args([
        "--no-tui",
        "-j",
        "-z",
        &format!("{seconds}s"),
        "-c",
        &concurrency.to_string(),
        "-m",
        "POST",
    ]);
    for (name, value) in reference_headers(hello)? {
        command.arg("-H").arg(format!("{name}: {value}"));
    }
    let output = command
        .arg("-d")
        .arg(hello["reference_body"].to_string())
        .arg(&url)
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run oha")?;
    if !output.status.success() {
        bail!("oha failed ({})", output.status);
    }
    oha_requests_per_second(
        &serde_json::from_slice(&output.stdout).context("oha -j printed no JSON")?,
    )
}

/// Requests/second from `oha -j`'s output; an error when any answer was not a 2xx (the
/// reference request is wrong), as with wrk's `Non-2xx`.
fn oha_requests_per_second(output: &Value) -> anyhow::Result<f64> {
    let statuses = output["statusCodeDistribution"]
        .as_object()
        .context("no statusCodeDistribution in oha's output")?;
    if statuses.is_empty() || statuses.keys().any(|status| !status.starts_with('2')) {
        bail!("oha got error answers; the reference request is wrong: {statuses:?}");
    }
    output["summary"]["requestsPerSec"]
        .as_f64()
        .context("no summary.requestsPerSec in oha's output")
}

fn reference_headers(hello: &Value) -> anyhow::Result<Vec<(&str, &str)>> {
    Ok(hello["reference_headers"]
        .as_object()
        .context("no reference headers")?
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str().unwrap_or_default()))
        .collect())
}

fn reference_url(hello: &Value, base: &str) -> anyhow::Result<String> {
    let path = hello["reference_path"]
        .as_str()
        .context("no reference path")?;
    Ok(format!("{base}{path}"))
}

/// The middle value (the mean of the two middle ones for an even count); 0 for none.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The aiohttp importer; installs aiohttp with pip first when it is missing.
fn peer(root: &Path, base: &str, input: &Path, concurrency: usize) -> anyhow::Result<Value> {
    let have = Command::new("python3")
        .args(["-c", "import aiohttp"])
        .stderr(Stdio::null())
        .status()
        .context("cannot run python3")?;
    if !have.success() {
        eprintln!("bench: pip install aiohttp");
        let installed = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "aiohttp"])
            .status()?;
        if !installed.success() {
            bail!("cannot install aiohttp for the peer importer");
        }
    }
    let script = root.join("xtask").join("peer").join("apideck_import.py");
    eprintln!(
        "bench: python3 {} {base} ... {concurrency}",
        script.display()
    );
    let output = Command::new("python3")
        .arg(&script)
        .arg(base)
        .arg(input)
        .arg(concurrency.to_string())
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run the peer importer")?;
    if !output.status.success() {
        bail!("the peer importer failed");
    }
    let text = String::from_utf8(output.stdout)?;
    Ok(serde_json::from_str(
        text.lines().last().context("the peer printed nothing")?,
    )?)
}

#[cfg(test)]
mod tests {
    use super::{Tool, median, oha_requests_per_second, reference_tool};
    use serde_json::json;

    #[test]
    fn wrk_sets_the_reference_and_oha_does_when_wrk_is_missing() {
        let dir = std::env::temp_dir().join(format!("xtask-tools-{}", std::process::id()));
        let (both, oha_only, none) = (dir.join("both"), dir.join("oha"), dir.join("none"));
        for (folder, tools) in [
            (&both, &["wrk", "oha"][..]),
            (&oha_only, &["oha"][..]),
            (&none, &[][..]),
        ] {
            std::fs::create_dir_all(folder).unwrap();
            for tool in tools {
                std::fs::write(folder.join(tool), "").unwrap();
            }
        }
        let path = |dirs: &[&std::path::PathBuf]| std::env::join_paths(dirs).unwrap();
        assert_eq!(reference_tool(&path(&[&both])).unwrap(), Tool::Wrk);
        assert_eq!(
            reference_tool(&path(&[&none, &oha_only])).unwrap(),
            Tool::Oha
        );
        let error = reference_tool(&path(&[&none])).unwrap_err().to_string();
        assert!(error.contains("wrk") && error.contains("oha"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ohas_rate_counts_only_when_every_answer_was_a_success() {
        let output = |statuses| json!({"summary": {"requestsPerSec": 81234.5}, "statusCodeDistribution": statuses});
        let rate = oha_requests_per_second(&output(json!({"200": 812345}))).unwrap();
        assert_eq!(rate, 81234.5);
        for bad in [json!({"200": 10, "404": 1}), json!({})] {
            assert!(oha_requests_per_second(&output(bad)).is_err());
        }
    }

    #[test]
    fn the_median_is_the_middle_value_or_the_mean_of_the_middle_two() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
