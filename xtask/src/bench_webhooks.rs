//! The `webhooks` bench case: signed Apideck deliveries per second into `authport webhooks`,
//! while an import runs on the same state, with zero lost or double-stored events.
//!
//! Everything runs as the shipped binary: `authport sandbox` (Vault emulator), a first import
//! that makes the connections the deliveries are about, the receiver, and a second, larger
//! import started with the load. The load is plain HTTP/1.1 keep-alive from a few threads; each
//! delivery is a distinct signed event dated now (the receiver refuses events older than 7 days),
//! and every tenth repeats the previous one under a fresh idempotency key (a replay of its signed
//! event id, to be answered `duplicate`). Signatures come from `openssl dgst -hmac` over the
//! bodies, which are written already in Apideck's signed form (keys sorted, compact), so raw and
//! sorted forms agree. The store is counted afterwards with the `sqlite3` shell.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::bench_support::{build_authport, start_sandbox};

/// Connections the deliveries are about (made by the first import).
const OWNED: usize = 100;
/// Sending threads, one keep-alive connection each.
const THREADS: usize = 8;

pub fn webhooks(root: &Path, debug: bool, work: &Path, deliveries: usize) -> anyhow::Result<Value> {
    let binary = build_authport(root, debug)?;
    let dir = work.join("webhooks");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let (mut sandbox, env) = start_sandbox(
        &binary,
        &["APIDECK_API_KEY", "APIDECK_APP_ID", "APIDECK_API_URL"],
    )?;
    let outcome = measure(&binary, &dir, &env, deliveries);
    let _ = sandbox.kill();
    let _ = sandbox.wait();
    outcome
}

fn measure(
    binary: &Path,
    dir: &Path,
    env: &[(String, String)],
    deliveries: usize,
) -> anyhow::Result<Value> {
    let api_key = env
        .iter()
        .find(|(k, _)| k == "APIDECK_API_KEY")
        .map(|(_, v)| v.clone())
        .context("the sandbox gave no APIDECK_API_KEY")?;
    let owned = dir.join("owned.jsonl");
    write_records(&owned, "owned", OWNED)?;
    let more = dir.join("more.jsonl");
    write_records(&more, "more", deliveries.max(2_000) / 2)?;
    let import = |input: &Path| {
        let mut command = Command::new(binary);
        command
            .current_dir(dir)
            .args([
                "-q",
                "import",
                "--provider",
                "apideck",
                "--state",
                "state.db",
            ])
            .arg("--input")
            .arg(input)
            .arg("--report")
            .arg(dir.join(format!(
                "report-{}",
                input.file_name().unwrap().to_string_lossy()
            )))
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        command
    };
    if !import(&owned).status()?.success() {
        bail!("the first import failed");
    }

    let mut receiver = Command::new(binary)
        .current_dir(dir)
        .args([
            "webhooks",
            "--provider",
            "apideck",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--state", "state.db"])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start authport webhooks")?;
    let mut line = String::new();
    BufReader::new(receiver.stdout.take().context("no stdout")?).read_line(&mut line)?;
    let address = line
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|url| url.strip_prefix("http://"))
        .map(|a| a.trim_end_matches('/').to_owned())
        .context("the receiver printed no address")?;

    let bodies = signed_bodies(dir, &api_key, deliveries.div_ceil(THREADS) * THREADS)?;
    let mut import_run = import(&more)
        .spawn()
        .context("cannot start the second import")?;
    let started = Instant::now();
    let counts = load(&address, &bodies, deliveries)?;
    let seconds = started.elapsed().as_secs_f64();
    let import_still_running = import_run.try_wait()?.is_none();
    let import_ok = import_run.wait()?.success();

    stop(&mut receiver)?;
    let mut log = String::new();
    if let Some(mut stderr) = receiver.stderr.take() {
        stderr.read_to_string(&mut log)?;
    }
    let stored_in_store = sqlite_count(&dir.join("state.db.events"))?;
    let unique = counts.sent - counts.replays;
    Ok(json!({
        "deliveries": counts.sent,
        "per_second": (counts.sent as f64 / seconds).round(),
        "stored_answers": counts.stored,
        "duplicate_answers": counts.duplicate,
        "other_answers": counts.other,
        "unique_keys": unique,
        "stored_in_store": stored_in_store,
        "lost": unique.saturating_sub(stored_in_store),
        "double_stored": stored_in_store.saturating_sub(unique),
        "import_ran_throughout": import_still_running,
        "import_ok": import_ok,
        "receiver_summary": log.lines().last().unwrap_or_default(),
    }))
}

fn write_records(path: &Path, prefix: &str, count: usize) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 0..count {
        let record = json!({"id": format!("{prefix}-{i}/hubspot"), "owner": {"id": format!("{prefix}-{i}")},
            "service": "hubspot", "auth": {"type": "oauth2", "access_token": format!("bench-access-{i}"),
                "refresh_token": format!("bench-refresh-{i}")},
            "targets": {"apideck": {"unified_api": "crm", "service_id": "hubspot"}}});
        writeln!(out, "{record}")?;
    }
    Ok(())
}

/// `count` bodies, each a distinct event (`bench-{n}`, about owned connection `n % OWNED`,
/// dated now), in signed form, with their hex signatures.
fn signed_bodies(dir: &Path, api_key: &str, count: usize) -> anyhow::Result<Vec<(String, String)>> {
    let now = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S.000Z"])
        .output()
        .context("cannot run date")?;
    let occurred_at = String::from_utf8(now.stdout)?.trim().to_owned();
    let bodies_dir = dir.join("bodies");
    std::fs::create_dir_all(&bodies_dir)?;
    let bodies: Vec<String> = (0..count)
        .map(|n| {
            // serde_json's map is sorted and `to_string` compact: Apideck's signed form.
            json!({"payload": {"event_id": format!("bench-{n}"),
                "event_type": "vault.connection.token_refresh.failed", "service_id": "apideck-vault",
                "entity_id": "crm+hubspot", "entity_type": "Connection", "execution_attempt": 1,
                "occurred_at": occurred_at,
                "entity": {"id": "crm+hubspot", "consumer_id": format!("owned-{}", n % OWNED),
                    "unified_api": "crm", "service_id": "hubspot", "state": "callable",
                    "health": "pending_refresh", "last_refresh_failed_at": occurred_at}}})
            .to_string()
        })
        .collect();
    let mut signatures = Vec::with_capacity(count);
    // One openssl run per chunk of files (its output: one `digest *file` line per file, in order).
    for chunk in (0..count).collect::<Vec<_>>().chunks(500) {
        let files: Vec<std::path::PathBuf> = chunk
            .iter()
            .map(|n| {
                let file = bodies_dir.join(format!("{n}.json"));
                std::fs::write(&file, &bodies[*n]).map(|()| file)
            })
            .collect::<Result<_, _>>()?;
        let output = Command::new("openssl")
            .args(["dgst", "-sha256", "-r", "-hmac", api_key])
            .args(&files)
            .output()
            .context("cannot run openssl")?;
        let text = String::from_utf8(output.stdout)?;
        let digests: Vec<String> = text
            .lines()
            .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
            .collect();
        if digests.len() != chunk.len() {
            bail!(
                "openssl gave {} digests for {} bodies",
                digests.len(),
                chunk.len()
            );
        }
        signatures.extend(digests);
    }
    Ok(bodies.into_iter().zip(signatures).collect())
}

#[derive(Debug, Default)]
struct Counts {
    sent: usize,
    replays: usize,
    stored: usize,
    duplicate: usize,
    other: usize,
}

/// Sends `total` deliveries from [`THREADS`] keep-alive connections and tallies the answers.
fn load(address: &str, bodies: &[(String, String)], total: usize) -> anyhow::Result<Counts> {
    let per_thread = total.div_ceil(THREADS);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| scope.spawn(move || sender(address, bodies, t, per_thread)))
            .collect();
        let mut counts = Counts::default();
        for handle in handles {
            let part = handle
                .join()
                .map_err(|_| anyhow::anyhow!("a sender panicked"))??;
            counts.sent += part.sent;
            counts.replays += part.replays;
            counts.stored += part.stored;
            counts.duplicate += part.duplicate;
            counts.other += part.other;
        }
        Ok(counts)
    })
}

fn sender(
    address: &str,
    bodies: &[(String, String)],
    thread: usize,
    count: usize,
) -> anyhow::Result<Counts> {
    let stream = TcpStream::connect(address)?;
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut counts = Counts::default();
    let mut event = 0;
    for i in 0..count {
        let replay = i % 10 == 9;
        if !replay {
            event = thread * count + i;
        }
        let key = format!("bench-{thread}-{i}");
        let (body, signature) = &bodies[event % bodies.len()];
        write!(
            writer,
            "POST / HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
             x-apideck-event-type: vault.connection.token_refresh.failed\r\n\
             x-apideck-signature: {signature}\r\nx-apideck-idempotency-key: {key}\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let (status, answer) = read_response(&mut reader)?;
        counts.sent += 1;
        counts.replays += usize::from(replay);
        match (
            status,
            answer.contains("\"stored\""),
            answer.contains("\"duplicate\""),
        ) {
            (200, true, _) => counts.stored += 1,
            (200, _, true) => counts.duplicate += 1,
            _ => counts.other += 1,
        }
    }
    Ok(counts)
}

fn read_response(reader: &mut BufReader<TcpStream>) -> anyhow::Result<(u16, String)> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status")?;
    let mut length = 0;
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn stop(receiver: &mut Child) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args(["-TERM", &receiver.id().to_string()])
        .status()?;
    if !status.success() {
        bail!("cannot signal the receiver");
    }
    receiver.wait()?;
    Ok(())
}

fn sqlite_count(path: &Path) -> anyhow::Result<usize> {
    let output = Command::new("sqlite3")
        .arg(path)
        .arg("SELECT COUNT(*) FROM events WHERE event_id LIKE 'bench-%';")
        .output()
        .context("cannot run sqlite3")?;
    Ok(String::from_utf8(output.stdout)?.trim().parse()?)
}
