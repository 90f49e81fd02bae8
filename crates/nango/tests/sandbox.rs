//! Nango-specific behaviour against the sandbox's emulator: what arrives where, the
//! pre-existing rule, verify's reading of `errors[]` and 424, the rate limit, discovery.

use std::time::Duration;

use authport_core::{
    AuthImporter, CredentialRecord, DiscoveryKey, Disposition, Health, PriorImport, ProviderError,
    Removal, TargetRef,
};
use authport_sandbox::SandboxConfig;
use authport_sandbox::nango::{Integration, NangoOptions, RateLimit, default_integrations};
use authport_testkit::{Sandbox, assert_no_canary, canary, record, sandbox, sandbox_with};
use serde_json::{Map, Value, json};

// Links this crate, so its `inventory::submit!` registers "nango".
use authport_nango as _;

fn importer(sandbox: &Sandbox, config: Value) -> Box<dyn AuthImporter> {
    sandbox.context().config(config).provider("nango")
}

async fn discovered(importer: &dyn AuthImporter, records: &[&CredentialRecord]) {
    let keys: Vec<DiscoveryKey> = records
        .iter()
        .map(|r| DiscoveryKey::for_record(r, "nango"))
        .collect();
    importer.discover(&keys).await.expect("discovery");
}

fn hubspot(id: &str, secret: &str) -> CredentialRecord {
    record(
        &json!({"id": id, "owner": {"id": "acme-42", "email": "ops@acme.example"},
        "service": "hubspot",
        "auth": {"type": "oauth2", "access_token": format!("{secret}-access"),
                 "refresh_token": format!("{secret}-refresh"), "expires_at": "2030-01-01T00:00:00Z"},
        "settings": {"portal_id": "123"}, "metadata": {"plan": "gold"}}),
    )
}

/// Maps and imports one record without a prior import.
async fn import(
    importer: &dyn AuthImporter,
    record: &CredentialRecord,
    prior: Option<&PriorImport>,
) -> Result<authport_core::ImportOutcome, ProviderError> {
    discovered(importer, &[record]).await;
    let mapped = importer.map(record).expect("maps");
    importer.import(record, &mapped, prior).await
}

#[tokio::test]
async fn every_auth_kind_arrives_in_its_documented_field_with_tags_and_settings() {
    let sandbox = sandbox().await;
    let importer = importer(&sandbox, Value::Null);
    let secret = canary("kinds");
    let records = [
        hubspot("acme-42/hubspot", &secret),
        record(
            &json!({"id": "globex-7/greenhouse", "owner": {"id": "globex-7"},
            "service": "greenhouse", "auth": {"type": "api_key", "api_key": format!("{secret}-key")}}),
        ),
        record(
            &json!({"id": "initech-3/zendesk", "owner": {"id": "initech-3"},
            "service": "zendesk", "settings": {"subdomain": "initech"},
            "auth": {"type": "basic", "username": "it@initech.example", "password": format!("{secret}-pw")}}),
        ),
    ];
    for record in &records {
        let outcome = import(importer.as_ref(), record, None)
            .await
            .expect("imports");
        assert_eq!(outcome.disposition, Disposition::Created);
        assert_no_canary("outcome", &format!("{outcome:?}"));
    }
    let hubspot = sandbox
        .nango
        .connection("hubspot", "acme-42-hubspot-3bc51b3977463694")
        .expect("the hubspot connection");
    assert_eq!(
        Value::Object(hubspot.credentials.clone()),
        json!({"type": "OAUTH2", "access_token": format!("{secret}-access"),
               "refresh_token": format!("{secret}-refresh"), "expires_at": "2030-01-01T00:00:00Z"})
    );
    assert_eq!(
        Value::Object(hubspot.connection_config),
        json!({"portal_id": "123"})
    );
    assert_eq!(hubspot.metadata["plan"], "gold");
    assert_eq!(hubspot.metadata["authport_record_id"], "acme-42/hubspot");
    assert_eq!(hubspot.tags["end_user_id"], "acme-42");
    assert_eq!(hubspot.tags["end_user_email"], "ops@acme.example");
    let keys = sandbox.nango.connection_keys();
    let greenhouse = keys
        .iter()
        .find(|k| k.0 == "greenhouse")
        .expect("greenhouse");
    let stored = sandbox
        .nango
        .connection(&greenhouse.0, &greenhouse.1)
        .unwrap();
    assert_eq!(stored.credentials["apiKey"], json!(format!("{secret}-key")));
    let zendesk = keys.iter().find(|k| k.0 == "zendesk").expect("zendesk");
    let stored = sandbox.nango.connection(&zendesk.0, &zendesk.1).unwrap();
    assert_eq!(
        stored.credentials["password"],
        json!(format!("{secret}-pw"))
    );
    assert_eq!(stored.credentials["type"], "BASIC");
    assert_eq!(sandbox.nango.connection_count(), 3);
}

#[tokio::test]
async fn a_connection_the_tool_did_not_create_is_never_overwritten_without_the_flag() {
    let sandbox = sandbox().await;
    let record = hubspot("acme-42/hubspot", &canary("pre"));
    let connection_id = "acme-42-hubspot-3bc51b3977463694";
    let theirs: Map<String, Value> = json!({"type": "OAUTH2", "access_token": "their-token"})
        .as_object()
        .cloned()
        .unwrap();
    sandbox
        .nango
        .precreate_connection("hubspot", connection_id, theirs.clone());

    let importer = importer(&sandbox, Value::Null);
    let outcome = import(importer.as_ref(), &record, None)
        .await
        .expect("answers");
    assert_eq!(outcome.disposition, Disposition::Skipped);
    assert!(outcome.note.unwrap().contains("overwrite_existing"));
    let stored = sandbox.nango.connection("hubspot", connection_id).unwrap();
    assert_eq!(stored.credentials, theirs, "left untouched");
    assert_eq!(stored.upserts, 0);

    let overwriting = importer_with_overwrite(&sandbox);
    let outcome = import(overwriting.as_ref(), &record, None)
        .await
        .expect("imports");
    assert_eq!(
        outcome.disposition,
        Disposition::Updated,
        "not Created: rollback keeps it"
    );
    let stored = sandbox.nango.connection("hubspot", connection_id).unwrap();
    assert_ne!(stored.credentials, theirs);
    assert_eq!(stored.upserts, 1);
}

fn importer_with_overwrite(sandbox: &Sandbox) -> Box<dyn AuthImporter> {
    importer(sandbox, json!({"overwrite_existing": true}))
}

#[tokio::test]
async fn a_connection_this_record_made_is_updated_and_another_records_is_not() {
    let sandbox = sandbox().await;
    let importer = importer(&sandbox, Value::Null);
    let first = hubspot("acme-42/hubspot", &canary("one"));
    let created = import(importer.as_ref(), &first, None).await.unwrap();
    assert_eq!(created.disposition, Disposition::Created);
    // The same record again without a journal (a lost answer): ours, so sent again.
    let again = import(importer.as_ref(), &first, None).await.unwrap();
    assert_eq!(again.disposition, Disposition::Created);
    let prior = PriorImport {
        target: created.target.clone(),
    };
    let updated = import(importer.as_ref(), &first, Some(&prior))
        .await
        .unwrap();
    assert_eq!(updated.disposition, Disposition::Updated);
    assert_eq!(sandbox.nango.connection_count(), 1);
    // Another record forced onto the same connection id is someone else's connection.
    let other = record(
        &json!({"id": "other", "owner": {"id": "o"}, "service": "hubspot",
        "auth": {"type": "oauth2", "access_token": canary("other")},
        "targets": {"nango": {"connection_id": "acme-42-hubspot-3bc51b3977463694"}}}),
    );
    let skipped = import(importer.as_ref(), &other, None).await.unwrap();
    assert_eq!(skipped.disposition, Disposition::Skipped);
}

#[tokio::test]
async fn verify_reports_errors_and_refresh_exhaustion_as_unhealthy() {
    let sandbox = sandbox().await;
    let importer = importer(&sandbox, Value::Null);
    let outcome = import(importer.as_ref(), &hubspot("a/h", &canary("v")), None)
        .await
        .unwrap();
    let target = outcome.target.clone();
    let (key, id) = (
        target.get_str("provider_config_key").unwrap(),
        target.get_str("connection_id").unwrap(),
    );

    let report = importer.verify(&target).await.unwrap();
    assert!(report.healthy(), "{report:?}");
    assert_eq!(report.status, "ok");

    sandbox.nango.add_connection_error(key, id, "sync");
    let report = importer.verify(&target).await.unwrap();
    assert_eq!(
        (report.health, report.status.as_str()),
        (Health::Revoked, "sync_error")
    );

    sandbox.nango.add_connection_error(key, id, "auth");
    let report = importer.verify(&target).await.unwrap();
    assert_eq!(
        (report.health, report.status.as_str()),
        (Health::RefreshFailed, "auth_error")
    );
    assert_eq!(report.detail["errors"], json!(["sync", "auth"]));

    sandbox.nango.exhaust_refresh(key, id);
    let report = importer.verify(&target).await.unwrap();
    assert_eq!(
        (report.health, report.status.as_str()),
        (Health::Revoked, "refresh_exhausted")
    );

    assert_eq!(importer.remove(&target).await.unwrap(), Removal::Removed);
    let report = importer.verify(&target).await.unwrap();
    assert_eq!(
        (report.health, report.status.as_str()),
        (Health::Missing, "missing")
    );
    assert_eq!(
        importer.remove(&target).await.unwrap(),
        Removal::AlreadyGone
    );
}

#[tokio::test]
async fn an_import_clears_auth_errors_and_exhaustion() {
    let sandbox = sandbox().await;
    let importer = importer(&sandbox, Value::Null);
    let record = hubspot("a/h", &canary("c"));
    let outcome = import(importer.as_ref(), &record, None).await.unwrap();
    let target = outcome.target.clone();
    let (key, id) = (
        target.get_str("provider_config_key").unwrap(),
        target.get_str("connection_id").unwrap(),
    );
    sandbox.nango.add_connection_error(key, id, "auth");
    sandbox.nango.exhaust_refresh(key, id);
    let prior = PriorImport {
        target: target.clone(),
    };
    import(importer.as_ref(), &record, Some(&prior))
        .await
        .unwrap();
    assert!(importer.verify(&target).await.unwrap().healthy());
}

#[tokio::test]
async fn over_the_plan_limit_the_answer_is_rate_limited_with_retry_after() {
    let sandbox = sandbox().await;
    sandbox
        .nango
        .set_rate_limit(Some(RateLimit { per_minute: 2 }));
    let importer = importer(&sandbox, Value::Null);
    let target = TargetRef(
        json!({"provider_config_key": "hubspot", "connection_id": "x"})
            .as_object()
            .cloned()
            .unwrap(),
    );
    // Two reads fit in the window; the third is refused until the window resets.
    for _ in 0..2 {
        let report = importer.verify(&target).await.expect("within the limit");
        assert_eq!(report.status, "missing");
    }
    let error = importer.verify(&target).await.expect_err("over the limit");
    match &error {
        ProviderError::RateLimited { retry_after, .. } => {
            let wait = retry_after.expect("Retry-After is honoured");
            assert!(
                wait > Duration::ZERO && wait <= Duration::from_secs(60),
                "{wait:?}"
            );
        }
        other => panic!("expected rate_limited, got {other:?}"),
    }
    assert_eq!(sandbox.nango.rate_limited_count(), 1);
    assert_no_canary("rate limit error", &format!("{error} {error:?}"));
}

#[tokio::test]
async fn several_integrations_for_a_service_need_a_choice() {
    let mut integrations = default_integrations();
    integrations.push(Integration::new(
        "hubspot-eu",
        "hubspot",
        "HubSpot EU",
        "OAUTH2",
    ));
    let sandbox = sandbox_with(SandboxConfig {
        nango: NangoOptions {
            integrations,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let importer = importer(&sandbox, Value::Null);
    let record = hubspot("acme-42/hubspot", &canary("amb"));
    discovered(importer.as_ref(), &[&record]).await;
    let error = importer.map(&record).expect_err("ambiguous");
    assert_eq!(error.field, "service");
    assert!(
        error.message.contains("hubspot, hubspot-eu"),
        "{}",
        error.message
    );

    let chosen = importer_by_service(&sandbox);
    discovered(chosen.as_ref(), &[&record]).await;
    let mapped = chosen.map(&record).expect("maps");
    assert_eq!(mapped.target["provider_config_key"], "hubspot-eu");
}

fn importer_by_service(sandbox: &Sandbox) -> Box<dyn AuthImporter> {
    importer(
        sandbox,
        json!({"services": {"hubspot": {"provider_config_key": "hubspot-eu"}}}),
    )
}

#[tokio::test]
async fn a_wrong_key_stops_the_run_without_showing_the_key() {
    let sandbox = sandbox().await;
    let wrong = canary("wrong-nango-key");
    let importer = sandbox
        .context()
        .var("NANGO_SECRET_KEY", &wrong)
        .provider("nango");
    let error = importer.discover(&[]).await.expect_err("refused");
    assert_eq!(error.kind().as_str(), "fatal", "{error}");
    assert!(error.message().contains("NANGO_SECRET_KEY"), "{error}");
    assert_no_canary("401 error", &format!("{error} {error:?} {importer:?}"));
}
