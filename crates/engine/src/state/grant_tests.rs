//! The journal's shared-grant check (issue 19 item 1) and the schema 1 → 2 upgrade.

use super::*;

fn granted(key: &str) -> Option<GrantUse<'_>> {
    Some(GrantUse {
        key,
        shared_allowed: false,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_held_by_another_record_is_refused_before_anything_is_written() {
    let state = StateStore::temporary().unwrap();
    let first = state
        .prepare_with_grant("tray", "a", "addr-a", "fp", granted("g1"))
        .await
        .unwrap();
    assert!(matches!(first, Prepared::IntentCommitted(_)));
    state
        .commit_outcome("tray", "a", "fp", &TargetRef::default(), true)
        .await
        .unwrap();
    // Another record, another address, the same grant: refused naming the holder, and neither
    // its row nor its claim is written.
    assert_eq!(
        state
            .prepare_with_grant("tray", "b", "addr-b", "fp", granted("g1"))
            .await
            .unwrap(),
        Prepared::SharedGrant("a".into())
    );
    assert_eq!(state.entry("tray", "b").unwrap(), None);
    assert!(matches!(
        state.prepare("tray", "c", "addr-b", "fp").await.unwrap(),
        Prepared::IntentCommitted(_)
    ));
    // The holder itself may come back (unchanged, or with a new grant it then holds too).
    assert!(matches!(
        state
            .prepare_with_grant("tray", "a", "addr-a", "fp", granted("g1"))
            .await
            .unwrap(),
        Prepared::Unwritten(_)
    ));
    assert_eq!(state.grant_holder("tray", "g1", "a").unwrap(), None);
    assert_eq!(
        state.grant_holder("tray", "g1", "z").unwrap(),
        Some("a".into())
    );
    // Another provider's journal is another migration.
    assert_eq!(state.grant_holder("nango", "g1", "z").unwrap(), None);
    // Allowed: the second record is prepared, and the grant stays the first one's.
    let allowed = GrantUse {
        key: "g1",
        shared_allowed: true,
    };
    assert!(matches!(
        state
            .prepare_with_grant("tray", "d", "addr-d", "fp", Some(allowed))
            .await
            .unwrap(),
        Prepared::IntentCommitted(_)
    ));
    assert_eq!(
        state.grant_holder("tray", "g1", "z").unwrap(),
        Some("a".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_goes_with_a_record_that_wrote_nothing_or_was_rolled_back() {
    let state = StateStore::temporary().unwrap();
    state
        .prepare_with_grant("tray", "refused", "addr-1", "fp", granted("g"))
        .await
        .unwrap();
    state.commit_clear_intent("tray", "refused").await.unwrap();
    assert_eq!(state.grant_holder("tray", "g", "z").unwrap(), None);

    state
        .prepare_with_grant("tray", "kept", "addr-2", "fp", granted("g"))
        .await
        .unwrap();
    state
        .commit_outcome("tray", "kept", "fp", &TargetRef::default(), true)
        .await
        .unwrap();
    // A later refused update keeps the object, and with it the grant.
    state.commit_intent("tray", "kept", "fp2").await.unwrap();
    state.commit_clear_intent("tray", "kept").await.unwrap();
    assert_eq!(
        state.grant_holder("tray", "g", "z").unwrap(),
        Some("kept".into())
    );
    state.forget("tray", "kept").unwrap();
    assert_eq!(state.grant_holder("tray", "g", "z").unwrap(), None);
}

#[test]
fn a_schema_1_file_is_upgraded_once_and_keeps_its_journal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    {
        // A file as the schema-1 build wrote it.
        let old = Connection::open(&path).unwrap();
        old.execute_batch(schema::SCHEMA).unwrap();
        old.execute_batch(schema::ADDED_TABLES).unwrap();
        old.execute_batch(&format!(
            "PRAGMA application_id = {};",
            schema::APPLICATION_ID
        ))
        .unwrap();
        old.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', '1')",
            [],
        )
        .unwrap();
        old.execute(
            "INSERT INTO journal (provider, record_id, fingerprint, target, created) VALUES ('tray', 'r1', 'f', '{}', 1)",
            [],
        )
        .unwrap();
    }
    let version = |state: &StateStore| {
        schema::meta(&state.shared.lock().connection, "schema_version")
            .unwrap()
            .unwrap()
    };
    {
        let state = StateStore::open(&path).unwrap();
        assert_eq!(version(&state), "2");
        assert_eq!(state.objects("tray").unwrap().len(), 1);
        assert_eq!(state.grant_holder("tray", "g", "z").unwrap(), None);
        // The upgrade ran: a second pass has nothing to do.
        assert!(!schema::migrate(&state.shared.lock().connection).unwrap());
    }
    let state = StateStore::open(&path).unwrap();
    assert_eq!(version(&state), "2");
    assert_eq!(state.objects("tray").unwrap().len(), 1);
}
