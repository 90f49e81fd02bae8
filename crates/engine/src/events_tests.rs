//! The event store's rules, with a made-up vendor ("acme"): the engine knows no vendor's words.
//! The in-place upgrades of older event stores are in `events_upgrade_tests.rs`.

use super::*;
use crate::state::StateStore;
use authport_core::TargetRef;

#[path = "events_upgrade_tests.rs"]
mod upgrade;

const PROVIDER: &str = "acme";

fn at(text: &str) -> DateTime<Utc> {
    parse_stamp(text).unwrap()
}

/// The receiving clock of these tests: an hour after the deliveries' default date.
fn now() -> DateTime<Utc> {
    at("2026-11-25T11:00:00Z")
}

fn delivery(event_id: &str, connection: &str, kind: &str) -> Delivery {
    Delivery {
        provider: PROVIDER.to_owned(),
        event_id: event_id.to_owned(),
        connection_key: connection.to_owned(),
        kind: kind.to_owned(),
        occurred_at: Some(at("2026-11-25T10:00:00Z")),
        health: None,
        connection_id: Some("conn-1".to_owned()),
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
    assert_eq!(store.own(PROVIDER, &[owned("k1", "r1")]).unwrap(), 1);
    assert_eq!(store.own(PROVIDER, &[owned("k1", "r1")]).unwrap(), 0);

    let created = delivery("d1", "k1", "acme.connection.created");
    let stored = Recorded::Stored { latest: true };
    assert_eq!(store.record(&created, now()).unwrap(), stored);
    assert_eq!(store.record(&created, now()).unwrap(), Recorded::Duplicate);
    let mut failed = delivery("d2", "k1", "acme.refresh.failed");
    failed.occurred_at = Some(at("2026-11-25T10:30:00Z"));
    failed.health = Some(Health::RefreshFailed);
    assert_eq!(store.record(&failed, now()).unwrap(), stored);
    let stranger = delivery("d3", "k9", "acme.connection.created");
    assert_eq!(store.record(&stranger, now()).unwrap(), Recorded::Unknown);
    assert_eq!(store.record(&stranger, now()).unwrap(), Recorded::Duplicate);

    let latest = store.latest(PROVIDER, "r1").unwrap().unwrap();
    assert_eq!(latest.kind, "acme.refresh.failed");
    assert_eq!(latest.health, Some(Health::RefreshFailed));
    assert_eq!(latest.events, 2);
    let history = store.connection_events(PROVIDER, "r1").unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].event_id.as_deref(), Some("d1"));
    assert_eq!(history[1].health, Some(Health::RefreshFailed));
    assert_eq!(store.unknown_count(PROVIDER).unwrap(), 1);
    assert_eq!(store.stored_count(PROVIDER).unwrap(), 2);
    assert!(store.latest(PROVIDER, "r9").unwrap().is_none());
    assert_eq!(store.latest_all(PROVIDER).unwrap().len(), 1);
}

#[test]
fn a_second_handle_reads_what_the_first_wrote_and_the_file_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    let writer = EventStore::open(&state).unwrap();
    let reader = EventStore::open(&state).unwrap();
    writer.own(PROVIDER, &[owned("k1", "r1")]).unwrap();
    writer
        .record(&delivery("d1", "k1", "acme.connection.updated"), now())
        .unwrap();
    assert_eq!(reader.latest_all(PROVIDER).unwrap().len(), 1);
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
    let source = Acme::default();
    let key_of = |target: &TargetRef| source.connection_key(target);
    {
        let state = StateStore::open(&path).unwrap();
        let target = TargetRef(
            serde_json::json!({"consumer_id": "c1"})
                .as_object()
                .cloned()
                .unwrap(),
        );
        state
            .commit_outcome(PROVIDER, "r1", "fp", &target, true)
            .await
            .unwrap();
        // While the run holds the journal, a read-only open sees what it committed...
        assert_eq!(
            owned_in_journal(&path, PROVIDER, key_of).unwrap(),
            vec![owned("c1", "r1")]
        );
        // ...and the run publishes what it wrote, once a receiver made the event store.
        assert_eq!(publish_owned(&state, PROVIDER, &source).unwrap(), 0);
        assert!(
            !events_path(&path).exists(),
            "no event store without a receiver"
        );
        EventStore::open(&path).unwrap();
        assert_eq!(publish_owned(&state, PROVIDER, &source).unwrap(), 1);
    }
    assert_eq!(
        owned_in_journal(&path, PROVIDER, key_of).unwrap(),
        vec![owned("c1", "r1")]
    );
    assert!(
        EventStore::open(&path)
            .unwrap()
            .owns(PROVIDER, "c1")
            .unwrap()
    );
}

#[test]
fn an_event_store_bound_to_one_target_refuses_another() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(&dir.path().join("state.db")).unwrap();
    let identity = |account: &str| TargetIdentity {
        endpoints: vec!["https://acme.example".to_owned()],
        account: Some(account.to_owned()),
        credential: authport_core::SecretString::from("canary-key".to_owned()),
    };
    store.bind(PROVIDER, &identity("app-1"), false).unwrap();
    store.bind(PROVIDER, &identity("app-1"), false).unwrap();
    let error = store.bind(PROVIDER, &identity("app-2"), false).unwrap_err();
    assert!(error.to_string().contains("account"), "{error}");
    assert!(!error.to_string().contains("canary-key"));
    store.bind(PROVIDER, &identity("app-2"), true).unwrap();
}

#[test]
fn an_event_older_than_the_latest_joins_the_history_but_never_becomes_the_latest() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(&dir.path().join("state.db")).unwrap();
    store.own(PROVIDER, &[owned("k1", "r1")]).unwrap();
    let mut failed = delivery("e-failed", "k1", "acme.refresh.failed");
    failed.occurred_at = Some(at("2026-11-25T10:00:00Z"));
    failed.health = Some(Health::RefreshFailed);
    let mut recovered = delivery("e-recovered", "k1", "acme.refresh.recovered");
    recovered.occurred_at = Some(at("2026-11-25T10:05:00+00:00"));
    recovered.health = Some(Health::Healthy);
    // The vendor retries the failure after the recovery that followed it.
    assert_eq!(
        store.record(&recovered, now()).unwrap(),
        Recorded::Stored { latest: true }
    );
    assert_eq!(
        store.record(&failed, now()).unwrap(),
        Recorded::Stored { latest: false }
    );
    let latest = store.latest(PROVIDER, "r1").unwrap().unwrap();
    assert_eq!(latest.kind, "acme.refresh.recovered");
    assert_eq!(latest.health, Some(Health::Healthy));
    assert_eq!(latest.events, 2);
    let history = store.connection_events(PROVIDER, "r1").unwrap();
    let applied: Vec<(Option<&str>, bool)> = history
        .iter()
        .map(|e| (e.event_id.as_deref(), e.applied))
        .collect();
    assert_eq!(
        applied,
        [(Some("e-recovered"), true), (Some("e-failed"), false)]
    );
    // The same instant written another way is the same instant, so it is not older.
    let mut same_time = delivery("e-same", "k1", "acme.connection.updated");
    same_time.occurred_at = Some(at("2026-11-25T11:05:00+01:00"));
    assert_eq!(
        store.record(&same_time, now()).unwrap(),
        Recorded::Stored { latest: true }
    );
}

#[test]
fn a_replay_is_a_duplicate_whatever_else_differs() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(&dir.path().join("state.db")).unwrap();
    store.own(PROVIDER, &[owned("k1", "r1")]).unwrap();
    let first = delivery("e1", "k1", "acme.refresh.failed");
    store.record(&first, now()).unwrap();
    let mut replay = first.clone();
    replay.occurred_at = Some(at("2026-11-25T10:59:00Z"));
    replay.kind = "acme.connection.deleted".to_owned();
    replay.health = Some(Health::Deleted);
    assert_eq!(store.record(&replay, now()).unwrap(), Recorded::Duplicate);
    assert_eq!(store.stored_count(PROVIDER).unwrap(), 1);
}

#[test]
fn events_outside_the_window_are_refused_and_their_ids_expire_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(&dir.path().join("state.db")).unwrap();
    store.own(PROVIDER, &[owned("k1", "r1")]).unwrap();
    let mut ancient = delivery("old", "k1", "acme.connection.deleted");
    ancient.occurred_at = Some(now() - EVENT_WINDOW - chrono::TimeDelta::seconds(1));
    let mut ahead = delivery("ahead", "k1", "acme.connection.deleted");
    ahead.occurred_at = Some(now() + CLOCK_SKEW + chrono::TimeDelta::seconds(1));
    assert_eq!(
        store.record(&ancient, now()).unwrap(),
        Recorded::OutsideWindow(OutsideWindow::TooOld)
    );
    assert_eq!(
        store.record(&ahead, now()).unwrap(),
        Recorded::OutsideWindow(OutsideWindow::InTheFuture)
    );
    assert!(store.latest(PROVIDER, "r1").unwrap().is_none());

    // Ids are kept while a replay could still be accepted, and forgotten after.
    let mut six_days = delivery("six-days", "k1", "acme.connection.updated");
    six_days.occurred_at = Some(now() - chrono::TimeDelta::days(6));
    let stranger = delivery("stranger", "k9", "acme.connection.updated");
    store.record(&six_days, now()).unwrap();
    store.record(&stranger, now()).unwrap();
    assert_eq!(store.remembered_deliveries(PROVIDER).unwrap(), 2);
    let later = now() + chrono::TimeDelta::days(2);
    assert_eq!(
        store.record(&six_days, later).unwrap(),
        Recorded::OutsideWindow(OutsideWindow::TooOld)
    );
    let mut fresh = delivery("fresh", "k1", "acme.connection.updated");
    fresh.occurred_at = Some(later);
    store.record(&fresh, later).unwrap();
    assert_eq!(
        store.remembered_deliveries(PROVIDER).unwrap(),
        2,
        "six-days expired; stranger (10:00, 6 days old then) and fresh remain"
    );
}

/// The made-up vendor's webhook source: keys by `consumer_id`; reads its old words (`health`
/// `gone` is revoked, a set `failed_at` a failed refresh) and remembers what it was asked.
#[derive(Debug, Default)]
struct Acme {
    asked: std::sync::Mutex<Vec<authport_core::StoredWords>>,
}

impl WebhookSource for Acme {
    fn signature_header(&self) -> &'static str {
        "x-acme-signature"
    }

    fn verify(
        &self,
        _headers: &authport_core::WebhookHeaders,
        _body: &[u8],
    ) -> Result<(), authport_core::WebhookRefusal> {
        Ok(())
    }

    fn parse(&self, _body: &[u8]) -> Result<HealthEvent, authport_core::WebhookRefusal> {
        Err(authport_core::WebhookRefusal::malformed("test", "not used"))
    }

    fn connection_key(&self, target: &TargetRef) -> Option<String> {
        target.get_str("consumer_id").map(str::to_owned)
    }

    fn identity(&self) -> TargetIdentity {
        TargetIdentity {
            endpoints: vec!["https://acme.example".to_owned()],
            account: None,
            credential: authport_core::SecretString::from("canary-key".to_owned()),
        }
    }

    fn stored_health(&self, words: &authport_core::StoredWords) -> Option<Health> {
        self.asked.lock().unwrap().push(words.clone());
        if words.get("health").map(String::as_str) == Some("gone") {
            Some(Health::Revoked)
        } else if words.contains_key("failed_at") {
            Some(Health::RefreshFailed)
        } else {
            None
        }
    }
}

#[test]
fn an_undated_event_is_ordered_by_arrival_and_its_id_expires_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(&dir.path().join("state.db")).unwrap();
    store.own(PROVIDER, &[owned("k1", "r1")]).unwrap();
    let mut failed = delivery("h-1", "k1", "acme.refresh.failed");
    failed.occurred_at = None;
    failed.health = Some(Health::RefreshFailed);
    let mut recovered = delivery("h-2", "k1", "acme.refresh.succeeded");
    recovered.occurred_at = None;
    recovered.health = Some(Health::Healthy);
    let stored = Recorded::Stored { latest: true };
    assert_eq!(store.record(&failed, now()).unwrap(), stored);
    assert_eq!(store.record(&recovered, now()).unwrap(), stored);
    assert_eq!(store.record(&failed, now()).unwrap(), Recorded::Duplicate);
    let latest = store.latest(PROVIDER, "r1").unwrap().unwrap();
    assert_eq!(latest.health, Some(Health::Healthy));
    assert_eq!(latest.occurred_at, None);
    // No date, so no window: a failure that arrives last is the latest, whatever the clock.
    let mut again = delivery("h-3", "k1", "acme.refresh.failed");
    again.occurred_at = None;
    again.health = Some(Health::RefreshFailed);
    let much_later = now() + chrono::TimeDelta::days(30);
    assert_eq!(store.record(&again, much_later).unwrap(), stored);
    assert_eq!(
        store.latest(PROVIDER, "r1").unwrap().unwrap().health,
        Some(Health::RefreshFailed)
    );
    // The ids of h-1 and h-2 arrived 30 days before: forgotten; h-3's is kept.
    assert_eq!(store.remembered_deliveries(PROVIDER).unwrap(), 1);
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
            "UPDATE meta SET value = '4' WHERE key = 'schema_version'",
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
