//! Snapshots of the mapped Tray payload for every catalogue service and auth kind (secrets
//! redacted), using the sandbox's catalogue for discovery. Includes the README example records.

use authport_core::DiscoveryKey;
use serde_json::{Value, json};

// Links the provider so `find_provider("tray")` sees its registration.
use authport_tray as _;

const SECRET: &str = "s3cr3t-canary-value";

fn fixtures() -> Vec<(&'static str, Value)> {
    let owner = json!({"id": "acme-42", "name": "Acme Inc", "email": "ops@acme.example"});
    let oauth = |service: &str, env: &str, scopes: Value, settings: Value| {
        json!({
        "id": format!("acme-42/{service}"), "owner": owner, "service": service,
        "auth": {"type": "oauth2", "access_token": format!("{SECRET}-access"), "refresh_token": format!("{SECRET}-refresh"),
                 "token_type": "Bearer", "scopes": scopes, "issued_at": "2026-11-01T10:00:00Z", "expires_in": 1800},
        "settings": settings, "targets": {"tray": {"service_environment": env}}})
    };
    vec![
        (
            "slack_oauth2",
            oauth(
                "slack",
                "acme slack oauth",
                json!(["chat:write", "admin"]),
                json!({}),
            ),
        ),
        (
            "mailchimp_oauth2",
            oauth(
                "mailchimp",
                "mailchimp acme oauth",
                json!([]),
                json!({"dc": "us21"}),
            ),
        ),
        (
            "hubspot_oauth2",
            oauth(
                "hubspot",
                "acme hubspot oauth",
                json!(["crm.objects.contacts.read", "oauth"]),
                json!({}),
            ),
        ),
        (
            "salesforce_oauth2",
            oauth(
                "salesforce",
                "acme salesforce oauth",
                json!(["api", "refresh_token"]),
                json!({"instance_url": "https://acme.my.salesforce.com"}),
            ),
        ),
        (
            "quickbooks_oauth2",
            oauth(
                "quickbooks",
                "initech quickbooks oauth",
                json!(["com.intuit.quickbooks.accounting"]),
                json!({"realm_id": "9130"}),
            ),
        ),
        (
            "zendesk_oauth2",
            oauth(
                "zendesk",
                "acme zendesk oauth",
                json!(["read"]),
                json!({"subdomain": "acme"}),
            ),
        ),
        (
            "airtable_api_key",
            json!({"id": "acme-42/airtable", "owner": owner, "service": "airtable",
            "auth": {"type": "api_key", "api_key": SECRET}}),
        ),
        (
            "greenhouse_api_key",
            json!({"id": "globex-7/greenhouse", "owner": {"id": "globex-7", "name": "Globex"}, "service": "greenhouse",
            "auth": {"type": "api_key", "api_key": SECRET}, "targets": {"tray": {"service_environment": "Production"}}}),
        ),
        (
            "activecampaign_api_key",
            json!({"id": "globex-7/activecampaign", "owner": {"id": "globex-7", "name": "Globex"}, "service": "activecampaign",
            "auth": {"type": "api_key", "api_key": SECRET}, "settings": {"account_url": "https://globex.api-us1.com"},
            "targets": {"tray": {"service_environment": "Production"}}}),
        ),
        (
            "zendesk_basic",
            json!({"id": "initech-3/zendesk", "owner": {"id": "initech-3", "name": "Initech"}, "service": "zendesk",
            "auth": {"type": "basic", "username": "it@initech.example", "password": SECRET}, "settings": {"subdomain": "initech"},
            "targets": {"tray": {"service_environment": "Production"}}}),
        ),
        (
            "netsuite_basic",
            json!({"id": "acme-42/netsuite", "owner": owner, "service": "netsuite",
            "auth": {"type": "basic", "username": "erp@acme.example", "password": SECRET}, "settings": {"account": "TSTDRV123", "role": 3}}),
        ),
        (
            "sqs_custom",
            json!({"id": "acme-42/sqs", "owner": owner, "service": "sqs",
            "auth": {"type": "custom", "fields": {"access_key_id": "AKIAEXAMPLE", "secret_access_key": SECRET}},
            "settings": {"region": "eu-west-1"}}),
        ),
        (
            "airtable_override",
            json!({"id": "acme-42/airtable-2", "owner": owner, "service": "airtable",
            "auth": {"type": "custom", "fields": {"pat": SECRET}},
            "targets": {"tray": {"fields": {"auth.fields.pat": "credentials.access_token"}, "name": "Acme Airtable (migrated)"}}}),
        ),
    ]
}

#[tokio::test]
async fn mapped_payloads() {
    let sandbox = authport_testkit::sandbox().await;
    let provider = sandbox.context().provider("tray");
    let records: Vec<(&str, authport_core::CredentialRecord)> = fixtures()
        .into_iter()
        .map(|(name, value)| (name, authport_testkit::record(&value)))
        .collect();
    let keys: Vec<DiscoveryKey> = records
        .iter()
        .map(|(_, r)| DiscoveryKey::for_record(r, "tray"))
        .collect();
    provider.discover(&keys).await.unwrap();
    for (name, record) in &records {
        let mapped = provider
            .map(record)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let printable = json!({"target": mapped.target, "body": mapped.redacted_body(record), "notes": mapped.notes});
        assert!(!printable.to_string().contains(SECRET), "{name}");
        // Mapping is deterministic: the engine fingerprints the body.
        assert_eq!(provider.map(record).unwrap().body, mapped.body, "{name}");
        insta::assert_json_snapshot!(*name, printable);
    }
    // Nothing was written by discovery and mapping.
    assert_eq!(sandbox.tray.auth_count(), 0);
    assert!(sandbox.tray.users().is_empty());
}

#[test]
fn a_name_without_the_records_tag_gets_it_appended() {
    use authport_tray::map::with_mark;
    assert_eq!(
        with_mark("Acme Slack".to_owned(), "00aa"),
        (
            "Acme Slack (00aa)".to_owned(),
            Some("Acme Slack".to_owned())
        )
    );
    assert_eq!(
        with_mark("Slack — Acme (00aa)".to_owned(), "00aa"),
        ("Slack — Acme (00aa)".to_owned(), None)
    );
}
