//! Client binding for Tray, which does not expose its OAuth clients: `[tray.oauth_clients]`
//! declares them, and the service environment's `scopes` (else `[tray.oauth_scopes]`) are the
//! target's scopes. The check is in `map`, before any write.

use crate::common;

use authport_core::{CredentialRecord, ErrorKind};
use authport_sandbox::tray::TrayOptions;
use authport_testkit::record;
use common::*;
use serde_json::{Value, json};

/// A Slack record (the sandbox's environment offers channels:read, channels:history,
/// chat:write and users:read).
fn slack_with(client_id: Option<&str>, scopes: &[&str]) -> CredentialRecord {
    let mut auth = json!({"type": "oauth2", "access_token": "at", "refresh_token": "rt",
        "scopes": scopes});
    if let Some(client_id) = client_id {
        auth["client_id"] = json!(client_id);
    }
    record(
        &json!({"id": "acme-42/slack", "owner": {"id": "acme-42", "name": "Acme"},
        "service": "slack", "auth": auth,
        "targets": {"tray": {"service_environment": "acme slack oauth"}}}),
    )
}

const ALL: [&str; 4] = [
    "channels:read",
    "channels:history",
    "chat:write",
    "users:read",
];

fn binding_notes(notes: &[String]) -> Vec<&String> {
    notes
        .iter()
        .filter(|n| n.starts_with("client binding unknown") || n.starts_with("scope_deficit"))
        .collect()
}

#[tokio::test]
async fn a_declared_client_is_compared_before_any_write() {
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    let provider = provider(
        &sandbox,
        json!({"oauth_clients": {"slack": "tray-target-app"}}),
        memo(),
    );
    let bound = slack_with(Some("tray-target-app"), &ALL);
    let foreign = slack_with(Some("trays-own-app"), &ALL);
    discover(provider.as_ref(), &[&bound]).await;

    let mapped = provider.map(&bound).expect("maps");
    assert!(
        binding_notes(&mapped.notes).is_empty(),
        "{:?}",
        mapped.notes
    );
    let error = provider.map(&foreign).expect_err("refused");
    assert_eq!(error.kind, ErrorKind::ClientMismatch);
    assert!(
        error.message.contains("trays-own-app")
            && error.message.contains("tray-target-app")
            && error.message.contains("`slack`"),
        "{error}"
    );
    assert_eq!(sandbox.tray.auth_count(), 0, "map writes nothing");
}

#[tokio::test]
async fn without_a_declaration_the_binding_is_unknown_and_environment_scopes_count() {
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    let provider = provider(&sandbox, Value::Null, memo());
    let record = slack_with(Some("some-client"), &["chat:write", "channels:read"]);
    discover(provider.as_ref(), &[&record]).await;
    let notes = provider.map(&record).expect("maps").notes;
    let found = binding_notes(&notes);
    assert_eq!(found.len(), 2, "{notes:?}");
    assert!(found[0].contains("no OAuth client is known"), "{found:?}");
    assert!(
        found[1].contains("channels:history, users:read"),
        "the environment's scopes the grant lacks: {found:?}"
    );
}

#[tokio::test]
async fn declared_scopes_replace_the_environments() {
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    let provider = provider(
        &sandbox,
        json!({"oauth_clients": {"slack": "c"}, "oauth_scopes": {"slack": ["chat:write"]}}),
        memo(),
    );
    let record = slack_with(Some("c"), &["chat:write"]);
    discover(provider.as_ref(), &[&record]).await;
    let notes = provider.map(&record).expect("maps").notes;
    assert!(binding_notes(&notes).is_empty(), "{notes:?}");
}
