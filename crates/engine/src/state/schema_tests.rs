//! The state file's schema versions: files of schema 1 and 2 are upgraded once to 3 (binary
//! claim and grant keys, no by-record indexes) and keep what they hold; a newer file is refused.

use super::*;

/// The tables of schema 1 as its builds wrote them: hex TEXT claim keys, an index by record.
const SCHEMA_1: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE journal (
    provider TEXT NOT NULL, record_id TEXT NOT NULL, fingerprint TEXT, target TEXT,
    created INTEGER NOT NULL DEFAULT 0, created_seq INTEGER, pending_fingerprint TEXT,
    PRIMARY KEY (provider, record_id)
) WITHOUT ROWID;
CREATE TABLE claims (
    provider TEXT NOT NULL, target_key TEXT NOT NULL, record_id TEXT NOT NULL,
    PRIMARY KEY (provider, target_key)
) WITHOUT ROWID;
CREATE INDEX claims_by_record ON claims (provider, record_id);
CREATE TABLE memo (
    namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
";

/// What schema 2 added: grants under hex TEXT keys, an index by record.
const GRANTS_2: &str = "
CREATE TABLE grants (
    provider TEXT NOT NULL, grant_key TEXT NOT NULL, record_id TEXT NOT NULL,
    PRIMARY KEY (provider, grant_key)
) WITHOUT ROWID;
CREATE INDEX grants_by_record ON grants (provider, record_id);
";

fn hex(key: &Key) -> String {
    key.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn granted(key: &Key) -> Option<GrantUse<'_>> {
    Some(GrantUse {
        key,
        shared_allowed: false,
    })
}

/// The journal of an old file: `a` applied (it holds `addr-a` and `g1`), `b` with an intent
/// in flight (`addr-b`), and rows of `gone`, released before the upgrade (no journal row).
fn fill_old(old: &Connection, grants: bool) {
    old.execute_batch(
        "INSERT INTO journal (provider, record_id, fingerprint, target, created, created_seq)
             VALUES ('tray', 'a', 'f', '{\"id\":\"1\"}', 1, 1);
         INSERT INTO journal (provider, record_id, pending_fingerprint) VALUES ('tray', 'b', 'f');",
    )
    .unwrap();
    for (address, record) in [("addr-a", "a"), ("addr-b", "b"), ("addr-gone", "gone")] {
        old.execute(
            "INSERT INTO claims (provider, target_key, record_id) VALUES ('tray', ?1, ?2)",
            params![hex(&key(address)), record],
        )
        .unwrap();
    }
    if grants {
        for (grant, record) in [("g1", "a"), ("g-gone", "gone")] {
            old.execute(
                "INSERT INTO grants (provider, grant_key, record_id) VALUES ('tray', ?1, ?2)",
                params![hex(&key(grant)), record],
            )
            .unwrap();
        }
    }
}

fn version(state: &StateStore) -> String {
    schema::meta(&state.shared.lock().connection, "schema_version")
        .unwrap()
        .unwrap()
}

/// The file's schema as SQLite stores it (tables and indexes, with their SQL).
fn master(state: &StateStore) -> Vec<(String, Option<String>)> {
    let inner = state.shared.lock();
    let mut statement = inner
        .connection
        .prepare("SELECT name, sql FROM sqlite_master ORDER BY name")
        .unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Every row of `table` as (record id, SQLite's type of the key, the key's bytes).
fn keys_of(state: &StateStore, table: &str, column: &str) -> Vec<(String, String, Vec<u8>)> {
    let inner = state.shared.lock();
    let mut statement = inner
        .connection
        .prepare(&format!(
            "SELECT record_id, typeof({column}), {column} FROM {table} ORDER BY record_id"
        ))
        .unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_2_file_is_upgraded_once_and_keeps_its_claims_and_grants() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.db");
    {
        let old = Connection::open(&path).unwrap();
        old.execute_batch(SCHEMA_1).unwrap();
        old.execute_batch(schema::ADDED_TABLES).unwrap();
        old.execute_batch(GRANTS_2).unwrap();
        old.execute_batch(&format!(
            "PRAGMA application_id = {};
             INSERT INTO meta (key, value) VALUES ('schema_version', '2');",
            schema::APPLICATION_ID
        ))
        .unwrap();
        fill_old(&old, true);
    }
    let upgraded;
    {
        let state = StateStore::open(&path).unwrap();
        assert_eq!(version(&state), "3");
        // The keys are their 32 bytes now; the released rows of `gone` are swept.
        let blob = |record: &str, name: &str| {
            (
                record.to_owned(),
                "blob".to_owned(),
                key(name).as_bytes().to_vec(),
            )
        };
        assert_eq!(
            keys_of(&state, "claims", "target_key"),
            [blob("a", "addr-a"), blob("b", "addr-b")]
        );
        assert_eq!(keys_of(&state, "grants", "grant_key"), [blob("a", "g1")]);
        upgraded = master(&state);
        let names: Vec<&str> = upgraded.iter().map(|(name, _)| name.as_str()).collect();
        for gone in ["claims_by_record", "grants_by_record", "claims_before_3"] {
            assert!(!names.contains(&gone), "{gone} in {names:?}");
        }
        // A second pass has nothing to do.
        assert!(!schema::migrate(&state.shared.lock().connection).unwrap());
        assert_eq!(state.objects("tray").unwrap().len(), 1);
        assert_eq!(state.pending("tray").unwrap(), ["b"]);
    }
    let state = StateStore::open(&path).unwrap();
    assert_eq!(master(&state), upgraded, "a re-open changed the schema");
    // The claims hold: another record wanting `a`'s or `b`'s address is a conflict.
    for (address, owner) in [("addr-a", "a"), ("addr-b", "b")] {
        assert_eq!(
            state
                .prepare("tray", "other", &key(address), "fp")
                .await
                .unwrap(),
            Prepared::Conflict(owner.into())
        );
    }
    // So does the grant: another record carrying it is refused, naming `a`.
    assert_eq!(
        state
            .prepare_with_grant("tray", "other", &key("addr-x"), "fp", granted(&key("g1")))
            .await
            .unwrap(),
        Prepared::SharedGrant("a".into())
    );
    // The holders themselves come back as before: `a` unchanged, `b` to be reconciled.
    let Prepared::Unwritten(entry) = state
        .prepare_with_grant("tray", "a", &key("addr-a"), "f", granted(&key("g1")))
        .await
        .unwrap()
    else {
        panic!("expected `a` unchanged");
    };
    assert!(entry.is_unchanged("f"));
    let Prepared::Unwritten(entry) = state
        .prepare("tray", "b", &key("addr-b"), "f")
        .await
        .unwrap()
    else {
        panic!("expected `b` to await a reconcile");
    };
    assert!(entry.awaits_reconcile());
    // What `gone` held is free.
    assert!(matches!(
        state
            .prepare("tray", "other", &key("addr-gone"), "fp")
            .await
            .unwrap(),
        Prepared::IntentCommitted(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_1_file_with_or_without_a_recorded_version_is_upgraded() {
    // Files written before versions (and the application id) were recorded read as schema 1.
    for recorded in [Some("1"), None] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(SCHEMA_1).unwrap();
            if let Some(version) = recorded {
                old.execute_batch(schema::ADDED_TABLES).unwrap();
                old.execute_batch(&format!(
                    "PRAGMA application_id = {};
                     INSERT INTO meta (key, value) VALUES ('schema_version', '{version}');",
                    schema::APPLICATION_ID
                ))
                .unwrap();
            }
            fill_old(&old, false);
        }
        let state = StateStore::open(&path).unwrap();
        assert_eq!(version(&state), "3", "{recorded:?}");
        assert_eq!(state.objects("tray").unwrap().len(), 1);
        assert_eq!(
            state
                .prepare("tray", "other", &key("addr-a"), "fp")
                .await
                .unwrap(),
            Prepared::Conflict("a".into())
        );
        assert_eq!(state.grant_holder("tray", &key("g1"), "z").unwrap(), None);
        assert_eq!(super::tests::application_id(&state), schema::APPLICATION_ID);
    }
}

#[test]
fn a_state_file_of_a_newer_schema_is_refused_untouched() {
    for newer in ["4", "next"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        drop(StateStore::open(&path).unwrap());
        {
            let by_a_newer_build = Connection::open(&path).unwrap();
            schema::set_meta(&by_a_newer_build, "schema_version", newer).unwrap();
        }
        let before = std::fs::read(&path).unwrap();
        let error = StateStore::open(&path).unwrap_err();
        assert!(error.is::<crate::Refusal>(), "{error:#}");
        let message = format!("{error:#}");
        assert!(
            message.contains(&format!("schema version {newer}, made by a newer authport"))
                && message.contains(&path.display().to_string())
                && message.contains("left untouched"),
            "{message}"
        );
        assert!(std::fs::read(&path).unwrap() == before, "the file changed");
    }
}
