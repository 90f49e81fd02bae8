//! `authport migrate` end to end: the example records, every secret a canary, are imported into
//! the Tray sandbox with the binary, then moved with `migrate --from tray --to apideck|nango`.
//! Every canary must arrive exactly once, in the right field, for the right owner; a re-run
//! changes nothing; a migrate killed (SIGKILL) after N report lines and resumed loses and
//! duplicates nothing; `export --output - | import --input -` does the same; no canary appears
//! in what the binary prints, its state or its report.
//!
//! Source failures, refusals, the `[migrate]` section, termination and dry runs are in
//! `migrate_edges.rs`, on the seeded Tray and the arrival checks of this file.

use crate::common;

use std::path::Path;
use std::process::Stdio;

use common::*;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};

/// The key names a target may give each canonical field.
fn names_of(field: &str) -> &'static [&'static str] {
    match field {
        "access_token" => &["access_token"],
        "refresh_token" => &["refresh_token"],
        "api_key" => &["api_key", "apiKey"],
        "password" => &["password"],
        _ => &[],
    }
}

/// One object stored at the target: its owner, its service and everything it holds.
struct Stored {
    owner: String,
    service: String,
    holds: Value,
}

fn stored_at(sandbox: &Sandbox, target: &str) -> Vec<Stored> {
    match target {
        "apideck" => sandbox
            .apideck
            .connection_keys()
            .into_iter()
            .map(|(consumer, api, service)| {
                let view = sandbox
                    .apideck
                    .connection(&consumer, &api, &service)
                    .unwrap();
                Stored {
                    owner: consumer,
                    service,
                    holds: serde_json::json!({
                        "credentials": view.stored.credentials,
                        "settings": view.stored.settings,
                    }),
                }
            })
            .collect(),
        "nango" => sandbox
            .nango
            .connection_keys()
            .into_iter()
            .map(|(key, id)| {
                let stored = sandbox.nango.connection(&key, &id).unwrap();
                Stored {
                    owner: stored.tags.get("end_user_id").cloned().unwrap_or_default(),
                    service: stored.provider.clone(),
                    holds: serde_json::json!({
                        "credentials": stored.credentials,
                        "connection_config": stored.connection_config,
                    }),
                }
            })
            .collect(),
        other => panic!("no target {other}"),
    }
}

/// The keys under which `secret` is a value anywhere in `value`.
fn keys_holding(value: &Value, secret: &str, key: &str, found: &mut Vec<String>) {
    match value {
        Value::String(text) if text.contains(secret) => found.push(key.to_owned()),
        Value::Object(map) => map
            .iter()
            .for_each(|(k, v)| keys_holding(v, secret, k, found)),
        Value::Array(items) => items
            .iter()
            .for_each(|v| keys_holding(v, secret, key, found)),
        _ => {}
    }
}

/// Every planted secret of `arriving` (Tray import record ids) arrived at the target exactly
/// once, under its field's name, in an object of its owner and service; every other planted
/// secret arrived nowhere. Returns how many arrived.
pub(crate) fn check_arrived(
    sandbox: &Sandbox,
    target: &str,
    planted: &[Planted],
    arriving: &[String],
) -> usize {
    let stored = stored_at(sandbox, target);
    let mut checked = 0;
    for plant in planted {
        let mut holders = Vec::new();
        for object in &stored {
            let mut keys = Vec::new();
            keys_holding(&object.holds, &plant.secret, "", &mut keys);
            holders.extend(keys.into_iter().map(|key| (object, key)));
        }
        if !arriving.iter().any(|id| id == plant.record_id) {
            assert!(
                holders.is_empty(),
                "{target}: {} {} must not arrive",
                plant.record_id,
                plant.field
            );
            continue;
        }
        assert_eq!(
            holders.len(),
            1,
            "{target}: {} {} must arrive exactly once",
            plant.record_id,
            plant.field
        );
        let (object, key) = &holders[0];
        assert_eq!(object.owner, plant.owner, "{target}: {}", plant.record_id);
        assert_eq!(
            object.service, plant.service,
            "{target}: {}",
            plant.record_id
        );
        assert!(
            names_of(plant.field).contains(&key.as_str()),
            "{target}: {} {} arrived as {key}",
            plant.record_id,
            plant.field
        );
        checked += 1;
    }
    checked
}

/// What a migrate to either target must do with the seeded Tray: the Tray import ids whose secrets
/// must arrive, and how many source objects the target must refuse (`mapping`). Read from a
/// real Tray export: what the Tray exporter left `custom` would fit neither Apideck's OAuth2
/// connectors nor a Nango field map, so it would be refused. The example dataset has none:
/// settings the Tray import stored among the credentials (`instance_url`, `realm_id`) come back
/// as settings, so every auth is typed and every secret must arrive.
pub(crate) struct Expected {
    pub(crate) arriving: Vec<String>,
    pub(crate) refused: usize,
}

pub(crate) async fn expected(
    sandbox: &Sandbox,
    planted: &[Planted],
    in_tray: &[String],
) -> Expected {
    let dir = scratch();
    let out = authport(
        dir.path(),
        &["export", "--provider", "tray", "--output", "-"],
        &sandbox.env(),
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let custom: Vec<Value> = parse_lines(&out.stdout)
        .into_iter()
        .filter(|record| record["auth"]["type"] == "custom")
        .collect();
    let custom_ids: Vec<&Value> = custom.iter().map(|record| &record["id"]).collect();
    assert!(
        custom_ids.is_empty(),
        "the Tray export types every example auth; custom: {custom_ids:?}"
    );
    let refused = custom.len();
    let arriving = in_tray
        .iter()
        .filter(|id| {
            !planted
                .iter()
                .filter(|p| p.record_id == id.as_str())
                .any(|p| {
                    custom
                        .iter()
                        .any(|record| record.to_string().contains(&p.secret))
                })
        })
        .cloned()
        .collect();
    Expected { arriving, refused }
}

/// The report's statuses, with the `mapping` refusals counted apart.
pub(crate) fn tally(report: &[Value]) -> (Vec<String>, usize) {
    let refused = report
        .iter()
        .filter(|l| l["status"] == "failed" && l["error"]["kind"] == "mapping")
        .count();
    let others = report
        .iter()
        .filter(|l| !(l["status"] == "failed" && l["error"]["kind"] == "mapping"))
        .map(|l| l["status"].as_str().unwrap_or("-").to_owned())
        .collect();
    (others, refused)
}

/// A sandbox whose Tray holds the canary dataset (imported with the binary); the ids the Tray
/// import took.
pub(crate) async fn seeded() -> (Sandbox, Vec<Planted>, Vec<String>) {
    let sandbox = sandbox().await;
    let (lines, planted) = canary_dataset("migrate-");
    let dir = scratch();
    let input = write_lines(dir.path(), "in.jsonl", &lines);
    let run = import_with_state("tray", &sandbox.env(), dir.path(), &input, &[]).await;
    let in_tray: Vec<String> = statuses(&run.report)
        .into_iter()
        .filter(|(_, status)| status == "imported")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(in_tray.len(), 6, "{:?}\n{}", run.report, run.out.stderr);
    (sandbox, planted, in_tray)
}

pub(crate) fn migrate_args<'a>(
    target: &'a str,
    report: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "migrate", "--from", "tray", "--to", target, "--state", "state.db", "--report", report,
    ];
    args.extend_from_slice(extra);
    args
}

pub(crate) fn statuses_of(report: &[Value]) -> Vec<String> {
    statuses(report)
        .into_iter()
        .map(|(_, status)| status)
        .collect()
}

/// Writes the target holds so far (re-runs must add none).
fn writes(sandbox: &Sandbox, target: &str) -> u64 {
    match target {
        "apideck" => sandbox.apideck.import_count(),
        _ => sandbox.nango.upsert_count(),
    }
}

async fn migrate_moves_every_canary_once(target: &str) {
    let (sandbox, planted, in_tray) = seeded().await;
    let expect = expected(&sandbox, &planted, &in_tray).await;
    let moved = 6 - expect.refused;
    let env = sandbox.env();
    let dir = scratch();
    let code = if expect.refused == 0 { 0 } else { 1 };
    let out = authport(dir.path(), &migrate_args(target, "report.jsonl", &[]), &env).await;
    let report = read_lines(&dir.path().join("report.jsonl"));
    assert_eq!(out.code, code, "{target}: {report:?} {}", out.stderr);
    assert_no_canary("migrate output", &out.printed());
    assert_eq!(
        tally(&report),
        (vec!["imported".to_owned(); moved], expect.refused),
        "{target}: {report:?}"
    );
    let arrived = check_arrived(&sandbox, target, &planted, &expect.arriving);
    assert!(arrived >= moved, "{target}: {arrived} secrets arrived");
    let written = writes(&sandbox, target);
    assert_eq!(
        written, moved as u64,
        "{target}: one write per source object"
    );

    // A re-run with the same state changes nothing.
    let out = authport(dir.path(), &migrate_args(target, "again.jsonl", &[]), &env).await;
    let again = read_lines(&dir.path().join("again.jsonl"));
    assert_eq!(out.code, code, "{target}: {again:?} {}", out.stderr);
    assert_eq!(
        tally(&again),
        (vec!["unchanged".to_owned(); moved], expect.refused),
        "{target}: {again:?}"
    );
    assert_eq!(writes(&sandbox, target), written);

    // At the most verbose logging, still no canary printed; none in the state or reports.
    let mut traced = env.clone();
    traced.push(("RUST_LOG".to_owned(), "trace".to_owned()));
    let mut args = vec!["-vvv"];
    args.extend(migrate_args(target, "traced.jsonl", &[]));
    let out = authport(dir.path(), &args, &traced).await;
    assert_eq!(out.code, code, "{target}: {}", out.stderr);
    assert_no_canary("migrate output at trace", &out.printed());
    assert_no_canary_in_dir(dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_tray_to_apideck_moves_every_canary_once_and_reruns_unchanged() {
    migrate_moves_every_canary_once("apideck").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_tray_to_nango_moves_every_canary_once_and_reruns_unchanged() {
    migrate_moves_every_canary_once("nango").await;
}

/// Runs `authport ARGS` with the report on stdout and kills it (SIGKILL) once it has printed
/// `lines` report lines, or lets it finish; returns the lines it printed.
async fn kill_after(
    dir: &Path,
    args: &[&str],
    env: &[(String, String)],
    lines: usize,
) -> Vec<String> {
    let mut command = authport_command();
    command.current_dir(dir).args(args).kill_on_drop(true);
    command.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("run authport");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    while printed.len() < lines {
        match stdout.next_line().await.unwrap() {
            Some(line) => printed.push(line),
            None => break,
        }
    }
    child.start_kill().ok();
    child.wait().await.unwrap();
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr)
        .await
        .unwrap();
    assert_no_canary("killed migrate stderr", &stderr);
    printed
}

async fn killed_and_resumed_loses_and_duplicates_nothing(target: &str) {
    let (sandbox, planted, in_tray) = seeded().await;
    let expect = expected(&sandbox, &planted, &in_tray).await;
    let moved = 6 - expect.refused;
    let env = sandbox.env();
    let dir = scratch();
    // Killed after 1, 2, ... 5 report lines, one at a time and several in flight.
    for (lines, concurrency) in [(1, "1"), (2, "4"), (3, "1"), (4, "4"), (5, "2")] {
        let mut extra = vec!["--concurrency", concurrency];
        extra.extend_from_slice(&[]);
        let printed = kill_after(dir.path(), &migrate_args(target, "-", &extra), &env, lines).await;
        assert_no_canary("killed migrate report", &printed.join("\n"));
    }
    let out = authport(dir.path(), &migrate_args(target, "final.jsonl", &[]), &env).await;
    let report = read_lines(&dir.path().join("final.jsonl"));
    let code = if expect.refused == 0 { 0 } else { 1 };
    assert_eq!(out.code, code, "{target}: {report:?} {}", out.stderr);
    let (statuses, refused) = tally(&report);
    assert_eq!(refused, expect.refused, "{target}: {report:?}");
    assert_eq!(statuses.len(), moved, "{target}: {report:?}");
    assert!(
        statuses.iter().all(|s| s == "imported" || s == "unchanged"),
        "{target}: {report:?}"
    );
    assert!(check_arrived(&sandbox, target, &planted, &expect.arriving) >= moved);
    assert_eq!(
        stored_at(&sandbox, target).len(),
        moved,
        "{target}: one object per source object"
    );
    assert_no_canary_in_dir(dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_migrate_to_apideck_resumes_without_loss_or_duplicates() {
    killed_and_resumed_loses_and_duplicates_nothing("apideck").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_migrate_to_nango_resumes_without_loss_or_duplicates() {
    killed_and_resumed_loses_and_duplicates_nothing("nango").await;
}

/// `authport export --provider tray --output - | authport import --provider apideck --input -`
/// moves the same auths as `migrate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_piped_into_import_moves_every_canary_once() {
    let (sandbox, planted, in_tray) = seeded().await;
    let expect = expected(&sandbox, &planted, &in_tray).await;
    let env = sandbox.env();
    let dir = scratch();
    let spawn = |args: &[&str]| {
        let mut command = authport_command();
        command
            .current_dir(dir.path())
            .args(args)
            .kill_on_drop(true);
        command.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command
    };
    let mut export = spawn(&["export", "--provider", "tray", "--output", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pipe: Stdio = export.stdout.take().unwrap().try_into().unwrap();
    let import = spawn(&[
        "import",
        "--provider",
        "apideck",
        "--input",
        "-",
        "--state",
        "state.db",
        "--report",
        "report.jsonl",
    ])
    .stdin(pipe)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let imported = import.wait_with_output().await.unwrap();
    let exported = export.wait_with_output().await.unwrap();
    let import_stderr = String::from_utf8_lossy(&imported.stderr);
    assert_eq!(exported.status.code(), Some(0));
    let code = if expect.refused == 0 { 0 } else { 1 };
    assert_eq!(imported.status.code(), Some(code), "{import_stderr}");
    assert_no_canary("export stderr", &String::from_utf8_lossy(&exported.stderr));
    assert_no_canary(
        "import output",
        &format!(
            "{}{import_stderr}",
            String::from_utf8_lossy(&imported.stdout)
        ),
    );
    let report = read_lines(&dir.path().join("report.jsonl"));
    assert_eq!(
        tally(&report),
        (
            vec!["imported".to_owned(); 6 - expect.refused],
            expect.refused
        ),
        "{report:?}"
    );
    assert!(check_arrived(&sandbox, "apideck", &planted, &expect.arriving) >= 6 - expect.refused);
    assert_no_canary_in_dir(dir.path());
}
