//! The event store's in-place upgrades: files of schema 1 and 2, shaped as they were written
//! with a made-up vendor's words, become the current schema through the provider's source and
//! keep their history, ids and order; without the source they are refused untouched.

use super::*;

/// The schema of version 1 (deduplicated on the idempotency key), shaped as it was written,
/// with a made-up vendor's words in its vendor columns (`state`, `health`, `failed_at`; the real
/// files, with a real vendor's words, are upgraded in `tests/tests/webhooks_upgrade.rs`).
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
    failed_at TEXT, connection_id TEXT);
CREATE INDEX events_by_connection ON events (provider, connection_key, seq);
CREATE TABLE latest (provider TEXT NOT NULL, connection_key TEXT NOT NULL,
    event_type TEXT NOT NULL, occurred_at TEXT, received_at TEXT NOT NULL, state TEXT,
    health TEXT, failed_at TEXT, events INTEGER NOT NULL,
    PRIMARY KEY (provider, connection_key)) WITHOUT ROWID;
CREATE TABLE unknown (provider TEXT PRIMARY KEY, count INTEGER NOT NULL) WITHOUT ROWID;
PRAGMA application_id = 1095779670;
INSERT INTO meta VALUES ('salt', '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff');
INSERT INTO owned VALUES ('acme', 'k1', 'r1');
INSERT INTO deliveries VALUES ('acme', 'idem-1', '2026-11-25T10:00:00.000Z', 1);
INSERT INTO events (provider, connection_key, idempotency_key, event_type, occurred_at,
    received_at, state, health, failed_at) VALUES ('acme', 'k1', 'idem-1',
    'acme.refresh.failed', '2026-11-25T11:00:00.000+01:00',
    '2026-11-25T10:00:01.000Z', 'ready', 'pending', '2026-11-25T10:00:00.000Z');
INSERT INTO latest VALUES ('acme', 'k1', 'acme.refresh.failed',
    '2026-11-25T11:00:00.000+01:00', '2026-11-25T10:00:01.000Z', 'ready', 'pending',
    '2026-11-25T10:00:00.000Z', 1);
INSERT INTO unknown VALUES ('acme', 3);
";

/// The schema of version 2 (deduplicated on the event id), with the made-up vendor's words.
const SCHEMA_V2: &str = "
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
    received_at TEXT NOT NULL, state TEXT, health TEXT, failed_at TEXT, connection_id TEXT,
    applied INTEGER NOT NULL DEFAULT 1);
CREATE INDEX events_by_connection ON events (provider, connection_key, seq);
CREATE TABLE latest (provider TEXT NOT NULL, connection_key TEXT NOT NULL,
    event_type TEXT NOT NULL, occurred_at TEXT, received_at TEXT NOT NULL, state TEXT,
    health TEXT, failed_at TEXT, events INTEGER NOT NULL,
    PRIMARY KEY (provider, connection_key)) WITHOUT ROWID;
CREATE TABLE unknown (provider TEXT PRIMARY KEY, count INTEGER NOT NULL) WITHOUT ROWID;
PRAGMA application_id = 1095779670;
INSERT INTO meta VALUES ('salt', '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff');
INSERT INTO meta VALUES ('schema_version', '2');
INSERT INTO owned VALUES ('acme', 'k1', 'r1');
INSERT INTO deliveries VALUES ('acme', 'e-gone', '2026-11-25T10:20:00.000000Z',
    '2026-11-25T10:20:01.000Z', 1);
INSERT INTO events (provider, connection_key, event_id, event_type, occurred_at, received_at,
    state, health, failed_at, connection_id, applied) VALUES
    ('acme', 'k1', 'e-failed', 'acme.refresh.failed', '2026-11-25T10:00:00.000000Z',
     '2026-11-25T10:00:01.000Z', 'ready', 'pending', '2026-11-25T10:00:00.000Z', 'conn-1', 1),
    ('acme', 'k1', 'e-gone', 'acme.connection.revoked', '2026-11-25T10:20:00.000000Z',
     '2026-11-25T10:20:01.000Z', NULL, 'gone', NULL, 'conn-1', 1);
INSERT INTO latest VALUES ('acme', 'k1', 'acme.connection.revoked',
    '2026-11-25T10:20:00.000000Z', '2026-11-25T10:20:01.000Z', 'ready', 'gone',
    '2026-11-25T10:00:00.000Z', 2);
INSERT INTO unknown VALUES ('acme', 3);
";

/// An event store file of an older schema, written by `schema`.
fn old_store(schema: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    precreate_private("event store", &events_path(&state)).unwrap();
    Connection::open(events_path(&state))
        .unwrap()
        .execute_batch(schema)
        .unwrap();
    (dir, state)
}

/// Every table's schema and rows, as text.
fn dump(state: &std::path::Path) -> Vec<String> {
    let connection = Connection::open(events_path(state)).unwrap();
    let tables: Vec<(String, String)> = connection
        .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut lines = Vec::new();
    for (name, sql) in tables {
        lines.push(sql);
        let mut statement = connection
            .prepare(&format!("SELECT * FROM {name}"))
            .unwrap();
        let columns = statement.column_count();
        let rows = statement
            .query_map([], |row| {
                (0..columns)
                    .map(|i| row.get_ref(i).map(|v| format!("{v:?}")))
                    .collect::<Result<Vec<_>, _>>()
            })
            .unwrap();
        for row in rows {
            lines.push(row.unwrap().join("|"));
        }
    }
    lines
}

#[test]
fn an_older_event_store_is_refused_untouched_without_the_providers_source() {
    for schema in [SCHEMA_V1, SCHEMA_V2] {
        let (_dir, state) = old_store(schema);
        let before = dump(&state);
        let error = EventStore::open(&state).unwrap_err();
        assert!(
            error.chain().any(|e| e.downcast_ref::<Refusal>().is_some()),
            "{error:#}"
        );
        assert!(format!("{error:#}").contains("older"), "{error:#}");
        assert_eq!(dump(&state), before);
    }
}

#[test]
fn a_version_1_event_store_is_upgraded_in_place_and_keeps_its_history() {
    assert_eq!(schema::APPLICATION_ID, 1_095_779_670, "the id in SCHEMA_V1");
    let (_dir, state) = old_store(SCHEMA_V1);
    let source = Acme::default();
    let upgrade = Upgrade {
        provider: PROVIDER,
        source: &source,
    };
    let store = EventStore::open_upgrading(&state, upgrade).unwrap();
    let latest = store.latest(PROVIDER, "r1").unwrap().unwrap();
    assert_eq!(latest.kind, "acme.refresh.failed");
    assert_eq!(latest.health, Some(Health::RefreshFailed));
    assert_eq!(
        latest.occurred_at.as_deref(),
        Some("2026-11-25T10:00:00.000000Z")
    );
    let history = store.connection_events(PROVIDER, "r1").unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].event_id, None);
    assert_eq!(history[0].health, Some(Health::RefreshFailed));
    assert_eq!(store.unknown_count(PROVIDER).unwrap(), 3);
    assert_eq!(store.remembered_deliveries(PROVIDER).unwrap(), 0);
    // The provider was handed the vendor columns only, by name.
    let asked = source.asked.lock().unwrap().clone();
    let keys: Vec<&str> = asked[0].keys().map(String::as_str).collect();
    assert_eq!(keys, ["event_type", "failed_at", "health", "state"]);
    assert_eq!(asked[0]["health"], "pending");

    // Version 3 rules apply from now on: older events stay in the history only.
    let mut older = delivery("e-older", "k1", "acme.connection.deleted");
    older.occurred_at = Some(at("2026-11-25T09:00:00Z"));
    assert_eq!(
        store.record(&older, now()).unwrap(),
        Recorded::Stored { latest: false }
    );
    let mut newer = delivery("e-newer", "k1", "acme.refresh.recovered");
    newer.occurred_at = Some(at("2026-11-25T10:30:00Z"));
    newer.health = Some(Health::Healthy);
    assert_eq!(
        store.record(&newer, now()).unwrap(),
        Recorded::Stored { latest: true }
    );
    drop(store);
    // Opening again changes nothing, and needs no source any more.
    let store = EventStore::open(&state).unwrap();
    assert_eq!(store.connection_events(PROVIDER, "r1").unwrap().len(), 3);
    let latest = store.latest(PROVIDER, "r1").unwrap().unwrap();
    assert_eq!(
        (latest.kind.as_str(), latest.health),
        ("acme.refresh.recovered", Some(Health::Healthy))
    );
}

#[test]
fn a_version_2_event_store_is_upgraded_in_place_and_keeps_ids_and_order() {
    let (_dir, state) = old_store(SCHEMA_V2);
    let source = Acme::default();
    let upgrade = Upgrade {
        provider: PROVIDER,
        source: &source,
    };
    let store = EventStore::open_upgrading(&state, upgrade).unwrap();
    let latest = store.latest(PROVIDER, "r1").unwrap().unwrap();
    assert_eq!(
        (latest.kind.as_str(), latest.health, latest.events),
        ("acme.connection.revoked", Some(Health::Revoked), 2)
    );
    let history = store.connection_events(PROVIDER, "r1").unwrap();
    let kept: Vec<String> = history
        .iter()
        .map(|e| {
            format!(
                "{:?} {:?} {:?} {}",
                e.event_id, e.health, e.connection_id, e.applied
            )
        })
        .collect();
    assert_eq!(
        kept,
        [
            r#"Some("e-failed") Some(RefreshFailed) Some("conn-1") true"#,
            r#"Some("e-gone") Some(Revoked) Some("conn-1") true"#,
        ]
    );
    // Version 2's dedupe rows are kept: a replay is still a duplicate.
    assert_eq!(store.remembered_deliveries(PROVIDER).unwrap(), 1);
    let mut replay = delivery("e-gone", "k1", "acme.connection.revoked");
    replay.occurred_at = Some(at("2026-11-25T10:20:00Z"));
    assert_eq!(store.record(&replay, now()).unwrap(), Recorded::Duplicate);
    assert_eq!(store.unknown_count(PROVIDER).unwrap(), 3);
}
