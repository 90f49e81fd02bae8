//! The journal's rows and SQL: per record, what was applied at the target and the intent of a
//! write in flight; per target address, which record claimed it. Each method is a statement or
//! two; whether they autocommit or join a group commit is up to the caller ([`super::StateStore`]).
//!
//! Claims and grants are released by the journal row, not by deleting them: a claim or a grant
//! holds only while its record has a journal row. `prepare` writes the claim and the intent (the
//! row) in one transaction, and the row goes exactly when the old release happened (`clear_intent`
//! of a record with nothing applied, `forget` after rollback). Taking an address or a grant is an
//! upsert that takes over a row whose record has none; reading a grant's holder ignores such a
//! holder. The hot path thus writes no index by record and deletes nothing; released rows are
//! swept at the end of rollback and by the schema migration ([`super::schema::SWEEP`]).
//!
//! The one difference from deleting at release: a record that held two addresses (its target
//! changed between runs), was rolled back, and is imported again holds its old address again
//! until the sweep (likewise a grant). That errs on the safe side: another record mapping there
//! gets `conflict`, never a second write to one object.

use anyhow::Context as _;
use authport_core::TargetRef;
use rusqlite::{Connection, OptionalExtension as _, params};

use crate::group_commit::Transactional;

use super::target::Key;

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

/// A record's OAuth grant as [`StateStore::prepare`] checks and records it.
#[derive(Debug, Clone, Copy)]
pub struct GrantUse<'a> {
    /// The keyed hash ([`super::RunKeys::grant_key`]).
    pub key: &'a Key,
    /// `--allow-shared-grants`: record the grant, never refuse the record for it.
    pub shared_allowed: bool,
}

/// What [`StateStore::prepare`] found and did for one record, in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Prepared {
    /// Another record (this id) claimed the same target object first; nothing was written.
    Conflict(String),
    /// Another record (this id) holds the same OAuth grant in the journal; nothing was written.
    SharedGrant(String),
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
pub(crate) struct Inner {
    pub(crate) connection: Connection,
    pub(crate) next_created_seq: i64,
    /// `next_created_seq` when the open transaction began, restored if it rolls back.
    pub(crate) seq_at_begin: i64,
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
    /// Claims the target address `key` for the record; `Some(owner)` when another record
    /// holds it. One insert when the address is new or released (module docs).
    pub(crate) fn claim(
        &self,
        provider: &str,
        key: &Key,
        record_id: &str,
    ) -> anyhow::Result<Option<String>> {
        if self
            .take(
                "INSERT INTO claims (provider, target_key, record_id) VALUES (?1, ?2, ?3)
                 ON CONFLICT (provider, target_key) DO UPDATE SET record_id = excluded.record_id
                 WHERE NOT EXISTS (SELECT 1 FROM journal j
                                   WHERE j.provider = claims.provider AND j.record_id = claims.record_id)",
                provider,
                key,
                record_id,
            )
            .context("cannot write a target claim to the state journal")?
        {
            return Ok(None);
        }
        let owner: String = self
            .connection
            .prepare_cached("SELECT record_id FROM claims WHERE provider = ?1 AND target_key = ?2")
            .and_then(|mut statement| statement.query_row(params![provider, key], |row| row.get(0)))
            .context("cannot read a target claim from the state journal")?;
        Ok((owner != record_id).then_some(owner))
    }

    pub(crate) fn entry(
        &self,
        provider: &str,
        record_id: &str,
    ) -> anyhow::Result<Option<JournalEntry>> {
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

    pub(crate) fn record_intent(
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
    ///
    /// A record new to the journal, the common case of a first run, costs two inserts: a claim
    /// that inserted a row is this record's, and an intent that inserted a row had no entry
    /// before it. Otherwise the owner and the entry are read and the intent written when due.
    ///
    /// `grant`: the record's grant key; held by another record it is [`Prepared::SharedGrant`]
    /// (checked first: nothing is written) unless `grant.shared_allowed`. The record holds the
    /// key from this transaction on.
    pub(crate) fn prepare(
        &self,
        provider: &str,
        record_id: &str,
        claim_key: &Key,
        fingerprint: &str,
        grant: Option<GrantUse<'_>>,
    ) -> anyhow::Result<Prepared> {
        // The grant first, as one upsert in the common case (a grant new to the journal); only
        // when a holder with a journal row keeps it is the holder read. A grant taken here by a
        // record that then meets a conflict stays with a record that has no journal row, which
        // holds nothing (module docs), or with one that already carries it.
        if let Some(grant) = grant
            && !self.hold_grant(provider, grant.key, record_id)?
            && !grant.shared_allowed
            && let Some(holder) = self.grant_holder(provider, grant.key, record_id)?
        {
            return Ok(Prepared::SharedGrant(holder));
        }
        if let Some(owner) = self.claim(provider, claim_key, record_id)? {
            return Ok(Prepared::Conflict(owner));
        }
        if self.intent_for_new(provider, record_id, fingerprint)? {
            return Ok(Prepared::IntentCommitted(JournalEntry::default()));
        }
        let entry = self.entry(provider, record_id)?.unwrap_or_default();
        if entry.awaits_reconcile() || entry.is_unchanged(fingerprint) {
            return Ok(Prepared::Unwritten(entry));
        }
        self.record_intent(provider, record_id, fingerprint)?;
        Ok(Prepared::IntentCommitted(entry))
    }

    /// Another record holding the grant `key`, if any (read-only: `--dry-run` asks too). A
    /// holder without a journal row has released it (module docs).
    pub(crate) fn grant_holder(
        &self,
        provider: &str,
        key: &Key,
        record_id: &str,
    ) -> anyhow::Result<Option<String>> {
        let holder: Option<String> = self
            .connection
            .prepare_cached(
                "SELECT record_id FROM grants WHERE provider = ?1 AND grant_key = ?2
                 AND EXISTS (SELECT 1 FROM journal j
                             WHERE j.provider = grants.provider AND j.record_id = grants.record_id)",
            )
            .and_then(|mut statement| {
                statement
                    .query_row(params![provider, key], |row| row.get(0))
                    .optional()
            })
            .context("cannot read a grant from the state journal")?;
        Ok(holder.filter(|holder| holder != record_id))
    }

    /// Records that the record holds the grant `key`; `false` when a holder with a journal row
    /// keeps it (with `--allow-shared-grants` that is the first).
    fn hold_grant(&self, provider: &str, key: &Key, record_id: &str) -> anyhow::Result<bool> {
        self.take(
            "INSERT INTO grants (provider, grant_key, record_id) VALUES (?1, ?2, ?3)
             ON CONFLICT (provider, grant_key) DO UPDATE SET record_id = excluded.record_id
             WHERE NOT EXISTS (SELECT 1 FROM journal j
                               WHERE j.provider = grants.provider AND j.record_id = grants.record_id)",
            provider,
            key,
            record_id,
        )
        .context("cannot write a grant to the state journal")
    }

    /// Runs an upsert of a claim or grant that takes over a released row: `true` when the row
    /// is the record's now (inserted, or taken over). A row whose holder has a journal row is
    /// left as it is, so nothing is written for it (an unchanged record writes no page).
    fn take(
        &self,
        sql: &str,
        provider: &str,
        key: &Key,
        record_id: &str,
    ) -> rusqlite::Result<bool> {
        let mut statement = self.connection.prepare_cached(sql)?;
        Ok(statement.execute(params![provider, key, record_id])? == 1)
    }

    /// Writes the intent of a record the journal has no row for; `false` (nothing written)
    /// when it has one.
    fn intent_for_new(
        &self,
        provider: &str,
        record_id: &str,
        fingerprint: &str,
    ) -> anyhow::Result<bool> {
        self.insert_new(
            "INSERT INTO journal (provider, record_id, pending_fingerprint) VALUES (?1, ?2, ?3)
             ON CONFLICT (provider, record_id) DO NOTHING",
            [provider, record_id, fingerprint],
        )
        .context("cannot write intent to the state journal")
    }

    /// Runs an `INSERT ... ON CONFLICT DO NOTHING`: `true` when it inserted the row.
    fn insert_new(&self, sql: &str, values: [&str; 3]) -> rusqlite::Result<bool> {
        let mut statement = self.connection.prepare_cached(sql)?;
        Ok(statement.execute(values)? == 1)
    }

    /// Deletes the released claims and grants ([`super::schema::SWEEP`]); returns how many.
    pub(crate) fn sweep(&self) -> anyhow::Result<u64> {
        let before = self.connection.total_changes();
        self.connection
            .execute_batch(super::schema::SWEEP)
            .context("cannot sweep released claims from the state journal")?;
        Ok(self.connection.total_changes() - before)
    }

    pub(crate) fn record_outcome(
        &mut self,
        provider: &str,
        record_id: &str,
        fingerprint: &str,
        target_json: &str,
        created_now: bool,
    ) -> anyhow::Result<()> {
        let seq = self.next_created_seq;
        let values = params![
            provider,
            record_id,
            fingerprint,
            target_json,
            created_now,
            seq
        ];
        // The intent's row is there in the common case: one UPDATE (an upsert would look the
        // row up twice, for the insert's conflict and for its update). SET reads the old row.
        let updated = self
            .connection
            .prepare_cached(
                "UPDATE journal SET
                     fingerprint = ?3,
                     target = ?4,
                     created = created OR ?5,
                     created_seq = CASE WHEN created THEN created_seq WHEN ?5 THEN ?6 END,
                     pending_fingerprint = NULL
                 WHERE provider = ?1 AND record_id = ?2",
            )
            .and_then(|mut statement| statement.execute(values))
            .context("cannot write outcome to the state journal")?;
        if updated == 0 {
            self.connection
                .prepare_cached(
                    "INSERT INTO journal (provider, record_id, fingerprint, target, created, created_seq)
                     VALUES (?1, ?2, ?3, ?4, ?5, CASE WHEN ?5 THEN ?6 END)",
                )
                .and_then(|mut statement| statement.execute(values))
                .context("cannot write outcome to the state journal")?;
        }
        if created_now {
            self.next_created_seq += 1;
        }
        Ok(())
    }

    /// Forgets an intent. A record with nothing applied loses its row, and with it its claims
    /// and grants (module docs); one with an object keeps both.
    pub(crate) fn clear_intent(&self, provider: &str, record_id: &str) -> anyhow::Result<()> {
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

    /// Removes a record's row after rollback removed its object, which releases its claims
    /// and grants (module docs), and remembers the record as rolled back (in the same
    /// transaction).
    pub(crate) fn forget(&self, provider: &str, record_id: &str) -> anyhow::Result<()> {
        self.connection
            .execute_batch("BEGIN")
            .and_then(|()| {
                self.connection.execute(
                    "DELETE FROM journal WHERE provider = ?1 AND record_id = ?2",
                    params![provider, record_id],
                )
            })
            .and_then(|_| {
                self.connection.execute(
                    "INSERT INTO rolled_back (provider, record_id) VALUES (?1, ?2)
                     ON CONFLICT (provider, record_id) DO NOTHING",
                    params![provider, record_id],
                )
            })
            .and_then(|_| self.connection.execute_batch("COMMIT"))
            .map_err(|error| {
                if !self.connection.is_autocommit() {
                    let _ = self.connection.execute_batch("ROLLBACK");
                }
                anyhow::Error::from(error).context("cannot update the state journal")
            })
    }
}

pub(crate) fn parse_target(json: &str) -> anyhow::Result<TargetRef> {
    serde_json::from_str(json).context("state journal holds a malformed target")
}
