//! The engine end to end under injected faults: every kind of write fault, a crash between
//! intent and outcome, random faults against both providers, and a target's rate limit below
//! ours. Each ends with every record imported exactly once.

use crate::common;

use std::time::Duration;

use authport_engine::{Exit, StateStore};
use authport_sandbox::SandboxConfig;
use authport_sandbox::faults::{FaultKind, FaultPlan, FaultRule, Trigger};
use common::*;
use serde_json::Value;

const TRAY_CREATE: &str = "/core/v1/authentications";

fn plan(rules: Vec<FaultRule>) -> FaultPlan {
    FaultPlan {
        seed: 7,
        rules,
        latency: None,
    }
}

fn statuses(report: &[Value]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = report
        .iter()
        .map(|l| {
            (
                l["id"].as_str().unwrap_or("-").to_owned(),
                l["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    pairs.sort();
    pairs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_injected_write_fault_ends_with_each_record_imported_once() {
    // (fault on the create call, expected to need a reconcile)
    let cases = [
        (FaultKind::ErrorBeforeApply, false),
        (FaultKind::ErrorAfterApply, true),
        (FaultKind::DropBeforeApply, false),
        (FaultKind::DropAfterApply, true),
        (
            FaultKind::TooManyRequests {
                retry_after_secs: None,
            },
            false,
        ),
        (
            FaultKind::TooManyRequests {
                retry_after_secs: Some(1),
            },
            false,
        ),
    ];
    for (kind, ambiguous) in cases {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = sandbox(SandboxConfig::default()).await;
        sandbox.faults.set(plan(vec![FaultRule::new(
            Some("POST"),
            TRAY_CREATE,
            kind.clone(),
            Trigger::Nth(vec![1, 2, 5]),
        )]));
        let input = write_lines(&dir.path().join("input.jsonl"), &records(8, 2));
        let report = dir.path().join("report.jsonl");
        let state = StateStore::temporary().unwrap();
        let importer = importer("tray", &sandbox, &state);
        let summary = run(&importer, &state, &options("tray", &input, &report)).await;

        assert_eq!(
            counts(&summary),
            vec![("imported", 8)],
            "{kind:?}: {}",
            summary.human()
        );
        assert_one_tray_auth_per_record(&sandbox, 8);
        let injected = sandbox.faults.injected();
        let total = injected.error_before
            + injected.error_after
            + injected.drop_before
            + injected.drop_after
            + injected.too_many_requests;
        assert_eq!(total, 3, "{kind:?}");
        if ambiguous {
            assert!(
                summary.reconciled >= 3,
                "{kind:?}: reconciled {}",
                summary.reconciled
            );
        }
        if matches!(kind, FaultKind::TooManyRequests { .. }) {
            assert_eq!(summary.throttled, 3, "{kind:?}");
        }
        assert!(summary.retries >= 3 || summary.reconciled >= 3, "{kind:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_intent_and_outcome_is_reconciled_not_written_twice() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(SandboxConfig::default()).await;
    let all = records(10, 2);
    let input = write_lines(&dir.path().join("input.jsonl"), &all);
    let report = dir.path().join("report.jsonl");

    // The "crashed" run: the first 6 writes reached the target, but only their intents were
    // journalled (the process died before the outcomes). Intents for 4 more never got sent.
    let half = write_lines(&dir.path().join("input-half.jsonl"), &all[..6]);
    let throwaway = StateStore::temporary().unwrap();
    let tray = importer("tray", &sandbox, &throwaway);
    let created = run(
        &tray,
        &throwaway,
        &options("tray", &half, &dir.path().join("r0.jsonl")),
    )
    .await;
    assert_eq!(counts(&created), vec![("imported", 6)]);
    let state = StateStore::open(&dir.path().join("state.db")).unwrap();
    for record in &all {
        state
            .commit_intent(
                "tray",
                record["id"].as_str().unwrap(),
                "fingerprint-of-the-crashed-run",
            )
            .await
            .unwrap();
    }

    let importer = importer("tray", &sandbox, &state);
    let summary = run(&importer, &state, &options("tray", &input, &report)).await;
    assert_eq!(summary.reconciled, 10, "{}", summary.human());
    assert_one_tray_auth_per_record(&sandbox, 10);
    assert!(state.pending("tray").unwrap().is_empty());
    // The adopted six were written with other content (the crashed run's fingerprint differs),
    // so they are brought up to date; the other four are created now.
    assert_eq!(counts(&summary), vec![("imported", 4), ("updated", 6)]);
    let again = run(&importer, &state, &options("tray", &input, &report)).await;
    assert_eq!(counts(&again), vec![("unchanged", 10)]);
    assert_one_tray_auth_per_record(&sandbox, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_faults_end_with_one_status_per_record_and_counts_matching_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(SandboxConfig::default()).await;
    let p = |kind, probability| FaultRule::new(None, "/", kind, Trigger::Probability(probability));
    sandbox.faults.set(FaultPlan {
        seed: 42,
        rules: vec![
            p(FaultKind::ErrorBeforeApply, 0.05),
            p(FaultKind::ErrorAfterApply, 0.05),
            p(FaultKind::DropBeforeApply, 0.025),
            p(FaultKind::DropAfterApply, 0.025),
        ],
        latency: Some((Duration::ZERO, Duration::from_millis(3))),
    });
    let input = write_lines(&dir.path().join("input.jsonl"), &records(150, 10));
    let report = dir.path().join("report.jsonl");
    let state = StateStore::open(&dir.path().join("state.db")).unwrap();
    let importer = importer("tray", &sandbox, &state);
    let mut options = options("tray", &input, &report);
    options.max_attempts = 10;
    let summary = run(&importer, &state, &options).await;

    let lines = report_lines(&report);
    let pairs = statuses(&lines);
    let mut ids: Vec<&String> = pairs.iter().map(|(id, _)| id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 150, "one line per record");
    assert_eq!(pairs.len(), 150);
    let imported = summary.count(authport_core::Status::Imported);
    // Whatever failed after all retries, the sandbox holds exactly what the report says.
    let objects_in_state = state.objects("tray").unwrap().len();
    assert_eq!(
        usize::try_from(imported).unwrap(),
        objects_in_state,
        "{}",
        summary.human()
    );
    let mut names: Vec<String> = sandbox.tray.auths().into_iter().map(|a| a.name).collect();
    let before = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), before, "duplicates in the sandbox");
    assert!(sandbox.faults.injected().error_after + sandbox.faults.injected().drop_after > 0);
    // Unresolved ambiguous writes may exist in the sandbox without a journal outcome; a re-run
    // with no faults resolves them all and ends with exactly one object per record.
    sandbox.faults.set(FaultPlan::default());
    let again = run(&importer, &state, &options).await;
    assert_eq!(again.exit_code(), Exit::Ok, "{}", again.human());
    assert_one_tray_auth_per_record(&sandbox, 150);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_limit_below_our_rate_is_learned_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SandboxConfig::default();
    config.tray.rate_limit = Some(authport_sandbox::tray::RateLimit {
        per_second: 400.0,
        burst: 5,
    });
    let sandbox = sandbox(config).await;
    let input = write_lines(&dir.path().join("input.jsonl"), &records(120, 3));
    let report = dir.path().join("report.jsonl");
    let state = StateStore::temporary().unwrap();
    let importer = importer("tray", &sandbox, &state);
    let mut options = options("tray", &input, &report);
    // Far above what the target accepts: every 429 must be retried and slow us down.
    options.rate = authport_engine::RateChoice::Fixed {
        per_second: 5000.0,
        burst: Some(100),
    };
    options.concurrency = Some(8);
    options.max_attempts = 30;
    let summary = run(&importer, &state, &options).await;
    assert_eq!(
        counts(&summary),
        vec![("imported", 120)],
        "{}",
        summary.human()
    );
    assert!(summary.throttled > 0);
    assert_eq!(summary.throttled, sandbox.tray.rate_limited_count());
    assert_one_tray_auth_per_record(&sandbox, 120);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apideck_imports_survive_random_faults_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(SandboxConfig::default()).await;
    let p =
        |kind, probability| FaultRule::new(None, "/vault", kind, Trigger::Probability(probability));
    sandbox.faults.set(FaultPlan {
        seed: 4,
        rules: vec![
            p(FaultKind::ErrorBeforeApply, 0.05),
            p(FaultKind::ErrorAfterApply, 0.05),
            p(FaultKind::DropBeforeApply, 0.03),
            p(FaultKind::DropAfterApply, 0.03),
            p(
                FaultKind::TooManyRequests {
                    retry_after_secs: None,
                },
                0.03,
            ),
        ],
        latency: None,
    });
    let input = write_lines(&dir.path().join("input.jsonl"), &records(60, 60));
    let report = dir.path().join("report.jsonl");
    let state = StateStore::open(&dir.path().join("state.db")).unwrap();
    let importer = importer("apideck", &sandbox, &state);
    let mut options = options("apideck", &input, &report);
    options.max_attempts = 12;
    let summary = run(&importer, &state, &options).await;
    assert_eq!(report_lines(&report).len(), 60);
    sandbox.faults.set(FaultPlan::default());
    let again = run(&importer, &state, &options).await;
    assert_eq!(
        again.exit_code(),
        Exit::Ok,
        "{}\n{}",
        summary.human(),
        again.human()
    );
    assert_eq!(sandbox.apideck.connection_count(), 60);
    assert_eq!(state.objects("apideck").unwrap().len(), 60);
    assert!(state.pending("apideck").unwrap().is_empty());
}
