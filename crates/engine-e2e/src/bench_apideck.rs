//! The Apideck client-overhead bench (issue 10, item 5): a fixed-response HTTP server that
//! answers Vault's import, consumer-list and connection calls with static bodies, and an
//! Apideck import against it. The server is deliberately minimal (HTTP/1.1 keep-alive over
//! tokio, no framework) so that the load generator, not the server, sets the reference.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use authport_core::AuthImporter;
use authport_engine::{ImportOptions, RunGate, StateStore};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

const CONNECTION: &str = r#"{"status_code":200,"status":"OK","data":{"id":"crm+hubspot","service_id":"hubspot","unified_api":"crm","name":"HubSpot","state":"callable","integration_state":"configured","auth_type":"oauth2","enabled":true}}"#;
/// The application's connectors (`GET /vault/connections?api=crm`), which discovery reads
/// when the per-connection read answers 404.
const CONNECTIONS: &str = r#"{"status_code":200,"status":"OK","data":[{"id":"crm+hubspot","service_id":"hubspot","unified_api":"crm","name":"HubSpot","state":"available","integration_state":"configured","auth_type":"oauth2","enabled":true}]}"#;
const CONSUMERS: &str =
    r#"{"status_code":200,"status":"OK","data":[],"meta":{"cursors":{"next":null}}}"#;
const NOT_FOUND: &str = r#"{"status_code":404,"error":"Not Found","message":"no route"}"#;
const API_KEY: &str = "bench-apideck-key";
const APP_ID: &str = "bench-app";

/// Requests answered, by kind: what the import cost in requests.
#[derive(Default)]
pub struct Counts {
    imports: AtomicU64,
    consumer_lists: AtomicU64,
    connection_reads: AtomicU64,
    other: AtomicU64,
}

impl Counts {
    pub fn to_json(&self) -> Value {
        json!({
            "imports": self.imports.load(Ordering::Relaxed),
            "consumer_lists": self.consumer_lists.load(Ordering::Relaxed),
            "connection_reads": self.connection_reads.load(Ordering::Relaxed),
            "other": self.other.load(Ordering::Relaxed),
        })
    }
}

/// Binds loopback and serves until the process ends; returns the base URL.
pub async fn start_fixed(counts: Arc<Counts>) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve_connection(stream, counts.clone()));
        }
    });
    Ok(base)
}

async fn serve_connection(mut stream: TcpStream, counts: Arc<Counts>) {
    let mut buffer: Vec<u8> = Vec::with_capacity(8192);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 16384];
    loop {
        // Answer every complete request in the buffer (pipelined ones too), then read more.
        while let Some((length, body)) = next_request(&buffer, &counts) {
            write_response(&mut out, body);
            buffer.drain(..length);
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The length of the first complete request in `buffer` and the answer for it.
fn next_request(buffer: &[u8], counts: &Counts) -> Option<(usize, (u16, &'static str))> {
    let head_end = buffer.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buffer[..head_end]).ok()?;
    let content_length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    if buffer.len() < head_end + content_length {
        return None;
    }
    let mut words = head.split_whitespace();
    let method = words.next().unwrap_or("");
    let path = words.next().unwrap_or("");
    let answer = route(method, path, counts);
    Some((head_end + content_length, answer))
}

fn route(method: &str, path: &str, counts: &Counts) -> (u16, &'static str) {
    let path = path.split('?').next().unwrap_or("");
    let (counter, answer) = match (method, path) {
        ("POST", p) if p.starts_with("/vault/connections/") && p.ends_with("/import") => {
            (&counts.imports, (200, CONNECTION))
        }
        ("GET", "/vault/consumers") => (&counts.consumer_lists, (200, CONSUMERS)),
        // The bench's consumers are fresh: a read (a false "seen" of the importer's filter of
        // pairs sent unchecked) finds no connection, as Vault would answer.
        ("GET", p) if p.starts_with("/vault/connections/") => {
            (&counts.connection_reads, (404, NOT_FOUND))
        }
        ("GET", "/vault/connections") => (&counts.connection_reads, (200, CONNECTIONS)),
        _ => (&counts.other, (404, NOT_FOUND)),
    };
    counter.fetch_add(1, Ordering::Relaxed);
    answer
}

fn write_response(out: &mut Vec<u8>, (status, body): (u16, &str)) {
    let reason = if status == 200 { "OK" } else { "Not Found" };
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body.as_bytes());
}

fn env(base: &str) -> Vec<(String, String)> {
    vec![
        ("APIDECK_API_KEY".into(), API_KEY.into()),
        ("APIDECK_APP_ID".into(), APP_ID.into()),
        ("APIDECK_API_URL".into(), base.into()),
    ]
}

fn build_apideck(
    base: &str,
    state: &StateStore,
    gate: &Arc<RunGate>,
) -> anyhow::Result<Arc<dyn AuthImporter>> {
    let importer = super::bench_context(env(base), state, gate.clone())
        .try_provider("apideck")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Arc::from(importer))
}

/// `apideck-serve`: the fixed server in its own process. Says hello (base URL, the reference
/// request: path, headers, the body authport sends for record 0), then serves until stdin
/// closes and prints the request counts.
pub async fn serve(sample_record: Value) -> anyhow::Result<Value> {
    let counts = Arc::new(Counts::default());
    let base = start_fixed(counts.clone()).await?;
    let state = StateStore::temporary()?;
    let importer = build_apideck(&base, &state, &RunGate::new())?;
    let (record, mapped) =
        super::reference_mapping(importer.as_ref(), sample_record, "apideck").await?;
    let hello = json!({
        "base_url": base,
        "reference_path": "/vault/connections/crm/hubspot/import",
        "reference_headers": {
            "Authorization": format!("Bearer {API_KEY}"),
            "x-apideck-app-id": APP_ID,
            "x-apideck-consumer-id": record.owner.id,
            "Content-Type": "application/json",
        },
        "reference_body": mapped.body.expose(),
    });
    super::say_hello_and_serve(&hello).await?;
    Ok(counts.to_json())
}

/// `apideck-import BASE INPUT STATE CONCURRENCY`: the import against the fixed server, rate
/// limit off (`--rate 0`), the defaults otherwise (bulk pre-check on).
pub async fn import(
    base: &str,
    input: &Path,
    state: &Path,
    concurrency: usize,
) -> anyhow::Result<Value> {
    let state = StateStore::open(state)?;
    let gate = RunGate::new();
    let importer = build_apideck(base, &state, &gate)?;
    let limits = authport_core::find_provider("apideck")
        .map(|plugin| plugin.limits)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut options = ImportOptions::new("apideck", limits, input);
    options.gate = gate;
    options.concurrency = Some(concurrency);
    options.rate = authport_engine::RateChoice::Unlimited;
    let started = Instant::now();
    let summary =
        authport_engine::import(importer, &state, &options, std::future::pending()).await?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(json!({
        "summary": summary.to_json(),
        "seconds": seconds,
        "records_per_second": summary.total() as f64 / seconds,
        "peak_rss_kib": super::peak_rss_kib(),
    }))
}
