//! The journal's unit tests.

use super::*;
use authport_core::{MappedRecord, SecretJson, SecretString};
use serde_json::json;
use sha2::{Digest as _, Sha256};

fn identity(endpoint: &str, account: Option<&str>, credential: &str) -> TargetIdentity {
    TargetIdentity {
        endpoints: vec![endpoint.to_owned()],
        account: account.map(str::to_owned),
        credential: SecretString::from(credential.to_owned()),
    }
}

fn mapped(secret: &str) -> MappedRecord {
    MappedRecord {
        target: json!({"name": "auth-a"}).as_object().cloned().unwrap(),
        body: SecretJson::new(json!({"api_key": secret})),
        notes: Vec::new(),
        payload: Default::default(),
    }
}

/// The fingerprint scheme before keyed fingerprints: SHA-256 of the salt and the parts, each
/// length-prefixed. Anyone holding the state file could compute it.
fn unkeyed_fingerprint(salt: &[u8], parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    hasher.update((salt.len() as u64).to_be_bytes());
    hasher.update(salt);
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn target(id: &str) -> TargetRef {
    TargetRef(
        json!({ "authentication_id": id })
            .as_object()
            .cloned()
            .unwrap_or_default(),
    )
}

#[test]
fn intent_then_outcome_then_update_keeps_created_mark() {
    let state = StateStore::temporary().unwrap();
    assert_eq!(state.entry("tray", "r1").unwrap(), None);

    state.record_intent("tray", "r1", "fp1").unwrap();
    let entry = state.entry("tray", "r1").unwrap().unwrap();
    assert_eq!(entry.pending_fingerprint.as_deref(), Some("fp1"));
    assert_eq!(entry.target, None);
    assert_eq!(state.pending("tray").unwrap(), vec!["r1".to_owned()]);
    assert_eq!(state.pending_count("tray").unwrap(), 1);
    assert_eq!(state.pending_count("apideck").unwrap(), 0);

    state
        .record_outcome("tray", "r1", "fp1", &target("a1"), true)
        .unwrap();
    let entry = state.entry("tray", "r1").unwrap().unwrap();
    assert_eq!(
        entry,
        JournalEntry {
            fingerprint: Some("fp1".into()),
            target: Some(target("a1")),
            created: true,
            pending_fingerprint: None
        }
    );

    // A later update is not a creation, but the object stays "created by this tool".
    state.record_intent("tray", "r1", "fp2").unwrap();
    state
        .record_outcome("tray", "r1", "fp2", &target("a1"), false)
        .unwrap();
    let entry = state.entry("tray", "r1").unwrap().unwrap();
    assert!(entry.created);
    assert_eq!(entry.fingerprint.as_deref(), Some("fp2"));
    assert!(state.pending("tray").unwrap().is_empty());
}

#[test]
fn clearing_an_intent_removes_rows_with_nothing_applied_and_keeps_applied_ones() {
    let state = StateStore::temporary().unwrap();
    state.record_intent("tray", "new", "fp").unwrap();
    state.clear_intent("tray", "new").unwrap();
    assert_eq!(state.entry("tray", "new").unwrap(), None);

    state
        .record_outcome("tray", "old", "fp1", &target("a"), true)
        .unwrap();
    state.record_intent("tray", "old", "fp2").unwrap();
    state.clear_intent("tray", "old").unwrap();
    let entry = state.entry("tray", "old").unwrap().unwrap();
    assert_eq!(entry.fingerprint.as_deref(), Some("fp1"));
    assert_eq!(entry.pending_fingerprint, None);
}

#[test]
fn objects_come_in_creation_order_and_providers_are_separate() {
    let state = StateStore::temporary().unwrap();
    state
        .record_outcome("tray", "z", "f", &target("1"), true)
        .unwrap();
    state
        .record_outcome("tray", "a", "f", &target("2"), true)
        .unwrap();
    state
        .record_outcome("tray", "m", "f", &target("3"), false)
        .unwrap();
    state
        .record_outcome("apideck", "q", "f", &target("4"), true)
        .unwrap();
    let order: Vec<(String, bool)> = state
        .objects("tray")
        .unwrap()
        .into_iter()
        .map(|o| (o.record_id, o.created))
        .collect();
    assert_eq!(
        order,
        vec![("z".into(), true), ("a".into(), true), ("m".into(), false)]
    );
    state.forget("tray", "z").unwrap();
    assert_eq!(state.objects("tray").unwrap().len(), 2);
    assert_eq!(state.objects("apideck").unwrap().len(), 1);
}

/// Issue 21 item 6: rollback's `forget` remembers the record, so `status` can say
/// `rolled_back`; a record imported again is the journal's once more.
#[test]
fn forgotten_records_are_remembered_as_rolled_back_until_imported_again() {
    let state = StateStore::temporary().unwrap();
    for id in ["a", "b"] {
        state
            .record_outcome("tray", id, "f", &target(id), true)
            .unwrap();
    }
    assert!(state.rolled_back("tray").unwrap().is_empty());
    state.forget("tray", "b").unwrap();
    state.forget("tray", "a").unwrap();
    assert_eq!(state.rolled_back("tray").unwrap(), ["a", "b"]);
    assert!(state.rolled_back("apideck").unwrap().is_empty());
    state
        .record_outcome("tray", "a", "f", &target("a2"), true)
        .unwrap();
    assert_eq!(state.rolled_back("tray").unwrap(), ["b"]);
}

#[test]
fn reopened_file_keeps_journal_salt_memo_and_creation_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let first_fingerprint;
    {
        let state = StateStore::open(&path).unwrap();
        state
            .record_outcome("tray", "a", "f", &target("1"), true)
            .unwrap();
        state.record_intent("tray", "b", "g").unwrap();
        state.memo().put("tray.users", "acme", "u-1");
        first_fingerprint = state.shared.salt.clone();
    }
    let state = StateStore::open(&path).unwrap();
    assert_eq!(state.shared.salt, first_fingerprint);
    assert_eq!(
        state.memo().get("tray.users", "acme").as_deref(),
        Some("u-1")
    );
    assert_eq!(state.pending("tray").unwrap(), vec!["b".to_owned()]);
    state
        .record_outcome("tray", "c", "f", &target("2"), true)
        .unwrap();
    let order: Vec<String> = state
        .objects("tray")
        .unwrap()
        .into_iter()
        .map(|o| o.record_id)
        .collect();
    assert_eq!(order, vec!["a".to_owned(), "c".to_owned()]);
}

#[test]
fn a_second_run_on_the_same_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let _first = StateStore::open(&path).unwrap();
    let second = StateStore::open(&path);
    let message = format!("{:#}", second.unwrap_err());
    assert!(
        message.contains("in use by another authport run"),
        "{message}"
    );
}

#[test]
fn the_file_lock_is_released_with_the_store_and_a_second_connection_may_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let state = StateStore::open(&path).unwrap();
    for id in ["a", "b", "c"] {
        state.record_intent("tray", id, "fp").unwrap();
    }
    // The checkpointer's way in: another connection copies the WAL back while the store is
    // open (SQLite's exclusive locking mode would refuse it), and every frame gets copied.
    let other = schema::connect(&path).unwrap();
    let (frames, copied) = super::checkpointer::pass(&other).unwrap();
    assert!(frames >= 0 && copied == frames, "{frames} {copied}");
    drop(other);
    drop(state);
    let reopened = StateStore::open(&path).unwrap();
    assert_eq!(reopened.pending("tray").unwrap(), vec!["a", "b", "c"]);
}

#[test]
fn salts_differ_between_state_files() {
    let a = StateStore::temporary().unwrap();
    let b = StateStore::temporary().unwrap();
    assert_ne!(a.shared.salt, b.shared.salt);
    assert_eq!(a.shared.salt.len(), 32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_committed_prepare_claims_reads_and_writes_the_intent_only_when_due() {
    let state = StateStore::temporary().unwrap();
    let keys = state
        .bind("tray", &identity("https://a", None, "k"), false)
        .unwrap();
    let address = keys.claim_key(&json!({ "name": "auth-a" }).as_object().cloned().unwrap());
    let prepare = |id: &'static str, fingerprint: &'static str| {
        let (state, address) = (state.clone(), address);
        async move {
            state
                .prepare("tray", id, &address, fingerprint)
                .await
                .unwrap()
        }
    };

    assert_eq!(
        prepare("r1", "fp1").await,
        Prepared::IntentCommitted(JournalEntry::default())
    );
    assert_eq!(state.pending("tray").unwrap(), vec!["r1".to_owned()]);
    // Another record mapping to the same object is refused, and nothing is written for it.
    assert_eq!(prepare("r2", "fp9").await, Prepared::Conflict("r1".into()));
    assert_eq!(state.entry("tray", "r2").unwrap(), None);
    // An intent without an object: reconcile first, no new intent.
    let Prepared::Unwritten(entry) = prepare("r1", "fp1").await else {
        panic!("expected no intent before a reconcile");
    };
    assert!(entry.awaits_reconcile());

    state
        .commit_outcome("tray", "r1", "fp1", &target("a1"), true)
        .await
        .unwrap();
    let Prepared::Unwritten(entry) = prepare("r1", "fp1").await else {
        panic!("expected an unchanged record to write nothing");
    };
    assert!(entry.is_unchanged("fp1"));
    // Changed content: the intent is written and the entry names the object to update.
    let Prepared::IntentCommitted(entry) = prepare("r1", "fp2").await else {
        panic!("expected an intent for changed content");
    };
    assert_eq!(entry.target, Some(target("a1")));
    state.commit_clear_intent("tray", "r1").await.unwrap();
    let entry = state.entry("tray", "r1").unwrap().unwrap();
    assert_eq!(
        (entry.fingerprint.as_deref(), entry.pending_fingerprint),
        (Some("fp1"), None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_group_commits_each_land_once() {
    let state = StateStore::temporary().unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let state = state.clone();
        tasks.spawn(async move {
            let id = format!("r{i:03}");
            state.commit_intent("tray", &id, "fp").await.unwrap();
            if i % 2 == 0 {
                let created = i % 4 == 0;
                state
                    .commit_outcome("tray", &id, "fp", &target(&id), created)
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
    assert_eq!(state.pending_count("tray").unwrap(), 100);
    let objects = state.objects("tray").unwrap();
    assert_eq!(objects.len(), 100);
    assert_eq!(objects.iter().filter(|o| o.created).count(), 50);
}

#[test]
fn fingerprints_are_keyed_by_the_credential_and_stable_with_it() {
    let state = StateStore::temporary().unwrap();
    let record = mapped("weak-key-1");
    let first = state
        .bind(
            "apideck",
            &identity("https://a", Some("app"), "cred-1"),
            false,
        )
        .unwrap();
    let again = state
        .bind(
            "apideck",
            &identity("https://a", Some("app"), "cred-1"),
            false,
        )
        .unwrap();
    // A rotated credential: same account, so the binding holds, but fingerprints change.
    let rotated = state
        .bind(
            "apideck",
            &identity("https://a", Some("app"), "cred-2"),
            false,
        )
        .unwrap();
    assert_eq!(first.fingerprint(&record), again.fingerprint(&record));
    assert_ne!(first.fingerprint(&record), rotated.fingerprint(&record));
    assert_ne!(
        first.fingerprint(&record),
        first.fingerprint(&mapped("weak-key-2"))
    );

    // The state alone (its salt and a fingerprint) does not check a guess of the secret: the
    // unkeyed hash of the right guess is not what the state holds.
    let body = serde_json::to_vec(record.body.expose()).unwrap();
    let target = serde_json::to_vec(&record.target).unwrap();
    let salt = state.shared.salt.clone();
    let stored = first.fingerprint(&record);
    assert_ne!(unkeyed_fingerprint(&salt, &[&body, &target]), stored);
    assert_ne!(
        unkeyed_fingerprint(&salt, &[b"record", &body, &target]),
        stored
    );
    // Nor does the key derived without the credential.
    let no_credential = StateStore::temporary().unwrap();
    let guess = RunKeys::new(FingerprintKey::derive(
        &SecretString::from(String::new()),
        &salt,
    ));
    assert_ne!(guess.fingerprint(&record), stored);
    drop(no_credential);
    // Claim keys are keyed too.
    assert_ne!(
        first.claim_key(&record.target),
        rotated.claim_key(&record.target)
    );
    // The import computes both at once: the same keys, and not the same as each other.
    assert_eq!(
        first.record_keys(&record),
        (first.fingerprint(&record), first.claim_key(&record.target))
    );
    let claim_hex: String = first
        .claim_key(&record.target)
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_ne!(first.fingerprint(&record), claim_hex);
}

#[test]
fn a_state_is_bound_to_its_target_and_names_what_differs() {
    let state = StateStore::temporary().unwrap();
    let tray = identity("https://tray.example", None, "master-1");
    state.bind("tray", &tray, false).unwrap();
    state.bind("tray", &tray, false).unwrap();

    let refused = |provider: &str, identity: &TargetIdentity| {
        let error = state.bind(provider, identity, false).unwrap_err();
        assert!(error.is::<crate::Refusal>(), "{error:#}");
        format!("{error:#}")
    };
    let message = refused("tray", &identity("http://127.0.0.1:9", None, "master-1"));
    assert!(message.contains("(endpoint differs)"), "{message}");
    let message = refused("tray", &identity("https://tray.example", None, "master-2"));
    assert!(message.contains("(account differs)"), "{message}");
    assert!(!message.contains("master-"), "{message}");
    let message = refused(
        "apideck",
        &identity("https://tray.example", Some("app"), "master-1"),
    );
    assert!(message.contains("(provider, account differs)"), "{message}");
    assert!(message.contains("--allow-target-change"), "{message}");

    // The override records the new target, which then binds without it.
    let moved = identity("http://127.0.0.1:9", None, "master-1");
    state.bind("tray", &moved, true).unwrap();
    state.bind("tray", &moved, false).unwrap();
    assert!(state.bind("tray", &tray, false).is_err());

    // The state holds no credential, only a keyed hash of it.
    let inner = state.shared.lock();
    let account = schema::meta(&inner.connection, "target_account")
        .unwrap()
        .unwrap();
    assert!(account.starts_with("credential:"), "{account}");
    assert!(!account.contains("master-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_with_nothing_written_releases_its_claim() {
    let state = StateStore::temporary().unwrap();
    // `rejected` took the address, its write was refused and nothing was applied.
    assert!(matches!(
        state
            .prepare("tray", "rejected", &key("address"), "fp")
            .await
            .unwrap(),
        Prepared::IntentCommitted(_)
    ));
    state.commit_clear_intent("tray", "rejected").await.unwrap();
    // A corrected record with a new id takes the same address.
    assert!(matches!(
        state
            .prepare("tray", "corrected", &key("address"), "fp")
            .await
            .unwrap(),
        Prepared::IntentCommitted(_)
    ));
    state
        .commit_outcome("tray", "corrected", "fp", &target("a1"), true)
        .await
        .unwrap();
    // A record with an object keeps its claim when a later write is refused.
    state
        .commit_intent("tray", "corrected", "fp2")
        .await
        .unwrap();
    state
        .commit_clear_intent("tray", "corrected")
        .await
        .unwrap();
    assert_eq!(
        state
            .prepare("tray", "third", &key("address"), "fp")
            .await
            .unwrap(),
        Prepared::Conflict("corrected".into())
    );
    // Rollback's `forget` frees it.
    state.forget("tray", "corrected").unwrap();
    assert!(matches!(
        state
            .prepare("tray", "third", &key("address"), "fp")
            .await
            .unwrap(),
        Prepared::IntentCommitted(_)
    ));
}

#[cfg(unix)]
#[test]
fn a_new_state_file_and_its_wal_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let state = StateStore::open(&path).unwrap();
    state.record_intent("tray", "r1", "fp").unwrap();
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    let wal = dir.path().join("state.db-wal");
    assert!(wal.exists());
    assert_eq!(mode(&wal), 0o600);
    let shm = dir.path().join("state.db-shm");
    if shm.exists() {
        assert_eq!(mode(&shm), 0o600);
    }
}

#[test]
fn an_unrelated_database_is_refused_and_left_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    {
        let other = Connection::open(&path).unwrap();
        other
            .execute_batch("CREATE TABLE people (name TEXT); INSERT INTO people VALUES ('ada');")
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let error = StateStore::open(&path).unwrap_err();
    assert!(error.is::<crate::Refusal>(), "{error:#}");
    assert!(
        format!("{error:#}").contains("not an authport state file"),
        "{error:#}"
    );
    assert!(
        std::fs::read(&path).unwrap() == before,
        "the database was modified"
    );
    assert!(!dir.path().join("app.db-wal").exists());

    // A state file of ours keeps opening, and carries our application id.
    let ours = dir.path().join("state.db");
    drop(StateStore::open(&ours).unwrap());
    let state = StateStore::open(&ours).unwrap();
    assert_eq!(application_id(&state), schema::APPLICATION_ID);
}

/// The state file's SQLite `application_id`.
pub(super) fn application_id(state: &StateStore) -> i32 {
    state
        .shared
        .lock()
        .connection
        .query_row("PRAGMA application_id", [], |row| row.get(0))
        .unwrap()
}

#[cfg(unix)]
#[test]
fn no_state_file_is_created_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = dir.path().join("elsewhere");
    // At the state path itself: refused before anything is opened.
    let link = dir.path().join("state.db");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let error = StateStore::open(&link).unwrap_err();
    assert!(error.is::<crate::Refusal>(), "{error:#}");
    assert!(!elsewhere.exists());
    // At its write-ahead log: SQLite opens every file with O_NOFOLLOW, so the open fails.
    let path = dir.path().join("other.db");
    std::os::unix::fs::symlink(&elsewhere, dir.path().join("other.db-wal")).unwrap();
    assert!(StateStore::open(&path).is_err());
    assert!(!elsewhere.exists());
}
