//! End to end (issue 21, items 4 and 6): the read commands `verify` and `status` read
//! concurrently, stream their lines in journal order as they are known, stop on SIGTERM with a
//! summary (exit 130), and agree on one health taxonomy: `pending_refresh` is usable in both,
//! and records removed by `rollback` show as `rolled_back`. Every wait below is on a line the
//! binary prints; the timeouts only turn a hang into a failure.

use crate::common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use authport_sandbox::faults::{FaultKind, FaultPlan, FaultRule, Trigger};
use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

/// Far longer than any of these runs takes when it works; only a hang reaches it.
const SAFETY: Duration = Duration::from_secs(120);

/// An Apideck HubSpot connection of its own owner, with a token valid for years (`healthy`).
fn apideck_line(index: usize) -> String {
    let id = format!("o{index:02}/hubspot");
    json!({"id": id, "owner": {"id": format!("o{index:02}"), "name": "Owner"},
           "service": "hubspot",
           "auth": {"type": "oauth2", "access_token": canary(&format!("read-{index}-access")),
                    "refresh_token": canary(&format!("read-{index}-refresh")),
                    "expires_at": "2030-01-01T00:00:00Z"},
           "targets": {"apideck": {"unified_api": "crm", "service_id": "hubspot"}}})
    .to_string()
}

/// `count` records imported into Apideck one at a time, so the journal's order is the input's.
/// Returns the record ids in that order. The input lives in `inputs`, apart from `dir`.
async fn imported(sandbox: &Sandbox, dir: &Path, inputs: &Path, count: usize) -> Vec<String> {
    let lines: Vec<String> = (0..count).map(apideck_line).collect();
    let input = write_lines(inputs, "in.jsonl", &lines);
    let run = import_with_state(
        "apideck",
        &sandbox.env(),
        dir,
        &input,
        &["--concurrency", "1"],
    )
    .await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    (0..count).map(|i| format!("o{i:02}/hubspot")).collect()
}

fn ids(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["id"].as_str().unwrap_or("-").to_owned())
        .collect()
}

/// Record lines only (a JSON summary line has no `id`).
fn records(lines: &[Value]) -> Vec<Value> {
    lines
        .iter()
        .filter(|l| l.get("id").is_some())
        .cloned()
        .collect()
}

/// Reads answered in a shuffled order (each delayed at random) at concurrency 6: `verify` and
/// `status` still print every record once, in journal order, with the right summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_status_read_concurrently_and_print_in_journal_order() {
    let sandbox = sandbox().await;
    let (dir, inputs) = (scratch(), scratch());
    let expected = imported(&sandbox, dir.path(), inputs.path(), 24).await;
    sandbox.set_faults(FaultPlan {
        seed: 21,
        rules: Vec::new(),
        latency: Some((Duration::from_millis(0), Duration::from_millis(40))),
    });
    let env = sandbox.env();
    let state = ["--provider", "apideck", "--state", "state.db"];
    let verify = authport(
        dir.path(),
        &[&["verify"][..], &state, &["--concurrency", "6"]].concat(),
        &env,
    )
    .await;
    assert_eq!(verify.code, 0, "{}", verify.stderr);
    let lines = parse_lines(&verify.stdout);
    assert_eq!(ids(&lines), expected, "journal order");
    assert!(
        lines
            .iter()
            .all(|l| l["health"] == "healthy" && l["healthy"] == true),
        "{lines:?}"
    );
    assert!(verify.stderr.contains("24 objects"), "{}", verify.stderr);

    let status = authport(
        dir.path(),
        &[
            &["status"][..],
            &state,
            &["--concurrency", "6", "--format", "json"],
        ]
        .concat(),
        &env,
    )
    .await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    let lines = parse_lines(&status.stdout);
    assert_eq!(ids(&records(&lines)), expected, "journal order");
    let summary = lines.last().unwrap();
    assert_eq!(summary["counts"], json!({"healthy": 24}), "{summary}");
    assert_eq!(summary["exit_code"], 0);
    for out in [&verify, &status] {
        assert_no_canary("read command output", &out.printed());
    }
    assert_no_canary_in_dir(dir.path());
}

/// The binary running in the background: stdout read line by line, stderr kept for the end.
struct Running {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    lines: Vec<String>,
}

impl Running {
    fn spawn(dir: &Path, args: &[&str], env: &[(String, String)]) -> Self {
        let mut command = authport_command();
        command
            .current_dir(dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut child = command.spawn().expect("run authport");
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            child,
            stdout,
            lines: Vec::new(),
        }
    }

    /// Reads stdout until it has printed `count` lines, while the run goes on.
    async fn wait_for_lines(&mut self, count: usize) {
        let read = tokio::time::timeout(SAFETY, async {
            while self.lines.len() < count {
                match self.stdout.next_line().await.unwrap() {
                    Some(line) => self.lines.push(line),
                    None => return false,
                }
            }
            true
        })
        .await;
        assert!(
            read == Ok(true),
            "printed {} of {count} lines ({}): {:?}",
            self.lines.len(),
            if read.is_err() {
                "still running"
            } else {
                "exited"
            },
            self.lines
        );
    }

    /// Sends SIGTERM and waits for the exit: its code, every stdout line and stderr.
    async fn terminate(mut self) -> (i32, Vec<String>, String) {
        signal(&self.child, "-TERM");
        let mut stderr = self.child.stderr.take().unwrap();
        let ended = tokio::time::timeout(SAFETY, async {
            while let Some(line) = self.stdout.next_line().await.unwrap() {
                self.lines.push(line);
            }
            let mut text = String::new();
            stderr.read_to_string(&mut text).await.unwrap();
            (self.child.wait().await.unwrap(), text)
        })
        .await;
        let (status, stderr) =
            ended.unwrap_or_else(|_| panic!("SIGTERM did not end the run within {SAFETY:?}"));
        (status.code().unwrap_or(-1), self.lines, stderr)
    }
}

/// The fourth connection read answered 429 with a Retry-After of an hour: the run waits (for
/// the capped 300 s) with three lines printed and the rest held back behind the fourth.
fn fourth_read_waits(sandbox: &Sandbox) {
    sandbox.set_faults(FaultPlan {
        rules: vec![FaultRule::new(
            Some("GET"),
            "/vault/connections/",
            FaultKind::TooManyRequests {
                retry_after_secs: Some(3_600),
            },
            Trigger::Nth(vec![4]),
        )],
        ..FaultPlan::default()
    });
}

/// `status` and `verify` print each line as it is known (three while the fourth read waits),
/// and SIGTERM then ends them with 130 and a summary that counts what was not read.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_mid_read_exits_130_with_the_lines_so_far_and_a_summary() {
    let sandbox = sandbox().await;
    let (dir, inputs) = (scratch(), scratch());
    let expected = imported(&sandbox, dir.path(), inputs.path(), 10).await;
    for (command, format) in [("status", "json"), ("verify", "text")] {
        fourth_read_waits(&sandbox);
        let args = [
            command,
            "--provider",
            "apideck",
            "--state",
            "state.db",
            "--concurrency",
            "2",
            "--format",
            format,
        ];
        let mut running = Running::spawn(dir.path(), &args, &sandbox.env());
        running.wait_for_lines(3).await;
        let (code, lines, stderr) = running.terminate().await;
        assert_eq!(code, 130, "{command}: {stderr}");
        let lines: Vec<Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(ids(&records(&lines)), expected[..3], "{command}");
        assert!(
            stderr.contains("interrupted") && stderr.contains("not_read") && stderr.contains('7'),
            "{command}: {stderr}"
        );
        if command == "status" {
            let summary = lines.last().unwrap();
            assert_eq!(summary["interrupted"], true, "{summary}");
            assert_eq!(summary["counts"]["not_read"], 7, "{summary}");
            assert_eq!(summary["exit_code"], 130, "{summary}");
        }
        assert_no_canary("interrupted read", &stderr);
    }
}

/// Issue 21 item 6: right after a clean import whose tokens await their first refresh, `status`
/// and `verify` agree: `pending_refresh` is usable, and both exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_verify_agree_that_pending_refresh_is_usable() {
    let sandbox = sandbox().await;
    let (dir, inputs) = (scratch(), scratch());
    // The example tokens expired long ago: Vault holds them as `pending_refresh`.
    let input = write_lines(inputs.path(), "in.jsonl", &example_lines());
    let run = import_with_state("apideck", &sandbox.env(), dir.path(), &input, &[]).await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    let state = ["--provider", "apideck", "--state", "state.db"];
    let verify = authport(
        dir.path(),
        &[&["verify"][..], &state].concat(),
        &sandbox.env(),
    )
    .await;
    let status = authport(
        dir.path(),
        &[&["status"][..], &state, &["--format", "json"]].concat(),
        &sandbox.env(),
    )
    .await;
    assert_eq!(verify.code, 0, "{}", verify.stderr);
    assert_eq!(
        status.code, 0,
        "pending_refresh is usable: {}",
        status.stdout
    );
    let verified = parse_lines(&verify.stdout);
    let statuses = records(&parse_lines(&status.stdout));
    assert!(
        statuses.iter().any(|l| l["status"] == "pending_refresh"),
        "{statuses:?}"
    );
    // One word per record in both, and the same one.
    let words = |lines: &[Value], field: &str| -> Vec<(String, String)> {
        let mut words: Vec<(String, String)> = lines
            .iter()
            .map(|l| (l["id"].as_str().unwrap().to_owned(), l[field].to_string()))
            .collect();
        words.sort();
        words
    };
    assert_eq!(words(&verified, "health"), words(&statuses, "status"));
    assert!(
        verified.iter().all(|l| l["healthy"] == true),
        "{verified:?}"
    );
}

/// Issue 21 item 6: after a rollback, `status` shows every record it removed as `rolled_back`
/// (with or without `--input`), not `not_imported`, and exits 0 as documented (nothing still
/// imported is unhealthy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_after_a_rollback_shows_rolled_back_records() {
    let sandbox = sandbox().await;
    let (dir, inputs) = (scratch(), scratch());
    let expected = imported(&sandbox, dir.path(), inputs.path(), 3).await;
    let input = inputs.path().join("in.jsonl");
    let state = ["--provider", "apideck", "--state", "state.db"];
    let rollback = authport(
        dir.path(),
        &[&["rollback"][..], &state].concat(),
        &sandbox.env(),
    )
    .await;
    assert_eq!(rollback.code, 0, "{}", rollback.stderr);
    for with_input in [false, true] {
        let mut args = [&["status"][..], &state, &["--format", "json"]].concat();
        if with_input {
            args.extend(["--input", input.to_str().unwrap()]);
        }
        let status = authport(dir.path(), &args, &sandbox.env()).await;
        assert_eq!(status.code, 0, "{}", status.stderr);
        let lines = parse_lines(&status.stdout);
        let lines = records(&lines);
        assert_eq!(ids(&lines), expected, "input: {with_input}");
        assert!(
            lines.iter().all(|l| l["status"] == "rolled_back"),
            "{lines:?}"
        );
        let summary = parse_lines(&status.stdout).pop().unwrap();
        assert_eq!(summary["counts"], json!({"rolled_back": 3}), "{summary}");
    }
}
