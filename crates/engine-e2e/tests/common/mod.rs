//! Shared pieces of the engine's end-to-end tests: a sandbox on loopback, real providers built
//! through the plugin registry, generated input files with canary secrets.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use authport_core::{AuthImporter, BuildContext, EnvSnapshot, find_provider};
use authport_engine::{ImportOptions, MaintenanceOptions, RunSummary, StateStore};
use authport_sandbox::{RunningSandbox, SandboxConfig};
use serde_json::{Value, json};

// Link the providers so their `inventory::submit!` registrations are collected.
use authport_apideck as _;
use authport_tray as _;

/// Every generated secret contains this, so a test can grep any output for it.
pub const CANARY: &str = "CANARY-5ecret";

pub async fn sandbox(config: SandboxConfig) -> RunningSandbox {
    authport_sandbox::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// Builds `provider` against `sandbox` with the state's memo, as the runner does.
pub fn importer(
    provider: &str,
    sandbox: &RunningSandbox,
    state: &StateStore,
) -> Arc<dyn AuthImporter> {
    let plugin = find_provider(provider).unwrap();
    let context = BuildContext {
        config: Value::Null,
        env: EnvSnapshot::from_pairs(sandbox.provider_env()),
        memo: state.memo(),
        gate: std::sync::Arc::new(authport_core::Ungated),
        request_timeout: Duration::from_secs(10),
    };
    Arc::from((plugin.build)(&context).unwrap())
}

/// One HubSpot OAuth record, valid for both providers' default sandbox catalogues.
pub fn record(index: usize, owners: usize, token_version: u32) -> Value {
    let owner = format!("owner-{}", index % owners.max(1));
    json!({
        "id": format!("rec-{index:06}"),
        "owner": {"id": owner, "name": format!("Owner {owner}")},
        "service": "hubspot",
        "name": format!("HubSpot {index}"),
        "auth": {
            "type": "oauth2",
            "access_token": format!("{CANARY}-access-{index}-v{token_version}"),
            "refresh_token": format!("{CANARY}-refresh-{index}"),
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
    let text: String = records.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).unwrap();
    path.to_owned()
}

pub fn records(count: usize, owners: usize) -> Vec<Value> {
    (0..count).map(|i| record(i, owners, 1)).collect()
}

/// Options for a fast test run: unlimited rate, quick retries.
pub fn options(provider: &str, input: &Path, report: &Path) -> ImportOptions {
    let limits = find_provider(provider).unwrap().limits;
    let mut options = ImportOptions::new(provider, limits, input);
    options.report = Some(report.to_owned());
    options.rate = Some(0.0);
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

/// The report's lines.
pub fn report_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
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

/// Asserts that no file under `dir` and none of `texts` contains a canary secret.
pub fn assert_no_canary(dir: &Path, texts: &[&str]) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "jsonl")
            && path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("input"))
        {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()),
            "{} contains a secret",
            path.display()
        );
    }
    for text in texts {
        assert!(!text.contains(CANARY), "output contains a secret: {text}");
    }
}
