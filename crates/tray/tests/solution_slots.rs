//! Issue 11 at the provider: a two-slot solution (Mailchimp + Slack, a channel config slot),
//! one instance per owner, per-owner progress in the memo (so a "later run" is a new provider
//! on the same memo), and a lost `createSolutionInstance` answer.

use crate::common;

use std::sync::Arc;

use authport_core::{AuthImporter, CredentialRecord, Memo, ProviderError};
use authport_sandbox::faults::{FaultKind, FaultPlan, FaultRule, Trigger};
use authport_sandbox::tray::{StoredInstance, TrayOptions, stable_uuid};
use authport_testkit::{CANARY, canary, record};
use common::*;
use serde_json::{Value, json};

fn two_slots(extra: Value) -> Value {
    let mut solution = json!({
        "solution_id": stable_uuid("solution:acme-mailchimp-to-slack"),
        "slots": {"external_mailchimp_authentication": "mailchimp",
                  "external_slack_authentication": "slack"},
        "config_values": {"external_slack_channel": "#general"},
        "instance_name_template": "{owner} sync ({owner.id})",
        "enable_delay_ms": 0,
    });
    if let (Some(solution), Some(extra)) = (solution.as_object_mut(), extra.as_object()) {
        solution.extend(extra.clone());
    }
    json!({"solution": solution})
}

fn owned(owner: &str, service: &str, config: Option<Value>) -> CredentialRecord {
    let environment = match service {
        "slack" => "acme slack oauth",
        _ => "mailchimp acme oauth",
    };
    let mut tray = json!({"service_environment": environment});
    if let Some(config) = config {
        tray["solution"] = json!({"config": config});
    }
    record(
        &json!({"id": format!("{owner}/{service}"), "owner": {"id": owner, "name": owner.to_uppercase()},
        "service": service, "auth": {"type": "oauth2", "access_token": canary(service)},
        "targets": {"tray": tray}}),
    )
}

async fn import_all(provider: &dyn AuthImporter, records: &[&CredentialRecord]) -> Vec<String> {
    discover(provider, records).await;
    let mut notes = Vec::new();
    for record in records {
        let outcome = provider
            .import(record, &provider.map(record).unwrap(), None)
            .await
            .unwrap();
        notes.push(outcome.note.unwrap_or_default());
    }
    notes
}

fn instance_named(instances: &[StoredInstance], name: &str) -> StoredInstance {
    instances
        .iter()
        .find(|i| i.name == name)
        .unwrap_or_else(|| panic!("no instance {name}: {instances:?}"))
        .clone()
}

#[tokio::test]
async fn owners_get_one_instance_once_every_slot_is_filled() {
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    let memo: Arc<dyn Memo> = memo();
    let provider = provider(&sandbox, two_slots(json!({})), memo.clone());
    let acme_mailchimp = owned("acme", "mailchimp", None);
    let acme_slack = owned(
        "acme",
        "slack",
        Some(json!({"external_slack_channel": "#acme"})),
    );
    let globex_mailchimp = owned("globex", "mailchimp", None);
    // The owner's records apart, another owner's in between.
    let notes = import_all(
        provider.as_ref(),
        &[&acme_mailchimp, &globex_mailchimp, &acme_slack],
    )
    .await;
    assert!(
        notes[0].contains("no solution instance for owner acme")
            && notes[0].contains("slot `external_slack_authentication` (service slack)"),
        "{}",
        notes[0]
    );
    assert!(notes[1].contains("owner globex"), "{}", notes[1]);
    assert!(
        notes[2].contains("created with every slot filled"),
        "{}",
        notes[2]
    );
    let instances = sandbox.tray.instances();
    assert_eq!(instances.len(), 1, "{instances:?}");
    assert!(
        !instances[0].enabled,
        "enabled only after the wait, by finish"
    );
    provider.finish().await.unwrap();

    let acme = instance_named(&sandbox.tray.instances(), "ACME sync (acme)");
    assert!(acme.enabled);
    let auth_of = |owner: &str, service: &str| {
        sandbox
            .tray
            .auths_of_external_user(owner)
            .into_iter()
            .find(|a| a.name.to_lowercase().contains(service))
            .unwrap()
            .id
    };
    assert_eq!(
        acme.auth_values,
        vec![
            (
                "external_mailchimp_authentication".to_owned(),
                auth_of("acme", "mailchimp")
            ),
            (
                "external_slack_authentication".to_owned(),
                auth_of("acme", "slack")
            ),
        ]
    );
    assert_eq!(
        acme.config_values,
        vec![(
            "external_slack_channel".to_owned(),
            Some(json!("\"#acme\""))
        )],
        "the owner's override wins over the default, JSON-encoded"
    );
    for note in &notes {
        assert!(!note.contains(CANARY), "{note}");
    }

    // A later run (same state) imports Globex's Slack record: its instance is completed.
    let later = common::provider(&sandbox, two_slots(json!({})), memo.clone());
    let globex_slack = owned("globex", "slack", None);
    let notes = import_all(later.as_ref(), &[&globex_slack]).await;
    assert!(
        notes[0].contains("created with every slot filled"),
        "{}",
        notes[0]
    );
    later.finish().await.unwrap();
    let globex = instance_named(&sandbox.tray.instances(), "GLOBEX sync (globex)");
    assert!(globex.enabled);
    assert_eq!(globex.auth_values.len(), 2);
    assert_eq!(
        globex.config_values,
        vec![(
            "external_slack_channel".to_owned(),
            Some(json!("\"#general\""))
        )]
    );

    // Re-running everything (updates) creates no second instance.
    let again = common::provider(&sandbox, two_slots(json!({})), memo);
    import_all(
        again.as_ref(),
        &[
            &acme_mailchimp,
            &acme_slack,
            &globex_mailchimp,
            &globex_slack,
        ],
    )
    .await;
    again.finish().await.unwrap();
    assert_eq!(sandbox.tray.instances().len(), 2);
    assert_eq!(sandbox.tray.call_count("graphql createSolutionInstance"), 2);
}

#[tokio::test]
async fn with_the_flag_an_incomplete_owner_gets_a_disabled_instance_completed_later() {
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    let memo = memo();
    let config = two_slots(json!({"create_incomplete_disabled": true}));
    let provider = provider(&sandbox, config.clone(), memo.clone());
    let notes = import_all(provider.as_ref(), &[&owned("acme", "slack", None)]).await;
    assert!(
        notes[0].contains(
            "created disabled: missing slot `external_mailchimp_authentication` (service mailchimp)"
        ),
        "{}",
        notes[0]
    );
    provider.finish().await.unwrap();
    let instances = sandbox.tray.instances();
    assert_eq!(instances.len(), 1);
    assert!(!instances[0].enabled, "never enabled with an empty slot");
    assert_eq!(instances[0].auth_values.len(), 1);

    let later = common::provider(&sandbox, config, memo);
    import_all(later.as_ref(), &[&owned("acme", "mailchimp", None)]).await;
    later.finish().await.unwrap();
    let instances = sandbox.tray.instances();
    assert_eq!(instances.len(), 1, "completed, not created again");
    assert!(instances[0].enabled);
    assert_eq!(instances[0].auth_values.len(), 2);
}

/// The create is applied but its answer is lost: the engine reconciles, which finds the
/// instance by name; finish enables it. One instance.
#[tokio::test]
async fn a_lost_create_answer_is_found_by_name_not_created_twice() {
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    sandbox.faults.set(FaultPlan {
        seed: 1,
        rules: vec![
            FaultRule::new(
                Some("POST"),
                "/graphql",
                FaultKind::DropAfterApply,
                Trigger::Nth(vec![1]),
            )
            .body_contains("createSolutionInstance"),
        ],
        latency: None,
    });
    let provider = provider(&sandbox, two_slots(json!({})), memo());
    let mailchimp = owned("acme", "mailchimp", None);
    let slack = owned("acme", "slack", None);
    discover(provider.as_ref(), &[&mailchimp, &slack]).await;
    provider
        .import(&mailchimp, &provider.map(&mailchimp).unwrap(), None)
        .await
        .unwrap();
    let mapped = provider.map(&slack).unwrap();
    let error = provider.import(&slack, &mapped, None).await.unwrap_err();
    assert!(
        matches!(error, ProviderError::OutcomeUnknown { .. }),
        "{error:?}"
    );
    assert_eq!(sandbox.faults.injected().drop_after, 1);
    let adopted = provider
        .reconcile(&slack, &mapped)
        .await
        .unwrap()
        .expect("the auth is adopted");
    let instances = sandbox.tray.instances();
    assert_eq!(instances.len(), 1);
    assert_eq!(
        adopted.target.get_str("solution_instance_id"),
        Some(instances[0].id.as_str())
    );
    provider.finish().await.unwrap();
    assert!(sandbox.tray.instances()[0].enabled);
    assert_eq!(sandbox.tray.call_count("graphql createSolutionInstance"), 1);
}

/// Rollback removes the owner's instance before the first of its auths, whichever record
/// the engine removes first.
#[tokio::test]
async fn rollback_removes_the_instance_before_the_auths() {
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    let provider = provider(&sandbox, two_slots(json!({})), memo());
    let mailchimp = owned("acme", "mailchimp", None);
    let slack = owned("acme", "slack", None);
    discover(provider.as_ref(), &[&mailchimp, &slack]).await;
    let first = provider
        .import(&mailchimp, &provider.map(&mailchimp).unwrap(), None)
        .await
        .unwrap();
    provider
        .import(&slack, &provider.map(&slack).unwrap(), None)
        .await
        .unwrap();
    provider.finish().await.unwrap();
    assert_eq!(sandbox.tray.instances().len(), 1);
    // The Mailchimp record was imported before the instance existed; its removal still
    // removes the instance first.
    assert_eq!(first.target.get_str("solution_instance_id"), None);
    provider.remove(&first.target).await.unwrap();
    assert!(sandbox.tray.instances().is_empty());
    assert_eq!(sandbox.tray.auth_count(), 1);
}

/// After a rollback the owner's slots are empty again: importing again makes a new instance
/// of the new auths, never one holding a deleted auth.
#[tokio::test]
async fn a_rolled_back_owner_imported_again_gets_a_fresh_complete_instance() {
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    let memo = memo();
    let provider = provider(&sandbox, two_slots(json!({})), memo.clone());
    let mailchimp = owned("acme", "mailchimp", None);
    let slack = owned("acme", "slack", None);
    discover(provider.as_ref(), &[&mailchimp, &slack]).await;
    let mut targets = Vec::new();
    for record in [&mailchimp, &slack] {
        let outcome = provider
            .import(record, &provider.map(record).unwrap(), None)
            .await
            .unwrap();
        targets.push(outcome.target);
    }
    provider.finish().await.unwrap();
    for target in targets.iter().rev() {
        provider.remove(target).await.unwrap();
    }
    assert!(sandbox.tray.instances().is_empty());
    assert_eq!(sandbox.tray.auth_count(), 0);

    let again = common::provider(&sandbox, two_slots(json!({})), memo);
    let notes = import_all(again.as_ref(), &[&slack]).await;
    assert!(
        notes[0].contains("missing slot `external_mailchimp_authentication`"),
        "the deleted Mailchimp auth no longer fills its slot: {}",
        notes[0]
    );
    import_all(again.as_ref(), &[&mailchimp]).await;
    again.finish().await.unwrap();
    let instances = sandbox.tray.instances();
    assert_eq!(instances.len(), 1);
    assert!(instances[0].enabled);
    for (_, auth_id) in &instances[0].auth_values {
        assert!(
            sandbox.tray.auth(auth_id).is_some(),
            "a live auth in every slot"
        );
    }
}

/// An owner's new config value (or an auth created again) reaches the existing instance.
#[tokio::test]
async fn a_changed_owner_config_updates_the_existing_instance() {
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    let provider = provider(&sandbox, two_slots(json!({})), memo());
    let mailchimp = owned("acme", "mailchimp", None);
    let slack = owned(
        "acme",
        "slack",
        Some(json!({"external_slack_channel": "#a"})),
    );
    discover(provider.as_ref(), &[&mailchimp, &slack]).await;
    provider
        .import(&mailchimp, &provider.map(&mailchimp).unwrap(), None)
        .await
        .unwrap();
    let first = provider
        .import(&slack, &provider.map(&slack).unwrap(), None)
        .await
        .unwrap();
    provider.finish().await.unwrap();
    let moved = owned(
        "acme",
        "slack",
        Some(json!({"external_slack_channel": "#b"})),
    );
    let mapped = provider.map(&moved).unwrap();
    let prior = authport_core::PriorImport {
        target: first.target.clone(),
    };
    provider
        .import(&moved, &mapped, Some(&prior))
        .await
        .unwrap();
    let instances = sandbox.tray.instances();
    assert_eq!(instances.len(), 1);
    assert!(instances[0].enabled);
    assert_eq!(
        instances[0].config_values,
        vec![("external_slack_channel".to_owned(), Some(json!("\"#b\"")))]
    );
}

/// An enable that fails in the background is tried once more when the run finishes; if that
/// fails too, the run's finish fails naming the instance, the instance stays disabled and
/// queued, and the next run's finish enables it (even with nothing to import).
#[tokio::test]
async fn a_failed_enable_fails_the_run_and_the_next_run_enables_it() {
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    sandbox.faults.set(FaultPlan {
        seed: 1,
        rules: vec![
            FaultRule::new(
                Some("POST"),
                "/graphql",
                FaultKind::ErrorBeforeApply,
                Trigger::Nth(vec![1, 2]),
            )
            .body_contains("enabled: true"),
        ],
        latency: None,
    });
    let memo = memo();
    let provider = provider(&sandbox, two_slots(json!({})), memo.clone());
    import_all(
        provider.as_ref(),
        &[
            &owned("acme", "mailchimp", None),
            &owned("acme", "slack", None),
        ],
    )
    .await;
    let error = provider.finish().await.unwrap_err();
    assert!(
        error
            .message()
            .contains("1 solution instance(s) could not be enabled"),
        "{error}"
    );
    let instance = sandbox.tray.instances()[0].clone();
    assert!(error.message().contains(&instance.id), "{error}");
    assert!(!instance.enabled);
    assert_eq!(sandbox.faults.injected().error_before, 2);

    let next = common::provider(&sandbox, two_slots(json!({})), memo);
    next.finish().await.unwrap();
    assert!(sandbox.tray.instances()[0].enabled);
    assert_eq!(sandbox.tray.instances().len(), 1);
}
