//! The Tray exporter against the Tray sandbox over loopback: users paged with the master
//! token, each user's auths with a user token, credentials from Get full authentication.

use crate::common;

use std::sync::Arc;

use authport_core::{
    Auth, AuthExporter, CredentialRecord, ExportFilter, ExposeSecret, record_to_v1_json,
};
use authport_sandbox::tray::{Owner, StoredAuth, TrayOptions};
use authport_testkit::{Collected, CountingGate, Sandbox, assert_no_canary, canary, now};
use common::*;
use serde_json::{Map, Value, json};

fn exporter(sandbox: &Sandbox, gate: Arc<CountingGate>) -> Box<dyn AuthExporter> {
    let plugin = authport_core::find_exporter("tray").unwrap();
    (plugin.build)(&sandbox.context().gate(gate).build()).unwrap()
}

async fn import(sandbox: &Sandbox, records: &[&CredentialRecord]) {
    let provider = provider(sandbox, Value::Null, memo());
    discover(provider.as_ref(), records).await;
    for record in records {
        let mapped = provider.map(record).unwrap();
        provider.import(record, &mapped, None).await.unwrap();
    }
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

/// An auth stored the way another tool (or Tray's UI) left it, next to an imported one.
fn insert_like(sandbox: &Sandbox, like: &StoredAuth, id: &str, credentials: Value) {
    sandbox.tray.insert_auth(StoredAuth {
        id: id.to_owned(),
        name: format!("inserted {id}"),
        credentials: object(credentials),
        user_data: Map::new(),
        scopes: Vec::new(),
        updates: 0,
        ..like.clone()
    });
}

fn by_id<'a>(records: &'a [CredentialRecord], id: &str) -> &'a CredentialRecord {
    records
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("no record {id}"))
}

/// `record` carries a warning about `field`.
fn assert_warns(record: &CredentialRecord, field: &str) {
    assert!(
        record.warnings.iter().any(|w| w.field == field),
        "{:?}",
        record.warnings
    );
}

#[tokio::test]
async fn every_auth_comes_back_typed_for_its_owner_and_reads_as_v1() {
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    let api_key = canary("greenhouse-key");
    let token = canary("slack-token");
    let greenhouse = greenhouse("globex-7", &api_key);
    let slack = slack("acme-42", &token);
    import(&sandbox, &[&greenhouse, &slack]).await;
    let slack_stored = sandbox.tray.auths_of_external_user("acme-42")[0].clone();
    let camel = canary("camel-access");
    let camel_refresh = canary("camel-refresh");
    insert_like(
        &sandbox,
        &slack_stored,
        "camel-1",
        json!({"accessToken": camel, "refreshToken": camel_refresh, "tokenType": "Bearer",
            "expiresAt": 1_900_000_000}),
    );
    let extra = canary("extra-access");
    insert_like(
        &sandbox,
        &slack_stored,
        "extra-1",
        json!({"access_token": extra, "dc": "us21", "expires_in": 3600}),
    );

    let gate = CountingGate::new();
    let exporter = exporter(&sandbox, gate.clone());
    let mut sink = Collected::default();
    let before = sandbox.requests_seen();
    let counts = exporter
        .export(&ExportFilter::default(), &mut sink)
        .await
        .unwrap();
    assert!(sink.failures.is_empty(), "{:?}", sink.failures);
    assert_eq!(counts.owners, 2);
    assert_eq!(counts.objects, 4);
    assert_eq!(sink.records.len(), 4);
    // Every request went through the gate.
    assert_eq!(gate.count(), sandbox.requests_seen() - before);

    let greenhouse_id = sandbox.tray.auths_of_external_user("globex-7")[0]
        .id
        .clone();
    let exported = by_id(&sink.records, &greenhouse_id);
    assert_eq!(exported.owner.id, "globex-7");
    assert_eq!(exported.service, "greenhouse");
    match &exported.auth {
        Auth::ApiKey { api_key: key } => assert_eq!(key.expose_secret(), api_key),
        other => panic!("expected api_key, got {other:?}"),
    }
    assert_eq!(
        exported.targets["tray"]["service_environment"],
        json!(sandbox.tray.auths_of_external_user("globex-7")[0].service_environment_id)
    );

    let exported = by_id(&sink.records, &slack_stored.id);
    assert_eq!(exported.owner.id, "acme-42");
    let Auth::OAuth2(oauth) = &exported.auth else {
        panic!("expected oauth2, got {:?}", exported.auth)
    };
    assert_eq!(oauth.access_token.expose_secret(), token);
    assert_eq!(
        oauth.refresh_token.as_ref().unwrap().expose_secret(),
        format!("{token}-refresh")
    );
    assert_eq!(oauth.scopes, ["chat:write", "channels:read"]);
    // Tray holds `expires_in` without its start: said, not silently dropped.
    assert_warns(exported, "auth.expires_in");

    let exported = by_id(&sink.records, "camel-1");
    let Auth::OAuth2(oauth) = &exported.auth else {
        panic!("expected oauth2, got {:?}", exported.auth)
    };
    assert_eq!(oauth.access_token.expose_secret(), camel);
    assert_eq!(
        oauth.refresh_token.as_ref().unwrap().expose_secret(),
        camel_refresh
    );
    assert_eq!(oauth.expiry.unwrap().expires_at.timestamp(), 1_900_000_000);
    assert_eq!(oauth.token_type.as_deref(), Some("Bearer"));

    // A setting the import stored among the credentials (Mailchimp's `dc`) comes back as a
    // setting, and the rest is the oauth2 set it was.
    let exported = by_id(&sink.records, "extra-1");
    let Auth::OAuth2(oauth) = &exported.auth else {
        panic!("expected oauth2, got {:?}", exported.auth)
    };
    assert_eq!(oauth.access_token.expose_secret(), extra);
    assert_eq!(exported.settings["dc"], json!("us21"));
    assert_warns(exported, "auth.expires_in");

    for record in &sink.records {
        // Valid v1: the record reads back as itself.
        let json = record_to_v1_json(record);
        let again = authport_core::record::from_json_located(json.expose(), now()).unwrap();
        assert_eq!(again.secret_values(), record.secret_values());
        assert_no_canary("record Debug", &format!("{record:?}"));
    }
}

#[tokio::test]
async fn the_owner_filter_reads_only_the_named_owners() {
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    let greenhouse = greenhouse("globex-7", &canary("g"));
    let slack = slack("acme-42", &canary("s"));
    import(&sandbox, &[&greenhouse, &slack]).await;
    let exporter = exporter(&sandbox, CountingGate::new());
    let mut sink = Collected::default();
    let filter = ExportFilter {
        owners: vec!["acme-42".into(), "nobody-9".into(), "acme-42".into()],
    };
    exporter.export(&filter, &mut sink).await.unwrap();
    assert_eq!(sink.records.len(), 1);
    assert_eq!(sink.records[0].owner.id, "acme-42");
    assert_eq!(sink.records[0].owner.name.as_deref(), Some("Acme"));
    assert_eq!(sink.failures.len(), 1);
    assert_eq!(sink.failures[0].0, "nobody-9");
    assert_eq!(sink.failures[0].1.kind().as_str(), "rejected");
}

#[tokio::test]
async fn users_are_read_page_by_page() {
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    let greenhouse = greenhouse("globex-7", &canary("g"));
    import(&sandbox, &[&greenhouse]).await;
    let like = sandbox.tray.auths_of_external_user("globex-7")[0].clone();
    // 120 users: three pages of 50; each owns one auth.
    for n in 0..120 {
        let user = sandbox.tray.insert_user("Paged", &format!("paged-{n:03}"));
        sandbox.tray.insert_auth(StoredAuth {
            id: format!("paged-auth-{n:03}"),
            owner: Owner::User(user.id),
            credentials: object(json!({"api_key": format!("key-{n}")})),
            ..like.clone()
        });
    }
    let exporter = exporter(&sandbox, CountingGate::new());
    let mut sink = Collected::default();
    let pages_before = sandbox.tray.call_count("graphql users");
    let counts = exporter
        .export(&ExportFilter::default(), &mut sink)
        .await
        .unwrap();
    assert_eq!(counts.owners, 121);
    assert_eq!(sink.records.len(), 121);
    let mut owners: Vec<&str> = sink.records.iter().map(|r| r.owner.id.as_str()).collect();
    owners.sort_unstable();
    owners.dedup();
    assert_eq!(owners.len(), 121, "every user exactly once");
    assert_eq!(sandbox.tray.call_count("graphql users") - pages_before, 3);
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_waited_out_and_retried() {
    use authport_sandbox::faults::{FaultKind, FaultPlan, FaultRule, Trigger};
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    let greenhouse = greenhouse("globex-7", &canary("g"));
    let slack = slack("acme-42", &canary("s"));
    import(&sandbox, &[&greenhouse, &slack]).await;
    sandbox.set_faults(FaultPlan {
        rules: vec![
            FaultRule::new(
                Some("GET"),
                "/core/v1/authentications/",
                FaultKind::TooManyRequests {
                    retry_after_secs: None,
                },
                Trigger::Nth(vec![1]),
            ),
            FaultRule::new(
                Some("GET"),
                "/core/v1/authentications/",
                FaultKind::ErrorBeforeApply,
                Trigger::Nth(vec![2]),
            ),
            FaultRule::new(
                Some("POST"),
                "/graphql",
                FaultKind::TooManyRequests {
                    retry_after_secs: Some(0),
                },
                Trigger::Nth(vec![1]),
            ),
        ],
        ..FaultPlan::default()
    });
    let mut sink = Collected::default();
    exporter(&sandbox, CountingGate::new())
        .export(&ExportFilter::default(), &mut sink)
        .await
        .unwrap();
    assert!(sink.failures.is_empty(), "{:?}", sink.failures);
    assert_eq!(sink.records.len(), 2);
    let injected = sandbox.faults.injected();
    assert_eq!(injected.too_many_requests, 2);
    assert_eq!(injected.error_before, 1);
}

/// Get full authentication needs Tray support to enable it: nothing but the export may use it.
#[tokio::test]
async fn import_and_verify_never_read_credentials_back() {
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    let record = greenhouse("globex-7", &canary("g"));
    let provider = provider(&sandbox, Value::Null, memo());
    discover(provider.as_ref(), &[&record]).await;
    let mapped = provider.map(&record).unwrap();
    let outcome = provider.import(&record, &mapped, None).await.unwrap();
    let verified = provider.verify(&outcome.target).await.unwrap();
    assert!(verified.healthy(), "{verified:?}");
    let full = "GET /core/v1/authentications/{id}/full";
    assert_eq!(sandbox.tray.call_count(full), 0);
    // The count is real: the export reads it once per auth.
    exporter(&sandbox, CountingGate::new())
        .export(&ExportFilter::default(), &mut Collected::default())
        .await
        .unwrap();
    assert_eq!(sandbox.tray.call_count(full), 1);
}
