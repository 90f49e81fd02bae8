//! The journal's shared-grant check (issue 19 item 1).

use super::*;

fn granted(key: &Key) -> Option<GrantUse<'_>> {
    Some(GrantUse {
        key,
        shared_allowed: false,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_held_by_another_record_is_refused_before_anything_is_written() {
    let state = StateStore::temporary().unwrap();
    let first = state
        .prepare_with_grant("tray", "a", &key("addr-a"), "fp", granted(&key("g1")))
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
            .prepare_with_grant("tray", "b", &key("addr-b"), "fp", granted(&key("g1")))
            .await
            .unwrap(),
        Prepared::SharedGrant("a".into())
    );
    assert_eq!(state.entry("tray", "b").unwrap(), None);
    assert!(matches!(
        state
            .prepare("tray", "c", &key("addr-b"), "fp")
            .await
            .unwrap(),
        Prepared::IntentCommitted(_)
    ));
    // The holder itself may come back (unchanged, or with a new grant it then holds too).
    assert!(matches!(
        state
            .prepare_with_grant("tray", "a", &key("addr-a"), "fp", granted(&key("g1")))
            .await
            .unwrap(),
        Prepared::Unwritten(_)
    ));
    assert_eq!(state.grant_holder("tray", &key("g1"), "a").unwrap(), None);
    assert_eq!(
        state.grant_holder("tray", &key("g1"), "z").unwrap(),
        Some("a".into())
    );
    // Another provider's journal is another migration.
    assert_eq!(state.grant_holder("nango", &key("g1"), "z").unwrap(), None);
    // Allowed: the second record is prepared, and the grant stays the first one's.
    let allowed = GrantUse {
        key: &key("g1"),
        shared_allowed: true,
    };
    assert!(matches!(
        state
            .prepare_with_grant("tray", "d", &key("addr-d"), "fp", Some(allowed))
            .await
            .unwrap(),
        Prepared::IntentCommitted(_)
    ));
    assert_eq!(
        state.grant_holder("tray", &key("g1"), "z").unwrap(),
        Some("a".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_goes_with_a_record_that_wrote_nothing_or_was_rolled_back() {
    let state = StateStore::temporary().unwrap();
    state
        .prepare_with_grant("tray", "refused", &key("addr-1"), "fp", granted(&key("g")))
        .await
        .unwrap();
    state.commit_clear_intent("tray", "refused").await.unwrap();
    assert_eq!(state.grant_holder("tray", &key("g"), "z").unwrap(), None);

    state
        .prepare_with_grant("tray", "kept", &key("addr-2"), "fp", granted(&key("g")))
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
        state.grant_holder("tray", &key("g"), "z").unwrap(),
        Some("kept".into())
    );
    state.forget("tray", "kept").unwrap();
    assert_eq!(state.grant_holder("tray", &key("g"), "z").unwrap(), None);
    // Another record takes the rolled-back record's grant (its row is taken over), and holds it.
    assert!(matches!(
        state
            .prepare_with_grant("tray", "other", &key("addr-3"), "fp", granted(&key("g")))
            .await
            .unwrap(),
        Prepared::IntentCommitted(_)
    ));
    assert_eq!(
        state.grant_holder("tray", &key("g"), "z").unwrap(),
        Some("other".into())
    );
}

/// Released claims and grants stay until a sweep (rollback's end), which keeps held ones. Until
/// then a record imported again holds what it held before (see `journal.rs`): the safe side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_rows_are_swept_and_a_returning_record_holds_its_old_ones_until_then() {
    let state = StateStore::temporary().unwrap();
    let count = |table: &str| -> i64 {
        state
            .shared
            .lock()
            .connection
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
                row.get(0)
            })
            .unwrap()
    };
    // `moved` held address 1 and grant 1, then (its target and token changed) 2 and 2 too.
    for (address, grant) in [("addr-1", "g-1"), ("addr-2", "g-2")] {
        state
            .prepare_with_grant("tray", "moved", &key(address), "fp", granted(&key(grant)))
            .await
            .unwrap();
        state
            .commit_outcome("tray", "moved", "fp", &TargetRef::default(), true)
            .await
            .unwrap();
    }
    state
        .prepare_with_grant("tray", "kept", &key("addr-k"), "fp", granted(&key("g-k")))
        .await
        .unwrap();
    state.forget("tray", "moved").unwrap();
    // Imported again at address 2: address 1 is its own again until the sweep.
    state
        .prepare("tray", "moved", &key("addr-2"), "fp")
        .await
        .unwrap();
    assert_eq!(
        state
            .prepare("tray", "new", &key("addr-1"), "fp")
            .await
            .unwrap(),
        Prepared::Conflict("moved".into())
    );
    state.forget("tray", "moved").unwrap();
    assert_eq!((count("claims"), count("grants")), (3, 3));
    assert_eq!(state.sweep_released().unwrap(), 4);
    assert_eq!((count("claims"), count("grants")), (1, 1));
    assert_eq!(
        state.grant_holder("tray", &key("g-k"), "z").unwrap(),
        Some("kept".into())
    );
    assert_eq!(state.sweep_released().unwrap(), 0);
    // After the sweep, `moved` imported again holds only what it claims now.
    state
        .prepare("tray", "moved", &key("addr-2"), "fp")
        .await
        .unwrap();
    assert!(matches!(
        state
            .prepare("tray", "new", &key("addr-1"), "fp")
            .await
            .unwrap(),
        Prepared::IntentCommitted(_)
    ));
}
