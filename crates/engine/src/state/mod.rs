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
//! in flight at that instant. While a run writes, the checkpointer syncs the WAL every 200 ms
//! (`checkpointer`), which bounds that window to about as long. `StateStore::open_durable` trades
//! speed for `synchronous=FULL`, which closes it.
//!
//! The import's per-record writes are group-committed (see `crate::group_commit`): the writes of
//! all workers waiting at one moment share a transaction, and each returns once it is committed.
//!
//! The state never holds a secret: ids, fingerprints keyed by the vendor credential and a random
//! per-file salt (see [`target`]), the target's non-secret identity and the providers' notes.
//!
//! Modules: [`schema`] (the file: tables, application id, opening, the run's file lock),
//! [`journal`] (the rows and their SQL), [`target`] (which target the file belongs to,
//! fingerprint keys), `memo` (the providers' notes), `checkpointer` (copies the WAL back off the
//! writer's thread).

mod checkpointer;
mod journal;
mod memo;
pub mod schema;
pub mod target;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context as _;
use authport_core::{FingerprintKey, Memo, TargetIdentity, TargetRef};
use rusqlite::{Connection, params};

use crate::group_commit::GroupCommit;

use checkpointer::Checkpointer;

pub use journal::{GrantUse, JournalEntry, JournalObject, Prepared};
pub use target::{Key, RunKeys, TargetPart};

use journal::{Inner, parse_target};
use memo::StateMemo;
use target::RecordedTarget;

pub(crate) struct Shared {
    /// Copies the WAL back off the writer's thread (state files only). Dropped first: its
    /// connection must be closed before the last one, which removes the WAL.
    _checkpointer: Option<Checkpointer>,
    /// Runs the `async` methods' statements in group commits. Dropped before `inner`'s last
    /// reference: its drop waits for the writer thread, so the state file's lock is released
    /// when the last handle goes.
    writer: GroupCommit<Inner>,
    inner: Arc<Mutex<Inner>>,
    salt: Vec<u8>,
    /// The open state file whose lock keeps other runs out; released last.
    _lock: Option<std::fs::File>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The `--state` journal. Cheap to share by reference.
///
/// The import's per-record writes (`prepare`, `commit_*`) join a group commit (see
/// [`crate::group_commit`]) and return once their transaction is committed; the few synchronous
/// writes (binding, rollback's `forget`) commit on their own.
#[derive(Clone)]
pub struct StateStore {
    shared: Arc<Shared>,
    description: String,
    /// The state file, `None` for a temporary state.
    path: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("location", &self.description)
            .finish_non_exhaustive()
    }
}

impl StateStore {
    /// Creates or reopens (resume) the state file at `path`. Fails when another run holds it,
    /// and refuses ([`crate::Refusal`]) a symlink or a database that is not an authport state.
    pub fn open(path: &Path) -> anyhow::Result<StateStore> {
        Self::open_file(path, "NORMAL")
    }

    /// Like [`StateStore::open`], with `synchronous=FULL`: every commit reaches the disk before
    /// the write it guards is sent, so even a power loss cannot lose an intent (slower).
    pub fn open_durable(path: &Path) -> anyhow::Result<StateStore> {
        Self::open_file(path, "FULL")
    }

    fn open_file(path: &Path, synchronous: &str) -> anyhow::Result<StateStore> {
        schema::open_file(path, synchronous)
            .and_then(|(connection, lock)| Self::initialise(connection, Some((path, lock))))
            .map_err(|error| {
                if schema::is_busy(&error) {
                    anyhow::anyhow!(
                        "state file {} is in use by another authport run",
                        path.display()
                    )
                } else if error.is::<crate::Refusal>() {
                    error
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
        Self::initialise(connection, None)
    }

    /// `file`: the state file's path and the open file holding its lock (`None`: temporary).
    fn initialise(
        connection: Connection,
        file: Option<(&Path, std::fs::File)>,
    ) -> anyhow::Result<StateStore> {
        let what = file.as_ref().map_or_else(
            || "the temporary state".to_owned(),
            |(path, _)| format!("state file {}", path.display()),
        );
        let salt = schema::initialise(&connection, &what)?;
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
        let (path, lock) = file.unzip();
        Ok(StateStore {
            shared: Arc::new(Shared {
                _checkpointer: path.map(Checkpointer::start).transpose()?,
                writer: GroupCommit::start(inner.clone())?,
                inner,
                salt,
                _lock: lock,
            }),
            description: path.map_or_else(|| "(temporary)".to_owned(), |p| p.display().to_string()),
            path: path.map(Path::to_owned),
        })
    }

    /// The state file, `None` for a temporary state.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Binds this state to the target `identity` names: records it on first use, refuses
    /// ([`crate::Refusal`], naming the part that differs) a state made for another target unless
    /// `allow_change` (then the new identity is recorded). Returns the run's fingerprint keys.
    pub fn bind(
        &self,
        provider: &str,
        identity: &TargetIdentity,
        allow_change: bool,
    ) -> anyhow::Result<RunKeys> {
        let key = FingerprintKey::derive(&identity.credential, &self.shared.salt);
        let now = RecordedTarget::of(provider, identity, &key);
        let inner = self.shared.lock();
        let connection = &inner.connection;
        if let Some(recorded) = RecordedTarget::load(connection)? {
            let parts = recorded.differences(&now);
            if parts.is_empty() {
                return Ok(RunKeys::new(key));
            }
            if !allow_change {
                return Err(target::mismatch(&parts).into());
            }
            tracing::warn!(
                "--allow-target-change: the state file now belongs to this target; records imported before report updated once"
            );
        }
        now.store(connection)?;
        Ok(RunKeys::new(key))
    }

    /// The parts of the recorded target that differ from `identity` (none when the state has
    /// no target yet). Read-only: lets a command refuse a change before [`StateStore::bind`]
    /// records it.
    pub fn target_changes(
        &self,
        provider: &str,
        identity: &TargetIdentity,
    ) -> anyhow::Result<Vec<TargetPart>> {
        let key = FingerprintKey::derive(&identity.credential, &self.shared.salt);
        let now = RecordedTarget::of(provider, identity, &key);
        let inner = self.shared.lock();
        Ok(RecordedTarget::load(&inner.connection)?
            .map(|recorded| recorded.differences(&now))
            .unwrap_or_default())
    }

    /// The providers' durable notes, stored in this state.
    pub fn memo(&self) -> Arc<dyn Memo> {
        Arc::new(StateMemo {
            shared: self.shared.clone(),
        })
    }

    /// What the journal knows about one record.
    pub fn entry(&self, provider: &str, record_id: &str) -> anyhow::Result<Option<JournalEntry>> {
        self.shared.lock().entry(provider, record_id)
    }

    /// The start of one record's import, in one group-committed transaction: claims its target
    /// address under `claim_key` ([`RunKeys::claim_key`]) for the record, reads its entry and,
    /// unless the record is unchanged or awaits a reconcile, writes the intent to send
    /// `fingerprint`. Returns once that transaction is committed, so an
    /// [`Prepared::IntentCommitted`] record may be sent. Two records writing one object (an
    /// Apideck connection per consumer and connector, a Tray auth name per owner) would
    /// overwrite or adopt each other's: the second is [`Prepared::Conflict`].
    pub async fn prepare(
        &self,
        provider: &str,
        record_id: &str,
        claim_key: &Key,
        fingerprint: &str,
    ) -> anyhow::Result<Prepared> {
        self.prepare_with_grant(provider, record_id, claim_key, fingerprint, None)
            .await
    }

    /// [`StateStore::prepare`] that also checks and records the record's OAuth grant: one held
    /// by another record is [`Prepared::SharedGrant`] (nothing written), unless
    /// `grant.shared_allowed`.
    pub async fn prepare_with_grant(
        &self,
        provider: &str,
        record_id: &str,
        claim_key: &Key,
        fingerprint: &str,
        grant: Option<GrantUse<'_>>,
    ) -> anyhow::Result<Prepared> {
        let (provider, record_id, claim_key, fingerprint) = (
            provider.to_owned(),
            record_id.to_owned(),
            *claim_key,
            fingerprint.to_owned(),
        );
        let grant = grant.map(|g| (*g.key, g.shared_allowed));
        self.shared
            .writer
            .run(move |inner| {
                let grant = grant.as_ref().map(|(key, shared_allowed)| GrantUse {
                    key,
                    shared_allowed: *shared_allowed,
                });
                inner.prepare(&provider, &record_id, &claim_key, &fingerprint, grant)
            })
            .await
    }

    /// The other record that holds the grant `grant_key` in the journal, if any (read-only:
    /// what `--dry-run` checks).
    pub fn grant_holder(
        &self,
        provider: &str,
        grant_key: &Key,
        record_id: &str,
    ) -> anyhow::Result<Option<String>> {
        self.shared
            .lock()
            .grant_holder(provider, grant_key, record_id)
    }

    /// Commits the intent to write `fingerprint` for this record (group-committed): returns
    /// once committed, which must be before the write is sent.
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

    /// Commits the outcome of a write (group-committed): the applied content and object.
    /// `created_now` marks an object this write created (it stays marked across later updates).
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

    /// Forgets an intent whose write certainly did not happen (rejected, not sent, retries of
    /// a transient failure exhausted), group-committed. A record with nothing applied loses its
    /// row, which releases its target claims and grants, so a corrected record may take that
    /// target.
    pub async fn commit_clear_intent(&self, provider: &str, record_id: &str) -> anyhow::Result<()> {
        let (provider, record_id) = (provider.to_owned(), record_id.to_owned());
        self.shared
            .writer
            .run(move |inner| inner.clear_intent(&provider, &record_id))
            .await
    }

    /// Removes a record's row after rollback removed its object, which releases its claims
    /// and grants; the record is remembered as rolled back ([`StateStore::rolled_back`]).
    pub fn forget(&self, provider: &str, record_id: &str) -> anyhow::Result<()> {
        self.shared.lock().forget(provider, record_id)
    }

    /// Deletes the claims and grants released since the last sweep (their record has no
    /// journal row: see `journal.rs`); returns how many. Rollback calls it
    /// when it ends: not on the import's path, where a released row costs nothing.
    pub fn sweep_released(&self) -> anyhow::Result<u64> {
        self.shared.lock().sweep()
    }

    /// Records of `provider` whose object rollback removed and that have no object now (one
    /// imported again is the journal's), by id.
    pub fn rolled_back(&self, provider: &str) -> anyhow::Result<Vec<String>> {
        let inner = self.shared.lock();
        let mut statement = inner.connection.prepare(
            "SELECT record_id FROM rolled_back WHERE provider = ?1
             AND NOT EXISTS (SELECT 1 FROM journal WHERE journal.provider = ?1
                             AND journal.record_id = rolled_back.record_id
                             AND journal.target IS NOT NULL)
             ORDER BY record_id",
        )?;
        let ids = statement
            .query_map(params![provider], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()
            .context("cannot read the state journal")?;
        Ok(ids)
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

/// Writers that bypass the group commit, for unit tests that set up a journal by hand.
#[cfg(test)]
impl StateStore {
    fn record_intent(
        &self,
        provider: &str,
        record_id: &str,
        fingerprint: &str,
    ) -> anyhow::Result<()> {
        self.shared
            .lock()
            .record_intent(provider, record_id, fingerprint)
    }

    fn record_outcome(
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

    fn clear_intent(&self, provider: &str, record_id: &str) -> anyhow::Result<()> {
        self.shared.lock().clear_intent(provider, record_id)
    }
}

/// A claim or grant key named in a test (the name's bytes, zero-padded).
#[cfg(test)]
fn key(name: &str) -> Key {
    let mut bytes = [0u8; 32];
    bytes[..name.len()].copy_from_slice(name.as_bytes());
    Key::from(bytes)
}

#[cfg(test)]
mod grant_tests;
#[cfg(test)]
mod schema_tests;
#[cfg(test)]
mod tests;
