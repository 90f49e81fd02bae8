//! Issue 8 item 1: the look-up before a create, so a run without the first run's state does not
//! create every auth a second time, and its opt-out.

use crate::common;

use std::sync::LazyLock;

use authport_testkit::canary;
use common::*;

use authport_core::{CredentialRecord, Disposition};
use authport_sandbox::tray::TrayOptions;
use authport_testkit::record;
use serde_json::{Value, json};

/// A record secret (every canary contains `authport_testkit::CANARY`).
static SECRET: LazyLock<String> = LazyLock::new(|| canary("record"));

/// Issue 8 item 1: a run without the state of the first one (no `prior`, an empty memo) finds
/// each record's auth by its unique name, one listing per owner, and updates it in place.
#[tokio::test]
async fn a_run_without_state_adopts_each_records_auth_instead_of_creating_it_again() {
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    let records = [
        greenhouse("globex-7", SECRET.as_str()),
        record(
            &json!({"id": "globex-7/greenhouse-2", "owner": {"id": "globex-7"}, "service": "greenhouse",
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
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    let record = greenhouse("globex-7", SECRET.as_str());
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
