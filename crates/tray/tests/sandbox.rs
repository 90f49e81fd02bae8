//! The Tray provider against the Tray sandbox over loopback HTTP, driven through
//! `dyn AuthImporter` exactly as the engine drives it.

use std::sync::Arc;
use std::time::Duration;

use authport_core::record::from_json_located;
use authport_core::{
    AuthImporter, BuildContext, CredentialRecord, DiscoveryKey, Disposition, EnvSnapshot,
    InMemoryMemo, Memo, PriorImport, ProviderError, Removal,
};
use authport_sandbox::faults::{FaultKind, FaultPlan, FaultRule, Trigger};
use authport_sandbox::tray::TrayOptions;
use authport_sandbox::{RunningSandbox, SandboxConfig};
use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

const CANARY: &str = "CANARY-7f3a9c-secret";

async fn sandbox(tray: TrayOptions) -> RunningSandbox {
    let config = SandboxConfig {
        tray,
        ..SandboxConfig::default()
    };
    authport_sandbox::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// The provider configured only from the sandbox's env vars (as the lead's e2e tests do).
fn provider(sandbox: &RunningSandbox, config: Value, memo: Arc<dyn Memo>) -> Box<dyn AuthImporter> {
    let context = BuildContext {
        config,
        env: EnvSnapshot::from_pairs(sandbox.provider_env()),
        memo,
        gate: std::sync::Arc::new(authport_core::Ungated),
        request_timeout: Duration::from_secs(10),
    };
    (authport_core::find_provider("tray").unwrap().build)(&context).unwrap()
}

fn record(value: Value) -> CredentialRecord {
    let now = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
    from_json_located(&value, now).unwrap()
}

fn greenhouse(owner: &str, key: &str) -> CredentialRecord {
    record(
        json!({"id": format!("{owner}/greenhouse"), "owner": {"id": owner, "name": "Globex"},
        "service": "greenhouse", "auth": {"type": "api_key", "api_key": key}}),
    )
}

fn slack(owner: &str, token: &str) -> CredentialRecord {
    record(
        json!({"id": format!("{owner}/slack"), "owner": {"id": owner, "name": "Acme"}, "service": "slack",
        "auth": {"type": "oauth2", "access_token": token, "refresh_token": format!("{token}-refresh"),
                 "scopes": ["chat:write", "channels:read"], "issued_at": "2026-11-01T10:00:00Z", "expires_in": 3600},
        "targets": {"tray": {"service_environment": "acme slack oauth"}}}),
    )
}

async fn discover(provider: &dyn AuthImporter, records: &[&CredentialRecord]) {
    let keys: Vec<DiscoveryKey> = records
        .iter()
        .map(|r| DiscoveryKey::for_record(r, "tray"))
        .collect();
    provider.discover(&keys).await.unwrap();
}

fn memo() -> Arc<dyn Memo> {
    Arc::new(InMemoryMemo::default())
}

#[tokio::test]
async fn good_records_import_exactly_once_with_user_tokens() {
    let sandbox = sandbox(TrayOptions::default()).await;
    let provider = provider(&sandbox, Value::Null, memo());
    let a = greenhouse("globex-7", CANARY);
    let b = slack("acme-42", "xoxb-slack-token");
    discover(provider.as_ref(), &[&a, &b]).await;
    for record in [&a, &b] {
        let mapped = provider.map(record).unwrap();
        let outcome = provider.import(record, &mapped, None).await.unwrap();
        assert_eq!(outcome.disposition, Disposition::Created);
        let auth_id = outcome.target.get_str("authentication_id").unwrap();
        let stored = sandbox.tray.auth(auth_id).unwrap();
        // Owned by the end user (created with the user's token), not by the org.
        let user = sandbox.tray.user_by_external_id(&record.owner.id).unwrap();
        assert_eq!(
            stored.owner,
            authport_sandbox::tray::Owner::User(user.id.clone())
        );
        assert_eq!(outcome.target.get_str("user_id"), Some(user.id.as_str()));
    }
    assert_eq!(sandbox.tray.auth_count(), 2);
    assert_eq!(sandbox.tray.users().len(), 2);
    // Discovery is cached: one connector listing, one environment listing per service.
    assert_eq!(sandbox.tray.call_count("GET /core/v1/connectors"), 1);
    assert_eq!(
        sandbox
            .tray
            .call_count("GET /core/v1/services/environments"),
        2
    );
    let stored = sandbox.tray.auths_of_external_user("globex-7");
    assert_eq!(stored[0].credentials.get("api_key"), Some(&json!(CANARY)));
    let slack_auth = &sandbox.tray.auths_of_external_user("acme-42")[0];
    assert_eq!(slack_auth.scopes, ["chat:write", "channels:read"]);
    assert_eq!(slack_auth.credentials.get("expires_in"), Some(&json!(3600)));
}

#[tokio::test]
async fn users_are_found_by_external_id_and_remembered_in_the_memo() {
    let sandbox = sandbox(TrayOptions::default()).await;
    let existing = sandbox.tray.insert_user("Globex", "globex-7");
    let memo = memo();
    let first = provider(&sandbox, Value::Null, memo.clone());
    let record = greenhouse("globex-7", "key-1");
    discover(first.as_ref(), &[&record]).await;
    let mapped = first.map(&record).unwrap();
    let outcome = first.import(&record, &mapped, None).await.unwrap();
    assert_eq!(
        outcome.target.get_str("user_id"),
        Some(existing.id.as_str())
    );
    assert_eq!(
        sandbox.tray.users().len(),
        1,
        "an existing user is never created again"
    );
    assert_eq!(
        memo.get("tray.user_id", "globex-7").as_deref(),
        Some(existing.id.as_str())
    );
    // A second run with the same memo does not look the user up again.
    let lookups = sandbox.tray.call_count("graphql users");
    let second = provider(&sandbox, Value::Null, memo);
    discover(second.as_ref(), &[&record]).await;
    second
        .import(
            &record,
            &mapped,
            Some(&PriorImport {
                target: outcome.target.clone(),
            }),
        )
        .await
        .unwrap();
    assert_eq!(sandbox.tray.call_count("graphql users"), lookups);
}

#[tokio::test]
async fn user_creation_can_be_forbidden() {
    let sandbox = sandbox(TrayOptions::default()).await;
    let provider = provider(&sandbox, json!({"create_users": false}), memo());
    let record = greenhouse("nobody-1", "key-1");
    discover(provider.as_ref(), &[&record]).await;
    let mapped = provider.map(&record).unwrap();
    let error = provider.import(&record, &mapped, None).await.unwrap_err();
    assert_eq!(error.kind(), "rejected");
    assert!(
        error.message().contains("nobody-1/greenhouse") && error.message().contains("create_users"),
        "{error}"
    );
    assert_eq!(sandbox.tray.auth_count(), 0);
}

#[tokio::test]
async fn bad_records_fail_with_located_reasons() {
    let sandbox = sandbox(TrayOptions::default()).await;
    let provider = provider(&sandbox, Value::Null, memo());
    let cases = [
        // Zendesk's token environment requires userData.subdomain.
        (
            record(
                json!({"id": "z/1", "owner": {"id": "z"}, "service": "zendesk",
            "auth": {"type": "basic", "username": "ops@z.example", "password": CANARY}}),
            ),
            "userData.subdomain",
            "tray service zendesk",
        ),
        // OAuth into Tray's own OAuth app.
        (
            record(
                json!({"id": "s/1", "owner": {"id": "s"}, "service": "slack",
            "auth": {"type": "oauth2", "access_token": CANARY}}),
            ),
            "targets.tray.service_environment",
            "custom OAuth app environment",
        ),
        (
            record(
                json!({"id": "u/1", "owner": {"id": "u"}, "service": "nosuchservice",
            "auth": {"type": "api_key", "api_key": CANARY}}),
            ),
            "service",
            "no connector for service nosuchservice",
        ),
        (
            record(
                json!({"id": "e/1", "owner": {"id": "e"}, "service": "mailchimp",
            "auth": {"type": "oauth2", "access_token": CANARY}, "targets": {"tray": {"service_environment": "missing env"}}}),
            ),
            "targets.tray.service_environment",
            "available: Production, mailchimp acme oauth",
        ),
        (
            record(
                json!({"id": "t/1", "owner": {"id": "t"}, "service": "greenhouse",
            "auth": {"type": "api_key", "api_key": CANARY}, "targets": {"tray": {"enviroment": "x"}}}),
            ),
            "targets.tray.enviroment",
            "unknown field",
        ),
        // NetSuite (Tray's own loose draft-03 example) needs account and role.
        (
            record(
                json!({"id": "n/1", "owner": {"id": "n"}, "service": "netsuite",
            "auth": {"type": "basic", "username": "a@n.example", "password": CANARY}, "settings": {"account": "TSTDRV1"}}),
            ),
            "credentials.role",
            "is required",
        ),
    ];
    let keys: Vec<DiscoveryKey> = cases
        .iter()
        .map(|(r, _, _)| DiscoveryKey::for_record(r, "tray"))
        .collect();
    provider.discover(&keys).await.unwrap();
    for (record, field, message) in &cases {
        let error = provider.map(record).unwrap_err();
        assert_eq!(&error.field, field, "{}: {error}", record.id);
        assert!(error.message.contains(message), "{}: {error}", record.id);
        assert!(!format!("{error} {error:?}").contains(CANARY));
    }
    assert_eq!(sandbox.tray.auth_count(), 0);
}

#[tokio::test]
async fn prior_import_is_updated_with_put() {
    let sandbox = sandbox(TrayOptions::default()).await;
    let provider = provider(&sandbox, Value::Null, memo());
    let first = greenhouse("globex-7", "old-key");
    discover(provider.as_ref(), &[&first]).await;
    let outcome = provider
        .import(&first, &provider.map(&first).unwrap(), None)
        .await
        .unwrap();
    let changed = greenhouse("globex-7", "new-key");
    let prior = PriorImport {
        target: outcome.target.clone(),
    };
    let updated = provider
        .import(&changed, &provider.map(&changed).unwrap(), Some(&prior))
        .await
        .unwrap();
    assert_eq!(updated.disposition, Disposition::Updated);
    assert_eq!(
        updated.target.get_str("authentication_id"),
        outcome.target.get_str("authentication_id")
    );
    assert_eq!(sandbox.tray.auth_count(), 1);
    let stored = sandbox
        .tray
        .auth(outcome.target.get_str("authentication_id").unwrap())
        .unwrap();
    assert_eq!(stored.updates, 1);
    assert_eq!(stored.credentials.get("api_key"), Some(&json!("new-key")));
    assert_eq!(
        sandbox.tray.call_count("PUT /core/v1/authentications/{id}"),
        1
    );
}

#[tokio::test]
async fn ambiguous_create_is_reconciled_without_duplicate() {
    let sandbox = sandbox(TrayOptions::default()).await;
    let provider = provider(&sandbox, Value::Null, memo());
    let record = greenhouse("globex-7", CANARY);
    discover(provider.as_ref(), &[&record]).await;
    let mapped = provider.map(&record).unwrap();
    for kind in [FaultKind::DropAfterApply, FaultKind::ErrorAfterApply] {
        sandbox.faults.set(FaultPlan {
            seed: 1,
            rules: vec![FaultRule {
                method: Some("POST".to_owned()),
                path_prefix: "/core/v1/authentications".to_owned(),
                body_contains: None,
                kind,
                trigger: Trigger::Nth(vec![1]),
            }],
            latency: None,
        });
        let before = sandbox.tray.auth_count();
        let error = provider.import(&record, &mapped, None).await.unwrap_err();
        assert_eq!(error.kind(), "outcome_unknown", "{error}");
        assert!(!format!("{error} {error:?}").contains(CANARY));
        // The write happened; reconcile adopts it instead of creating a second one.
        assert_eq!(sandbox.tray.auth_count(), before + 1);
        let adopted = provider
            .reconcile(&record, &mapped)
            .await
            .unwrap()
            .expect("adopted");
        assert_eq!(adopted.disposition, Disposition::Created);
        let auths = sandbox.tray.auths_of_external_user("globex-7");
        assert!(
            auths
                .iter()
                .any(|a| Some(a.id.as_str()) == adopted.target.get_str("authentication_id"))
        );
        assert_eq!(sandbox.tray.auth_count(), before + 1);
        // Clean up so the next kind starts from nothing of this name.
        assert_eq!(
            provider.remove(&adopted.target).await.unwrap(),
            Removal::Removed
        );
    }
    // Nothing there: reconcile says it is safe to import again.
    sandbox.faults.set(FaultPlan::default());
    assert!(
        provider
            .reconcile(&record, &mapped)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn expired_user_tokens_are_minted_again() {
    let options = TrayOptions {
        user_token_max_uses: Some(1),
        ..TrayOptions::default()
    };
    let sandbox = sandbox(options).await;
    let provider = provider(&sandbox, Value::Null, memo());
    let records: Vec<CredentialRecord> = (0..3)
        .map(|i| {
            record(
                json!({"id": format!("globex-7/greenhouse-{i}"), "owner": {"id": "globex-7"},
            "service": "greenhouse", "auth": {"type": "api_key", "api_key": format!("key-{i}")}}),
            )
        })
        .collect();
    discover(provider.as_ref(), &records.iter().collect::<Vec<_>>()).await;
    for record in &records {
        provider
            .import(record, &provider.map(record).unwrap(), None)
            .await
            .unwrap();
    }
    assert_eq!(sandbox.tray.auth_count(), 3);
    assert_eq!(
        sandbox.tray.minted_token_count(),
        3,
        "one token per use: re-minted after each expiry"
    );
    // Expire everything at once, too.
    sandbox.tray.expire_user_tokens();
    let extra = greenhouse("globex-7", "key-x");
    provider
        .import(&extra, &provider.map(&extra).unwrap(), None)
        .await
        .unwrap();
    assert_eq!(sandbox.tray.auth_count(), 4);
}

fn solution_config(external_id: &str) -> Value {
    json!({"solution": {"solution_id": authport_sandbox::tray::stable_uuid("solution:acme-slack-sync"),
        "auth_external_id": external_id, "services": ["slack"], "enable_delay_ms": 0}})
}

#[tokio::test]
async fn solution_instance_is_created_enabled_and_removed() {
    let sandbox = sandbox(TrayOptions::default()).await;
    let provider = provider(
        &sandbox,
        solution_config("external_slack_authentication"),
        memo(),
    );
    let record = slack("acme-42", "xoxb-1");
    discover(provider.as_ref(), &[&record]).await;
    let outcome = provider
        .import(&record, &provider.map(&record).unwrap(), None)
        .await
        .unwrap();
    let instance_id = outcome
        .target
        .get_str("solution_instance_id")
        .expect("instance id")
        .to_owned();
    let instances = sandbox.tray.instances();
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].id, instance_id);
    assert!(instances[0].enabled);
    assert_eq!(
        instances[0].auth_values,
        [(
            "external_slack_authentication".to_owned(),
            outcome
                .target
                .get_str("authentication_id")
                .unwrap()
                .to_owned()
        )]
    );
    let report = provider.verify(&outcome.target).await.unwrap();
    assert!(report.healthy, "{report:?}");
    // A pre-existing auth of the same user stays.
    let other = greenhouse("acme-42", "k");
    discover(provider.as_ref(), &[&other]).await;
    let kept = provider
        .import(&other, &provider.map(&other).unwrap(), None)
        .await
        .unwrap();
    assert_eq!(
        provider.remove(&outcome.target).await.unwrap(),
        Removal::Removed
    );
    assert!(sandbox.tray.instances().is_empty());
    assert_eq!(sandbox.tray.auth_count(), 1);
    assert!(
        sandbox
            .tray
            .auth(kept.target.get_str("authentication_id").unwrap())
            .is_some()
    );
    assert_eq!(
        provider.remove(&outcome.target).await.unwrap(),
        Removal::AlreadyGone
    );
    let report = provider.verify(&outcome.target).await.unwrap();
    assert_eq!((report.healthy, report.status.as_str()), (false, "missing"));
}

fn slack_of(owner: &str, n: u32) -> CredentialRecord {
    record(
        json!({"id": format!("{owner}/slack-{n}"), "owner": {"id": owner}, "service": "slack",
        "auth": {"type": "oauth2", "access_token": format!("{CANARY}-{n}")},
        "targets": {"tray": {"service_environment": "acme slack oauth"}}}),
    )
}

/// Issue 8 item 16: `Solution.authSlots` is not documented, so discovery no longer asks for
/// it; a wrong-case slot id is found by `createSolutionInstance` failing, reported in full on
/// the first record that reaches the step and by reference on the others, and the auths stay
/// imported.
#[tokio::test]
async fn a_refused_auth_slot_is_reported_once_and_never_undoes_the_auths() {
    let sandbox = sandbox(TrayOptions::default()).await;
    let provider = provider(
        &sandbox,
        solution_config("External_Slack_Authentication"),
        memo(),
    );
    let records: Vec<CredentialRecord> = (0..3).map(|n| slack_of("acme-42", n)).collect();
    discover(provider.as_ref(), &records.iter().collect::<Vec<_>>()).await;
    assert_eq!(
        sandbox.tray.call_count("graphql viewer"),
        0,
        "discovery reads no solution (its auth slots are not documented)"
    );
    let mut notes = Vec::new();
    for record in &records {
        let outcome = provider
            .import(record, &provider.map(record).unwrap(), None)
            .await
            .unwrap();
        assert_eq!(outcome.disposition, Disposition::Created);
        assert_eq!(outcome.target.get_str("solution_instance_id"), None);
        notes.push(outcome.note.unwrap_or_default());
    }
    assert_eq!(sandbox.tray.auth_count(), 3, "every auth stays imported");
    assert!(sandbox.tray.instances().is_empty());
    assert!(
        notes[0].contains("External_Slack_Authentication") && notes[0].contains("case-sensitive"),
        "{}",
        notes[0]
    );
    for note in &notes[1..] {
        assert!(note.contains("record `acme-42/slack-0`"), "{note}");
        assert!(!note.contains("case-sensitive"), "{note}");
    }
    assert_eq!(
        sandbox.tray.call_count("graphql createSolutionInstance"),
        1,
        "asked once, not once per record"
    );
    for note in &notes {
        assert!(!note.contains(CANARY), "{note}");
    }
}

/// A corrected `[tray.solution]` changes the mapped target, so the engine sees the record as
/// changed and the next run's update does the step the refused run could not.
#[tokio::test]
async fn a_corrected_solution_config_finishes_the_step_on_update() {
    let sandbox = sandbox(TrayOptions::default()).await;
    let record = slack_of("acme-42", 0);
    let wrong = provider(
        &sandbox,
        solution_config("External_Slack_Authentication"),
        memo(),
    );
    discover(wrong.as_ref(), &[&record]).await;
    let wrong_mapped = wrong.map(&record).unwrap();
    let first = wrong.import(&record, &wrong_mapped, None).await.unwrap();
    let right = provider(
        &sandbox,
        solution_config("external_slack_authentication"),
        memo(),
    );
    discover(right.as_ref(), &[&record]).await;
    let right_mapped = right.map(&record).unwrap();
    assert_ne!(
        right_mapped.target, wrong_mapped.target,
        "the slot is part of the target, so the fingerprint changes"
    );
    let second = right
        .import(
            &record,
            &right_mapped,
            Some(&PriorImport {
                target: first.target.clone(),
            }),
        )
        .await
        .unwrap();
    assert_eq!(second.disposition, Disposition::Updated);
    assert!(second.target.get_str("solution_instance_id").is_some());
    assert_eq!(sandbox.tray.instances().len(), 1);
    assert!(sandbox.tray.instances()[0].enabled);
    assert_eq!(sandbox.tray.auth_count(), 1);
}

#[tokio::test]
async fn bad_master_token_is_fatal() {
    let sandbox = sandbox(TrayOptions::default()).await;
    let mut env = EnvSnapshot::from_pairs(sandbox.provider_env());
    env.set("TRAY_MASTER_TOKEN", CANARY);
    let context = BuildContext {
        config: Value::Null,
        env,
        memo: memo(),
        gate: std::sync::Arc::new(authport_core::Ungated),
        request_timeout: Duration::from_secs(5),
    };
    let provider = authport_tray::build(&context).unwrap();
    let error = provider
        .discover(&[DiscoveryKey {
            service: "slack".into(),
            target: None,
        }])
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "fatal");
    assert!(!format!("{error} {error:?} {provider:?}").contains(CANARY));
}

#[tokio::test]
async fn reconcile_is_read_only_for_an_unknown_owner() {
    let sandbox = sandbox(TrayOptions::default()).await;
    // User creation is allowed (the default): reconcile must still not create anyone.
    let memo = memo();
    let provider = provider(&sandbox, Value::Null, memo.clone());
    let record = greenhouse("ghost-9", CANARY);
    discover(provider.as_ref(), &[&record]).await;
    let mapped = provider.map(&record).unwrap();
    let found = provider.reconcile(&record, &mapped).await.unwrap();
    assert!(found.is_none());
    assert!(sandbox.tray.users().is_empty(), "reconcile created a user");
    assert_eq!(sandbox.tray.call_count("graphql createExternalUser"), 0);
    assert_eq!(sandbox.tray.call_count("graphql authorize"), 0);
    assert_eq!(sandbox.tray.auth_count(), 0);
    assert_eq!(memo.get("tray.user_id", "ghost-9"), None);
    // The look-up did not poison the run: the import that follows creates the user once.
    let outcome = provider.import(&record, &mapped, None).await.unwrap();
    assert_eq!(outcome.disposition, Disposition::Created);
    assert_eq!(sandbox.tray.users().len(), 1);
    assert_eq!(sandbox.tray.auth_count(), 1);
    // Now that the user exists, reconcile finds the auth by name.
    let adopted = provider.reconcile(&record, &mapped).await.unwrap().unwrap();
    assert_eq!(
        adopted.target.get_str("authentication_id"),
        outcome.target.get_str("authentication_id")
    );
    assert_eq!(sandbox.tray.users().len(), 1);
}

#[tokio::test]
async fn reconcile_finds_an_existing_user_without_creating_one() {
    let sandbox = sandbox(TrayOptions::default()).await;
    let user = sandbox.tray.insert_user("Globex", "globex-7");
    let provider = provider(&sandbox, Value::Null, memo());
    let record = greenhouse("globex-7", CANARY);
    discover(provider.as_ref(), &[&record]).await;
    let mapped = provider.map(&record).unwrap();
    assert!(
        provider
            .reconcile(&record, &mapped)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(sandbox.tray.users(), [user]);
    assert_eq!(sandbox.tray.call_count("graphql createExternalUser"), 0);
    assert_eq!(sandbox.tray.auth_count(), 0);
}

fn assert_rate_limited(error: &ProviderError) {
    assert!(
        matches!(
            error,
            ProviderError::RateLimited {
                retry_after: None,
                ..
            }
        ),
        "{error}"
    );
}

#[tokio::test]
async fn rest_and_graphql_rate_limits_are_classified() {
    let sandbox = sandbox(TrayOptions::default()).await;
    let provider = provider(&sandbox, Value::Null, memo());
    let first = greenhouse("globex-7", "k");
    let same_owner = record(
        json!({"id": "globex-7/greenhouse-2", "owner": {"id": "globex-7"}, "service": "greenhouse",
        "auth": {"type": "api_key", "api_key": "k2"}}),
    );
    let new_owner = greenhouse("acme-42", "k3");
    discover(provider.as_ref(), &[&first, &same_owner, &new_owner]).await;
    let imported = provider
        .import(&first, &provider.map(&first).unwrap(), None)
        .await
        .unwrap();
    // An empty bucket that never refills: every request from now on is refused.
    sandbox
        .tray
        .set_rate_limit(Some(authport_sandbox::tray::RateLimit {
            per_second: 0.0,
            burst: 0,
        }));

    // REST 429 on the create (the owner's user and token are cached, so the POST is the first
    // call): rate limited, not outcome-unknown, because a 429 was not applied.
    let posts = sandbox.tray.call_count("POST /core/v1/authentications");
    let error = provider
        .import(&same_owner, &provider.map(&same_owner).unwrap(), None)
        .await
        .unwrap_err();
    assert_rate_limited(&error);
    assert_eq!(
        sandbox.tray.call_count("POST /core/v1/authentications"),
        posts + 1
    );
    // REST 429 on a master-token read.
    assert_rate_limited(&provider.verify(&imported.target).await.unwrap_err());
    assert_eq!(
        sandbox.tray.call_count("GET /core/v1/authentications/{id}"),
        1
    );
    // GraphQL: HTTP 200 with the documented `errors` entry, on the user look-up of a new owner.
    let lookups = sandbox.tray.call_count("graphql users");
    let error = provider
        .import(&new_owner, &provider.map(&new_owner).unwrap(), None)
        .await
        .unwrap_err();
    assert_rate_limited(&error);
    assert_eq!(sandbox.tray.call_count("graphql users"), lookups + 1);
    // GraphQL with a user token (`viewer.authentications` in reconcile).
    assert_rate_limited(
        &provider
            .reconcile(&same_owner, &provider.map(&same_owner).unwrap())
            .await
            .unwrap_err(),
    );
    assert_eq!(sandbox.tray.call_count("graphql viewer"), 1);
    assert_eq!(sandbox.tray.rate_limited_count(), 4);
    assert_eq!(sandbox.tray.auth_count(), 1);
    assert_eq!(sandbox.tray.users().len(), 1);

    // Switched off again, the refused records go through (nothing was applied before).
    sandbox.tray.set_rate_limit(None);
    for record in [&same_owner, &new_owner] {
        provider
            .import(record, &provider.map(record).unwrap(), None)
            .await
            .unwrap();
    }
    assert_eq!(sandbox.tray.auth_count(), 3);
    assert_eq!(sandbox.tray.rate_limited_count(), 4);
}

#[test]
fn http_is_refused_for_remote_hosts() {
    let context = BuildContext {
        config: Value::Null,
        env: EnvSnapshot::from_pairs([
            ("TRAY_MASTER_TOKEN", CANARY),
            ("TRAY_API_URL", "http://api.tray.io"),
        ]),
        memo: memo(),
        gate: std::sync::Arc::new(authport_core::Ungated),
        request_timeout: Duration::from_secs(5),
    };
    let error = authport_tray::build(&context).unwrap_err();
    assert!(
        error.message.contains("must use https"),
        "{}",
        error.message
    );
    assert!(!error.message.contains(CANARY));
}

/// Issue 8 item 1: a run without the state of the first one (no `prior`, an empty memo) finds
/// each record's auth by its unique name, one listing per owner, and updates it in place.
#[tokio::test]
async fn a_run_without_state_adopts_each_records_auth_instead_of_creating_it_again() {
    let sandbox = sandbox(TrayOptions::default()).await;
    let records = [
        greenhouse("globex-7", CANARY),
        record(
            json!({"id": "globex-7/greenhouse-2", "owner": {"id": "globex-7"}, "service": "greenhouse",
            "auth": {"type": "api_key", "api_key": "k2"}}),
        ),
        greenhouse("acme-42", "k3"),
    ];
    let all: Vec<&CredentialRecord> = records.iter().collect();
    let first = provider(&sandbox, Value::Null, memo());
    discover(first.as_ref(), &all).await;
    let mut created = Vec::new();
    for record in &records {
        let outcome = first
            .import(record, &first.map(record).unwrap(), None)
            .await
            .unwrap();
        created.push(
            outcome
                .target
                .get_str("authentication_id")
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(
        sandbox.tray.call_count("graphql viewer"),
        0,
        "owners created by the run own nothing yet: no listing"
    );

    let rerun = provider(&sandbox, Value::Null, memo());
    discover(rerun.as_ref(), &all).await;
    let posts = sandbox.tray.call_count("POST /core/v1/authentications");
    for (record, auth_id) in records.iter().zip(&created) {
        let outcome = rerun
            .import(record, &rerun.map(record).unwrap(), None)
            .await
            .unwrap();
        assert_eq!(outcome.disposition, Disposition::Created);
        assert_eq!(
            outcome.target.get_str("authentication_id"),
            Some(auth_id.as_str())
        );
        assert!(
            outcome
                .note
                .as_deref()
                .unwrap_or("")
                .contains("found at tray"),
            "{:?}",
            outcome.note
        );
    }
    assert_eq!(sandbox.tray.auth_count(), 3, "nothing created twice");
    assert_eq!(
        sandbox.tray.call_count("POST /core/v1/authentications"),
        posts
    );
    assert_eq!(
        sandbox.tray.call_count("graphql viewer"),
        2,
        "one listing per owner, cached for the run"
    );
    assert_eq!(
        sandbox.tray.call_count("PUT /core/v1/authentications/{id}"),
        3,
        "each adopted auth is brought up to date"
    );
}

#[tokio::test]
async fn the_look_up_before_create_can_be_turned_off() {
    let sandbox = sandbox(TrayOptions::default()).await;
    let record = greenhouse("globex-7", CANARY);
    let first = provider(&sandbox, Value::Null, memo());
    discover(first.as_ref(), &[&record]).await;
    first
        .import(&record, &first.map(&record).unwrap(), None)
        .await
        .unwrap();
    let trusting = provider(&sandbox, json!({"lookup_before_create": false}), memo());
    discover(trusting.as_ref(), &[&record]).await;
    trusting
        .import(&record, &trusting.map(&record).unwrap(), None)
        .await
        .unwrap();
    assert_eq!(sandbox.tray.call_count("graphql viewer"), 0);
    assert_eq!(
        sandbox.tray.auth_count(),
        2,
        "without the look-up, the state is the only guard"
    );
}

/// Issue 8 item 11: base URLs with credentials, a query or a fragment are refused, and the
/// message names the setting, never the URL.
#[test]
fn tray_urls_with_credentials_or_a_query_are_refused_without_quoting_them() {
    for (setting, url) in [
        ("TRAY_API_URL", "https://user:hunter2pw@api.tray.io"),
        ("TRAY_API_URL", "https://hunter2pw@api.tray.io"),
        ("TRAY_API_URL", "https://api.tray.io/?token=hunter2pw"),
        ("TRAY_GRAPHQL_URL", "https://tray.io/graphql?key=hunter2pw"),
        ("TRAY_GRAPHQL_URL", "https://tray.io/graphql#hunter2pw"),
        ("TRAY_REGION", "hunter2pw"),
    ] {
        let context = BuildContext {
            config: Value::Null,
            env: EnvSnapshot::from_pairs([("TRAY_MASTER_TOKEN", CANARY), (setting, url)]),
            memo: memo(),
            gate: std::sync::Arc::new(authport_core::Ungated),
            request_timeout: Duration::from_secs(5),
        };
        let error = authport_tray::build(&context).unwrap_err();
        assert!(error.message.contains(setting), "{url}: {}", error.message);
        assert!(
            !error.message.contains("hunter2pw") && !error.message.contains(CANARY),
            "{url}: {}",
            error.message
        );
    }
}
