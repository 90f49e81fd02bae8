//! The engine end to end: real providers over loopback HTTP against the sandbox (imports,
//! re-runs, refusals, interrupts, dry runs). Injected faults are in `faults.rs`.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use authport_engine::{AppliedHook, Exit, StateStore};
use authport_sandbox::SandboxConfig;
use authport_sandbox::faults::FaultPlan;
use common::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_then_rerun_is_unchanged_and_a_changed_record_is_updated_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(SandboxConfig::default()).await;
    let input_path = dir.path().join("input.jsonl");
    let report = dir.path().join("report.jsonl");
    let state_path = dir.path().join("state.db");
    let mut records = records(12, 3);
    write_lines(&input_path, &records);

    let state = StateStore::open(&state_path).unwrap();
    let importer = importer("tray", &sandbox, &state);
    let mut options = options("tray", &input_path, &report);
    // Drawn on stderr (indicatif hides it when stderr is not a terminal).
    options.progress = true;
    // Every committed object is announced once, with the target the journal holds.
    let applied: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let seen = applied.clone();
    options.on_applied = Some(AppliedHook(Arc::new(move |record_id, target| {
        let id = target.get_str("authentication_id").unwrap_or("").to_owned();
        seen.lock().unwrap().push((record_id.to_owned(), id));
    })));
    let first = run(&importer, &state, &options).await;
    assert_eq!(counts(&first), vec![("imported", 12)]);
    let mut announced = std::mem::take(&mut *applied.lock().unwrap());
    announced.sort();
    let mut journalled: Vec<(String, String)> = state
        .objects("tray")
        .unwrap()
        .into_iter()
        .map(|o| {
            let id = o
                .target
                .get_str("authentication_id")
                .unwrap_or("")
                .to_owned();
            (o.record_id, id)
        })
        .collect();
    journalled.sort();
    assert_eq!(announced, journalled);
    assert_eq!(first.exit_code(), Exit::Ok);
    assert_one_tray_auth_per_record(&sandbox, 12);
    let lines = report_lines(&report);
    assert_eq!(lines.len(), 12);
    assert!(
        lines
            .iter()
            .all(|l| l["target"]["authentication_id"].is_string())
    );

    let second = run(&importer, &state, &options).await;
    assert_eq!(counts(&second), vec![("unchanged", 12)]);
    assert!(applied.lock().unwrap().is_empty(), "nothing was written");
    assert_one_tray_auth_per_record(&sandbox, 12);

    // A new token for one record: an update of the same object, not a second create.
    records[4] = record(4, 3, 2);
    write_lines(&input_path, &records);
    let third = run(&importer, &state, &options).await;
    assert_eq!(counts(&third), vec![("updated", 1), ("unchanged", 11)]);
    assert_one_tray_auth_per_record(&sandbox, 12);
    assert_eq!(
        sandbox.tray.auths().iter().map(|a| a.updates).sum::<u32>(),
        1
    );

    let human = third.human();
    let json = third.to_json().to_string();
    drop((importer, state));
    assert_no_canary(dir.path(), &[&human, &json]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lines_fail_alone_with_their_location_and_the_rest_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(SandboxConfig::default()).await;
    let good = records(3, 3);
    let mut unmappable = record(7, 3, 1);
    unmappable["targets"]["tray"]["service_environment"] = Value::from("no such environment");
    let text = format!(
        "{}\n{{not json\n{}\n{}\n{{\"id\":\"x\",\"owner\":{{\"id\":\"o\"}},\"service\":\"hubspot\"}}\n{}\n{}\n",
        good[0], good[1], good[1], good[2], unmappable
    );
    let input = dir.path().join("input.jsonl");
    std::fs::write(&input, text).unwrap();
    let report = dir.path().join("report.jsonl");
    let state = StateStore::temporary().unwrap();
    let importer = importer("tray", &sandbox, &state);
    let summary = run(&importer, &state, &options("tray", &input, &report)).await;

    let mut lines = report_lines(&report);
    lines.sort_by_key(|l| l["line"].as_u64());
    let check = |line: u64, status: &str, kind: Option<&str>, message_part: &str| {
        let found = &lines[usize::try_from(line).unwrap() - 1];
        assert_eq!(found["line"], line);
        assert_eq!(found["status"], status, "line {line}: {found}");
        assert_eq!(
            found["error"]["kind"].as_str(),
            kind,
            "line {line}: {found}"
        );
        let message = found["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(message_part), "line {line}: {message}");
    };
    let file = input.display().to_string();
    check(1, "imported", None, "");
    check(2, "failed", Some("invalid_record"), &format!("{file}:2: "));
    check(3, "imported", None, "");
    check(
        4,
        "failed",
        Some("invalid_record"),
        &format!("{file}:4: id: duplicate id"),
    );
    check(5, "failed", Some("invalid_record"), "auth: is required");
    check(6, "imported", None, "");
    check(7, "failed", Some("mapping"), "");
    assert_eq!(summary.exit_code(), Exit::SomeFailed);
    assert_eq!(sandbox.tray.auth_count(), 3);
    assert!(
        summary
            .top_failures
            .iter()
            .any(|(reason, _)| reason.starts_with("invalid_record: "))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_limit_stops_the_run_and_the_next_run_finishes_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(SandboxConfig::default()).await;
    sandbox.apideck.set_import_limit(Some(4));
    // Apideck holds one connection per consumer and service: one owner per record.
    let input = write_lines(&dir.path().join("input.jsonl"), &records(10, 10));
    let report = dir.path().join("report.jsonl");
    let state = StateStore::open(&dir.path().join("state.db")).unwrap();
    let importer = importer("apideck", &sandbox, &state);
    let mut options = options("apideck", &input, &report);
    options.concurrency = Some(1);

    let first = run(&importer, &state, &options).await;
    assert_eq!(first.exit_code(), Exit::Stopped, "{}", first.human());
    assert!(first.stopped.is_some());
    assert_eq!(
        counts(&first),
        vec![("imported", 4), ("skipped", 5), ("failed", 1)]
    );
    let lines = report_lines(&report);
    assert_eq!(lines.len(), 10);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["error"]["kind"] == "not_attempted")
            .count(),
        5
    );

    sandbox.apideck.set_import_limit(None);
    let second = run(&importer, &state, &options).await;
    assert_eq!(
        counts(&second),
        vec![("imported", 6), ("unchanged", 4)],
        "{}",
        second.human()
    );
    assert_eq!(second.exit_code(), Exit::Ok);
    assert_eq!(sandbox.apideck.connection_count(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_master_token_stops_before_any_write() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(SandboxConfig::default()).await;
    let input = write_lines(&dir.path().join("input.jsonl"), &records(5, 2));
    let report = dir.path().join("report.jsonl");
    let state = StateStore::temporary().unwrap();
    let importer: std::sync::Arc<dyn authport_core::AuthImporter> = std::sync::Arc::from(
        sandbox
            .context()
            .var("TRAY_MASTER_TOKEN", "not-the-master-token")
            .memo(state.memo())
            .timeout(Duration::from_secs(5))
            .provider("tray"),
    );
    let summary = run(&importer, &state, &options("tray", &input, &report)).await;
    assert_eq!(summary.exit_code(), Exit::Stopped, "{}", summary.human());
    assert_eq!(counts(&summary), vec![("skipped", 5)]);
    assert_eq!(sandbox.tray.auth_count(), 0);
    assert!(
        report_lines(&report)
            .iter()
            .all(|l| l["error"]["kind"] == "not_attempted")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_reports_the_rest_as_not_attempted_and_a_rerun_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(SandboxConfig::default()).await;
    sandbox.faults.set(FaultPlan {
        seed: 1,
        rules: Vec::new(),
        latency: Some((Duration::from_millis(5), Duration::from_millis(10))),
    });
    let input = write_lines(&dir.path().join("input.jsonl"), &records(40, 4));
    let report = dir.path().join("report.jsonl");
    let state = StateStore::open(&dir.path().join("state.db")).unwrap();
    let importer = importer("tray", &sandbox, &state);
    let mut options = options("tray", &input, &report);
    options.concurrency = Some(2);

    // Ctrl-C once a few records are in.
    let tray = sandbox.tray.clone();
    let shutdown = async move {
        while tray.auth_count() < 5 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    let first = authport_engine::import(importer.clone(), &state, &options, shutdown)
        .await
        .unwrap();
    assert!(first.interrupted);
    assert_eq!(first.exit_code(), Exit::Interrupted);
    assert_eq!(first.total(), 40);
    let imported_first = first.count(authport_core::Status::Imported);
    assert!((5..40).contains(&imported_first), "{}", first.human());
    assert_eq!(report_lines(&report).len(), 40);

    let second = run(&importer, &state, &options).await;
    assert_eq!(second.exit_code(), Exit::Ok);
    assert_eq!(
        second.count(authport_core::Status::Unchanged),
        imported_first
    );
    assert_eq!(
        second.count(authport_core::Status::Imported),
        40 - imported_first
    );
    assert_one_tray_auth_per_record(&sandbox, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_maps_and_plans_without_writing_or_leaking() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(SandboxConfig::default()).await;
    let input = write_lines(&dir.path().join("input.jsonl"), &records(6, 6));
    for provider in ["tray", "apideck"] {
        let report = dir.path().join(format!("{provider}-plan.jsonl"));
        let state = StateStore::temporary().unwrap();
        let importer = importer(provider, &sandbox, &state);
        let mut options = options(provider, &input, &report);
        options.dry_run = true;
        let summary = run(&importer, &state, &options).await;
        assert_eq!(counts(&summary), vec![("planned", 6)], "{provider}");
        assert!(summary.to_json()["dry_run"].as_bool().unwrap());
        let lines = report_lines(&report);
        assert!(lines.iter().all(|l| l["plan"].is_object()), "{provider}");
        assert!(
            lines
                .iter()
                .any(|l| l["plan"].to_string().contains("[redacted]")),
            "{provider}"
        );
    }
    assert_eq!(sandbox.tray.auth_count(), 0);
    assert_eq!(sandbox.apideck.connection_count(), 0);
    assert_no_canary(dir.path(), &[]);
}

#[test]
fn validate_reports_every_line_offline() {
    let dir = tempfile::tempdir().unwrap();
    let good = records(2, 1);
    let input = dir.path().join("input.jsonl");
    std::fs::write(
        &input,
        format!("{}\n[1]\n{}\n{}\n", good[0], good[1], good[0]),
    )
    .unwrap();
    let report = dir.path().join("validate.jsonl");
    let summary = authport_engine::validate(&input, Some(&report)).unwrap();
    assert_eq!(counts(&summary), vec![("failed", 2), ("planned", 2)]);
    assert_eq!(summary.exit_code(), Exit::SomeFailed);
    let lines = report_lines(&report);
    assert_eq!(
        lines
            .iter()
            .map(|l| l["line"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_no_canary(dir.path(), &[&summary.human()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_or_deadline_before_any_write_reports_every_record_not_attempted() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(SandboxConfig::default()).await;
    let input = write_lines(&dir.path().join("input.jsonl"), &records(6, 2));
    let report = dir.path().join("report.jsonl");
    let state = StateStore::temporary().unwrap();
    let importer = importer("tray", &sandbox, &state);
    for _ in 0..5 {
        let options = options("tray", &input, &report);
        let summary =
            authport_engine::import(importer.clone(), &state, &options, std::future::ready(()))
                .await
                .unwrap();
        assert_eq!(summary.exit_code(), Exit::Interrupted);
        assert_eq!(counts(&summary), vec![("skipped", 6)]);
    }
    let mut options = options("tray", &input, &report);
    options.deadline = Some(Duration::ZERO);
    let summary = run(&importer, &state, &options).await;
    assert_eq!(summary.exit_code(), Exit::Stopped, "{}", summary.human());
    assert!(
        summary
            .stopped
            .as_deref()
            .unwrap_or("")
            .contains("deadline")
    );
    assert_eq!(counts(&summary), vec![("skipped", 6)]);
    assert!(
        report_lines(&report)
            .iter()
            .all(|l| l["error"]["kind"] == "not_attempted")
    );
    assert_eq!(sandbox.tray.auth_count(), 0);
}
