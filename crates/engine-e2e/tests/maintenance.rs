//! verify and rollback, driven by the state journal, against the sandbox.

use crate::common;

use authport_engine::{Exit, StateStore};
use authport_sandbox::SandboxConfig;
use authport_sandbox::faults::{FaultKind, FaultPlan, FaultRule, Trigger};
use common::*;
use serde_json::{Map, Value, json};

fn out_lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reads_back_every_object_and_rollback_removes_exactly_what_was_created() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(SandboxConfig::default()).await;
    let input = write_lines(&dir.path().join("input.jsonl"), &records(6, 2));
    let state = StateStore::open(&dir.path().join("state.db")).unwrap();
    let importer = importer("tray", &sandbox, &state);
    let summary = run(
        &importer,
        &state,
        &options("tray", &input, &dir.path().join("import.jsonl")),
    )
    .await;
    assert_eq!(counts(&summary), vec![("imported", 6)]);
    // Someone deletes one object behind our back.
    let gone = sandbox.tray.auths()[0].id.clone();
    let tray_client = reqwest::Client::new();
    let deleted = tray_client
        .delete(format!(
            "{}/core/v1/authentications/{gone}",
            sandbox.base_url()
        ))
        .bearer_auth(
            &sandbox
                .provider_env()
                .iter()
                .find(|(k, _)| k == "TRAY_MASTER_TOKEN")
                .unwrap()
                .1,
        )
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());

    let mut out = Vec::new();
    let verify_report = dir.path().join("verify.jsonl");
    let verified = authport_engine::verify(
        importer.clone(),
        &state,
        &maintenance("tray"),
        Some(&verify_report),
        &mut out,
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(verified.count("present"), 5, "{}", verified.human());
    assert_eq!(verified.count("missing"), 1);
    assert_eq!(verified.exit_code(), Exit::SomeFailed);
    let lines = out_lines(&out);
    assert_eq!(lines.len(), 6);
    assert_eq!(report_lines(&verify_report), lines);

    // Transient failures on delete are retried; the rollback ends with nothing left.
    sandbox.faults.set(FaultPlan {
        seed: 3,
        rules: vec![FaultRule::new(
            Some("DELETE"),
            "/core/v1/authentications",
            FaultKind::ErrorBeforeApply,
            Trigger::Nth(vec![1, 3]),
        )],
        latency: None,
    });
    let mut out = Vec::new();
    let rolled = authport_engine::rollback(
        importer.clone(),
        &state,
        &maintenance("tray"),
        None,
        &mut out,
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(
        (rolled.count("removed"), rolled.count("already_gone")),
        (5, 1),
        "{}",
        rolled.human()
    );
    assert_eq!(rolled.exit_code(), Exit::Ok);
    assert_eq!(sandbox.tray.auth_count(), 0);
    assert!(state.objects("tray").unwrap().is_empty());

    // Resumable and idempotent: a second rollback has nothing to do.
    let mut out = Vec::new();
    let again = authport_engine::rollback(
        importer.clone(),
        &state,
        &maintenance("tray"),
        None,
        &mut out,
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(again.counts.values().sum::<u64>(), 0);
    // After a rollback the records import afresh.
    let reimport = run(
        &importer,
        &state,
        &options("tray", &input, &dir.path().join("import.jsonl")),
    )
    .await;
    assert_eq!(counts(&reimport), vec![("imported", 6)]);
    drop((importer, state));
    assert_no_canary(
        dir.path(),
        &[&String::from_utf8_lossy(&out), &verified.human()],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_never_removes_what_existed_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(SandboxConfig::default()).await;
    // owner-1 already has a HubSpot connection with credentials: authport must leave it.
    let credentials: Map<String, Value> = json!({"access_token": "theirs"})
        .as_object()
        .cloned()
        .unwrap();
    sandbox.apideck.precreate_connection(
        "owner-1",
        "crm",
        "hubspot",
        Map::new(),
        Some(credentials),
    );
    let input = write_lines(&dir.path().join("input.jsonl"), &records(4, 4));
    let state = StateStore::open(&dir.path().join("state.db")).unwrap();
    let importer = importer("apideck", &sandbox, &state);
    let report = dir.path().join("import.jsonl");
    let summary = run(&importer, &state, &options("apideck", &input, &report)).await;
    assert_eq!(
        counts(&summary),
        vec![("imported", 3), ("skipped", 1)],
        "{}",
        summary.human()
    );
    let skipped: Vec<Value> = report_lines(&report)
        .into_iter()
        .filter(|l| l["status"] == "skipped")
        .collect();
    assert_eq!(skipped[0]["error"]["kind"], "pre_existing");

    let mut out = Vec::new();
    let rolled = authport_engine::rollback(
        importer.clone(),
        &state,
        &maintenance("apideck"),
        None,
        &mut out,
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(rolled.count("removed"), 3, "{}", rolled.human());
    let left: Vec<String> = sandbox
        .apideck
        .connection_keys()
        .iter()
        .map(|k| format!("{k:?}"))
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].contains("owner-1"), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rollback_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(SandboxConfig::default()).await;
    let input = write_lines(&dir.path().join("input.jsonl"), &records(5, 5));
    let state = StateStore::open(&dir.path().join("state.db")).unwrap();
    let importer = importer("tray", &sandbox, &state);
    run(
        &importer,
        &state,
        &options("tray", &input, &dir.path().join("import.jsonl")),
    )
    .await;
    let mut out = Vec::new();
    let stopped = authport_engine::rollback(
        importer.clone(),
        &state,
        &maintenance("tray"),
        None,
        &mut out,
        std::future::ready(()),
    )
    .await
    .unwrap();
    assert!(stopped.interrupted);
    assert_eq!(stopped.exit_code(), Exit::Interrupted);
    let removed_first = usize::try_from(stopped.count("removed")).unwrap();
    assert_eq!(sandbox.tray.auth_count(), 5 - removed_first);
    let finished = authport_engine::rollback(
        importer.clone(),
        &state,
        &maintenance("tray"),
        None,
        &mut out,
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(
        usize::try_from(finished.count("removed")).unwrap(),
        5 - removed_first
    );
    assert_eq!(sandbox.tray.auth_count(), 0);
}
