//! The provider against the Apideck sandbox over real loopback HTTP, built through the plugin
//! registry and driven through `dyn AuthImporter`, as the engine does.

use crate::support;

use authport_core::{
    AuthImporter, CredentialRecord, DiscoveryKey, Disposition, ImportOutcome, PriorImport,
    ProviderError, Removal,
};
use authport_sandbox::SandboxConfig;
use authport_sandbox::apideck::IntegrationState;
use authport_testkit::{Sandbox, sandbox, sandbox_with};
use chrono::{SecondsFormat, TimeDelta, Utc};
use serde_json::{Map, Value, json};
use support::*;

// Links this crate, so its `inventory::submit!` registers "apideck".
use authport_apideck as _;

/// Builds the provider from the registry, configured from the sandbox's env vars only (plus an
/// optional `[apideck]` section).
fn provider(sandbox: &Sandbox, config: Value) -> Box<dyn AuthImporter> {
    sandbox.context().config(config).provider("apideck")
}

fn minutes_ago(minutes: i64) -> String {
    (Utc::now() - TimeDelta::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The six records of the bundled example file (same shapes; canary secrets).
fn example_records() -> Vec<CredentialRecord> {
    let issued = minutes_ago(10);
    records(&[
        json!({"id": "acme-42/hubspot", "owner": {"id": "acme-42", "name": "Acme Inc"}, "service": "hubspot",
               "auth": {"type": "oauth2", "access_token": CANARY_ACCESS, "refresh_token": CANARY_REFRESH,
                        "issued_at": issued, "expires_in": 1800, "scopes": ["crm.objects.contacts.read"]},
               "targets": {"tray": {"service_environment": "acme hubspot oauth"},
                           "apideck": {"unified_api": "crm", "service_id": "hubspot"}}}),
        json!({"id": "acme-42/salesforce", "owner": {"id": "acme-42"}, "service": "salesforce",
               "auth": {"type": "oauth2", "access_token": CANARY_ACCESS, "refresh_token": CANARY_REFRESH,
                        "issued_at": issued, "expires_in": 7200},
               "settings": {"instance_url": "https://acme.my.salesforce.com"},
               "targets": {"apideck": {"unified_api": "crm", "service_id": "salesforce"}}}),
        json!({"id": "globex-7/activecampaign", "owner": {"id": "globex-7"}, "service": "activecampaign",
               "auth": {"type": "api_key", "api_key": CANARY_API_KEY},
               "settings": {"account_url": "https://globex.api-us1.com"},
               "targets": {"apideck": {"unified_api": "crm", "service_id": "activecampaign"}}}),
        json!({"id": "globex-7/greenhouse", "owner": {"id": "globex-7"}, "service": "greenhouse",
               "auth": {"type": "api_key", "api_key": CANARY_API_KEY},
               "targets": {"apideck": {"unified_api": "ats", "service_id": "greenhouse"}}}),
        json!({"id": "initech-3/quickbooks", "owner": {"id": "initech-3"}, "service": "quickbooks",
               "auth": {"type": "oauth2", "access_token": CANARY_ACCESS, "refresh_token": CANARY_REFRESH,
                        "issued_at": issued, "expires_in": 3600},
               "settings": {"realm_id": "4620816365164357123"},
               "targets": {"apideck": {"unified_api": "accounting", "service_id": "quickbooks"}}}),
        json!({"id": "initech-3/zendesk", "owner": {"id": "initech-3"}, "service": "zendesk",
               "auth": {"type": "basic", "username": CANARY_USERNAME, "password": CANARY_PASSWORD},
               "settings": {"subdomain": "initech"},
               "targets": {"apideck": {"unified_api": "ticketing", "service_id": "zendesk"}}}),
    ])
}

fn hubspot_record(auth: Value) -> CredentialRecord {
    record(
        &json!({"id": "acme-42/hubspot", "owner": {"id": "acme-42"}, "service": "hubspot", "auth": auth}),
    )
}

fn fresh_oauth() -> Value {
    json!({"type": "oauth2", "access_token": CANARY_ACCESS, "refresh_token": CANARY_REFRESH,
           "issued_at": minutes_ago(5), "expires_in": 3600})
}

async fn discover(importer: &dyn AuthImporter, records: &[CredentialRecord]) {
    let mut keys: Vec<DiscoveryKey> = Vec::new();
    for key in records
        .iter()
        .map(|r| DiscoveryKey::for_record(r, "apideck"))
    {
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    importer.discover(&keys).await.expect("discovery succeeds");
}

/// Maps and imports one record; a mapping error is returned as `Err(field)`.
async fn import(
    importer: &dyn AuthImporter,
    record: &CredentialRecord,
    prior: Option<&PriorImport>,
) -> Result<Result<ImportOutcome, ProviderError>, String> {
    let mapped = importer.map(record).map_err(|e| {
        assert_no_canary("mapping error", &format!("{e} {e:?}"));
        e.field
    })?;
    let outcome = importer.import(record, &mapped, prior).await;
    assert_no_canary("outcome", &format!("{outcome:?}"));
    if let Err(error) = &outcome {
        assert_no_canary("error", &error.to_string());
    }
    Ok(outcome)
}

#[tokio::test]
async fn example_records_import_as_callable_connections() {
    let sandbox = sandbox().await;
    let importer = provider(&sandbox, Value::Null);
    let records = example_records();
    discover(importer.as_ref(), &records).await;
    for record in &records {
        let outcome = import(importer.as_ref(), record, None)
            .await
            .expect("maps")
            .expect("imports");
        assert_eq!(outcome.disposition, Disposition::Created, "{}", record.id);
        let report = importer.verify(&outcome.target).await.expect("verifies");
        assert_eq!(
            (report.healthy(), report.status.as_str()),
            (true, "callable"),
            "{}: {report:?}",
            record.id
        );
        assert_no_canary(
            "verify",
            &format!(
                "{report:?} {}",
                serde_json::to_string(&report).expect("json")
            ),
        );
    }
    assert_eq!(sandbox.apideck.connection_count(), 6);
    assert_eq!(
        sandbox.apideck.consumer_ids(),
        ["acme-42", "globex-7", "initech-3"]
    );
    // The expiry arrived in seconds, and the api key under the connector's form field.
    let hubspot = sandbox
        .apideck
        .connection("acme-42", "crm", "hubspot")
        .expect("imported");
    let credentials = hubspot.stored.credentials.expect("credentials");
    assert_eq!(credentials["expires_in"], json!(1800));
    assert_eq!(credentials["access_token"], json!(CANARY_ACCESS));
    let activecampaign = sandbox
        .apideck
        .connection("globex-7", "crm", "activecampaign")
        .expect("imported");
    assert_eq!(
        activecampaign.stored.settings["api_key"],
        json!(CANARY_API_KEY)
    );
    assert_eq!(
        activecampaign.stored.settings["instance_url"],
        json!("https://globex.api-us1.com")
    );
    assert!(activecampaign.stored.credentials.is_none());
    assert_no_canary("importer debug", &format!("{importer:?}"));
}

/// Import once, update and reconcile are the conformance suite's; what is Apideck's own is how a
/// run without the state still recognises the connection as ours: its metadata marker.
#[tokio::test]
async fn without_the_state_our_connection_is_recognised_by_its_marker() {
    let sandbox = sandbox().await;
    let importer = provider(&sandbox, Value::Null);
    let record = hubspot_record(fresh_oauth());
    discover(importer.as_ref(), std::slice::from_ref(&record)).await;
    let first = import(importer.as_ref(), &record, None)
        .await
        .expect("maps")
        .expect("imports");
    assert_eq!(first.disposition, Disposition::Created);
    // State lost: no `prior`; the marker says the connection is ours, so it is not skipped.
    let again = import(importer.as_ref(), &record, None)
        .await
        .expect("maps")
        .expect("imports");
    assert_eq!(again.disposition, Disposition::Created);
    // Another record for the same connection is not ours: it is skipped.
    let mut other = record.clone();
    other.id = "acme-42/hubspot-other".to_owned();
    let skipped = import(importer.as_ref(), &other, None)
        .await
        .expect("maps")
        .expect("answers");
    assert_eq!(skipped.disposition, Disposition::Skipped);
    assert_eq!(sandbox.apideck.connection_count(), 1);
    assert_eq!(sandbox.apideck.import_count(), 2);
}

#[tokio::test]
async fn pre_existing_connections_are_skipped_unless_overwriting_is_allowed() {
    let sandbox = sandbox().await;
    let mut credentials = Map::new();
    credentials.insert("access_token".to_owned(), json!("their-own-token"));
    sandbox.apideck.precreate_connection(
        "acme-42",
        "crm",
        "hubspot",
        Map::new(),
        Some(credentials.clone()),
    );
    let record = hubspot_record(fresh_oauth());

    let importer = provider(&sandbox, Value::Null);
    discover(importer.as_ref(), std::slice::from_ref(&record)).await;
    let outcome = import(importer.as_ref(), &record, None)
        .await
        .expect("maps")
        .expect("answers");
    assert_eq!(outcome.disposition, Disposition::Skipped);
    assert!(
        outcome
            .note
            .as_deref()
            .is_some_and(|n| n.contains("overwrite_existing")),
        "{outcome:?}"
    );
    let untouched = sandbox
        .apideck
        .connection("acme-42", "crm", "hubspot")
        .expect("still there");
    assert!(untouched.stored.pre_existing);
    assert_eq!(untouched.stored.credentials, Some(credentials.clone()));
    assert_eq!(sandbox.apideck.import_count(), 0);

    let overwriting = provider(&sandbox, json!({"overwrite_existing": true}));
    discover(overwriting.as_ref(), std::slice::from_ref(&record)).await;
    let outcome = import(overwriting.as_ref(), &record, None)
        .await
        .expect("maps")
        .expect("imports");
    // Updated, not Created: rollback (which removes only Created) leaves it in place.
    assert_eq!(outcome.disposition, Disposition::Updated);
    assert_eq!(sandbox.apideck.import_count(), 1);

    // A connection added without a grant is filled in, and still not ours to remove: seen by
    // the next run's consumer list, and by the read of `per_connection`.
    for (owner, config) in [
        ("globex-7", Value::Null),
        ("initech-3", json!({"pre_existing_check": "per_connection"})),
    ] {
        sandbox
            .apideck
            .precreate_connection(owner, "crm", "hubspot", Map::new(), None);
        let other = record_with_owner(&record, owner);
        let next_run = provider(&sandbox, config.clone());
        discover(next_run.as_ref(), std::slice::from_ref(&other)).await;
        let outcome = import(next_run.as_ref(), &other, None)
            .await
            .expect("maps")
            .expect("imports");
        assert_eq!(outcome.disposition, Disposition::Updated, "{config}");
    }
}

fn record_with_owner(record: &CredentialRecord, owner: &str) -> CredentialRecord {
    let mut record = record.clone();
    record.owner.id = owner.to_owned();
    record.id = format!("{owner}/{}", record.service);
    record
}

#[tokio::test]
async fn verify_reports_callable_authorized_pending_refresh_and_missing() {
    let sandbox = sandbox().await;
    let importer = provider(&sandbox, json!({"allow_incomplete_settings": true}));
    let no_realm = record(
        &json!({"id": "q", "owner": {"id": "initech-3"}, "service": "quickbooks", "auth": fresh_oauth()}),
    );
    let no_expiry = hubspot_record(
        json!({"type": "oauth2", "access_token": CANARY_ACCESS, "refresh_token": CANARY_REFRESH}),
    );
    let good = record(
        &json!({"id": "g", "owner": {"id": "globex-7"}, "service": "greenhouse",
                             "auth": {"type": "api_key", "api_key": CANARY_API_KEY}}),
    );
    discover(
        importer.as_ref(),
        &[no_realm.clone(), no_expiry.clone(), good.clone()],
    )
    .await;
    let mut statuses = Vec::new();
    for record in [&no_realm, &no_expiry, &good] {
        let outcome = import(importer.as_ref(), record, None)
            .await
            .expect("maps")
            .expect("imports");
        let report = importer.verify(&outcome.target).await.expect("verifies");
        statuses.push((report.status.clone(), report.healthy()));
        if record.id == "g" {
            assert_eq!(importer.remove(&outcome.target).await, Ok(Removal::Removed));
            assert_eq!(
                importer.remove(&outcome.target).await,
                Ok(Removal::AlreadyGone)
            );
            let gone = importer.verify(&outcome.target).await.expect("verifies");
            statuses.push((gone.status.clone(), gone.healthy()));
        }
    }
    assert_eq!(
        statuses,
        [
            ("authorized".to_owned(), false),
            ("pending_refresh".to_owned(), true),
            ("callable".to_owned(), true),
            ("missing".to_owned(), false),
        ]
    );
    // Rollback removes connections only, never the consumer.
    assert!(
        sandbox
            .apideck
            .consumer_ids()
            .contains(&"globex-7".to_owned())
    );
}

#[tokio::test]
async fn plan_limit_stops_the_run() {
    let sandbox = sandbox().await;
    sandbox.apideck.set_import_limit(Some(1));
    let importer = provider(&sandbox, Value::Null);
    let records = example_records();
    discover(importer.as_ref(), &records).await;
    let first = import(importer.as_ref(), &records[0], None)
        .await
        .expect("maps");
    assert!(first.is_ok());
    let second = import(importer.as_ref(), &records[1], None)
        .await
        .expect("maps");
    match second {
        Err(ProviderError::Fatal { message }) => {
            assert!(message.contains("RequestLimitError"), "{message}")
        }
        other => panic!("expected a fatal error, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_api_key_is_fatal_before_any_write() {
    let sandbox = sandbox().await;
    let importer = sandbox
        .context()
        .var("APIDECK_API_KEY", "CANARY-wrong-key-0a9")
        .provider("apideck");
    let keys = [DiscoveryKey {
        service: "hubspot".to_owned(),
        target: None,
    }];
    let error = importer.discover(&keys).await.expect_err("unauthorised");
    assert!(matches!(error, ProviderError::Fatal { .. }), "{error:?}");
    assert!(!format!("{error} {error:?} {importer:?}").contains("CANARY-wrong-key-0a9"));
    assert_eq!(sandbox.apideck.consumer_ids(), Vec::<String>::new());
}

#[tokio::test]
async fn unknown_and_disabled_connectors_fail_their_records_before_any_write() {
    let sandbox = sandbox().await;
    sandbox
        .apideck
        .set_integration_state("crm", "pipedrive", IntegrationState::Disabled);
    let importer = provider(&sandbox, Value::Null);
    let unknown = record(
        &json!({"id": "u", "owner": {"id": "acme-42"}, "service": "mailchimp", "auth": fresh_oauth(),
                                "targets": {"apideck": {"unified_api": "crm", "service_id": "mailchimp"}}}),
    );
    let disabled = record(
        &json!({"id": "d", "owner": {"id": "acme-42"}, "service": "pipedrive", "auth": fresh_oauth()}),
    );
    let unresolvable = record(
        &json!({"id": "x", "owner": {"id": "acme-42"}, "service": "mailchimp", "auth": fresh_oauth()}),
    );
    let no_realm = record(
        &json!({"id": "q", "owner": {"id": "initech-3"}, "service": "quickbooks", "auth": fresh_oauth()}),
    );
    let good = hubspot_record(fresh_oauth());
    let all = [
        unknown.clone(),
        disabled.clone(),
        unresolvable.clone(),
        no_realm.clone(),
        good.clone(),
    ];
    discover(importer.as_ref(), &all).await;

    let check = |record: &CredentialRecord, field: &str, words: &str| {
        let error = importer.map(record).expect_err("refused");
        assert_eq!(error.field, field, "{}: {error}", record.id);
        assert!(error.message.contains(words), "{}: {error}", record.id);
    };
    check(&unknown, "service", "unknown or not enabled");
    check(&disabled, "service", "disabled");
    check(&unresolvable, "targets.apideck", "no Apideck connector");
    check(&no_realm, "settings.realm_id", "required");
    assert_eq!(
        sandbox.apideck.consumer_ids(),
        Vec::<String>::new(),
        "discovery created nothing"
    );
    // The bad records do not stop the good one.
    let outcome = import(importer.as_ref(), &good, None)
        .await
        .expect("maps")
        .expect("imports");
    assert_eq!(outcome.disposition, Disposition::Created);
}

#[tokio::test]
async fn validation_after_import_is_off_by_default() {
    let check = |config: Value, expect_forced: u64, expect_validated: [bool; 2]| async move {
        let sandbox = sandbox().await;
        let importer = provider(&sandbox, config.clone());
        let oauth = hubspot_record(fresh_oauth());
        let api_key = record(
            &json!({"id": "g", "owner": {"id": "globex-7"}, "service": "greenhouse",
                                    "auth": {"type": "api_key", "api_key": CANARY_API_KEY}}),
        );
        discover(importer.as_ref(), &[oauth.clone(), api_key.clone()]).await;
        for (record, validated) in [
            (&oauth, expect_validated[0]),
            (&api_key, expect_validated[1]),
        ] {
            let outcome = import(importer.as_ref(), record, None)
                .await
                .expect("maps")
                .expect("imports");
            let note = outcome.note.unwrap_or_default();
            assert_eq!(
                note.contains("validated"),
                validated,
                "{config}: {}: {note}",
                record.id
            );
        }
        assert_eq!(
            sandbox.apideck.forced_refresh_count(),
            expect_forced,
            "{config}"
        );
    };
    check(Value::Null, 0, [false, false]).await;
    check(
        json!({"validate_after_import": "non_oauth"}),
        0,
        [false, true],
    )
    .await;
    check(json!({"validate_after_import": "always"}), 1, [true, true]).await;
}

/// Vault's answer for a consumer without the connection is undocumented: with a 404 instead of
/// `available`, discovery falls back to the app-wide list and imports still work.
#[tokio::test]
async fn works_when_vault_answers_404_for_connections_a_consumer_lacks() {
    let config = SandboxConfig {
        apideck: authport_sandbox::apideck::ApideckOptions {
            missing_connection_answers_404: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let sandbox = sandbox_with(config).await;
    let importer = provider(&sandbox, Value::Null);
    let records = example_records();
    let unknown = record(
        &json!({"id": "u", "owner": {"id": "acme-42"}, "service": "mailchimp", "auth": fresh_oauth(),
                                "targets": {"apideck": {"unified_api": "crm", "service_id": "mailchimp"}}}),
    );
    let mut all = records.clone();
    all.push(unknown.clone());
    discover(importer.as_ref(), &all).await;
    assert_eq!(
        importer.map(&unknown).expect_err("unknown").field,
        "service"
    );
    for record in &records {
        let outcome = import(importer.as_ref(), record, None)
            .await
            .expect("maps")
            .expect("imports");
        assert_eq!(outcome.disposition, Disposition::Created, "{}", record.id);
        assert_eq!(importer.remove(&outcome.target).await, Ok(Removal::Removed));
        assert_eq!(
            importer
                .verify(&outcome.target)
                .await
                .expect("verifies")
                .status,
            "missing"
        );
    }
}

/// The README quick start imports the bundled example file with this provider's defaults.
#[tokio::test]
async fn bundled_example_file_imports_with_defaults() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/records.jsonl");
    let records: Vec<CredentialRecord> = authport_core::input::InputReader::open(&path, Utc::now())
        .expect("the example file opens")
        .map(|item| item.result.expect("a valid record"))
        .collect();
    assert_eq!(records.len(), 6);
    let sandbox = sandbox().await;
    let importer = provider(&sandbox, Value::Null);
    discover(importer.as_ref(), &records).await;
    for record in &records {
        let mapped = importer
            .map(record)
            .unwrap_or_else(|e| panic!("{}: {e}", record.id));
        let outcome = importer
            .import(record, &mapped, None)
            .await
            .expect("imports");
        assert_eq!(outcome.disposition, Disposition::Created, "{}", record.id);
        let report = importer.verify(&outcome.target).await.expect("verifies");
        assert!(report.healthy(), "{}: {report:?}", record.id);
    }
    assert_eq!(sandbox.apideck.connection_count(), 6);
}

/// Issue 10 item 2 at the provider: many records at once wait for one consumer listing; only
/// the listed pair is read first, and its pre-existing connection is still skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_imports_share_one_consumer_listing() {
    let sandbox = sandbox().await;
    // An api key connection someone else set up (callable: its key is in the settings).
    let mut settings = Map::new();
    settings.insert("api_key".to_owned(), json!("their-own-key"));
    sandbox
        .apideck
        .precreate_connection("taken-1", "ats", "greenhouse", settings, None);
    assert_eq!(
        sandbox
            .apideck
            .connection("taken-1", "ats", "greenhouse")
            .expect("there")
            .state,
        "callable"
    );
    let importer: std::sync::Arc<dyn AuthImporter> = provider(&sandbox, Value::Null).into();
    let consumers: Vec<String> = (0..40)
        .map(|n| format!("fresh-{n:02}"))
        .chain(["taken-1".to_owned()])
        .collect();
    let all: Vec<CredentialRecord> = consumers
        .iter()
        .map(|consumer| {
            record(
                &json!({"id": format!("{consumer}/greenhouse"), "owner": {"id": consumer},
                           "service": "greenhouse",
                           "auth": {"type": "api_key", "api_key": CANARY_API_KEY}}),
            )
        })
        .collect();
    discover(importer.as_ref(), &all[..1]).await;
    let mut tasks = tokio::task::JoinSet::new();
    for record in all {
        let importer = importer.clone();
        tasks.spawn(async move {
            let outcome = import(importer.as_ref(), &record, None)
                .await
                .expect("maps")
                .expect("answers");
            (record.id, outcome.disposition)
        });
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        outcomes.push(joined.expect("task"));
    }
    outcomes.sort_by(|a, b| a.0.cmp(&b.0));
    let skipped: Vec<&str> = outcomes
        .iter()
        .filter(|(_, d)| *d == Disposition::Skipped)
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(skipped, ["taken-1/greenhouse"]);
    assert_eq!(outcomes.len(), 41);
    let theirs = sandbox
        .apideck
        .connection("taken-1", "ats", "greenhouse")
        .expect("still there");
    assert_eq!(theirs.stored.settings["api_key"], "their-own-key");
    let requests = sandbox.apideck.request_counts();
    let count = |operation: &str| requests.get(operation).copied().unwrap_or(0);
    assert_eq!(count("GET /vault/consumers"), 1, "{requests:?}");
    assert_eq!(
        count("GET /vault/connections/{unified_api}/{service_id}"),
        1 + 1,
        "discovery and the listed pair: {requests:?}"
    );
    assert_eq!(
        count("POST /vault/connections/{unified_api}/{service_id}/import"),
        40
    );
}
