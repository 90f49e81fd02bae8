//! How a run is paced by default: a vendor that documents its limit (Tray) gets it, one that
//! documents none (Apideck) gets `--rate auto` under its ceiling; the summary says which, and
//! what bounded the run.

use crate::common;

use std::sync::Arc;

use authport_core::AuthImporter;
use authport_engine::{ImportOptions, StateStore};
use authport_sandbox::{RunningSandbox, SandboxConfig};
use common::*;

/// The provider built with the run's gate, as the runner wires it (so the pacing applies).
fn gated(
    provider: &str,
    sandbox: &RunningSandbox,
    state: &StateStore,
    options: &ImportOptions,
) -> Arc<dyn AuthImporter> {
    let gate: Arc<dyn authport_core::RequestGate> = options.gate.clone();
    Arc::from(
        authport_testkit::context()
            .env(sandbox.provider_env())
            .memo(state.memo())
            .gate(gate)
            .provider(provider),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undocumented_vendors_default_to_auto_and_documented_ones_to_their_rate() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(SandboxConfig::default()).await;
    for (provider, pacing) in [
        ("apideck", "auto (ceiling 100/s), ended at "),
        ("tray", "30/s, burst 50"),
    ] {
        let state = StateStore::temporary().unwrap();
        // One owner per record: Apideck's target is the owner's consumer and the service.
        let input = write_lines(
            &dir.path().join(format!("{provider}.jsonl")),
            &records(6, 6),
        );
        let report = dir.path().join(format!("{provider}-report.jsonl"));
        let mut options = options(provider, &input, &report);
        options.rate = authport_engine::RateChoice::VendorDefault;
        let importer = gated(provider, &sandbox, &state, &options);
        let summary = run(&importer, &state, &options).await;
        assert_eq!(
            counts(&summary),
            vec![("imported", 6)],
            "{}",
            summary.human()
        );
        assert!(
            summary.pacing.starts_with(pacing),
            "{provider}: {}",
            summary.pacing
        );
        assert!(
            summary.human().contains("bounded by"),
            "{}",
            summary.human()
        );
        let json = summary.to_json();
        assert!(
            ["rate", "latency", "client"].contains(&json["bounded_by"].as_str().unwrap()),
            "{json}"
        );
    }

    // An operator's `auto` wins over a documented rate, under the configured ceiling.
    let state = StateStore::temporary().unwrap();
    let input = write_lines(&dir.path().join("auto.jsonl"), &records(3, 1));
    let mut options = options("tray", &input, &dir.path().join("auto-report.jsonl"));
    options.rate = authport_engine::RateChoice::Auto { ceiling: None };
    options.rate_ceiling = Some(50.0);
    let importer = gated("tray", &sandbox, &state, &options);
    let summary = run(&importer, &state, &options).await;
    assert_eq!(
        counts(&summary),
        vec![("imported", 3)],
        "{}",
        summary.human()
    );
    assert!(
        summary.pacing.starts_with("auto (ceiling 50/s)"),
        "{}",
        summary.pacing
    );
    assert!(summary.bound.is_some());
}
