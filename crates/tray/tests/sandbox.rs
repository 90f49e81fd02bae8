//! The Tray provider against the Tray sandbox over loopback HTTP, driven through
//! `dyn AuthImporter` exactly as the engine drives it: users, tokens, create, update,
//! reconcile, rate limits. The guarantees every provider keeps are in `conformance.rs`.

use crate::common;

use std::sync::LazyLock;

use authport_testkit::{CANARY, canary};
use common::*;

use authport_core::{
    CredentialRecord, DiscoveryKey, Disposition, PriorImport, ProviderError, Removal,
};
use authport_sandbox::faults::{FaultKind, FaultPlan, FaultRule, Trigger};
use authport_sandbox::tray::TrayOptions;
use authport_testkit::record;
use serde_json::{Value, json};

/// A record secret; every canary contains [`CANARY`], which the leak checks look for.
static SECRET: LazyLock<String> = LazyLock::new(|| canary("record"));

#[tokio::test]
async fn good_records_import_exactly_once_with_user_tokens() {
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    let provider = provider(&sandbox, Value::Null, memo());
    let a = greenhouse("globex-7", SECRET.as_str());
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
    assert_eq!(
        stored[0].credentials.get("api_key"),
        Some(&json!(SECRET.as_str()))
    );
    let slack_auth = &sandbox.tray.auths_of_external_user("acme-42")[0];
    assert_eq!(slack_auth.scopes, ["chat:write", "channels:read"]);
    assert_eq!(slack_auth.credentials.get("expires_in"), Some(&json!(3600)));
}

#[tokio::test]
async fn users_are_found_by_external_id_and_remembered_in_the_memo() {
    let sandbox = tray_sandbox(TrayOptions::default()).await;
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
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    let provider = provider(&sandbox, json!({"create_users": false}), memo());
    let record = greenhouse("nobody-1", "key-1");
    discover(provider.as_ref(), &[&record]).await;
    let mapped = provider.map(&record).unwrap();
    let error = provider.import(&record, &mapped, None).await.unwrap_err();
    assert_eq!(error.kind().as_str(), "rejected");
    assert!(
        error.message().contains("nobody-1/greenhouse") && error.message().contains("create_users"),
        "{error}"
    );
    assert_eq!(sandbox.tray.auth_count(), 0);
}

#[tokio::test]
async fn bad_records_fail_with_located_reasons() {
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    let provider = provider(&sandbox, Value::Null, memo());
    let cases = [
        // Zendesk's token environment requires userData.subdomain.
        (
            record(
                &json!({"id": "z/1", "owner": {"id": "z"}, "service": "zendesk",
            "auth": {"type": "basic", "username": "ops@z.example", "password": SECRET.as_str()}}),
            ),
            "userData.subdomain",
            "tray service zendesk",
        ),
        // OAuth into Tray's own OAuth app.
        (
            record(
                &json!({"id": "s/1", "owner": {"id": "s"}, "service": "slack",
            "auth": {"type": "oauth2", "access_token": SECRET.as_str()}}),
            ),
            "targets.tray.service_environment",
            "custom OAuth app environment",
        ),
        (
            record(
                &json!({"id": "u/1", "owner": {"id": "u"}, "service": "nosuchservice",
            "auth": {"type": "api_key", "api_key": SECRET.as_str()}}),
            ),
            "service",
            "no connector for service nosuchservice",
        ),
        (
            record(
                &json!({"id": "e/1", "owner": {"id": "e"}, "service": "mailchimp",
            "auth": {"type": "oauth2", "access_token": SECRET.as_str()}, "targets": {"tray": {"service_environment": "missing env"}}}),
            ),
            "targets.tray.service_environment",
            "available: Production, mailchimp acme oauth",
        ),
        (
            record(
                &json!({"id": "t/1", "owner": {"id": "t"}, "service": "greenhouse",
            "auth": {"type": "api_key", "api_key": SECRET.as_str()}, "targets": {"tray": {"enviroment": "x"}}}),
            ),
            "targets.tray.enviroment",
            "unknown field",
        ),
        // NetSuite (Tray's own loose draft-03 example) needs account and role.
        (
            record(
                &json!({"id": "n/1", "owner": {"id": "n"}, "service": "netsuite",
            "auth": {"type": "basic", "username": "a@n.example", "password": SECRET.as_str()}, "settings": {"account": "TSTDRV1"}}),
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
    let sandbox = tray_sandbox(TrayOptions::default()).await;
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
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    let provider = provider(&sandbox, Value::Null, memo());
    let record = greenhouse("globex-7", SECRET.as_str());
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
        assert_eq!(error.kind().as_str(), "outcome_unknown", "{error}");
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
    let sandbox = tray_sandbox(options).await;
    let provider = provider(&sandbox, Value::Null, memo());
    let records: Vec<CredentialRecord> = (0..3)
        .map(|i| {
            record(
                &json!({"id": format!("globex-7/greenhouse-{i}"), "owner": {"id": "globex-7"},
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

#[tokio::test]
async fn bad_master_token_is_fatal() {
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    let provider = sandbox
        .context()
        .var("TRAY_MASTER_TOKEN", &canary("wrong-master-token"))
        .provider("tray");
    let error = provider
        .discover(&[DiscoveryKey {
            service: "slack".into(),
            target: None,
        }])
        .await
        .unwrap_err();
    assert_eq!(error.kind().as_str(), "fatal");
    assert!(!format!("{error} {error:?} {provider:?}").contains(CANARY));
}

#[tokio::test]
async fn reconcile_is_read_only_for_an_unknown_owner() {
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    // User creation is allowed (the default): reconcile must still not create anyone.
    let memo = memo();
    let provider = provider(&sandbox, Value::Null, memo.clone());
    let record = greenhouse("ghost-9", SECRET.as_str());
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
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    let user = sandbox.tray.insert_user("Globex", "globex-7");
    let provider = provider(&sandbox, Value::Null, memo());
    let record = greenhouse("globex-7", SECRET.as_str());
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
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    let provider = provider(&sandbox, Value::Null, memo());
    let first = greenhouse("globex-7", "k");
    let same_owner = record(
        &json!({"id": "globex-7/greenhouse-2", "owner": {"id": "globex-7"}, "service": "greenhouse",
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
