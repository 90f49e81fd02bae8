//! The Apideck client-overhead and peer figures (issue 10, item 5): authport's imports/s
//! against a fixed-response Vault (`bench_driver apideck-serve`, its own process) divided by
//! `wrk` POSTing the same import request, and by the asyncio + aiohttp importer of
//! `xtask/peer/apideck_import.py` doing the same imports. Same server, same records, same
//! concurrency, rate limit off; the two importers take turns and the figures are medians.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::{driver_json, fresh, lua_string, wrk};

pub fn apideck(
    root: &Path,
    driver: &Path,
    work: &Path,
    records: usize,
    concurrency: usize,
    wrk_seconds: u32,
    rounds: usize,
) -> anyhow::Result<Value> {
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

    let script = work.join("apideck-reference.lua");
    let mut lua = std::fs::File::create(&script)?;
    writeln!(lua, "wrk.method = \"POST\"")?;
    for (name, value) in hello["reference_headers"]
        .as_object()
        .context("no reference headers")?
    {
        let value = value.as_str().unwrap_or_default();
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
    let path = hello["reference_path"]
        .as_str()
        .context("no reference path")?;
    let reference = wrk(&format!("{base}{path}"), &script, concurrency, wrk_seconds)?;

    // The importer and the peer take turns, `rounds` times: a single run on a small shared
    // machine (a virtual disk whose sync latency varies) moves by a fifth, so the figures are
    // medians, with every run kept.
    let state = work.join("apideck-state.db");
    let (mut ours, mut peers) = (Vec::new(), Vec::new());
    let mut last = Value::Null;
    for _ in 0..rounds {
        fresh(&state)?;
        last = driver_json(
            driver,
            &[
                "apideck-import",
                &base,
                &input.display().to_string(),
                &state.display().to_string(),
                &concurrency.to_string(),
            ],
        )?;
        // A rate only counts when every record was imported, as the peer's must be.
        let imported = last["summary"]["counts"]["imported"].as_u64();
        if imported != Some(records as u64) {
            bail!("authport imported {imported:?} of {records} records: {last}");
        }
        ours.push(last["records_per_second"].as_f64().unwrap_or(0.0));
        let peer = peer(root, &base, &input, concurrency)?;
        if peer["failed"].as_u64() != Some(0) {
            bail!("the peer importer failed records: {peer}");
        }
        peers.push(peer["records_per_second"].as_f64().unwrap_or(0.0));
    }

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
        "wrk_requests_per_second": reference,
        "overhead_ratio": ours_rate / reference.max(f64::MIN_POSITIVE),
        "peer_records_per_second": peer_rate,
        "peer_runs": peers,
        "peer_ratio": ours_rate / peer_rate.max(f64::MIN_POSITIVE),
        "server_requests": requests,
    }))
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
    use super::median;

    #[test]
    fn the_median_is_the_middle_value_or_the_mean_of_the_middle_two() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
