//! Hardening of the import run (issue 8): claims of records that wrote nothing are released, and
//! an input that can be read only once (a pipe) is imported in full: the run reads it once.

use crate::common;

use authport_engine::StateStore;
use authport_sandbox::SandboxConfig;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_wrote_nothing_does_not_block_its_corrected_successor() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(SandboxConfig::default()).await;
    let state = StateStore::open(&dir.path().join("state.db")).unwrap();
    let importer = importer("apideck", &sandbox, &state);

    // The target refuses the first record (plan limit reached): nothing is written for it.
    sandbox.apideck.set_import_limit(Some(0));
    let first = write_lines(&dir.path().join("input-1.jsonl"), &[record(0, 1, 1)]);
    let report = dir.path().join("report-1.jsonl");
    let summary = run(&importer, &state, &options("apideck", &first, &report)).await;
    assert_eq!(counts(&summary), vec![("failed", 1)], "{}", summary.human());
    assert_eq!(sandbox.apideck.connection_count(), 0);

    // The operator fixes it under a new id: same consumer and connector, so the same target
    // connection. It must be imported, not refused as a conflict with the failed record.
    sandbox.apideck.set_import_limit(None);
    let mut corrected = record(0, 1, 2);
    corrected["id"] = serde_json::json!("rec-000000-fixed");
    let second = write_lines(&dir.path().join("input-2.jsonl"), &[corrected]);
    let report = dir.path().join("report-2.jsonl");
    let summary = run(&importer, &state, &options("apideck", &second, &report)).await;
    assert_eq!(
        counts(&summary),
        vec![("imported", 1)],
        "{}",
        summary.human()
    );
    assert_eq!(sandbox.apideck.connection_count(), 1);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipe_is_read_once_and_every_record_reported() {
    use std::io::Write as _;

    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(SandboxConfig::default()).await;
    let fifo = dir.path().join("input.jsonl");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // A pipe yields its records to one reader only: a second pass would see none of them.
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut pipe = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            for index in 0..7 {
                writeln!(pipe, "{}", record(index, 3, 1)).unwrap();
            }
        })
    };
    let state = StateStore::temporary().unwrap();
    let importer = importer("tray", &sandbox, &state);
    let report = dir.path().join("report.jsonl");
    let summary = run(&importer, &state, &options("tray", &fifo, &report)).await;
    writer.join().unwrap();
    assert_eq!(
        counts(&summary),
        vec![("imported", 7)],
        "{}",
        summary.human()
    );
    let lines = report_lines(&report);
    let mut ids: Vec<_> = lines
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 7, "one report line per record");
}

/// Discovery is lazy: a service's discovery runs when its first record comes. When it fails,
/// the run stops like on any fatal error: what was written stays written and journalled, that
/// record and every later one are reported `not_attempted`, exit 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_failing_mid_input_stops_the_run_and_reports_the_rest_not_attempted() {
    use authport_engine::Exit;
    use authport_sandbox::faults::{FaultKind, FaultPlan, FaultRule, Trigger};

    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(SandboxConfig::default()).await;
    // Every read of the Salesforce connector fails: its discovery cannot succeed.
    sandbox.faults.set(FaultPlan {
        seed: 1,
        rules: vec![FaultRule::new(
            Some("GET"),
            "/vault/connections/crm/salesforce",
            FaultKind::ErrorBeforeApply,
            Trigger::Burst {
                first: 1,
                count: 1_000,
            },
        )],
        latency: None,
    });
    let salesforce = |index: usize| {
        let mut record = record(index, 6, 1);
        record["service"] = serde_json::json!("salesforce");
        record["targets"]["apideck"]["service_id"] = serde_json::json!("salesforce");
        record
    };
    let lines = [
        record(0, 6, 1),
        record(1, 6, 1),
        record(2, 6, 1),
        salesforce(3),
        record(4, 6, 1),
        salesforce(5),
    ];
    let input = write_lines(&dir.path().join("input.jsonl"), &lines);
    let report = dir.path().join("report.jsonl");
    let state = StateStore::open(&dir.path().join("state.db")).unwrap();
    let importer = importer("apideck", &sandbox, &state);
    let mut options = options("apideck", &input, &report);
    // One record at a time: the three HubSpot records are done before Salesforce comes.
    options.concurrency = Some(1);
    let summary = run(&importer, &state, &options).await;
    assert_eq!(summary.exit_code(), Exit::Stopped, "{}", summary.human());
    assert!(
        summary
            .stopped
            .as_deref()
            .unwrap_or("")
            .contains("discovery failed"),
        "{}",
        summary.human()
    );
    let lines = report_lines(&report);
    assert_eq!(lines.len(), 6, "one line per record");
    let status = |id: &str| {
        let line = lines.iter().find(|l| l["id"] == id).unwrap();
        (
            line["status"].as_str().unwrap().to_owned(),
            line["error"]["kind"].clone(),
        )
    };
    for id in ["rec-000000", "rec-000001", "rec-000002"] {
        assert_eq!(status(id).0, "imported", "{id}");
    }
    for id in ["rec-000003", "rec-000004", "rec-000005"] {
        assert_eq!(
            status(id),
            ("skipped".to_owned(), serde_json::json!("not_attempted")),
            "{id}"
        );
    }
    assert_eq!(sandbox.apideck.connection_count(), 3);
    assert!(state.pending("apideck").unwrap().is_empty());
}
