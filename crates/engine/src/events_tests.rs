use super::*;

fn delivery(key: &str, connection: &str, event_type: &str) -> Delivery {
    Delivery {
        provider: "apideck".to_owned(),
        idempotency_key: key.to_owned(),
        connection_key: connection.to_owned(),
        event_type: event_type.to_owned(),
        occurred_at: Some("2026-11-25T10:00:00Z".to_owned()),
        state: Some("callable".to_owned()),
        health: None,
        last_refresh_failed_at: None,
        connection_id: Some("crm+hubspot".to_owned()),
    }
}

fn owned(key: &str, record: &str) -> OwnedConnection {
    OwnedConnection {
        connection_key: key.to_owned(),
        record_id: record.to_owned(),
    }
}

#[test]
fn owned_events_are_stored_once_and_unknown_ones_only_counted() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    let store = EventStore::open(&state).unwrap();
    assert_eq!(store.own("apideck", &[owned("k1", "r1")]).unwrap(), 1);
    assert_eq!(store.own("apideck", &[owned("k1", "r1")]).unwrap(), 0);

    let created = delivery("d1", "k1", "vault.connection.created");
    assert_eq!(store.record(&created).unwrap(), Recorded::Stored);
    assert_eq!(store.record(&created).unwrap(), Recorded::Duplicate);
    let mut failed = delivery("d2", "k1", "vault.connection.token_refresh.failed");
    failed.state = None;
    failed.health = Some("needs_auth".to_owned());
    failed.last_refresh_failed_at = Some("2026-11-25T11:00:00Z".to_owned());
    assert_eq!(store.record(&failed).unwrap(), Recorded::Stored);
    let stranger = delivery("d3", "k9", "vault.connection.created");
    assert_eq!(store.record(&stranger).unwrap(), Recorded::Unknown);
    assert_eq!(store.record(&stranger).unwrap(), Recorded::Duplicate);

    let latest = store.latest("apideck", "r1").unwrap().unwrap();
    assert_eq!(latest.event_type, "vault.connection.token_refresh.failed");
    assert_eq!(
        latest.state.as_deref(),
        Some("callable"),
        "kept from the earlier event"
    );
    assert_eq!(latest.health.as_deref(), Some("needs_auth"));
    assert_eq!(
        latest.last_refresh_failed_at.as_deref(),
        Some("2026-11-25T11:00:00Z")
    );
    assert_eq!(latest.events, 2);
    let history = store.connection_events("apideck", "r1").unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].idempotency_key, "d1");
    assert_eq!(store.unknown_count("apideck").unwrap(), 1);
    assert_eq!(store.stored_count("apideck").unwrap(), 2);
    assert!(store.latest("apideck", "r9").unwrap().is_none());
    assert_eq!(store.latest_all("apideck").unwrap().len(), 1);
}

#[test]
fn a_second_handle_reads_what_the_first_wrote_and_the_file_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    let writer = EventStore::open(&state).unwrap();
    let reader = EventStore::open(&state).unwrap();
    writer.own("apideck", &[owned("k1", "r1")]).unwrap();
    writer
        .record(&delivery("d1", "k1", "vault.connection.updated"))
        .unwrap();
    assert_eq!(reader.latest_all("apideck").unwrap().len(), 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(events_path(&state))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[cfg(unix)]
#[test]
fn the_event_store_is_never_opened_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    let elsewhere = dir.path().join("elsewhere");
    std::os::unix::fs::symlink(&elsewhere, events_path(&state)).unwrap();
    let error = EventStore::open(&state).unwrap_err();
    assert!(error.downcast_ref::<Refusal>().is_some(), "{error:#}");
    assert!(!elsewhere.exists());
}

#[tokio::test]
async fn the_receiver_learns_owned_connections_from_the_journal_while_a_run_writes_it_and_after() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let key_of = |target: &TargetRef| target.get_str("consumer_id").map(str::to_owned);
    {
        let state = StateStore::open(&path).unwrap();
        let target = TargetRef(
            serde_json::json!({"consumer_id": "c1"})
                .as_object()
                .cloned()
                .unwrap(),
        );
        state
            .commit_outcome("apideck", "r1", "fp", &target, true)
            .await
            .unwrap();
        // While the run holds the journal, a read-only open sees what it committed...
        assert_eq!(
            owned_in_journal(&path, "apideck", key_of).unwrap(),
            vec![owned("c1", "r1")]
        );
        // ...and the run publishes what it wrote, once a receiver made the event store.
        assert_eq!(publish_owned(&state, "apideck", key_of).unwrap(), 0);
        assert!(
            !events_path(&path).exists(),
            "no event store without a receiver"
        );
        EventStore::open(&path).unwrap();
        assert_eq!(publish_owned(&state, "apideck", key_of).unwrap(), 1);
    }
    assert_eq!(
        owned_in_journal(&path, "apideck", key_of).unwrap(),
        vec![owned("c1", "r1")]
    );
    assert!(
        EventStore::open(&path)
            .unwrap()
            .owns("apideck", "c1")
            .unwrap()
    );
}

#[test]
fn an_event_store_bound_to_one_target_refuses_another() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(&dir.path().join("state.db")).unwrap();
    let identity = |account: &str| TargetIdentity {
        endpoints: vec!["https://unify.apideck.com".to_owned()],
        account: Some(account.to_owned()),
        credential: authport_core::SecretString::from("canary-key".to_owned()),
    };
    store.bind("apideck", &identity("app-1"), false).unwrap();
    store.bind("apideck", &identity("app-1"), false).unwrap();
    let error = store
        .bind("apideck", &identity("app-2"), false)
        .unwrap_err();
    assert!(error.to_string().contains("account"), "{error}");
    assert!(!error.to_string().contains("canary-key"));
    store.bind("apideck", &identity("app-2"), true).unwrap();
}
