//! Client binding against the sandbox's Nango: discovery reads each integration's OAuth
//! client once (`include=credentials`), `map` compares it with the record's `auth.client_id`
//! and scopes, and the integration's client secret never reaches anything authport keeps.

use authport_core::{AuthImporter, CredentialRecord, DiscoveryKey, ErrorKind};
use authport_sandbox::nango::{Integration, SANDBOX_CLIENT_SECRET_CANARY};
use authport_testkit::{Sandbox, record, sandbox};
use serde_json::{Value, json};

use authport_nango as _;

fn importer(sandbox: &Sandbox, config: Value) -> Box<dyn AuthImporter> {
    sandbox.context().config(config).provider("nango")
}

fn xero(id: &str, client_id: Option<&str>, scopes: &[&str]) -> CredentialRecord {
    let mut auth = json!({"type": "oauth2", "access_token": "at", "refresh_token": "rt",
        "scopes": scopes});
    if let Some(client_id) = client_id {
        auth["client_id"] = json!(client_id);
    }
    record(&json!({"id": id, "owner": {"id": "o"}, "service": "xero", "auth": auth}))
}

async fn with_xero() -> Sandbox {
    let sandbox = sandbox().await;
    let mut integration = Integration::new("xero-prod", "xero", "Xero", "OAUTH2");
    integration.client_id = Some("target-client".to_owned());
    integration.scopes = Some("accounting.transactions,offline_access".to_owned());
    sandbox.nango.add_integration(integration);
    sandbox
}

async fn discover(importer: &dyn AuthImporter, records: &[&CredentialRecord]) {
    let keys: Vec<DiscoveryKey> = records
        .iter()
        .map(|r| DiscoveryKey::for_record(r, "nango"))
        .collect();
    importer.discover(&keys).await.expect("discovery");
}

#[tokio::test]
async fn the_integrations_client_decides_and_its_secret_is_never_kept() {
    let sandbox = with_xero().await;
    let importer = importer(&sandbox, Value::Null);
    let full = ["accounting.transactions", "offline_access"];
    let bound = xero("bound", Some("target-client"), &full);
    let foreign = xero("foreign", Some("other-client"), &full);
    let unknown = xero("unknown", None, &full);
    let short = xero("short", Some("target-client"), &["offline_access"]);
    let before = sandbox.requests_seen();
    discover(&*importer, &[&bound, &foreign, &unknown, &short]).await;
    // One integration list and one read of the one integration, for four records.
    assert_eq!(sandbox.requests_seen() - before, 2);

    let mapped = importer.map(&bound).expect("maps");
    assert!(
        !mapped
            .notes
            .iter()
            .any(|n| n.contains("client binding") || n.contains("scope_deficit")),
        "{:?}",
        mapped.notes
    );
    let error = importer.map(&foreign).expect_err("a mismatch is refused");
    assert_eq!(error.kind, ErrorKind::ClientMismatch);
    assert_eq!(error.field, "auth.client_id");
    for word in ["other-client", "target-client", "`xero`"] {
        assert!(error.message.contains(word), "{word}: {error}");
    }
    let notes = importer.map(&unknown).expect("maps").notes;
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("client binding unknown")),
        "{notes:?}"
    );
    let notes = importer.map(&short).expect("maps").notes;
    let deficit = notes
        .iter()
        .find(|n| n.starts_with("scope_deficit"))
        .expect("a scope deficit");
    assert!(deficit.ends_with("accounting.transactions"), "{deficit}");

    // Nothing the importer can show holds the client secret.
    let shown = format!("{importer:?} {error:?} {notes:?}");
    assert!(!shown.contains(SANDBOX_CLIENT_SECRET_CANARY), "{shown}");
}

#[tokio::test]
async fn the_config_overrides_the_integration() {
    let sandbox = with_xero().await;
    let importer = importer(
        &sandbox,
        json!({"oauth_clients": {"xero": "other-client"}, "oauth_scopes": {"xero": ["a"]}}),
    );
    let record = xero("moved", Some("other-client"), &["a"]);
    discover(&*importer, &[&record]).await;
    let notes = importer
        .map(&record)
        .expect("the declared client wins")
        .notes;
    assert!(
        !notes
            .iter()
            .any(|n| n.contains("client binding") || n.contains("scope_deficit")),
        "{notes:?}"
    );
    let error = importer
        .map(&xero("stale", Some("target-client"), &["a"]))
        .expect_err("the integration's own client no longer matches");
    assert_eq!(error.kind, ErrorKind::ClientMismatch);
}

#[tokio::test]
async fn api_key_records_and_integrations_without_oauth_bind_nothing() {
    let sandbox = with_xero().await;
    let importer = importer(&sandbox, Value::Null);
    let key = record(
        &json!({"id": "k", "owner": {"id": "o"}, "service": "greenhouse",
        "auth": {"type": "api_key", "api_key": "k"}}),
    );
    discover(&*importer, &[&key]).await;
    let notes = importer.map(&key).expect("maps").notes;
    assert!(
        !notes
            .iter()
            .any(|n| n.contains("client binding") || n.contains("scope_deficit")),
        "{notes:?}"
    );
}
