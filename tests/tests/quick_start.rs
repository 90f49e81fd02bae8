//! The README's quick start, second step: one `--sandbox --state` walked through every command
//! that reads or writes that state. Each command starts its own in-process sandbox; they meet
//! the same one because its data and address live beside the state (`state.db.sandbox.json`).
//! Before, each run's sandbox had a new address and every later command was refused (exit 2,
//! "endpoint differs").

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::common::{authport, example, read_lines, scratch, statuses};

const RECORDS: usize = 6;

/// The record ids of per-record report lines (summary lines, if any, have no `id`).
fn ids_with(lines: &[Value], field: &str, words: &[&str]) -> BTreeSet<String> {
    lines
        .iter()
        .filter(|line| words.contains(&line[field].as_str().unwrap_or("")))
        .filter_map(|line| line["id"].as_str().map(str::to_owned))
        .collect()
}

/// `authport ARGS --provider P --sandbox --state state.db` in `dir`, with no vendor environment.
async fn run(dir: &Path, provider: &str, args: &[&str]) -> crate::common::Output {
    let mut all = args.to_vec();
    all.extend(["--provider", provider, "--sandbox", "--state", "state.db"]);
    authport(dir, &all, &[]).await
}

async fn walk(provider: &str) {
    let dir = scratch();
    let dir = dir.path();
    let input = example("records.jsonl");
    let input = input.to_str().expect("utf-8 path");

    let first = run(
        dir,
        provider,
        &["import", "--input", input, "--report", "import.jsonl"],
    )
    .await;
    assert_eq!(first.code, 0, "{provider} import: {}", first.stderr);
    let imported = read_lines(&dir.join("import.jsonl"));
    assert_eq!(
        ids_with(&imported, "status", &["imported"]).len(),
        RECORDS,
        "{provider}: {imported:?}"
    );

    let again = run(
        dir,
        provider,
        &["import", "--input", input, "--report", "rerun.jsonl"],
    )
    .await;
    assert_eq!(again.code, 0, "{provider} re-run: {}", again.stderr);
    let rerun = read_lines(&dir.join("rerun.jsonl"));
    assert!(
        statuses(&rerun)
            .iter()
            .all(|(_, status)| status == "unchanged")
            && rerun.len() == RECORDS,
        "{provider} re-run: {rerun:?}"
    );

    let verify = run(dir, provider, &["verify", "--report", "verify.jsonl"]).await;
    assert_eq!(verify.code, 0, "{provider} verify: {}", verify.stderr);
    let verified = read_lines(&dir.join("verify.jsonl"));
    let present: BTreeSet<String> = verified
        .iter()
        .filter(|line| line["status"] != "missing")
        .filter_map(|line| line["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(present.len(), RECORDS, "{provider} verify: {verified:?}");

    let status = run(
        dir,
        provider,
        &["status", "--input", input, "--report", "status.jsonl"],
    )
    .await;
    assert_eq!(status.code, 0, "{provider} status: {}", status.stderr);
    let lines = read_lines(&dir.join("status.jsonl"));
    assert_eq!(
        ids_with(&lines, "status", &["healthy", "pending_refresh"]).len(),
        RECORDS,
        "{provider} status: {lines:?}"
    );

    let reconnect = run(
        dir,
        provider,
        &[
            "reconnect",
            "--input",
            input,
            "--import-report",
            "import.jsonl",
            "--output",
            "worklist.jsonl",
        ],
    )
    .await;
    assert_eq!(
        reconnect.code, 0,
        "{provider} reconnect: {}",
        reconnect.stderr
    );
    let worklist = read_lines(&dir.join("worklist.jsonl"));
    assert!(
        worklist.is_empty(),
        "{provider}: nobody must reconnect after a clean import: {worklist:?}"
    );

    let rollback = run(dir, provider, &["rollback", "--report", "rollback.jsonl"]).await;
    assert_eq!(rollback.code, 0, "{provider} rollback: {}", rollback.stderr);
    let removed = read_lines(&dir.join("rollback.jsonl"));
    assert_eq!(
        ids_with(&removed, "status", &["removed"]).len(),
        RECORDS,
        "{provider} rollback removed what the import created: {removed:?}"
    );
    // The removal is remembered too: a second rollback finds nothing left to remove.
    let twice = run(dir, provider, &["rollback", "--report", "rollback2.jsonl"]).await;
    assert_eq!(
        twice.code, 0,
        "{provider} second rollback: {}",
        twice.stderr
    );
    let second = read_lines(&dir.join("rollback2.jsonl"));
    assert!(
        ids_with(&second, "status", &["removed"]).is_empty(),
        "{provider}: {second:?}"
    );
    assert!(
        dir.join("state.db.sandbox.json").is_file(),
        "{provider}: the sandbox's data is beside the state"
    );
}

#[tokio::test]
async fn the_quick_start_walks_import_rerun_verify_status_reconnect_rollback_on_tray() {
    walk("tray").await;
}

#[tokio::test]
async fn the_quick_start_walks_import_rerun_verify_status_reconnect_rollback_on_nango() {
    walk("nango").await;
}

#[tokio::test]
async fn the_quick_start_walks_import_rerun_verify_status_reconnect_rollback_on_apideck() {
    walk("apideck").await;
}

#[tokio::test]
async fn a_state_made_without_the_sandbox_is_refused_with_a_plain_sentence() {
    let dir = scratch();
    let dir = dir.path();
    let input = example("records.jsonl");
    // A state whose target is another endpoint (here: a sandbox run without --state is a
    // temporary state, so make one with --dry-run against an in-process sandbox).
    let sandbox = crate::common::sandbox().await;
    let env = sandbox.env();
    let made = authport(
        dir,
        &[
            "import",
            "--provider",
            "tray",
            "--input",
            input.to_str().expect("utf-8"),
            "--state",
            "state.db",
            "--dry-run",
        ],
        &env,
    )
    .await;
    assert_eq!(made.code, 0, "{}", made.stderr);
    for args in [
        &["verify"][..],
        &["import", "--input", input.to_str().expect("utf-8")][..],
    ] {
        let out = run(dir, "tray", args).await;
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("was not made with --sandbox"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(
            !dir.join("state.db.sandbox.json").exists(),
            "nothing was created"
        );
    }
}

#[tokio::test]
async fn the_sandbox_command_prints_what_tray_reconnect_links_need() {
    use tokio::io::AsyncBufReadExt as _;
    let mut child = crate::common::authport_command()
        .args(["sandbox", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the sandbox");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut names = BTreeSet::new();
    while let Some(line) = lines.next_line().await.expect("read") {
        if let Some((name, _)) = line.strip_prefix("export ").and_then(|l| l.split_once('=')) {
            names.insert(name.to_owned());
        }
        if names.contains("NANGO_SECRET_KEY") {
            break;
        }
    }
    child.kill().await.expect("stop the sandbox");
    for name in [
        "TRAY_EMBEDDED_ID",
        "TRAY_AUTH_DIALOG_URL",
        "TRAY_MASTER_TOKEN",
        "APIDECK_API_KEY",
        "NANGO_API_URL",
    ] {
        assert!(names.contains(name), "{name} missing from {names:?}");
    }

    let help = authport(Path::new("."), &["sandbox", "--help"], &[]).await;
    assert!(help.stdout.contains("Nango"), "{}", help.stdout);
}

#[tokio::test]
async fn an_output_on_the_sandbox_data_is_refused() {
    let dir = scratch();
    let dir = dir.path();
    let input = example("records.jsonl");
    let input = input.to_str().expect("utf-8 path");
    // The sandbox replaces its file by rename after each change: a report there would vanish.
    let out = run(
        dir,
        "tray",
        &[
            "import",
            "--input",
            input,
            "--report",
            "state.db.sandbox.json",
        ],
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("the sandbox data of --state"),
        "{}",
        out.stderr
    );
    assert!(!dir.join("state.db").exists(), "no state was made");
}

#[tokio::test]
async fn a_killed_sandbox_run_resumes_without_losing_or_doubling_an_object() {
    use tokio::io::AsyncBufReadExt as _;
    let dir = scratch();
    let dir = dir.path();
    let input = example("records.jsonl");
    let input = input.to_str().expect("utf-8 path");
    let mut child = crate::common::authport_command()
        .current_dir(dir)
        .args(["import", "--provider", "tray", "--input", input])
        .args(["--sandbox", "--state", "state.db", "--concurrency", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the import");
    // Killed (SIGKILL: nothing runs at exit) once the first record is reported imported.
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await.expect("read") {
        if line.contains("\"imported\"") {
            break;
        }
    }
    child.kill().await.expect("kill the import");

    let again = run(
        dir,
        "tray",
        &["import", "--input", input, "--report", "rerun.jsonl"],
    )
    .await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    let rerun = read_lines(&dir.join("rerun.jsonl"));
    assert_eq!(
        ids_with(&rerun, "status", &["unchanged", "imported"]).len(),
        RECORDS,
        "{rerun:?}"
    );
    assert!(
        !ids_with(&rerun, "status", &["unchanged"]).is_empty(),
        "what the killed run acknowledged is still there: {rerun:?}"
    );
    let verify = run(dir, "tray", &["verify", "--report", "verify.jsonl"]).await;
    assert_eq!(verify.code, 0, "{}", verify.stderr);
    let saved: Value = serde_json::from_slice(
        &std::fs::read(dir.join("state.db.sandbox.json")).expect("sandbox data"),
    )
    .expect("json");
    assert_eq!(
        saved["tray"]["auths"].as_array().map(Vec::len),
        Some(RECORDS),
        "one auth per record, none lost or doubled"
    );
}
