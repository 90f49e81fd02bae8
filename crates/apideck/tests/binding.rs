//! Client binding for Apideck, whose Vault does not expose its OAuth clients:
//! `[apideck.oauth_clients]` declares them and `[apideck.oauth_scopes]` the scopes. The check
//! is in `map`, before any write.

use authport_core::{AuthImporter, CredentialRecord, DiscoveryKey, ErrorKind};
use authport_testkit::{Sandbox, record, sandbox};
use serde_json::{Value, json};

use authport_apideck as _;

fn provider(sandbox: &Sandbox, config: Value) -> Box<dyn AuthImporter> {
    sandbox.context().config(config).provider("apideck")
}

fn hubspot(client_id: Option<&str>, scopes: &[&str]) -> CredentialRecord {
    let mut auth = json!({"type": "oauth2", "access_token": "at", "refresh_token": "rt",
        "scopes": scopes, "expires_at": "2030-01-01T00:00:00Z"});
    if let Some(client_id) = client_id {
        auth["client_id"] = json!(client_id);
    }
    record(
        &json!({"id": "acme-42/hubspot", "owner": {"id": "acme-42"}, "service": "hubspot",
        "auth": auth, "targets": {"apideck": {"unified_api": "crm", "service_id": "hubspot"}}}),
    )
}

async fn discover(importer: &dyn AuthImporter, record: &CredentialRecord) {
    let key = DiscoveryKey::for_record(record, "apideck");
    importer.discover(&[key]).await.expect("discovery");
}

fn binding_notes(notes: &[String]) -> Vec<&String> {
    notes
        .iter()
        .filter(|n| n.starts_with("client binding unknown") || n.starts_with("scope_deficit"))
        .collect()
}

#[tokio::test]
async fn declared_clients_and_scopes_are_compared_in_map() {
    let sandbox = sandbox().await;
    let importer = provider(
        &sandbox,
        json!({"oauth_clients": {"hubspot": "vault-app"},
               "oauth_scopes": {"hubspot": ["crm.objects.contacts.read", "oauth"]}}),
    );
    let bound = hubspot(Some("vault-app"), &["crm.objects.contacts.read", "oauth"]);
    discover(&*importer, &bound).await;
    let notes = importer.map(&bound).expect("maps").notes;
    assert!(binding_notes(&notes).is_empty(), "{notes:?}");

    let error = importer
        .map(&hubspot(Some("own-app"), &[]))
        .expect_err("refused");
    assert_eq!(error.kind, ErrorKind::ClientMismatch);
    assert!(error.message.contains("own-app") && error.message.contains("vault-app"));

    let notes = importer
        .map(&hubspot(Some("vault-app"), &["oauth"]))
        .expect("maps")
        .notes;
    assert_eq!(
        binding_notes(&notes),
        [&"scope_deficit: the grant lacks scope(s) the target asks for: crm.objects.contacts.read"
            .to_owned()]
    );
}

#[tokio::test]
async fn without_a_declaration_the_binding_is_unknown() {
    let sandbox = sandbox().await;
    let importer = provider(&sandbox, Value::Null);
    let record = hubspot(Some("own-app"), &[]);
    discover(&*importer, &record).await;
    let notes = importer.map(&record).expect("maps").notes;
    let found = binding_notes(&notes);
    assert_eq!(found.len(), 1, "{notes:?}");
    assert!(found[0].contains("[apideck.oauth_clients]"), "{found:?}");
}
