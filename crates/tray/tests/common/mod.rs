//! Tray fixtures shared by this crate's sandbox tests (the generic helpers are the testkit's).

use std::sync::Arc;

use authport_core::{AuthImporter, CredentialRecord, DiscoveryKey, InMemoryMemo, Memo};
use authport_sandbox::SandboxConfig;
use authport_sandbox::tray::TrayOptions;
use authport_testkit::{Sandbox, record, sandbox_with};
use serde_json::{Value, json};

// Links the provider so `find_provider("tray")` sees its registration.
use authport_tray as _;

pub async fn tray_sandbox(tray: TrayOptions) -> Sandbox {
    sandbox_with(SandboxConfig {
        tray,
        ..SandboxConfig::default()
    })
    .await
}

/// The provider pointed at the sandbox, with `config` as its `[tray]` section.
pub fn provider(sandbox: &Sandbox, config: Value, memo: Arc<dyn Memo>) -> Box<dyn AuthImporter> {
    sandbox.context().config(config).memo(memo).provider("tray")
}

pub fn memo() -> Arc<dyn Memo> {
    Arc::new(InMemoryMemo::default())
}

pub fn greenhouse(owner: &str, key: &str) -> CredentialRecord {
    record(
        &json!({"id": format!("{owner}/greenhouse"), "owner": {"id": owner, "name": "Globex"},
        "service": "greenhouse", "auth": {"type": "api_key", "api_key": key}}),
    )
}

pub fn slack(owner: &str, token: &str) -> CredentialRecord {
    record(
        &json!({"id": format!("{owner}/slack"), "owner": {"id": owner, "name": "Acme"}, "service": "slack",
        "auth": {"type": "oauth2", "access_token": token, "refresh_token": format!("{token}-refresh"),
                 "scopes": ["chat:write", "channels:read"], "issued_at": "2026-11-01T10:00:00Z", "expires_in": 3600},
        "targets": {"tray": {"service_environment": "acme slack oauth"}}}),
    )
}

pub async fn discover(provider: &dyn AuthImporter, records: &[&CredentialRecord]) {
    let keys: Vec<DiscoveryKey> = records
        .iter()
        .map(|r| DiscoveryKey::for_record(r, "tray"))
        .collect();
    provider.discover(&keys).await.unwrap();
}
