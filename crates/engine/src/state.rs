//! The `--state` journal: one SQLite file (WAL mode) per migration.
//!
//! For every record it keeps what was applied at the target (the salted fingerprint of the
//! mapped request, the target's non-secret ids, whether this tool created the object) and, while
//! a write is in flight, the *intent* to write (the fingerprint about to be sent). The engine
//! commits the intent before the write and the outcome after it, so a run killed at any instant
//! leaves each record in one of three states that the next run knows how to finish:
//!
//! - no row, or no intent: nothing is in flight; import (or skip as `unchanged`);
//! - intent without outcome: the write may have happened; reconcile before writing again;
//! - outcome: done; a changed fingerprint means update the object the outcome names.
//!
//! Durability: the database runs with `journal_mode=WAL` and `synchronous=NORMAL`. Every commit
//! is in the operating system's hands when it returns, so a killed process (SIGKILL, panic,
//! OOM) loses nothing. A power loss or kernel crash may roll back the last commits made since
//! the previous WAL sync; the records concerned are then imported again on the next run. For
//! providers whose create is idempotent (Apideck's import is an upsert) that is harmless; for
//! Tray, an intent lost that way cannot be reconciled and may duplicate the few records that were
//! in flight at that instant. `StateStore::open_durable` trades speed for `synchronous=FULL`,
//! which closes that window.
//!
//! The state never holds a secret: ids, fingerprints (salted with a random per-file salt) and the
//! providers' non-secret notes only.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context as _;
use authport_core::{Memo, TargetRef};
use rand::RngCore as _;
use rusqlite::{Connection, OptionalExtension as _, params};

/// The schema version this build writes; older files are migrated on open (none yet).
const SCHEMA_VERSION: &str = "1";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS journal (
    provider            TEXT    NOT NULL,
    record_id           TEXT    NOT NULL,
    -- Salted fingerprint of the content last applied at the target (NULL: nothing applied).
    fingerprint         TEXT,
    -- JSON object of the target's non-secret ids (TargetRef) of the applied object.
    target              TEXT,
    -- 1 when this tool created the object (rollback removes it), kept across later updates.
    created             INTEGER NOT NULL DEFAULT 0,
    -- Creation order, so rollback removes in reverse.
    created_seq         INTEGER,
    -- The fingerprint of a write that may be in flight (intent without outcome).
    pending_fingerprint TEXT,
    PRIMARY KEY (provider, record_id)
) WITHOUT ROWID;
-- Which record owns each target address (MappedRecord.target): two records must never
-- write the same object at the target.
CREATE TABLE IF NOT EXISTS claims (
    provider   TEXT NOT NULL,
    target_key TEXT NOT NULL,
    record_id  TEXT NOT NULL,
    PRIMARY KEY (provider, target_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS memo (
    namespace TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
";

/// What the journal knows about one record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JournalEntry {
    /// Fingerprint of the applied content, if any write succeeded.
    pub fingerprint: Option<String>,
    /// The applied object's ids, if any write succeeded.
    pub target: Option<TargetRef>,
    /// This tool created the object.
    pub created: bool,
    /// A write of this fingerprint was started and its outcome never recorded.
    pub pending_fingerprint: Option<String>,
}

impl JournalEntry {
    /// The applied object, for an update instead of a second create.
    pub fn prior(&self) -> Option<authport_core::PriorImport> {
        self.target
            .clone()
            .map(|target| authport_core::PriorImport { target })
    }
}

/// One journalled object, as verify and rollback walk them.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalObject {
    pub record_id: String,
    pub target: TargetRef,
    pub created: bool,
}

struct Inner {
    connection: Connection,
    next_created_seq: i64,
}

struct Shared {
    inner: Mutex<Inner>,
    salt: Vec<u8>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The `--state` journal. Cheap to share by reference; all methods are synchronous and short
/// (one small SQLite transaction each).
#[derive(Clone)]
pub struct StateStore {
    shared: Arc<Shared>,
    description: String,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("location", &self.description)
            .finish_non_exhaustive()
    }
}

impl StateStore {
    /// Creates or reopens (resume) the state file at `path`. Fails when another run holds it.
    pub fn open(path: &Path) -> anyhow::Result<StateStore> {
        Self::open_file(path, "NORMAL")
    }

    /// Like [`StateStore::open`], with `synchronous=FULL`: every commit reaches the disk before
    /// the write it guards is sent, so even a power loss cannot lose an intent (slower).
    pub fn open_durable(path: &Path) -> anyhow::Result<StateStore> {
        Self::open_file(path, "FULL")
    }

    fn open_file(path: &Path, synchronous: &str) -> anyhow::Result<StateStore> {
        let connection = Connection::open(path)
            .with_context(|| format!("cannot open state file {}", path.display()))?;
        // Exclusive locking: a second run on the same state file fails at once instead of
        // racing this one (two runs would import the same records twice).
        let configured = connection
            .execute_batch(&format!(
                "PRAGMA locking_mode=EXCLUSIVE; PRAGMA busy_timeout=0; \
                 PRAGMA journal_mode=WAL; PRAGMA synchronous={synchronous};"
            ))
            .map_err(anyhow::Error::from);
        configured
            .and_then(|()| Self::initialise(connection, path.display().to_string()))
            .map_err(|error| {
                if is_busy(&error) {
                    anyhow::anyhow!(
                        "state file {} is in use by another authport run",
                        path.display()
                    )
                } else {
                    error.context(format!("cannot initialise state file {}", path.display()))
                }
            })
    }

    /// A state for one run only (runs without `--state`: no resume). It lives in a private
    /// temporary file that SQLite deletes on close, so a large run does not grow memory.
    pub fn temporary() -> anyhow::Result<StateStore> {
        // An empty path is SQLite's private temporary database: pages beyond the cache go to disk.
        let connection = Connection::open("").context("cannot open a temporary state")?;
        connection.execute_batch("PRAGMA synchronous=OFF;")?;
        Self::initialise(connection, "(temporary)".to_owned())
    }

    fn initialise(connection: Connection, description: String) -> anyhow::Result<StateStore> {
        connection.execute_batch(SCHEMA)?;
        // The write below takes the exclusive lock now rather than at the first record.
        connection.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)
             ON CONFLICT (key) DO NOTHING",
            params![SCHEMA_VERSION],
        )?;
        let salt_hex: Option<String> = connection
            .query_row("SELECT value FROM meta WHERE key = 'salt'", [], |row| {
                row.get(0)
            })
            .optional()?;
        let salt = match salt_hex {
            Some(hex) => decode_hex(&hex).context("state file has a malformed salt")?,
            None => {
                let mut salt = vec![0u8; 32];
                rand::rng().fill_bytes(&mut salt);
                connection.execute(
                    "INSERT INTO meta (key, value) VALUES ('salt', ?1)",
                    params![encode_hex(&salt)],
                )?;
                salt
            }
        };
        let next_created_seq: i64 = connection.query_row(
            "SELECT COALESCE(MAX(created_seq), 0) + 1 FROM journal",
            [],
            |row| row.get(0),
        )?;
        Ok(StateStore {
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner {
                    connection,
                    next_created_seq,
                }),
                salt,
            }),
            description,
        })
    }

    /// The providers' durable notes, stored in this state.
    pub fn memo(&self) -> Arc<dyn Memo> {
        Arc::new(StateMemo {
            shared: self.shared.clone(),
        })
    }

    /// The salted fingerprint of a mapped request (body + target ids).
    pub fn fingerprint(&self, mapped: &authport_core::MappedRecord) -> String {
        let body = serde_json::to_vec(mapped.body.expose()).unwrap_or_default();
        let target = serde_json::to_vec(&mapped.target).unwrap_or_default();
        authport_core::salted_fingerprint(&self.shared.salt, &[&body, &target])
    }

    /// Claims the target address a record maps to (`MappedRecord.target`) for that record, and
    /// returns the id of another record that claimed it first, if any. Two records writing one
    /// object (an Apideck connection per consumer and connector, a Tray auth name per owner)
    /// would overwrite or adopt each other's: one of them would be silently lost.
    pub fn claim_target(
        &self,
        provider: &str,
        record_id: &str,
        target: &serde_json::Map<String, serde_json::Value>,
    ) -> anyhow::Result<Option<String>> {
        let target_json = serde_json::to_vec(target)?;
        let key = authport_core::salted_fingerprint(&self.shared.salt, &[&target_json]);
        let inner = self.shared.lock();
        inner
            .connection
            .prepare_cached(
                "INSERT INTO claims (provider, target_key, record_id) VALUES (?1, ?2, ?3)
                 ON CONFLICT (provider, target_key) DO NOTHING",
            )
            .and_then(|mut statement| statement.execute(params![provider, key, record_id]))
            .context("cannot write a target claim to the state journal")?;
        let owner: String = inner
            .connection
            .prepare_cached("SELECT record_id FROM claims WHERE provider = ?1 AND target_key = ?2")
            .and_then(|mut statement| statement.query_row(params![provider, key], |row| row.get(0)))
            .context("cannot read a target claim from the state journal")?;
        Ok((owner != record_id).then_some(owner))
    }

    /// What the journal knows about one record.
    pub fn entry(&self, provider: &str, record_id: &str) -> anyhow::Result<Option<JournalEntry>> {
        let inner = self.shared.lock();
        let row = inner
            .connection
            .prepare_cached(
                "SELECT fingerprint, target, created, pending_fingerprint FROM journal
                 WHERE provider = ?1 AND record_id = ?2",
            )?
            .query_row(params![provider, record_id], |row| {
                Ok((
                    row.get::<_, Option<String>>(0)?,
                    row.get::<_, Option<String>>(1)?,
                    row.get::<_, bool>(2)?,
                    row.get::<_, Option<String>>(3)?,
                ))
            })
            .optional()
            .context("cannot read the state journal")?;
        let Some((fingerprint, target, created, pending_fingerprint)) = row else {
            return Ok(None);
        };
        Ok(Some(JournalEntry {
            fingerprint,
            target: target.map(|json| parse_target(&json)).transpose()?,
            created,
            pending_fingerprint,
        }))
    }

    /// Commits the intent to write `fingerprint` for this record. Must return before the write.
    pub fn record_intent(
        &self,
        provider: &str,
        record_id: &str,
        fingerprint: &str,
    ) -> anyhow::Result<()> {
        let inner = self.shared.lock();
        inner
            .connection
            .prepare_cached(
                "INSERT INTO journal (provider, record_id, pending_fingerprint) VALUES (?1, ?2, ?3)
                 ON CONFLICT (provider, record_id) DO UPDATE SET pending_fingerprint = excluded.pending_fingerprint",
            )
            .and_then(|mut statement| statement.execute(params![provider, record_id, fingerprint]))
            .context("cannot write intent to the state journal")?;
        Ok(())
    }

    /// Commits the outcome of a write: the applied content and object. `created_now` marks an
    /// object this write created (it stays marked across later updates).
    pub fn record_outcome(
        &self,
        provider: &str,
        record_id: &str,
        fingerprint: &str,
        target: &TargetRef,
        created_now: bool,
    ) -> anyhow::Result<()> {
        let mut inner = self.shared.lock();
        let seq = inner.next_created_seq;
        let target_json = serde_json::to_string(target)?;
        inner
            .connection
            .prepare_cached(
                "INSERT INTO journal (provider, record_id, fingerprint, target, created, created_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, CASE WHEN ?5 THEN ?6 END)
                 ON CONFLICT (provider, record_id) DO UPDATE SET
                     fingerprint = excluded.fingerprint,
                     target = excluded.target,
                     created = journal.created OR excluded.created,
                     created_seq = CASE WHEN journal.created THEN journal.created_seq
                                        ELSE excluded.created_seq END,
                     pending_fingerprint = NULL",
            )
            .and_then(|mut statement| {
                statement.execute(params![provider, record_id, fingerprint, target_json, created_now, seq])
            })
            .context("cannot write outcome to the state journal")?;
        if created_now {
            inner.next_created_seq += 1;
        }
        Ok(())
    }

    /// Forgets an intent whose write certainly did not happen (rejected, not sent, retries of
    /// a transient failure exhausted). A row with nothing applied is removed.
    pub fn clear_intent(&self, provider: &str, record_id: &str) -> anyhow::Result<()> {
        let inner = self.shared.lock();
        // Two statements, each safe on its own if the process dies between them: the first
        // only touches rows with nothing applied, the second only rows with an object.
        inner
            .connection
            .prepare_cached("DELETE FROM journal WHERE provider = ?1 AND record_id = ?2 AND target IS NULL")
            .and_then(|mut statement| statement.execute(params![provider, record_id]))
            .and_then(|_| {
                inner
                    .connection
                    .prepare_cached(
                        "UPDATE journal SET pending_fingerprint = NULL WHERE provider = ?1 AND record_id = ?2",
                    )
                    .and_then(|mut statement| statement.execute(params![provider, record_id]))
            })
            .context("cannot clear intent in the state journal")?;
        Ok(())
    }

    /// Removes a record's row after rollback removed its object.
    pub fn forget(&self, provider: &str, record_id: &str) -> anyhow::Result<()> {
        let inner = self.shared.lock();
        inner
            .connection
            .execute(
                "DELETE FROM journal WHERE provider = ?1 AND record_id = ?2",
                params![provider, record_id],
            )
            .context("cannot update the state journal")?;
        Ok(())
    }

    /// Every applied object of `provider`, in creation order (objects only updated last).
    pub fn objects(&self, provider: &str) -> anyhow::Result<Vec<JournalObject>> {
        let inner = self.shared.lock();
        let mut statement = inner.connection.prepare(
            "SELECT record_id, target, created FROM journal
             WHERE provider = ?1 AND target IS NOT NULL
             ORDER BY created_seq IS NULL, created_seq, record_id",
        )?;
        let rows = statement.query_map(params![provider], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, bool>(2)?,
            ))
        })?;
        let mut objects = Vec::new();
        for row in rows {
            let (record_id, target, created) = row.context("cannot read the state journal")?;
            objects.push(JournalObject {
                record_id,
                target: parse_target(&target)?,
                created,
            });
        }
        Ok(objects)
    }

    /// How many records of `provider` have an intent and no outcome.
    pub fn pending_count(&self, provider: &str) -> anyhow::Result<u64> {
        let inner = self.shared.lock();
        let count: i64 = inner.connection.query_row(
            "SELECT COUNT(*) FROM journal WHERE provider = ?1 AND pending_fingerprint IS NOT NULL",
            params![provider],
            |row| row.get(0),
        )?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Records of `provider` with an intent and no outcome (a crash or an unresolved ambiguous
    /// write): the next import reconciles them.
    pub fn pending(&self, provider: &str) -> anyhow::Result<Vec<String>> {
        let inner = self.shared.lock();
        let mut statement = inner.connection.prepare(
            "SELECT record_id FROM journal WHERE provider = ?1 AND pending_fingerprint IS NOT NULL
             ORDER BY record_id",
        )?;
        let ids = statement
            .query_map(params![provider], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ids)
    }
}

/// The providers' notes, in the `memo` table.
struct StateMemo {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for StateMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateMemo")
    }
}

impl Memo for StateMemo {
    fn get(&self, namespace: &str, key: &str) -> Option<String> {
        let inner = self.shared.lock();
        let value = inner
            .connection
            .query_row(
                "SELECT value FROM memo WHERE namespace = ?1 AND key = ?2",
                params![namespace, key],
                |row| row.get(0),
            )
            .optional();
        value.unwrap_or_else(|error| {
            tracing::warn!(namespace, "cannot read a note from the state: {error}");
            None
        })
    }

    fn put(&self, namespace: &str, key: &str, value: &str) {
        let inner = self.shared.lock();
        let written = inner.connection.execute(
            "INSERT INTO memo (namespace, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
            params![namespace, key, value],
        );
        if let Err(error) = written {
            // A lost note only costs a look-up on the next run.
            tracing::warn!(namespace, "cannot write a note to the state: {error}");
        }
    }
}

fn parse_target(json: &str) -> anyhow::Result<TargetRef> {
    serde_json::from_str(json).context("state journal holds a malformed target")
}

fn is_busy(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<rusqlite::Error>(),
            Some(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    })
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(hex: &str) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(hex.len() % 2 == 0, "odd length");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).context("not hex"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
    fn salts_differ_between_state_files() {
        let a = StateStore::temporary().unwrap();
        let b = StateStore::temporary().unwrap();
        assert_ne!(a.shared.salt, b.shared.salt);
        assert_eq!(a.shared.salt.len(), 32);
    }
}
