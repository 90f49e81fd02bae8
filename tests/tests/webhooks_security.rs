//! End to end, issue 17 items 3, 4 and 15: `authport webhooks` applies events by when they
//! happened and trusts only what is signed; one client cannot hold it down, and a signal stops
//! it; it refuses to listen in public without a flag and to run on a state that is not a
//! migration's.

use crate::common;
use crate::webhooks::{Receiver, record};

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use authport_engine::EventStore;
use authport_sandbox::apideck::webhooks::sign;
use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

const FAILED: &str = "vault.connection.token_refresh.failed";
const RECOVERED: &str = "vault.connection.token_refresh.recovered";

/// A client-side safety net only: a server that never closes fails the test instead of hanging.
const SAFETY: Duration = Duration::from_secs(30);

/// `minutes` ago, as Apideck writes `occurred_at`.
fn ago(minutes: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::minutes(minutes))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A signed-to-be body about `owner`'s HubSpot connection.
fn event(owner: &str, event_id: &str, event_type: &str, occurred_at: &str) -> Value {
    let health = if event_type == FAILED {
        "pending_refresh"
    } else {
        "ok"
    };
    json!({"payload": {"event_id": event_id, "event_type": event_type,
        "service_id": "apideck-vault", "entity_id": "crm+hubspot", "entity_type": "Connection",
        "execution_attempt": 1, "occurred_at": occurred_at,
        "entity": {"id": "crm+hubspot", "consumer_id": owner, "unified_api": "crm",
            "service_id": "hubspot", "auth_type": "oauth2", "enabled": true, "state": "callable",
            "health": health}}})
}

/// POSTs `body` signed with `api_key`, with extra headers (a fresh idempotency key unless one
/// is given, as Apideck sends one). Returns status and JSON answer.
async fn deliver(url: &str, api_key: &str, body: &Value, headers: &[(&str, &str)]) -> (u16, Value) {
    static DELIVERIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("x-apideck-signature", sign(api_key, body))
        .body(serde_json::to_vec(body).unwrap());
    if !headers
        .iter()
        .any(|(name, _)| *name == "x-apideck-idempotency-key")
    {
        let n = DELIVERIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        request = request.header("x-apideck-idempotency-key", format!("delivery-{n}"));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let answer = request.send().await.expect("the receiver answers");
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

fn api_key(env: &[(String, String)]) -> String {
    env.iter()
        .find(|(k, _)| k == "APIDECK_API_KEY")
        .map(|(_, v)| v.clone())
        .unwrap()
}

/// Imports `owners` into the sandbox with `dir/state.db` (the receiver needs the state).
async fn imported(sandbox: &Sandbox, dir: &Path, owners: &[&str]) -> tempfile::TempDir {
    let inputs = scratch();
    let lines: Vec<String> = owners.iter().map(|o| record(o)).collect();
    let input = write_lines(inputs.path(), "in.jsonl", &lines);
    let run = import_with_state("apideck", &sandbox.provider_env(), dir, &input, &[]).await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    inputs
}

async fn status_of(dir: &Path, env: &[(String, String)]) -> (i32, Vec<Value>) {
    let status = authport(
        dir,
        &[
            "status",
            "--provider",
            "apideck",
            "--state",
            "state.db",
            "--format",
            "json",
        ],
        env,
    )
    .await;
    (status.code, parse_lines(&status.stdout))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_apply_by_when_they_happened_and_only_signed_words_count() {
    let sandbox = sandbox().await;
    let env = sandbox.provider_env();
    let key = api_key(&env);
    let dir = scratch();
    let _inputs = imported(&sandbox, dir.path(), &["o1"]).await;
    let receiver = Receiver::start(dir.path(), &env).await;
    let url = receiver.url.clone();

    // A `failed` retried after the `recovered` that followed it: kept in history, not applied.
    let recovered = event("o1", "e-recovered", RECOVERED, &ago(1));
    assert_eq!(deliver(&url, &key, &recovered, &[]).await.0, 200);
    let late_failure = event("o1", "e-failed-early", FAILED, &ago(10));
    assert_eq!(
        deliver(&url, &key, &late_failure, &[]).await,
        (200, json!({"status": "stored"}))
    );
    let store = EventStore::open(&dir.path().join("state.db")).unwrap();
    let latest = store.latest("apideck", "o1/hubspot").unwrap().unwrap();
    assert_eq!(latest.kind, RECOVERED, "{latest:?}");
    assert_eq!(latest.events, 2, "both are in the history");

    // The same signed body under a fresh idempotency key is a duplicate.
    for idempotency_key in ["k-1", "k-2"] {
        let answer = deliver(
            &url,
            &key,
            &late_failure,
            &[("x-apideck-idempotency-key", idempotency_key)],
        )
        .await;
        assert_eq!(
            answer,
            (200, json!({"status": "duplicate"})),
            "{idempotency_key}"
        );
    }

    // The event type comes from the signed body only: an unsigned header adds nothing.
    let mut untyped = event("o1", "e-untyped", RECOVERED, &ago(0));
    untyped["payload"]
        .as_object_mut()
        .unwrap()
        .remove("event_type");
    let header = [("x-apideck-event-type", "vault.connection.deleted")];
    assert_eq!(deliver(&url, &key, &untyped, &header).await.0, 400);

    // Too old (the window is 7 days), undated or badly dated: refused.
    let ancient = event("o1", "e-ancient", FAILED, &ago(8 * 24 * 60));
    assert_eq!(deliver(&url, &key, &ancient, &[]).await.0, 400);
    let mut undated = event("o1", "e-undated", FAILED, &ago(0));
    undated["payload"]
        .as_object_mut()
        .unwrap()
        .remove("occurred_at");
    assert_eq!(deliver(&url, &key, &undated, &[]).await.0, 400);
    let misdated = event("o1", "e-misdated", FAILED, "yesterday");
    assert_eq!(deliver(&url, &key, &misdated, &[]).await.0, 400);

    let latest = store.latest("apideck", "o1/hubspot").unwrap().unwrap();
    assert_eq!((latest.kind.as_str(), latest.events), (RECOVERED, 2));
    let (code, lines) = status_of(dir.path(), &env).await;
    assert_eq!(code, 0, "{lines:?}");
    assert_eq!(lines[0]["status"], "healthy", "{lines:?}");

    // The newest event is a failure, but the live read-back after it says healthy: healthy.
    let failure = event("o1", "e-failed-now", FAILED, &ago(0));
    assert_eq!(deliver(&url, &key, &failure, &[]).await.0, 200);
    assert_eq!(
        store.latest("apideck", "o1/hubspot").unwrap().unwrap().kind,
        FAILED
    );
    let (code, lines) = status_of(dir.path(), &env).await;
    assert_eq!(code, 0, "{lines:?}");
    assert_eq!(lines[0]["status"], "healthy", "{lines:?}");

    drop(store);
    let (code, log) = receiver.stop().await;
    assert_eq!(code, 0, "{log}");
    assert_no_canary("receiver log", &log);
}

/// [`authport`] for a run that must end by itself: one that would serve forever fails the test.
async fn bounded(dir: &Path, args: &[&str], env: &[(String, String)]) -> Output {
    tokio::time::timeout(SAFETY, authport(dir, args, env))
        .await
        .unwrap_or_else(|_| panic!("`authport {}` did not exit", args.join(" ")))
}

/// `authport webhooks` whose stderr is read line by line, so a test can wait for what it logs.
struct Watched {
    child: Child,
    address: String,
    log: tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
    seen: Vec<String>,
}

impl Watched {
    async fn start(dir: &Path, env: &[(String, String)], extra: &[&str]) -> Watched {
        let mut command = authport_command();
        command
            .current_dir(dir)
            .args([
                "-vv",
                "webhooks",
                "--provider",
                "apideck",
                "--state",
                "state.db",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if !extra.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        let mut child = command.spawn().expect("start authport webhooks");
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let log = BufReader::new(child.stderr.take().unwrap()).lines();
        let line = stdout
            .next_line()
            .await
            .unwrap()
            .expect("the receiver prints its address");
        let address = line
            .rsplit("http://")
            .next()
            .unwrap()
            .trim_end_matches('/')
            .to_owned();
        Watched {
            child,
            address,
            log,
            seen: Vec::new(),
        }
    }

    /// Reads the log until a line contains `text` (the receiver did that).
    async fn wait_for(&mut self, text: &str) {
        let found = tokio::time::timeout(SAFETY, async {
            while let Some(line) = self.log.next_line().await.unwrap() {
                let hit = line.contains(text);
                self.seen.push(line);
                if hit {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(found, Ok(true), "no `{text}` in the log: {:#?}", self.seen);
    }

    fn signal(&self, name: &str) {
        signal(&self.child, name);
    }

    /// Waits for the process to end (the safety timeout only fails a test that would hang).
    async fn exit_code(mut self) -> (i32, String) {
        let rest = tokio::time::timeout(SAFETY, async {
            while let Some(line) = self.log.next_line().await.unwrap() {
                self.seen.push(line);
            }
            self.child.wait().await.unwrap()
        })
        .await;
        let log = self.seen.join("\n");
        let status = rest.unwrap_or_else(|_| panic!("the receiver did not exit: {log}"));
        (status.code().unwrap_or(-1), log)
    }
}

/// Connects with a blocking socket whose reads give up after [`SAFETY`].
fn connect(address: &str) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(SAFETY)).unwrap();
    stream
}

/// Reads until the server closes the connection; panics when it never does.
async fn read_until_closed(mut stream: std::net::TcpStream) -> String {
    tokio::task::spawn_blocking(move || {
        let mut answer = Vec::new();
        match stream.read_to_end(&mut answer) {
            Ok(_) => String::from_utf8_lossy(&answer).into_owned(),
            Err(error) => panic!(
                "the server kept the connection open ({error}); read so far: {:?}",
                String::from_utf8_lossy(&answer)
            ),
        }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_in_its_header_or_body_is_cut_off() {
    let sandbox = sandbox().await;
    let dir = scratch();
    let _inputs = imported(&sandbox, dir.path(), &["o1"]).await;
    let receiver = Watched::start(
        dir.path(),
        &sandbox.provider_env(),
        &[
            "--header-read-timeout-ms",
            "200",
            "--body-deadline-ms",
            "200",
        ],
    )
    .await;

    let mut half_header = connect(&receiver.address);
    half_header
        .write_all(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Ty")
        .unwrap();
    read_until_closed(half_header).await;

    let mut half_body = connect(&receiver.address);
    half_body
        .write_all(
            b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"payload\":",
        )
        .unwrap();
    let answer = read_until_closed(half_body).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");

    receiver.signal("-TERM");
    let (code, log) = receiver.exit_code().await;
    assert_eq!(code, 0, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_closed_at_once_and_the_others_served() {
    let sandbox = sandbox().await;
    let dir = scratch();
    let _inputs = imported(&sandbox, dir.path(), &["o1"]).await;
    let mut receiver = Watched::start(
        dir.path(),
        &sandbox.provider_env(),
        &["--max-connections", "2"],
    )
    .await;

    let mut first = connect(&receiver.address);
    let _second = connect(&receiver.address);
    let extra = connect(&receiver.address);
    assert_eq!(
        read_until_closed(extra).await,
        "",
        "closed without an answer"
    );
    receiver.wait_for("connection limit").await;

    // The connections under the cap are still served.
    first
        .write_all(
            b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
              Content-Length: 2\r\nConnection: close\r\n\r\n{}",
        )
        .unwrap();
    let answer = read_until_closed(first).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer:?}");

    receiver.signal("-TERM");
    let (code, log) = receiver.exit_code().await;
    assert_eq!(code, 0, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_receiver_while_a_client_stalls_mid_header() {
    let sandbox = sandbox().await;
    let dir = scratch();
    let _inputs = imported(&sandbox, dir.path(), &["o1"]).await;
    let mut receiver = Watched::start(dir.path(), &sandbox.provider_env(), &[]).await;
    let mut stalled = connect(&receiver.address);
    stalled
        .write_all(b"POST / HTTP/1.1\r\nHost: localhost\r\n")
        .unwrap();
    receiver.wait_for("connection opened").await;

    receiver.signal("-TERM");
    let (code, log) = receiver.exit_code().await;
    assert_eq!(code, 0, "{log}");
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once_while_a_request_is_in_flight() {
    let sandbox = sandbox().await;
    let dir = scratch();
    let _inputs = imported(&sandbox, dir.path(), &["o1"]).await;
    // Without the second signal it would wait ten minutes for the slow body.
    let mut receiver = Watched::start(
        dir.path(),
        &sandbox.provider_env(),
        &[
            "--body-deadline-ms",
            "600000",
            "--shutdown-grace-ms",
            "600000",
        ],
    )
    .await;
    let mut slow = connect(&receiver.address);
    slow.write_all(
        b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{",
    )
    .unwrap();
    receiver.wait_for("request started").await;

    receiver.signal("-TERM");
    receiver.wait_for("stopping").await;
    receiver.signal("-INT");
    let (code, log) = receiver.exit_code().await;
    assert_eq!(code, 130, "{log}");
    drop(slow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_address_needs_allow_public_listen_and_is_warned_about() {
    let sandbox = sandbox().await;
    let env = sandbox.provider_env();
    let dir = scratch();
    let _inputs = imported(&sandbox, dir.path(), &["o1"]).await;
    let events = authport_engine::events_path(&dir.path().join("state.db"));

    let refused = bounded(
        dir.path(),
        &[
            "webhooks",
            "--provider",
            "apideck",
            "--state",
            "state.db",
            "--listen",
            "0.0.0.0:0",
        ],
        &env,
    )
    .await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("--allow-public-listen") && refused.stderr.contains("TLS"),
        "{}",
        refused.stderr
    );
    assert!(!events.exists(), "nothing created");

    let mut allowed = Watched::start(
        dir.path(),
        &env,
        &["--listen", "0.0.0.0:0", "--allow-public-listen"],
    )
    .await;
    allowed.wait_for("TLS").await;
    allowed.signal("-TERM");
    let (code, log) = allowed.exit_code().await;
    assert_eq!(code, 0, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_or_foreign_state_is_refused_and_nothing_is_created() {
    let sandbox = sandbox().await;
    let env = sandbox.provider_env();
    let dir = scratch();
    // Foreign: a text file, and a SQLite database that is not a journal (an event store).
    std::fs::write(dir.path().join("notes.txt"), "not a state").unwrap();
    drop(EventStore::open(&dir.path().join("other")).unwrap());
    let before = std::fs::read(dir.path().join("other.events")).unwrap();
    for state in ["absent.db", "notes.txt", "other.events"] {
        let out = bounded(
            dir.path(),
            &[
                "webhooks",
                "--provider",
                "apideck",
                "--listen",
                "127.0.0.1:0",
                "--state",
                state,
            ],
            &env,
        )
        .await;
        assert_eq!(out.code, 2, "{state}: {}", out.stderr);
        assert!(out.stderr.contains(state), "{state}: {}", out.stderr);
        let path = dir.path().join(state);
        assert!(!authport_engine::events_path(&path).exists(), "{state}");
    }
    assert!(!dir.path().join("absent.db").exists());
    assert_eq!(
        std::fs::read(dir.path().join("other.events")).unwrap(),
        before
    );
}
