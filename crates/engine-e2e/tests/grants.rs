//! Shared grants (issue 19 item 1) end to end against the sandbox's Tray: exactly one target
//! connection per grant, in one input and across runs; `--dry-run` and `validate` report the
//! same records; `--allow-shared-grants` imports them all; no token in any output.

use crate::common;

use authport_engine::{Exit, StateStore};
use authport_sandbox::SandboxConfig;
use common::*;
use serde_json::{Value, json};

/// `records[to]` takes `records[from]`'s refresh token (its own access token stays).
fn share_refresh(records: &mut [Value], from: usize, to: usize) {
    let token = records[from]["auth"]["refresh_token"].clone();
    records[to]["auth"]["refresh_token"] = token;
}

/// Records `from` and `to` lose their refresh tokens and share `from`'s access token.
fn share_access_only(records: &mut [Value], from: usize, to: usize) {
    for index in [from, to] {
        records[index]["auth"]
            .as_object_mut()
            .unwrap()
            .remove("refresh_token");
    }
    let token = records[from]["auth"]["access_token"].clone();
    records[to]["auth"]["access_token"] = token;
}

/// `(id, error kind, message)` of the failed lines, by id.
fn failures(report: &std::path::Path) -> Vec<(String, String, String)> {
    let mut failed: Vec<_> = report_lines(report)
        .into_iter()
        .filter(|l| l["status"] == "failed")
        .map(|l| {
            (
                l["id"].as_str().unwrap_or_default().to_owned(),
                l["error"]["kind"].as_str().unwrap_or_default().to_owned(),
                l["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    failed.sort();
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_input_gives_one_connection_per_grant_and_dry_run_and_validate_agree() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(SandboxConfig::default()).await;
    let input = dir.path().join("input.jsonl");
    let mut records = records(8, 8);
    share_refresh(&mut records, 0, 2);
    share_refresh(&mut records, 0, 7);
    share_access_only(&mut records, 4, 5);
    write_lines(&input, &records);

    // validate (offline) and the dry run name the same records as the import.
    let validated = dir.path().join("validate.jsonl");
    let summary = authport_engine::validate_input(&input, Some(&validated), false).unwrap();
    assert_eq!(counts(&summary), vec![("failed", 3), ("planned", 5)]);
    let state = StateStore::open(&dir.path().join("state.db")).unwrap();
    let importer = importer("tray", &sandbox, &state);
    let planned = dir.path().join("plan.jsonl");
    let mut options = options("tray", &input, &planned);
    options.dry_run = true;
    let dry = run(&importer, &state, &options).await;
    assert_eq!(counts(&dry), vec![("failed", 3), ("planned", 5)]);
    assert_eq!(sandbox.tray.auth_count(), 0);

    let report = dir.path().join("report.jsonl");
    options.report = Some(report.clone());
    options.dry_run = false;
    let summary = run(&importer, &state, &options).await;
    assert_eq!(counts(&summary), vec![("imported", 5), ("failed", 3)]);
    assert_eq!(summary.exit_code(), Exit::SomeFailed);
    assert_one_tray_auth_per_record(&sandbox, 5);

    let failed = failures(&report);
    assert_eq!(failed, failures(&planned));
    assert_eq!(failed, failures(&validated));
    let ids: Vec<&str> = failed.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids, ["rec-000002", "rec-000005", "rec-000007"]);
    assert!(failed.iter().all(|(_, kind, _)| kind == "shared_grant"));
    assert!(
        failed[0].2.contains("record `rec-000000` (line 1)"),
        "{}",
        failed[0].2
    );
    assert!(
        failed[0].2.contains("auth.refresh_token"),
        "{}",
        failed[0].2
    );
    assert!(
        failed[1].2.contains("record `rec-000004` (line 5)"),
        "{}",
        failed[1].2
    );
    assert!(failed[1].2.contains("auth.access_token"), "{}", failed[1].2);
    assert!(
        failed[2].2.contains("record `rec-000000` (line 1)"),
        "{}",
        failed[2].2
    );
    let human = summary.human();
    assert!(human.contains("shared_grant"), "{human}");
    drop(state);
    assert_no_canary(dir.path(), &[&human, &summary.to_json().to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_journalled_under_another_record_is_refused_by_a_later_run() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(SandboxConfig::default()).await;
    let state = StateStore::open(&dir.path().join("state.db")).unwrap();
    let importer = importer("tray", &sandbox, &state);
    let first_input = dir.path().join("input-first.jsonl");
    let all = records(4, 4);
    write_lines(&first_input, &all[..2]);
    let report = dir.path().join("report.jsonl");
    let first = run(&importer, &state, &options("tray", &first_input, &report)).await;
    assert_eq!(counts(&first), vec![("imported", 2)]);

    // A later input: another record id carrying rec-000001's grant, and a new one.
    let mut later = vec![all[2].clone(), all[3].clone()];
    later[0]["auth"]["refresh_token"] = all[1]["auth"]["refresh_token"].clone();
    let later_input = dir.path().join("input-later.jsonl");
    write_lines(&later_input, &later);
    let mut options = options("tray", &later_input, &report);
    options.dry_run = true;
    let dry = run(&importer, &state, &options).await;
    assert_eq!(counts(&dry), vec![("failed", 1), ("planned", 1)]);
    let planned = failures(&report);
    options.dry_run = false;
    let second = run(&importer, &state, &options).await;
    assert_eq!(counts(&second), vec![("imported", 1), ("failed", 1)]);
    let failed = failures(&report);
    assert_eq!(failed, planned);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, "rec-000002");
    assert_eq!(failed[0].1, "shared_grant");
    assert!(
        failed[0]
            .2
            .contains("record `rec-000001`, imported by an earlier run"),
        "{}",
        failed[0].2
    );
    assert_one_tray_auth_per_record(&sandbox, 3);

    // The holder itself comes back unchanged.
    let again = run(&importer, &state, &options_for(&first_input, &report)).await;
    assert_eq!(counts(&again), vec![("unchanged", 2)]);
    drop(state);
    assert_no_canary(dir.path(), &[]);
}

fn options_for(
    input: &std::path::Path,
    report: &std::path::Path,
) -> authport_engine::ImportOptions {
    options("tray", input, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_shared_grants_imports_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(SandboxConfig::default()).await;
    let input = dir.path().join("input.jsonl");
    let mut records = records(3, 3);
    share_refresh(&mut records, 0, 1);
    share_refresh(&mut records, 0, 2);
    write_lines(&input, &records);
    let state = StateStore::open(&dir.path().join("state.db")).unwrap();
    let importer = importer("tray", &sandbox, &state);
    let mut options = options("tray", &input, &dir.path().join("report.jsonl"));
    options.allow_shared_grants = true;
    let summary = run(&importer, &state, &options).await;
    assert_eq!(counts(&summary), vec![("imported", 3)]);
    assert_one_tray_auth_per_record(&sandbox, 3);
    let validated = dir.path().join("validate.jsonl");
    let checked = authport_engine::validate_input(&input, Some(&validated), true).unwrap();
    assert_eq!(counts(&checked), vec![("planned", 3)]);
    // The grant stays the first record's: a run without the flag refuses a new record with it.
    let extra = dir.path().join("input-extra.jsonl");
    let mut other = common::record(9, 3, 1);
    other["auth"]["refresh_token"] = records[0]["auth"]["refresh_token"].clone();
    write_lines(&extra, &[other]);
    let refused = run(
        &importer,
        &state,
        &options_for(&extra, &dir.path().join("extra.jsonl")),
    )
    .await;
    assert_eq!(counts(&refused), vec![("failed", 1)]);
    assert_eq!(
        failures(&dir.path().join("extra.jsonl"))[0].1,
        "shared_grant"
    );
    assert_one_tray_auth_per_record(&sandbox, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_a_rotating_service_are_counted_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.jsonl");
    let mut records = records(4, 4);
    // Only the data file's services count, and only OAuth records with a refresh token.
    records[0]["service"] = json!("xero");
    records[1]["service"] = json!("jira");
    records[2]["service"] = json!("google");
    write_lines(&input, &records);
    let summary =
        authport_engine::validate_input(&input, Some(&dir.path().join("v.jsonl")), false).unwrap();
    assert_eq!(summary.rotating, 2);
    let human = summary.human();
    assert!(human.contains("2 record(s) hold refresh tokens"), "{human}");
    assert!(human.contains("migrate --cutover"), "{human}");
    assert_eq!(summary.to_json()["rotating_refresh_tokens"], 2);
}
