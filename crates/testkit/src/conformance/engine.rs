//! Checks that run the provider through the engine with a real state file, as `authport import`
//! and `authport rollback` do.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use authport_core::{AuthImporter, RequestGate};
use authport_engine::{ImportOptions, MaintenanceOptions, RunGate, StateStore};
use authport_sandbox::faults::{FaultKind, Trigger};
use serde_json::Value;

use super::direct::{assert_removed, import, verify};
use super::{Probe, Subject, discover, map};
use crate::canary::{assert_no_canary, assert_no_canary_in_dir, canary};
use crate::files::{read_jsonl, scratch, write_jsonl};

/// Through the engine with a state file: a first run imports every record; a re-run sends no
/// write and reports every record `unchanged`; a record whose content changed is `updated`
/// in place; the engine's rollback removes exactly what the runs created and leaves an object
/// it did not create. No secret reaches the state file, the reports or the printed output.
pub async fn unchanged_on_rerun(subject: &Subject) {
    subject.clear_faults();
    let run_gate = RunGate::new();
    let probe = Probe::wrapping(
        subject,
        "unchanged_on_rerun",
        Some(run_gate.clone() as Arc<dyn RequestGate>),
    );
    let dir = scratch();
    // The input holds the canaries: it lives outside the directory whose files are checked.
    let inputs = scratch();
    let state_path = dir.path().join("state.db");
    let ids: Vec<String> = (0..3).map(|i| format!("conformance/rerun-{i}")).collect();
    // A secret per record: records sharing one OAuth grant would fail `shared_grant`.
    let fixture = |id: &str, version: &str| {
        subject.fixture_json(id, &canary(&format!("rerun-{id}-{version}")))
    };

    // An object this tool did not create in these runs: rollback must leave it.
    let foreign = subject.record("conformance/rerun-foreign", &canary("rerun-foreign"));
    let importer = probe.importer();
    discover(&probe, &*importer, &[&foreign]).await;
    let mapped = map(&probe, &*importer, &foreign);
    let foreign = import(&probe, &*importer, &foreign, &mapped, None).await;
    let before = subject.object_count();

    let first: Vec<Value> = ids.iter().map(|id| fixture(id, "v1")).collect();
    let input = write_jsonl(&inputs.path().join("first.jsonl"), &first);
    let statuses = engine_import(
        &probe,
        &run_gate,
        &state_path,
        &input,
        &dir.path().join("first.jsonl"),
    )
    .await;
    assert_statuses(&probe, "first run", &statuses, &ids, |_| "imported");
    probe.assert_objects(before + ids.len(), "after the first run");

    // Any write attempt of the re-run fails loudly instead of passing unnoticed.
    subject.set_faults(vec![
        subject.write_rule(FaultKind::ErrorBeforeApply, Trigger::Probability(1.0)),
    ]);
    let statuses = engine_import(
        &probe,
        &run_gate,
        &state_path,
        &input,
        &dir.path().join("again.jsonl"),
    )
    .await;
    let writes = subject.target.faults.injected().error_before;
    subject.clear_faults();
    assert_eq!(
        writes,
        0,
        "{}: the re-run sent writes",
        probe.what("re-run")
    );
    assert_statuses(&probe, "re-run", &statuses, &ids, |_| "unchanged");
    probe.assert_objects(before + ids.len(), "after the re-run");

    let mut changed = first.clone();
    changed[0] = fixture(&ids[0], "v2");
    let input = write_jsonl(&inputs.path().join("changed.jsonl"), &changed);
    let statuses = engine_import(
        &probe,
        &run_gate,
        &state_path,
        &input,
        &dir.path().join("changed.jsonl"),
    )
    .await;
    assert_statuses(&probe, "changed run", &statuses, &ids, |id| {
        if id == ids[0] { "updated" } else { "unchanged" }
    });
    probe.assert_objects(before + ids.len(), "after the changed run");

    engine_rollback(
        &probe,
        &run_gate,
        &state_path,
        &dir.path().join("rollback.jsonl"),
    )
    .await;
    probe.assert_objects(before, "after rollback");
    let importer = probe.importer();
    assert!(
        verify(&probe, &*importer, &foreign.target).await.healthy(),
        "{}",
        probe.what("rollback left the object it did not create")
    );
    assert_no_canary_in_dir(dir.path());
    assert_removed(&probe, &*importer, &foreign.target).await;
    probe.assert_paced();
}

/// Through the engine: a write applied but whose answer was lost is reconciled, not written
/// twice; every record ends `imported`, one object each, and rollback removes them all.
pub async fn lost_answer_through_the_engine(subject: &Subject) {
    subject.clear_faults();
    let run_gate = RunGate::new();
    let probe = Probe::wrapping(
        subject,
        "lost_answer_through_the_engine",
        Some(run_gate.clone() as Arc<dyn RequestGate>),
    );
    let dir = scratch();
    let inputs = scratch();
    let state_path = dir.path().join("state.db");
    let ids: Vec<String> = (0..2)
        .map(|i| format!("conformance/engine-lost-{i}"))
        .collect();
    let records: Vec<Value> = ids
        .iter()
        .map(|id| subject.fixture_json(id, &canary(&format!("engine-lost-{id}"))))
        .collect();
    let input = write_jsonl(&inputs.path().join("in.jsonl"), &records);
    let before = subject.object_count();
    subject.set_faults(vec![
        subject.write_rule(FaultKind::DropAfterApply, Trigger::Nth(vec![1])),
    ]);
    let statuses = engine_import(
        &probe,
        &run_gate,
        &state_path,
        &input,
        &dir.path().join("report.jsonl"),
    )
    .await;
    let dropped = subject.target.faults.injected().drop_after;
    subject.clear_faults();
    assert_eq!(
        dropped,
        1,
        "{}: the WriteRequest matched no request",
        probe.what("drop")
    );
    assert_statuses(
        &probe,
        "run with a lost answer",
        &statuses,
        &ids,
        |_| "imported",
    );
    probe.assert_objects(before + ids.len(), "one object per record");
    engine_rollback(
        &probe,
        &run_gate,
        &state_path,
        &dir.path().join("rollback.jsonl"),
    )
    .await;
    probe.assert_objects(before, "after rollback");
    assert_no_canary_in_dir(dir.path());
    probe.assert_paced();
}

/// One `authport import` run with a state file: each record's report status, by id.
async fn engine_import(
    probe: &Probe<'_>,
    run_gate: &Arc<RunGate>,
    state_path: &Path,
    input: &Path,
    report: &Path,
) -> BTreeMap<String, String> {
    let subject = probe.subject;
    let state = StateStore::open(state_path)
        .unwrap_or_else(|e| panic!("{}: {e:#}", probe.what("open the state")));
    let importer: Arc<dyn AuthImporter> = subject.importer(probe.gate.clone(), state.memo());
    let mut options = ImportOptions::new(subject.name(), subject.plugin.limits, input);
    options.report = Some(report.to_owned());
    // No rate limit, to keep the suite fast: pacing is about passing the gate, which the
    // counting gate proves, not about the rate.
    options.rate = authport_engine::RateChoice::Unlimited;
    options.concurrency = Some(2);
    options.retry_base_delay = Duration::from_millis(5);
    options.retry_max_delay = Duration::from_millis(50);
    options.gate = run_gate.clone();
    let summary = authport_engine::import(importer, &state, &options, std::future::pending())
        .await
        .unwrap_or_else(|e| panic!("{}: {e:#}", probe.what("engine import")));
    assert!(
        summary.stopped.is_none(),
        "{}: the run stopped: {:?}",
        probe.what("engine import"),
        summary.stopped
    );
    let lines = read_jsonl(report);
    for line in &lines {
        assert_no_canary(&probe.what("report line"), &line.to_string());
    }
    // The status, and the error of a record that did not end as expected (reports hold no
    // secret: checked above), so a failure says why.
    lines
        .iter()
        .map(|line| {
            let field = |name: &str| line[name].as_str().unwrap_or("-").to_owned();
            let status = match line.get("error") {
                Some(error) if !error.is_null() => format!("{} ({error})", field("status")),
                _ => field("status"),
            };
            (field("id"), status)
        })
        .collect()
}

/// `authport rollback` with the state file.
async fn engine_rollback(
    probe: &Probe<'_>,
    run_gate: &Arc<RunGate>,
    state_path: &Path,
    report: &Path,
) {
    let subject = probe.subject;
    let state = StateStore::open(state_path)
        .unwrap_or_else(|e| panic!("{}: {e:#}", probe.what("open the state")));
    let gate: Arc<dyn RequestGate> = probe.gate.clone();
    let importer = subject.importer(gate, state.memo());
    let mut options = MaintenanceOptions::new(subject.name(), subject.plugin.limits);
    options.gate = run_gate.clone();
    let mut printed = Vec::new();
    let summary = authport_engine::rollback(
        importer,
        &state,
        &options,
        Some(report),
        &mut printed,
        std::future::pending(),
    )
    .await
    .unwrap_or_else(|e| panic!("{}: {e:#}", probe.what("engine rollback")));
    assert_eq!(
        summary.problems,
        0,
        "{}: {summary:?}",
        probe.what("engine rollback")
    );
    assert_no_canary(
        &probe.what("rollback output"),
        &String::from_utf8_lossy(&printed),
    );
}

#[track_caller]
fn assert_statuses(
    probe: &Probe<'_>,
    run: &str,
    statuses: &BTreeMap<String, String>,
    ids: &[String],
    expected: impl Fn(&str) -> &'static str,
) {
    let want: BTreeMap<String, String> = ids
        .iter()
        .map(|id| (id.clone(), expected(id).to_owned()))
        .collect();
    assert_eq!(statuses, &want, "{}", probe.what(run));
}
