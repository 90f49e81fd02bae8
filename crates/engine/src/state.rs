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
//! The import's per-record writes are group-committed (see `crate::group_commit`): the writes of
//! all workers waiting at one moment share a transaction, and each returns once it is committed.
//!
//! The state never holds a secret: ids, fingerprints (salted with a random per-file salt) and the
//! providers' non-secret notes only.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context as _;
use authport_core::{Memo, TargetRef};
use rand::RngCore as _;
use rusqlite::{Connection, OptionalExtension as _, params};

use crate::group_commit::{GroupCommit, Transactional};

/// The schema version this build writes; older files are migrated on open (none yet).
const SCHEMA_VERSION: &str = "1";

/// WAL pages between automatic checkpoints (SQLite's default: 1000). A checkpoint copies every
/// page changed since the last one back into the database file, once however often it changed:
/// spacing them out turns many copies of the same hot pages into one. The WAL file may grow to
/// about this many 4 KiB pages (40 MB) before it is reused.
const WAL_AUTOCHECKPOINT_PAGES: u32 = 10_000;

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

/// What [`StateStore::prepare`] found and did for one record, in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Prepared {
    /// Another record (this id) claimed the same target object first; nothing was written.
    Conflict(String),
    /// The intent to write is committed: send the write now.
    IntentCommitted(JournalEntry),
    /// No intent written: the record is unchanged, or an earlier write must be reconciled
    /// first (see [`JournalEntry::awaits_reconcile`]).
    Unwritten(JournalEntry),
}

impl JournalEntry {
    /// An intent without any applied object: a create may have reached the target before the
    /// last run died, so ask the target before writing again.
    pub fn awaits_reconcile(&self) -> bool {
        self.pending_fingerprint.is_some() && self.target.is_none()
    }

    /// The content with this fingerprint is applied and nothing is in flight.
    pub fn is_unchanged(&self, fingerprint: &str) -> bool {
        self.pending_fingerprint.is_none()
            && self.target.is_some()
            && self.fingerprint.as_deref() == Some(fingerprint)
    }
}

/// The connection and the journal's SQL. Each method is a statement or two; whether they
/// autocommit (the synchronous methods of [`StateStore`]) or join a group commit (its `async`
/// methods) is up to the caller.
struct Inner {
    connection: Connection,
    next_created_seq: i64,
    /// `next_created_seq` when the open transaction began, restored if it rolls back.
    seq_at_begin: i64,
}

impl Transactional for Inner {
    fn begin(&mut self) -> anyhow::Result<()> {
        self.connection.execute_batch("BEGIN")?;
        self.seq_at_begin = self.next_created_seq;
        Ok(())
    }

    fn commit(&mut self) -> anyhow::Result<()> {
        self.connection.execute_batch("COMMIT")?;
        Ok(())
    }

    fn rollback(&mut self) {
        if !self.connection.is_autocommit()
            && let Err(error) = self.connection.execute_batch("ROLLBACK")
        {
            tracing::error!("cannot roll back a state journal transaction: {error}");
        }
        self.next_created_seq = self.seq_at_begin;
    }
}

impl Inner {
    fn claim(&self, provider: &str, key: &str, record_id: &str) -> anyhow::Result<Option<String>> {
        self.connection
            .prepare_cached(
                "INSERT INTO claims (provider, target_key, record_id) VALUES (?1, ?2, ?3)
                 ON CONFLICT (provider, target_key) DO NOTHING",
            )
            .and_then(|mut statement| statement.execute(params![provider, key, record_id]))
            .context("cannot write a target claim to the state journal")?;
        let owner: String = self
            .connection
            .prepare_cached("SELECT record_id FROM claims WHERE provider = ?1 AND target_key = ?2")
            .and_then(|mut statement| statement.query_row(params![provider, key], |row| row.get(0)))
            .context("cannot read a target claim from the state journal")?;
        Ok((owner != record_id).then_some(owner))
    }

    fn entry(&self, provider: &str, record_id: &str) -> anyhow::Result<Option<JournalEntry>> {
        let row = self
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

    fn record_intent(
        &self,
        provider: &str,
        record_id: &str,
        fingerprint: &str,
    ) -> anyhow::Result<()> {
        self.connection
            .prepare_cached(
                "INSERT INTO journal (provider, record_id, pending_fingerprint) VALUES (?1, ?2, ?3)
                 ON CONFLICT (provider, record_id) DO UPDATE SET pending_fingerprint = excluded.pending_fingerprint",
            )
            .and_then(|mut statement| statement.execute(params![provider, record_id, fingerprint]))
            .context("cannot write intent to the state journal")?;
        Ok(())
    }

    /// Claim, entry and (when due) intent of one record: see [`StateStore::prepare`].
    fn prepare(
        &self,
        provider: &str,
        record_id: &str,
        claim_key: &str,
        fingerprint: &str,
    ) -> anyhow::Result<Prepared> {
        if let Some(owner) = self.claim(provider, claim_key, record_id)? {
            return Ok(Prepared::Conflict(owner));
        }
        let entry = self.entry(provider, record_id)?.unwrap_or_default();
        if entry.awaits_reconcile() || entry.is_unchanged(fingerprint) {
            return Ok(Prepared::Unwritten(entry));
        }
        self.record_intent(provider, record_id, fingerprint)?;
        Ok(Prepared::IntentCommitted(entry))
    }

    fn record_outcome(
        &mut self,
        provider: &str,
        record_id: &str,
        fingerprint: &str,
        target_json: &str,
        created_now: bool,
    ) -> anyhow::Result<()> {
        let seq = self.next_created_seq;
        self.connection
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
            self.next_created_seq += 1;
        }
        Ok(())
    }

    fn clear_intent(&self, provider: &str, record_id: &str) -> anyhow::Result<()> {
        // Two statements, each safe on its own if the process dies between them (in autocommit):
        // the first only touches rows with nothing applied, the second only rows with an object.
        self.connection
            .prepare_cached("DELETE FROM journal WHERE provider = ?1 AND record_id = ?2 AND target IS NULL")
            .and_then(|mut statement| statement.execute(params![provider, record_id]))
            .and_then(|_| {
                self.connection
                    .prepare_cached(
                        "UPDATE journal SET pending_fingerprint = NULL WHERE provider = ?1 AND record_id = ?2",
                    )
                    .and_then(|mut statement| statement.execute(params![provider, record_id]))
            })
            .context("cannot clear intent in the state journal")?;
        Ok(())
    }
}

struct Shared {
    /// Runs the `async` methods' statements in group commits. Dropped before `inner`'s last
    /// reference: its drop waits for the writer thread, so the state file's lock is released
    /// when the last handle goes.
    writer: GroupCommit<Inner>,
    inner: Arc<Mutex<Inner>>,
    salt: Vec<u8>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The `--state` journal. Cheap to share by reference.
///
/// Two ways in: the synchronous methods run their statements at once, each committing on its
/// own (verify, rollback, tests, rare paths); the `async` methods used per record by the import
/// join a group commit (see [`crate::group_commit`]) and return once their transaction is
/// committed.
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
                 PRAGMA journal_mode=WAL; PRAGMA synchronous={synchronous}; \
                 PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES};"
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
        let inner = Arc::new(Mutex::new(Inner {
            connection,
            next_created_seq,
            seq_at_begin: next_created_seq,
        }));
        Ok(StateStore {
            shared: Arc::new(Shared {
                writer: GroupCommit::start(inner.clone())?,
                inner,
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

    /// The key a target address is claimed under: salted, so the state holds no raw names.
    fn claim_key(
        &self,
        target: &serde_json::Map<String, serde_json::Value>,
    ) -> anyhow::Result<String> {
        let target_json = serde_json::to_vec(target)?;
        Ok(authport_core::salted_fingerprint(
            &self.shared.salt,
            &[&target_json],
        ))
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
        let key = self.claim_key(target)?;
        self.shared.lock().claim(provider, &key, record_id)
    }

    /// What the journal knows about one record.
    pub fn entry(&self, provider: &str, record_id: &str) -> anyhow::Result<Option<JournalEntry>> {
        self.shared.lock().entry(provider, record_id)
    }

    /// Commits the intent to write `fingerprint` for this record. Must return before the write.
    pub fn record_intent(
        &self,
        provider: &str,
        record_id: &str,
        fingerprint: &str,
    ) -> anyhow::Result<()> {
        self.shared
            .lock()
            .record_intent(provider, record_id, fingerprint)
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
        let target_json = serde_json::to_string(target)?;
        self.shared.lock().record_outcome(
            provider,
            record_id,
            fingerprint,
            &target_json,
            created_now,
        )
    }

    /// Forgets an intent whose write certainly did not happen (rejected, not sent, retries of
    /// a transient failure exhausted). A row with nothing applied is removed.
    pub fn clear_intent(&self, provider: &str, record_id: &str) -> anyhow::Result<()> {
        self.shared.lock().clear_intent(provider, record_id)
    }

    /// The start of one record's import, in one group-committed transaction: claims its target
    /// address ([`StateStore::claim_target`]), reads its entry and, unless the record is
    /// unchanged or awaits a reconcile, writes the intent to send `fingerprint`. Returns once
    /// that transaction is committed, so an [`Prepared::IntentCommitted`] record may be sent.
    pub async fn prepare(
        &self,
        provider: &str,
        record_id: &str,
        target: &serde_json::Map<String, serde_json::Value>,
        fingerprint: &str,
    ) -> anyhow::Result<Prepared> {
        let claim_key = self.claim_key(target)?;
        let (provider, record_id, fingerprint) = (
            provider.to_owned(),
            record_id.to_owned(),
            fingerprint.to_owned(),
        );
        self.shared
            .writer
            .run(move |inner| inner.prepare(&provider, &record_id, &claim_key, &fingerprint))
            .await
    }

    /// [`StateStore::record_intent`], group-committed: returns once the intent is committed.
    pub async fn commit_intent(
        &self,
        provider: &str,
        record_id: &str,
        fingerprint: &str,
    ) -> anyhow::Result<()> {
        let (provider, record_id, fingerprint) = (
            provider.to_owned(),
            record_id.to_owned(),
            fingerprint.to_owned(),
        );
        self.shared
            .writer
            .run(move |inner| inner.record_intent(&provider, &record_id, &fingerprint))
            .await
    }

    /// [`StateStore::record_outcome`], group-committed: returns once the outcome is committed.
    pub async fn commit_outcome(
        &self,
        provider: &str,
        record_id: &str,
        fingerprint: &str,
        target: &TargetRef,
        created_now: bool,
    ) -> anyhow::Result<()> {
        let target_json = serde_json::to_string(target)?;
        let (provider, record_id, fingerprint) = (
            provider.to_owned(),
            record_id.to_owned(),
            fingerprint.to_owned(),
        );
        self.shared
            .writer
            .run(move |inner| {
                inner.record_outcome(
                    &provider,
                    &record_id,
                    &fingerprint,
                    &target_json,
                    created_now,
                )
            })
            .await
    }

    /// [`StateStore::clear_intent`], group-committed (both statements in one transaction).
    pub async fn commit_clear_intent(&self, provider: &str, record_id: &str) -> anyhow::Result<()> {
        let (provider, record_id) = (provider.to_owned(), record_id.to_owned());
        self.shared
            .writer
            .run(move |inner| inner.clear_intent(&provider, &record_id))
            .await
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn group_committed_prepare_claims_reads_and_writes_the_intent_only_when_due() {
        let state = StateStore::temporary().unwrap();
        let address = json!({ "name": "auth-a" }).as_object().cloned().unwrap();
        let prepare = |id: &'static str, fingerprint: &'static str| {
            let (state, address) = (state.clone(), address.clone());
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
}
