//! What the engine's end-to-end tests add to the testkit (which starts the sandbox with canary
//! credentials, builds providers through the registry and checks for leaks): the HubSpot
//! records both providers' default catalogues take, fast run options, and assertions on runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use authport_core::{AuthImporter, find_provider};
use authport_engine::{ImportOptions, MaintenanceOptions, RateChoice, RunSummary, StateStore};
use authport_testkit::{Sandbox, canary};
use serde_json::{Value, json};

pub use authport_testkit::read_jsonl as report_lines;
pub use authport_testkit::sandbox_with as sandbox;

// Link the providers so their `inventory::submit!` registrations are collected.
use authport_apideck as _;
use authport_tray as _;

/// Builds `provider` against `sandbox` with the state's memo, as the runner does.
pub fn importer(provider: &str, sandbox: &Sandbox, state: &StateStore) -> Arc<dyn AuthImporter> {
    Arc::from(sandbox.context().memo(state.memo()).provider(provider))
}

/// One HubSpot OAuth record, valid for both providers' default sandbox catalogues, its
/// secrets canaries.
pub fn record(index: usize, owners: usize, token_version: u32) -> Value {
    let owner = format!("owner-{}", index % owners.max(1));
    json!({
        "id": format!("rec-{index:06}"),
        "owner": {"id": owner, "name": format!("Owner {owner}")},
        "service": "hubspot",
        "name": format!("HubSpot {index}"),
        "auth": {
            "type": "oauth2",
            "access_token": canary(&format!("access-{index}-v{token_version}")),
            "refresh_token": canary(&format!("refresh-{index}")),
            "token_type": "Bearer",
            "scopes": ["crm.objects.contacts.read"],
            "expires_at": "2036-11-01T10:00:00Z"
        },
        "targets": {
            "tray": {"service_environment": "acme hubspot oauth"},
            "apideck": {"unified_api": "crm", "service_id": "hubspot"}
        }
    })
}

/// Writes `records` as JSON Lines.
pub fn write_lines(path: &Path, records: &[Value]) -> PathBuf {
    authport_testkit::write_jsonl(path, records)
}

pub fn records(count: usize, owners: usize) -> Vec<Value> {
    (0..count).map(|i| record(i, owners, 1)).collect()
}

/// Options for a fast test run: unlimited rate, quick retries.
pub fn options(provider: &str, input: &Path, report: &Path) -> ImportOptions {
    let limits = find_provider(provider).unwrap().limits;
    let mut options = ImportOptions::new(provider, limits, input);
    options.report = Some(report.to_owned());
    options.rate = RateChoice::Unlimited;
    options.concurrency = Some(4);
    options.retry_base_delay = Duration::from_millis(5);
    options.retry_max_delay = Duration::from_millis(50);
    options.max_attempts = 8;
    options
}

pub async fn run(
    importer: &Arc<dyn AuthImporter>,
    state: &StateStore,
    options: &ImportOptions,
) -> RunSummary {
    authport_engine::import(importer.clone(), state, options, std::future::pending())
        .await
        .unwrap()
}

/// Verify and rollback options for `provider`, with its registered limits.
pub fn maintenance(provider: &str) -> MaintenanceOptions {
    MaintenanceOptions::new(provider, find_provider(provider).unwrap().limits)
}

/// `(status, count)` pairs of a summary, non-zero only, for compact assertions.
pub fn counts(summary: &RunSummary) -> Vec<(&'static str, u64)> {
    summary
        .counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(status, n)| (status.as_str(), *n))
        .collect()
}

/// Asserts that no file under `dir` but the inputs (`input*.jsonl`, canaries on purpose), and
/// none of `texts`, contains a canary: the sandbox's credentials included.
#[track_caller]
pub fn assert_no_canary(dir: &Path, texts: &[&str]) {
    let input = |path: &Path| {
        path.extension().is_some_and(|e| e == "jsonl")
            && path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("input"))
    };
    authport_testkit::assert_no_canary_in_dir_except(dir, input);
    for text in texts {
        authport_testkit::assert_no_canary("output", text);
    }
}

/// Every Tray record has exactly one authentication in the sandbox, named after its record.
pub fn assert_one_tray_auth_per_record(sandbox: &authport_sandbox::RunningSandbox, records: usize) {
    assert_eq!(
        sandbox.tray.auth_count(),
        records,
        "authentications in the sandbox"
    );
    let mut names: Vec<String> = sandbox.tray.auths().into_iter().map(|a| a.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), records, "duplicate authentication names");
}
