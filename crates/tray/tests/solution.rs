//! The solution step against the sandbox: one instance per owner once every slot is filled,
//! enabled when the run finishes its deferred work, rollback, a refused auth slot (found the
//! documented way, by `createSolutionInstance` failing), and a lost create answer.

use crate::common;

use std::sync::LazyLock;

use authport_testkit::{CANARY, canary};
use common::*;

use authport_core::{CredentialRecord, Disposition, PriorImport, Removal};
use authport_sandbox::tray::TrayOptions;
use authport_testkit::record;
use serde_json::{Value, json};

/// A record secret; every canary contains [`CANARY`], which the leak checks look for.
static SECRET: LazyLock<String> = LazyLock::new(|| canary("record"));

fn solution_config(external_id: &str) -> Value {
    json!({"solution": {"solution_id": authport_sandbox::tray::stable_uuid("solution:acme-slack-sync"),
        "slots": {external_id: "slack"}, "enable_delay_ms": 0}})
}

#[tokio::test]
async fn solution_instance_is_created_enabled_and_removed() {
    let sandbox = tray_sandbox(TrayOptions::default()).await;
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
    provider.finish().await.unwrap();
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
    assert!(report.healthy(), "{report:?}");
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
    assert_eq!(
        (report.healthy(), report.status.as_str()),
        (false, "missing")
    );
}

fn slack_of(owner: &str, n: u32) -> CredentialRecord {
    record(
        &json!({"id": format!("{owner}/slack-{n}"), "owner": {"id": owner}, "service": "slack",
        "auth": {"type": "oauth2", "access_token": format!("{}-{n}", *SECRET)},
        "targets": {"tray": {"service_environment": "acme slack oauth"}}}),
    )
}

/// Issue 8 item 16: `Solution.authSlots` is not documented, so discovery no longer asks for
/// it; a wrong-case slot id is found by `createSolutionInstance` failing, reported in full on
/// the first record that reaches the step and by reference on the others, and the auths stay
/// imported.
#[tokio::test]
async fn a_refused_auth_slot_is_reported_once_and_never_undoes_the_auths() {
    let sandbox = tray_sandbox(TrayOptions::default()).await;
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
    let sandbox = tray_sandbox(TrayOptions::default()).await;
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
    right.finish().await.unwrap();
    assert_eq!(sandbox.tray.instances().len(), 1);
    assert!(sandbox.tray.instances()[0].enabled);
    assert_eq!(sandbox.tray.auth_count(), 1);
}
