use super::*;
use crate::state::StateStore;
use authport_core::TargetRef;

fn at(text: &str) -> DateTime<Utc> {
    parse_stamp(text).unwrap()
}

/// The receiving clock of these tests: an hour after the deliveries' default date.
fn now() -> DateTime<Utc> {
    at("2026-11-25T11:00:00Z")
}

fn delivery(event_id: &str, connection: &str, event_type: &str) -> Delivery {
    Delivery {
        provider: "apideck".to_owned(),
        event_id: event_id.to_owned(),
        connection_key: connection.to_owned(),
        event_type: event_type.to_owned(),
        occurred_at: at("2026-11-25T10:00:00Z"),
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
    let stored = Recorded::Stored { latest: true };
    assert_eq!(store.record(&created, now()).unwrap(), stored);
    assert_eq!(store.record(&created, now()).unwrap(), Recorded::Duplicate);
    let mut failed = delivery("d2", "k1", "vault.connection.token_refresh.failed");
    failed.occurred_at = at("2026-11-25T10:30:00Z");
    failed.state = None;
    failed.health = Some("needs_auth".to_owned());
    failed.last_refresh_failed_at = Some("2026-11-25T11:00:00Z".to_owned());
    assert_eq!(store.record(&failed, now()).unwrap(), stored);
    let stranger = delivery("d3", "k9", "vault.connection.created");
    assert_eq!(store.record(&stranger, now()).unwrap(), Recorded::Unknown);
    assert_eq!(store.record(&stranger, now()).unwrap(), Recorded::Duplicate);

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
    assert_eq!(history[0].event_id.as_deref(), Some("d1"));
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
        .record(&delivery("d1", "k1", "vault.connection.updated"), now())
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

#[test]
fn an_event_older_than_the_latest_joins_the_history_but_never_becomes_the_latest() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(&dir.path().join("state.db")).unwrap();
    store.own("apideck", &[owned("k1", "r1")]).unwrap();
    let mut failed = delivery("e-failed", "k1", "vault.connection.token_refresh.failed");
    failed.occurred_at = at("2026-11-25T10:00:00Z");
    failed.health = Some("pending_refresh".to_owned());
    let mut recovered = delivery(
        "e-recovered",
        "k1",
        "vault.connection.token_refresh.recovered",
    );
    recovered.occurred_at = at("2026-11-25T10:05:00+00:00");
    recovered.health = Some("ok".to_owned());
    // Apideck retries the failure after the recovery that followed it.
    assert_eq!(
        store.record(&recovered, now()).unwrap(),
        Recorded::Stored { latest: true }
    );
    assert_eq!(
        store.record(&failed, now()).unwrap(),
        Recorded::Stored { latest: false }
    );
    let latest = store.latest("apideck", "r1").unwrap().unwrap();
    assert_eq!(
        latest.event_type,
        "vault.connection.token_refresh.recovered"
    );
    assert_eq!(latest.health.as_deref(), Some("ok"));
    assert_eq!(latest.events, 2);
    let history = store.connection_events("apideck", "r1").unwrap();
    let applied: Vec<(Option<&str>, bool)> = history
        .iter()
        .map(|e| (e.event_id.as_deref(), e.applied))
        .collect();
    assert_eq!(
        applied,
        [(Some("e-recovered"), true), (Some("e-failed"), false)]
    );
    // The same instant written another way is the same instant, so it is not older.
    let mut same_time = delivery("e-same", "k1", "vault.connection.updated");
    same_time.occurred_at = at("2026-11-25T11:05:00+01:00");
    assert_eq!(
        store.record(&same_time, now()).unwrap(),
        Recorded::Stored { latest: true }
    );
}

#[test]
fn a_replay_is_a_duplicate_whatever_else_differs() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(&dir.path().join("state.db")).unwrap();
    store.own("apideck", &[owned("k1", "r1")]).unwrap();
    let first = delivery("e1", "k1", "vault.connection.token_refresh.failed");
    store.record(&first, now()).unwrap();
    let mut replay = first.clone();
    replay.occurred_at = at("2026-11-25T10:59:00Z");
    replay.event_type = "vault.connection.deleted".to_owned();
    assert_eq!(store.record(&replay, now()).unwrap(), Recorded::Duplicate);
    assert_eq!(store.stored_count("apideck").unwrap(), 1);
}

#[test]
fn events_outside_the_window_are_refused_and_their_ids_expire_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(&dir.path().join("state.db")).unwrap();
    store.own("apideck", &[owned("k1", "r1")]).unwrap();
    let mut ancient = delivery("old", "k1", "vault.connection.deleted");
    ancient.occurred_at = now() - EVENT_WINDOW - chrono::TimeDelta::seconds(1);
    let mut ahead = delivery("ahead", "k1", "vault.connection.deleted");
    ahead.occurred_at = now() + CLOCK_SKEW + chrono::TimeDelta::seconds(1);
    assert_eq!(
        store.record(&ancient, now()).unwrap(),
        Recorded::OutsideWindow(OutsideWindow::TooOld)
    );
    assert_eq!(
        store.record(&ahead, now()).unwrap(),
        Recorded::OutsideWindow(OutsideWindow::InTheFuture)
    );
    assert!(store.latest("apideck", "r1").unwrap().is_none());

    // Ids are kept while a replay could still be accepted, and forgotten after.
    let mut six_days = delivery("six-days", "k1", "vault.connection.updated");
    six_days.occurred_at = now() - chrono::TimeDelta::days(6);
    let stranger = delivery("stranger", "k9", "vault.connection.updated");
    store.record(&six_days, now()).unwrap();
    store.record(&stranger, now()).unwrap();
    assert_eq!(store.remembered_deliveries("apideck").unwrap(), 2);
    let later = now() + chrono::TimeDelta::days(2);
    assert_eq!(
        store.record(&six_days, later).unwrap(),
        Recorded::OutsideWindow(OutsideWindow::TooOld)
    );
    let mut fresh = delivery("fresh", "k1", "vault.connection.updated");
    fresh.occurred_at = later;
    store.record(&fresh, later).unwrap();
    assert_eq!(
        store.remembered_deliveries("apideck").unwrap(),
        2,
        "six-days expired; stranger (10:00, 6 days old then) and fresh remain"
    );
}

/// The schema of version 1, as it was written (deduplicated on the idempotency key).
const SCHEMA_V1: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE owned (provider TEXT NOT NULL, connection_key TEXT NOT NULL, record_id TEXT NOT NULL,
    PRIMARY KEY (provider, connection_key)) WITHOUT ROWID;
CREATE INDEX owned_by_record ON owned (provider, record_id);
CREATE TABLE deliveries (provider TEXT NOT NULL, idempotency_key TEXT NOT NULL,
    received_at TEXT NOT NULL, owned INTEGER NOT NULL,
    PRIMARY KEY (provider, idempotency_key)) WITHOUT ROWID;
CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, provider TEXT NOT NULL,
    connection_key TEXT NOT NULL, idempotency_key TEXT NOT NULL, event_type TEXT NOT NULL,
    occurred_at TEXT, received_at TEXT NOT NULL, state TEXT, health TEXT,
    last_refresh_failed_at TEXT, connection_id TEXT);
CREATE INDEX events_by_connection ON events (provider, connection_key, seq);
CREATE TABLE latest (provider TEXT NOT NULL, connection_key TEXT NOT NULL,
    event_type TEXT NOT NULL, occurred_at TEXT, received_at TEXT NOT NULL, state TEXT,
    health TEXT, last_refresh_failed_at TEXT, events INTEGER NOT NULL,
    PRIMARY KEY (provider, connection_key)) WITHOUT ROWID;
CREATE TABLE unknown (provider TEXT PRIMARY KEY, count INTEGER NOT NULL) WITHOUT ROWID;
PRAGMA application_id = 1095779670;
INSERT INTO meta VALUES ('salt', '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff');
INSERT INTO owned VALUES ('apideck', 'k1', 'r1');
INSERT INTO deliveries VALUES ('apideck', 'idem-1', '2026-11-25T10:00:00.000Z', 1);
INSERT INTO events (provider, connection_key, idempotency_key, event_type, occurred_at,
    received_at, state, health) VALUES ('apideck', 'k1', 'idem-1',
    'vault.connection.token_refresh.failed', '2026-11-25T11:00:00.000+01:00',
    '2026-11-25T10:00:01.000Z', 'callable', 'pending_refresh');
INSERT INTO latest VALUES ('apideck', 'k1', 'vault.connection.token_refresh.failed',
    '2026-11-25T11:00:00.000+01:00', '2026-11-25T10:00:01.000Z', 'callable', 'pending_refresh',
    NULL, 1);
INSERT INTO unknown VALUES ('apideck', 3);
";

#[test]
fn a_version_1_event_store_is_migrated_in_place_and_keeps_its_history() {
    assert_eq!(schema::APPLICATION_ID, 1_095_779_670, "the id in SCHEMA_V1");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    precreate_private("event store", &events_path(&state)).unwrap();
    Connection::open(events_path(&state))
        .unwrap()
        .execute_batch(SCHEMA_V1)
        .unwrap();

    let store = EventStore::open(&state).unwrap();
    let latest = store.latest("apideck", "r1").unwrap().unwrap();
    assert_eq!(latest.event_type, "vault.connection.token_refresh.failed");
    assert_eq!(
        latest.occurred_at.as_deref(),
        Some("2026-11-25T10:00:00.000000Z")
    );
    let history = store.connection_events("apideck", "r1").unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].event_id, None);
    assert_eq!(store.unknown_count("apideck").unwrap(), 3);
    assert_eq!(store.remembered_deliveries("apideck").unwrap(), 0);

    // Version 2 rules apply from now on: older events stay in the history only.
    let mut older = delivery("e-older", "k1", "vault.connection.deleted");
    older.occurred_at = at("2026-11-25T09:00:00Z");
    assert_eq!(
        store.record(&older, now()).unwrap(),
        Recorded::Stored { latest: false }
    );
    let mut newer = delivery("e-newer", "k1", "vault.connection.token_refresh.recovered");
    newer.occurred_at = at("2026-11-25T10:30:00Z");
    assert_eq!(
        store.record(&newer, now()).unwrap(),
        Recorded::Stored { latest: true }
    );
    drop(store);
    // Opening again changes nothing.
    let store = EventStore::open(&state).unwrap();
    assert_eq!(store.connection_events("apideck", "r1").unwrap().len(), 3);
    assert_eq!(
        store.latest("apideck", "r1").unwrap().unwrap().event_type,
        "vault.connection.token_refresh.recovered"
    );
}

#[test]
fn the_receiver_refuses_an_absent_or_foreign_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("absent.db");
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a database").unwrap();
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, "").unwrap();
    // A SQLite database of another kind: an event store.
    drop(EventStore::open(&dir.path().join("other")).unwrap());
    let foreign = events_path(&dir.path().join("other"));
    for path in [&absent, &text, &empty, &foreign, &dir.path().to_path_buf()] {
        let error = require_state_file(path).unwrap_err();
        assert!(
            error.downcast_ref::<Refusal>().is_some(),
            "{}: {error:#}",
            path.display()
        );
    }
    assert!(!absent.exists());
    assert_eq!(std::fs::read(&text).unwrap(), b"not a database");

    let ours = dir.path().join("state.db");
    drop(StateStore::open(&ours).unwrap());
    require_state_file(&ours).unwrap();
}

#[test]
fn an_event_store_of_a_newer_schema_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    drop(EventStore::open(&state).unwrap());
    Connection::open(events_path(&state))
        .unwrap()
        .execute(
            "UPDATE meta SET value = '3' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
    let error = EventStore::open(&state).unwrap_err();
    assert!(
        error.chain().any(|e| e.downcast_ref::<Refusal>().is_some()),
        "{error:#}"
    );
    assert!(format!("{error:#}").contains("newer"), "{error:#}");
}
