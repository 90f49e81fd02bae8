//! `migrate --cutover` and `--retire-source` end to end (issue 19, items 4 to 6): the seeded
//! Tray (six auths, every secret a canary) migrated to Nango while the Tray sandbox rotates a
//! third of its auths right after they are read (its `rotate_after_read` control, as a source
//! refreshing on its own would). Every wait is on a line the binary prints; the timeouts only
//! turn a hang into a failure.

use crate::common;
use crate::migrate::{migrate_args, seeded};

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use authport_sandbox::faults::{FaultKind, FaultPlan, FaultRule, Trigger};
use common::*;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};

const SAFETY: Duration = Duration::from_secs(180);

/// Every secret (canary) of an object's credentials.
fn tokens(credentials: &serde_json::Map<String, Value>) -> Vec<String> {
    credentials
        .values()
        .filter_map(Value::as_str)
        .filter(|text| text.contains(CANARY))
        .map(str::to_owned)
        .collect()
}

/// Tray auth id → its tokens now.
fn tray_tokens(sandbox: &Sandbox) -> BTreeMap<String, Vec<String>> {
    sandbox
        .tray
        .auths()
        .into_iter()
        .map(|auth| (auth.id.clone(), tokens(&auth.credentials)))
        .collect()
}

/// Every token Nango holds, one entry per connection and token.
fn nango_tokens(sandbox: &Sandbox) -> Vec<String> {
    sandbox
        .nango
        .connection_keys()
        .into_iter()
        .flat_map(|(key, id)| tokens(&sandbox.nango.connection(&key, &id).unwrap().credentials))
        .collect()
}

/// Each of `current`'s tokens is held exactly once at Nango, and none of `stale`.
fn assert_target_is_current(
    sandbox: &Sandbox,
    current: &BTreeMap<String, Vec<String>>,
    stale: &[String],
) {
    let held = nango_tokens(sandbox);
    for (id, tokens) in current {
        for token in tokens {
            let copies = held.iter().filter(|t| *t == token).count();
            assert_eq!(
                copies, 1,
                "{id}: the source's current token held {copies} times"
            );
        }
    }
    for token in stale {
        assert!(
            !held.contains(token),
            "a stale token is still at the target"
        );
    }
}

/// Rotates the first `n` OAuth auths (by id) right after each of their next `times`
/// reads; returns their ids and their tokens before the rotation.
fn rotate_some(sandbox: &Sandbox, n: usize, times: u32) -> (Vec<String>, Vec<String>) {
    let before = tray_tokens(sandbox);
    let oauth = |id: &String| {
        sandbox
            .tray
            .auth(id)
            .unwrap()
            .credentials
            .contains_key("refresh_token")
    };
    let ids: Vec<String> = before
        .iter()
        .filter(|(id, _)| oauth(id))
        .take(n)
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(ids.len(), n, "too few OAuth auths");
    let mut stale = Vec::new();
    for id in &ids {
        sandbox.tray.rotate_after_read(id, times);
        stale.extend(before[id].iter().cloned());
    }
    (ids, stale)
}

/// The cutover's lines of a report, by id: (status, handover).
fn handovers(report: &[Value]) -> BTreeMap<String, (String, String)> {
    report
        .iter()
        .filter(|l| l["phase"] == "cutover")
        .map(|l| {
            (
                l["id"].as_str().unwrap().to_owned(),
                (
                    l["status"].as_str().unwrap().to_owned(),
                    l["handover"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect()
}

fn expected_handovers(ids: &[String], rotated: &[String]) -> BTreeMap<String, (String, String)> {
    ids.iter()
        .map(|id| {
            let word = if rotated.contains(id) {
                ("updated", "reimported")
            } else {
                ("unchanged", "complete")
            };
            (id.clone(), (word.0.to_owned(), word.1.to_owned()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cutover_imports_what_the_source_refreshed_after_the_export() {
    let (sandbox, _planted, _) = seeded().await;
    let in_tray: Vec<String> = tray_tokens(&sandbox).into_keys().collect();
    let (rotated, stale) = rotate_some(&sandbox, 2, 1);
    let dir = scratch();
    let out = authport(
        dir.path(),
        &migrate_args("nango", "report.jsonl", &["--cutover"]),
        &sandbox.env(),
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(sandbox.tray.rotations(), 2);
    assert_target_is_current(&sandbox, &tray_tokens(&sandbox), &stale);
    let report = read_lines(&dir.path().join("report.jsonl"));
    assert_eq!(handovers(&report), expected_handovers(&in_tray, &rotated));
    for line in report.iter().filter(|l| l["handover"] == "reimported") {
        assert_eq!(line["note"], "source refreshed after export", "{line}");
    }
    assert!(
        out.stderr.contains("cutover: 4 complete, 2 reimported"),
        "{}",
        out.stderr
    );
    assert_no_canary("cutover stdout", &out.stdout);
    assert_no_canary("cutover stderr", &out.stderr);
    assert_no_canary_in_dir(dir.path());

    // Again with the same state: nothing changed at the source, nothing is written.
    let upserts = sandbox.nango.upsert_count();
    let again = authport(
        dir.path(),
        &migrate_args("nango", "again.jsonl", &["--cutover"]),
        &sandbox.env(),
    )
    .await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(sandbox.nango.upsert_count(), upserts);
    let report = read_lines(&dir.path().join("again.jsonl"));
    assert!(
        handovers(&report).values().all(|(_, h)| h == "complete"),
        "{report:?}"
    );
}

/// A grant the source refreshes on every read never settles: `unstable` after three passes,
/// listed by `reconnect`'s rule (the state's note), never retired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retire_source_needs_yes_and_deletes_exactly_the_handed_over_sources() {
    let (sandbox, _planted, _) = seeded().await;
    let in_tray: Vec<String> = tray_tokens(&sandbox).into_keys().collect();
    let dir = scratch();
    let refused = authport(
        dir.path(),
        &migrate_args("nango", "report.jsonl", &["--cutover", "--retire-source"]),
        &sandbox.env(),
    )
    .await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("--yes") && refused.stderr.contains("rollback"),
        "{}",
        refused.stderr
    );
    assert_eq!(sandbox.tray.auth_count(), 6);
    assert_eq!(sandbox.nango.connection_count(), 0);

    // One auth rotates on every read: it never settles.
    let (unstable, _) = rotate_some(&sandbox, 1, 100);
    let out = authport(
        dir.path(),
        &migrate_args(
            "nango",
            "report.jsonl",
            &["--cutover", "--retire-source", "--yes"],
        ),
        &sandbox.env(),
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report = read_lines(&dir.path().join("report.jsonl"));
    let words = handovers(&report);
    assert_eq!(words.len(), 6, "{report:?}");
    assert_eq!(words[&unstable[0]].1, "unstable");
    let left: Vec<String> = sandbox.tray.auths().into_iter().map(|a| a.id).collect();
    assert_eq!(left, unstable, "only the unstable source is left");
    for line in report.iter().filter(|l| l["phase"] == "cutover") {
        let retired = line["source"] == "retired";
        assert_eq!(retired, line["handover"] != "unstable", "{line}");
    }
    assert!(in_tray.iter().all(|id| words.contains_key(id)));

    let status = authport(
        dir.path(),
        &[
            "status",
            "--provider",
            "nango",
            "--state",
            "state.db",
            "--format",
            "json",
        ],
        &sandbox.env(),
    )
    .await;
    let lines = parse_lines(&status.stdout);
    let retired = lines
        .iter()
        .filter(|l| l["detail"]["source"] == "retired")
        .count();
    assert_eq!(retired, 5, "{}\n{}", status.stdout, status.stderr);
    assert_no_canary("retire stderr", &out.stderr);
    assert_no_canary("status stdout", &status.stdout);

    // `reconnect` lists the unstable record (its input: what is left at the source).
    let exported = scratch();
    let export = exported.path().join("left.jsonl");
    let out = authport(
        exported.path(),
        &["export", "--provider", "tray", "--output", "left.jsonl"],
        &sandbox.env(),
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let reconnect = authport(
        dir.path(),
        &[
            "reconnect",
            "--provider",
            "nango",
            "--state",
            "state.db",
            "--input",
            export.to_str().unwrap(),
            "--output",
            "worklist.jsonl",
        ],
        &sandbox.env(),
    )
    .await;
    assert_eq!(reconnect.code, 0, "{}", reconnect.stderr);
    let rows = read_lines(&dir.path().join("worklist.jsonl"));
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = rows[0].to_string();
    assert!(
        row.contains(&unstable[0]) && row.contains("unstable"),
        "{row}"
    );
    assert_no_canary("reconnect output", &reconnect.printed());
    assert_no_canary_in_dir(dir.path());
}

/// SIGTERM while a cutover pass waits on the source (a day's Retry-After on the first re-read)
/// ends the run with 130; the same command then ends as a run never stopped.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cutover_stopped_during_its_passes_resumes_to_the_same_end() {
    let (sandbox, _planted, _) = seeded().await;
    let in_tray: Vec<String> = tray_tokens(&sandbox).into_keys().collect();
    let (rotated, stale) = rotate_some(&sandbox, 2, 1);
    // The export reads each of the six auths once; the seventh full read is the first re-read.
    sandbox.set_faults(FaultPlan {
        rules: vec![FaultRule::new(
            Some("GET"),
            "/core/v1/authentications/",
            FaultKind::TooManyRequests {
                retry_after_secs: Some(86_400),
            },
            Trigger::Nth(vec![7]),
        )],
        ..FaultPlan::default()
    });
    let dir = scratch();
    let args = migrate_args("nango", "stopped.jsonl", &["--cutover"]);
    let mut command = authport_command();
    command
        .current_dir(dir.path())
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command.envs(sandbox.env());
    let mut child = command.spawn().expect("run authport");
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut printed = String::new();
    let waited = tokio::time::timeout(SAFETY, async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            printed.push_str(&line);
            printed.push('\n');
            if line.contains("the longest wait authport honours") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(waited, Ok(true), "{printed}");
    assert!(printed.contains("cutover pass 1"), "{printed}");
    signal(&child, "-TERM");
    let status = tokio::time::timeout(SAFETY, async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            printed.push_str(&line);
            printed.push('\n');
        }
        child.wait().await.unwrap()
    })
    .await
    .expect("SIGTERM ends the run");
    assert_eq!(status.code(), Some(130), "{printed}");
    assert_no_canary("stopped cutover stderr", &printed);

    sandbox.set_faults(FaultPlan::default());
    let out = authport(
        dir.path(),
        &migrate_args("nango", "report.jsonl", &["--cutover"]),
        &sandbox.env(),
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_target_is_current(&sandbox, &tray_tokens(&sandbox), &stale);
    let report = read_lines(&dir.path().join("report.jsonl"));
    assert_eq!(handovers(&report), expected_handovers(&in_tray, &rotated));
    assert_eq!(sandbox.nango.connection_count(), 6);
    assert_no_canary("resumed cutover stderr", &out.stderr);
    assert_no_canary_in_dir(dir.path());
}

/// Every secret (canary) an Apideck connection holds.
fn apideck_tokens(sandbox: &Sandbox) -> Vec<String> {
    sandbox
        .apideck
        .connection_keys()
        .into_iter()
        .flat_map(|(consumer, api, service)| {
            let view = sandbox
                .apideck
                .connection(&consumer, &api, &service)
                .unwrap();
            let holds = serde_json::to_string(&view.stored.credentials).unwrap();
            let found: Vec<String> = serde_json::from_str::<Value>(&holds)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .map(|map| tokens(&map))
                .unwrap_or_default();
            found
        })
        .collect()
}

/// Nango as the source: its re-read is `GET /connections/{id}?refresh_token=true` without
/// `force_refresh`; what it rotated after the export arrives at Apideck, fresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cutover_from_nango_imports_what_nango_refreshed_after_the_export() {
    let sandbox = sandbox().await;
    let (lines, _) = canary_dataset("cutover-nango-");
    let seed = scratch();
    let input = write_lines(seed.path(), "in.jsonl", &lines);
    let run = import_with_state("nango", &sandbox.env(), seed.path(), &input, &[]).await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    let rotated: Vec<(String, String)> = sandbox
        .nango
        .connection_keys()
        .into_iter()
        .filter(|(key, id)| {
            let stored = sandbox.nango.connection(key, id).unwrap();
            stored.credentials.contains_key("refresh_token")
        })
        .take(2)
        .collect();
    assert_eq!(rotated.len(), 2);
    let mut stale = Vec::new();
    for (key, id) in &rotated {
        stale.extend(tokens(
            &sandbox.nango.connection(key, id).unwrap().credentials,
        ));
        sandbox.nango.rotate_after_read(key, id, 1);
    }
    let dir = scratch();
    let args = [
        "migrate",
        "--from",
        "nango",
        "--to",
        "apideck",
        "--state",
        "state.db",
        "--report",
        "report.jsonl",
        "--cutover",
    ];
    let out = authport(dir.path(), &args, &sandbox.env()).await;
    assert!(out.code == 0 || out.code == 1, "{}", out.stderr);
    assert_eq!(sandbox.nango.rotations(), 2);
    let report = read_lines(&dir.path().join("report.jsonl"));
    let words = handovers(&report);
    let held = apideck_tokens(&sandbox);
    for (key, id) in &rotated {
        let record = format!("{key}/{id}");
        if !words.contains_key(&record) {
            continue; // Apideck refused it (mapping): nothing to hand over.
        }
        assert_eq!(
            words[&record],
            ("updated".to_owned(), "reimported".to_owned()),
            "{report:?}"
        );
        for token in tokens(&sandbox.nango.connection(key, id).unwrap().credentials) {
            assert_eq!(held.iter().filter(|t| **t == token).count(), 1);
        }
    }
    assert!(words.values().any(|(_, h)| h == "reimported"), "{report:?}");
    for token in &stale {
        assert!(
            !held.contains(token),
            "a stale token is still at the target"
        );
    }
    assert_no_canary("nango cutover stderr", &out.stderr);
    assert_no_canary("nango cutover stdout", &out.stdout);
    assert_no_canary_in_dir(dir.path());
}
