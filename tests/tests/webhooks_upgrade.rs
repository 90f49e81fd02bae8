//! Issue 18: an event store written by an older authport (schema 1 or 2, which kept Vault's own
//! words) is upgraded in place the first time `status` (or the receiver) opens it: Apideck's
//! webhook source reads the old words, so every event keeps what it meant, as typed health.

use crate::common;
use crate::webhooks::record;

use authport_core::Health;
use authport_engine::EventStore;
use common::*;

/// Version 2 as it was written, for o1's and o2's HubSpot connections: o1's latest a failed
/// refresh, o2's a revocation after a creation.
const SCHEMA_V2: &str = r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE owned (provider TEXT NOT NULL, connection_key TEXT NOT NULL, record_id TEXT NOT NULL,
    PRIMARY KEY (provider, connection_key)) WITHOUT ROWID;
CREATE INDEX owned_by_record ON owned (provider, record_id);
CREATE TABLE deliveries (provider TEXT NOT NULL, event_id TEXT NOT NULL,
    occurred_at TEXT NOT NULL, received_at TEXT NOT NULL, owned INTEGER NOT NULL,
    PRIMARY KEY (provider, event_id)) WITHOUT ROWID;
CREATE INDEX deliveries_by_age ON deliveries (provider, occurred_at);
CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, provider TEXT NOT NULL,
    connection_key TEXT NOT NULL, event_id TEXT, event_type TEXT NOT NULL, occurred_at TEXT,
    received_at TEXT NOT NULL, state TEXT, health TEXT, last_refresh_failed_at TEXT,
    connection_id TEXT, applied INTEGER NOT NULL DEFAULT 1);
CREATE INDEX events_by_connection ON events (provider, connection_key, seq);
CREATE TABLE latest (provider TEXT NOT NULL, connection_key TEXT NOT NULL,
    event_type TEXT NOT NULL, occurred_at TEXT, received_at TEXT NOT NULL, state TEXT,
    health TEXT, last_refresh_failed_at TEXT, events INTEGER NOT NULL,
    PRIMARY KEY (provider, connection_key)) WITHOUT ROWID;
CREATE TABLE unknown (provider TEXT PRIMARY KEY, count INTEGER NOT NULL) WITHOUT ROWID;
PRAGMA application_id = 1095779670;
INSERT INTO meta VALUES ('schema_version', '2');
INSERT INTO owned VALUES ('apideck', '["o1","crm","hubspot"]', 'o1/hubspot');
INSERT INTO owned VALUES ('apideck', '["o2","crm","hubspot"]', 'o2/hubspot');
INSERT INTO events (provider, connection_key, event_id, event_type, occurred_at, received_at,
    state, health, last_refresh_failed_at, connection_id) VALUES
    ('apideck', '["o1","crm","hubspot"]', 'e1', 'vault.connection.token_refresh.failed',
     '2026-11-25T10:00:00.000000Z', '2026-11-25T10:00:01.000Z', 'callable', 'pending_refresh',
     '2026-11-25T10:00:00.000Z', 'crm+hubspot'),
    ('apideck', '["o2","crm","hubspot"]', 'e2', 'vault.connection.created',
     '2026-11-25T09:00:00.000000Z', '2026-11-25T09:00:01.000Z', 'callable', 'ok', NULL,
     'crm+hubspot'),
    ('apideck', '["o2","crm","hubspot"]', 'e3', 'vault.connection.revoked',
     '2026-11-25T10:30:00.000000Z', '2026-11-25T10:30:01.000Z', NULL, 'revoked', NULL,
     'crm+hubspot');
INSERT INTO latest VALUES ('apideck', '["o1","crm","hubspot"]',
    'vault.connection.token_refresh.failed', '2026-11-25T10:00:00.000000Z',
    '2026-11-25T10:00:01.000Z', 'callable', 'pending_refresh', '2026-11-25T10:00:00.000Z', 1);
INSERT INTO latest VALUES ('apideck', '["o2","crm","hubspot"]', 'vault.connection.revoked',
    '2026-11-25T10:30:00.000000Z', '2026-11-25T10:30:01.000Z', 'callable', 'revoked', NULL, 2);
INSERT INTO unknown VALUES ('apideck', 4);
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_upgrades_a_version_2_event_store_and_every_event_keeps_its_meaning() {
    let sandbox = sandbox().await;
    let env = sandbox.provider_env();
    let dir = scratch();
    let inputs = scratch();
    let input = write_lines(inputs.path(), "in.jsonl", &[record("o1"), record("o2")]);
    let run = import_with_state("apideck", &env, dir.path(), &input, &[]).await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    let state = dir.path().join("state.db");
    let events = authport_engine::events_path(&state);
    rusqlite::Connection::open(&events)
        .unwrap()
        .execute_batch(SCHEMA_V2)
        .unwrap();
    std::fs::set_permissions(&events, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    assert!(
        EventStore::open(&state).is_err(),
        "without the provider's source an older store is refused"
    );

    let status = authport(
        dir.path(),
        &[
            "status",
            "--provider",
            "apideck",
            "--state",
            "state.db",
            "--format",
            "json",
        ],
        &env,
    )
    .await;
    // Both connections are callable now and the events happened before the read-back: the
    // read-back decides, as it did before the upgrade.
    assert_eq!(status.code, 0, "{}", status.stderr);
    let lines = parse_lines(&status.stdout);
    // In journal order, which is the order the import finished them in: sorted here.
    let mut last_events: Vec<(&str, &str)> = lines
        .iter()
        .filter_map(|l| Some((l["id"].as_str()?, l["detail"]["last_event"].as_str()?)))
        .collect();
    last_events.sort_unstable();
    assert_eq!(
        last_events,
        [
            ("o1/hubspot", "vault.connection.token_refresh.failed"),
            ("o2/hubspot", "vault.connection.revoked")
        ]
    );

    // Upgraded in place: typed health from Vault's words, ids, counts and history kept.
    let store = EventStore::open(&state).unwrap();
    let o1 = store.latest("apideck", "o1/hubspot").unwrap().unwrap();
    assert_eq!(o1.health, Some(Health::RefreshFailed));
    let o2 = store.latest("apideck", "o2/hubspot").unwrap().unwrap();
    assert_eq!((o2.health, o2.events), (Some(Health::Revoked), 2));
    let history: Vec<(Option<String>, Option<Health>)> = store
        .connection_events("apideck", "o2/hubspot")
        .unwrap()
        .into_iter()
        .map(|e| (e.event_id, e.health))
        .collect();
    assert_eq!(
        history,
        [
            (Some("e2".to_owned()), None),
            (Some("e3".to_owned()), Some(Health::Revoked))
        ]
    );
    assert_eq!(store.unknown_count("apideck").unwrap(), 4);
    assert_no_canary("status output", &status.stdout);
    assert_no_canary("status log", &status.stderr);
}
