//! Crash safety: the import runs in a child process that is killed with SIGKILL at random
//! points; re-running with the same state must end with every record imported exactly once.
//!
//! The child is this same test binary, started with `--exact crash::child_import` and the run's
//! parameters in the environment. Without them `child_import` has nothing to do.

use crate::common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use authport_engine::StateStore;
use authport_sandbox::SandboxConfig;
use authport_sandbox::faults::FaultPlan;
use common::*;
use rand::{Rng, SeedableRng};

const CHILD_ENV: &str = "AUTHPORT_CRASH_CHILD";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_import() {
    let Ok(parameters) = std::env::var(CHILD_ENV) else {
        return;
    };
    let parameters: BTreeMap<String, String> = serde_json::from_str(&parameters).unwrap();
    let env: Vec<(String, String)> = serde_json::from_str(&parameters["env"]).unwrap();
    let state = StateStore::open(parameters["state"].as_ref()).unwrap();
    let importer: std::sync::Arc<dyn authport_core::AuthImporter> = std::sync::Arc::from(
        authport_testkit::context()
            .env(env)
            .memo(state.memo())
            .provider(&parameters["provider"]),
    );
    let options = options(
        &parameters["provider"],
        parameters["input"].as_ref(),
        parameters["report"].as_ref(),
    );
    let summary = run(&importer, &state, &options).await;
    assert_eq!(
        summary.exit_code(),
        authport_engine::Exit::Ok,
        "{}",
        summary.human()
    );
}

/// Starts the child import; returns it running.
fn spawn_child(parameters: &BTreeMap<String, String>) -> std::process::Child {
    authport_testkit::clean_command(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash::child_import",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, serde_json::to_string(parameters).unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_then_resume_gives_no_duplicate_and_no_loss() {
    const RECORDS: usize = 80;
    const KILLS: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(SandboxConfig::default()).await;
    // Latency keeps writes in flight, so kills land between intent and outcome too.
    sandbox.faults.set(FaultPlan {
        seed: 11,
        rules: Vec::new(),
        latency: Some((Duration::from_millis(1), Duration::from_millis(6))),
    });
    let input = write_lines(&dir.path().join("input.jsonl"), &records(RECORDS, 7));
    let parameters: BTreeMap<String, String> = [
        ("provider", "tray".to_owned()),
        (
            "env",
            serde_json::to_string(&sandbox.provider_env()).unwrap(),
        ),
        ("state", dir.path().join("state.db").display().to_string()),
        ("input", input.display().to_string()),
        (
            "report",
            dir.path().join("report.jsonl").display().to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();

    let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
    let mut kills = 0;
    for _ in 0..KILLS {
        let before = sandbox.tray.auth_count();
        if before >= RECORDS {
            break;
        }
        let kill_at = rng.random_range(before + 1..=RECORDS.min(before + RECORDS / KILLS + 1));
        let mut child = spawn_child(&parameters);
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if sandbox.tray.auth_count() >= kill_at {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    assert!(kills >= 3, "only {kills} kills landed");

    // The last run goes to the end.
    let status = spawn_child(&parameters).wait().unwrap();
    assert!(status.success(), "final run failed");
    assert_eq!(
        sandbox.tray.auth_count(),
        RECORDS,
        "lost or duplicated records"
    );
    let mut names: Vec<String> = sandbox.tray.auths().into_iter().map(|a| a.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), RECORDS, "duplicates");
    let report = report_lines(&dir.path().join("report.jsonl"));
    assert_eq!(report.len(), RECORDS);
    assert!(report.iter().all(|l| l["status"] == "unchanged"
        || l["status"] == "imported"
        || l["status"] == "updated"));
    let state = StateStore::open(&dir.path().join("state.db")).unwrap();
    assert_eq!(state.objects("tray").unwrap().len(), RECORDS);
    assert!(state.pending("tray").unwrap().is_empty());
}
