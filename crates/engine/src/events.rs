//! Long because the store's schema, its one write path and its readers belong together.
//!
//! The event store: what a vendor's webhooks said about the connections a migration owns, kept
//! in `<state>.events` beside the `--state` journal.
//!
//! It is a separate SQLite file because the journal is held exclusively by a running import or
//! verify (a file lock, one run per state file): a receiver writing there would stop the
//! import, or be stopped by it. The event store uses WAL with normal locking and a busy timeout, so the
//! receiver writes while `status` reads, and none of them touches the journal's lock.
//!
//! Which connections the migration owns is learnt from the journal's target references, keyed by
//! the provider (a "connection key", e.g. Apideck's consumer, unified API and service ids), and
//! written here by [`EventStore::own`]: the import publishes what it wrote when it ends
//! ([`publish_owned`]), and the receiver reads the journal once when it starts, through a
//! read-only open that sees what is committed, even while a run writes ([`owned_in_journal`]).
//!
//! Only typed, non-secret fields of a delivery are ever stored ([`Delivery`] has no payload):
//! for an owned connection, its latest state, health and `last_refresh_failed_at` and the event
//! history; for any other connection, only a count. Deliveries are deduplicated on the vendor's
//! idempotency key, so a replay is stored once.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use authport_core::{FingerprintKey, TargetIdentity, TargetRef};
use rusqlite::{Connection, OpenFlags, OptionalExtension as _, TransactionBehavior, params};

use crate::files::{Refusal, precreate_private};
use crate::state::StateStore;
use crate::state::target::{RecordedTarget, mismatch};

/// SQLite's `application_id` of an event store ("APEV"), distinct from the journal's.
const APPLICATION_ID: i32 = 0x4150_4556;

/// How long a write waits for another writer (the receiver and an import publishing ownership).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
-- The connections this migration owns: the provider's key of a journal target ref -> record.
CREATE TABLE IF NOT EXISTS owned (
    provider       TEXT NOT NULL,
    connection_key TEXT NOT NULL,
    record_id      TEXT NOT NULL,
    PRIMARY KEY (provider, connection_key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS owned_by_record ON owned (provider, record_id);
-- Every idempotency key seen (owned or not): a replay is recognised and stored once.
CREATE TABLE IF NOT EXISTS deliveries (
    provider        TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    received_at     TEXT NOT NULL,
    owned           INTEGER NOT NULL,
    PRIMARY KEY (provider, idempotency_key)
) WITHOUT ROWID;
-- The history of owned connections' events (typed, non-secret fields only).
CREATE TABLE IF NOT EXISTS events (
    seq                    INTEGER PRIMARY KEY AUTOINCREMENT,
    provider               TEXT NOT NULL,
    connection_key         TEXT NOT NULL,
    idempotency_key        TEXT NOT NULL,
    event_type             TEXT NOT NULL,
    occurred_at            TEXT,
    received_at            TEXT NOT NULL,
    state                  TEXT,
    health                 TEXT,
    last_refresh_failed_at TEXT,
    connection_id          TEXT
);
CREATE INDEX IF NOT EXISTS events_by_connection ON events (provider, connection_key, seq);
-- The latest of each owned connection: the last event's fields, by arrival order.
CREATE TABLE IF NOT EXISTS latest (
    provider               TEXT NOT NULL,
    connection_key         TEXT NOT NULL,
    event_type             TEXT NOT NULL,
    occurred_at            TEXT,
    received_at            TEXT NOT NULL,
    state                  TEXT,
    health                 TEXT,
    last_refresh_failed_at TEXT,
    events                 INTEGER NOT NULL,
    PRIMARY KEY (provider, connection_key)
) WITHOUT ROWID;
-- Deliveries about connections this migration does not own: counted, never stored.
CREATE TABLE IF NOT EXISTS unknown (
    provider TEXT PRIMARY KEY,
    count    INTEGER NOT NULL
) WITHOUT ROWID;
";

/// One verified webhook delivery, reduced to its typed, non-secret fields by the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub provider: String,
    /// The vendor's idempotency key (Apideck: `x-apideck-idempotency-key`).
    pub idempotency_key: String,
    /// The provider's key of the connection (see [`EventStore::own`]).
    pub connection_key: String,
    /// E.g. `vault.connection.token_refresh.failed`.
    pub event_type: String,
    pub occurred_at: Option<String>,
    pub state: Option<String>,
    pub health: Option<String>,
    pub last_refresh_failed_at: Option<String>,
    /// The vendor's id of the connection, when the event names it.
    pub connection_id: Option<String>,
}

/// What [`EventStore::record`] did with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// An owned connection's event: history and latest updated.
    Stored,
    /// The idempotency key was seen before: nothing changed.
    Duplicate,
    /// A connection this migration does not own: counted only.
    Unknown,
}

/// A connection the migration owns: the provider's connection key and the record that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedConnection {
    pub connection_key: String,
    pub record_id: String,
}

/// The latest event of one owned connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLatest {
    pub record_id: String,
    pub connection_key: String,
    pub event_type: String,
    pub occurred_at: Option<String>,
    pub received_at: String,
    pub state: Option<String>,
    pub health: Option<String>,
    pub last_refresh_failed_at: Option<String>,
    /// How many events were stored for the connection.
    pub events: u64,
}

/// One stored event of an owned connection, oldest first in [`EventStore::connection_events`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: i64,
    pub idempotency_key: String,
    pub event_type: String,
    pub occurred_at: Option<String>,
    pub received_at: String,
    pub state: Option<String>,
    pub health: Option<String>,
    pub last_refresh_failed_at: Option<String>,
    pub connection_id: Option<String>,
}

/// The event store of one migration (`<state>.events`). Cheap to share by reference.
pub struct EventStore {
    connection: Mutex<Connection>,
    path: PathBuf,
    salt: Vec<u8>,
}

impl std::fmt::Debug for EventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The event store's path for the state file at `state_path`: `<state>.events`.
pub fn events_path(state_path: &Path) -> PathBuf {
    let mut name = state_path.as_os_str().to_owned();
    name.push(".events");
    PathBuf::from(name)
}

impl EventStore {
    /// Creates or reopens the event store beside the state file at `state_path` (mode 0600,
    /// never through a symlink; an unrelated database there is refused untouched).
    pub fn open(state_path: &Path) -> anyhow::Result<EventStore> {
        let path = events_path(state_path);
        precreate_private("event store", &path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let connection = Connection::open_with_flags(&path, flags)
            .with_context(|| format!("cannot open event store {}", path.display()))?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        check_ours(&connection, &path)?;
        connection.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")?;
        let salt = initialise(&connection)
            .with_context(|| format!("cannot initialise event store {}", path.display()))?;
        Ok(EventStore {
            connection: Mutex::new(connection),
            path,
            salt,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Binds the store to the target `identity` names, as the journal is bound: recorded on first
    /// use; another target is refused ([`Refusal`]) unless `allow_change`, so events of one
    /// Apideck app never mix with another's.
    pub fn bind(
        &self,
        provider: &str,
        identity: &TargetIdentity,
        allow_change: bool,
    ) -> anyhow::Result<()> {
        let key = FingerprintKey::derive(&identity.credential, &self.salt);
        let now = RecordedTarget::of(provider, identity, &key);
        let connection = self.lock();
        if let Some(recorded) = RecordedTarget::load(&connection)? {
            let parts = recorded.differences(&now);
            if parts.is_empty() {
                return Ok(());
            }
            if !allow_change {
                let refusal = mismatch(&parts);
                return Err(Refusal(refusal.0.replace("state file", "event store")).into());
            }
        }
        now.store(&connection)
    }

    /// Records the connections the migration owns (idempotent; a key re-owned by another record
    /// follows the journal). Returns how many were new.
    pub fn own(&self, provider: &str, owned: &[OwnedConnection]) -> anyhow::Result<usize> {
        let mut connection = self.lock();
        // Immediate: take the write lock first, so another writer (the import publishing its
        // connections) makes this wait (busy timeout) instead of failing a read-then-write.
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut new = 0;
        {
            let mut statement = transaction.prepare_cached(
                "INSERT INTO owned (provider, connection_key, record_id) VALUES (?1, ?2, ?3)
                 ON CONFLICT (provider, connection_key) DO UPDATE SET record_id = excluded.record_id
                 WHERE record_id <> excluded.record_id",
            )?;
            for item in owned {
                new += statement.execute(params![provider, item.connection_key, item.record_id])?;
            }
        }
        transaction.commit()?;
        Ok(new)
    }

    /// Whether the migration owns the connection `connection_key`.
    pub fn owns(&self, provider: &str, connection_key: &str) -> anyhow::Result<bool> {
        Ok(self
            .lock()
            .query_row(
                "SELECT 1 FROM owned WHERE provider = ?1 AND connection_key = ?2",
                params![provider, connection_key],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Stores one verified delivery in one transaction: a repeated idempotency key changes
    /// nothing; an owned connection's event joins its history and becomes its latest; any other
    /// delivery only increments the provider's unknown count.
    pub fn record(&self, delivery: &Delivery) -> anyhow::Result<Recorded> {
        let received_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut connection = self.lock();
        // Immediate: take the write lock first, so another writer (the import publishing its
        // connections) makes this wait (busy timeout) instead of failing a read-then-write.
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let owned = transaction
            .prepare_cached("SELECT 1 FROM owned WHERE provider = ?1 AND connection_key = ?2")?
            .query_row(params![delivery.provider, delivery.connection_key], |_| {
                Ok(())
            })
            .optional()?
            .is_some();
        let inserted = transaction
            .prepare_cached(
                "INSERT INTO deliveries (provider, idempotency_key, received_at, owned)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                delivery.provider,
                delivery.idempotency_key,
                received_at,
                owned
            ])?;
        if inserted == 0 {
            return Ok(Recorded::Duplicate);
        }
        let outcome = if owned {
            store_event(&transaction, delivery, &received_at)?;
            Recorded::Stored
        } else {
            transaction
                .prepare_cached(
                    "INSERT INTO unknown (provider, count) VALUES (?1, 1)
                     ON CONFLICT (provider) DO UPDATE SET count = count + 1",
                )?
                .execute(params![delivery.provider])?;
            Recorded::Unknown
        };
        transaction.commit()?;
        Ok(outcome)
    }

    /// The latest event of the connection record `record_id` made, if any arrived.
    pub fn latest(
        &self,
        provider: &str,
        record_id: &str,
    ) -> anyhow::Result<Option<ConnectionLatest>> {
        Ok(self
            .latest_where(provider, Some(record_id))?
            .into_iter()
            .next())
    }

    /// The latest event of every owned connection that has one, by record id.
    pub fn latest_all(&self, provider: &str) -> anyhow::Result<Vec<ConnectionLatest>> {
        self.latest_where(provider, None)
    }

    fn latest_where(
        &self,
        provider: &str,
        record_id: Option<&str>,
    ) -> anyhow::Result<Vec<ConnectionLatest>> {
        let connection = self.lock();
        let mut statement = connection.prepare_cached(
            "SELECT o.record_id, l.connection_key, l.event_type, l.occurred_at, l.received_at,
                    l.state, l.health, l.last_refresh_failed_at, l.events
             FROM latest l JOIN owned o
               ON o.provider = l.provider AND o.connection_key = l.connection_key
             WHERE l.provider = ?1 AND (?2 IS NULL OR o.record_id = ?2)
             ORDER BY o.record_id",
        )?;
        let rows = statement.query_map(params![provider, record_id], |row| {
            Ok(ConnectionLatest {
                record_id: row.get(0)?,
                connection_key: row.get(1)?,
                event_type: row.get(2)?,
                occurred_at: row.get(3)?,
                received_at: row.get(4)?,
                state: row.get(5)?,
                health: row.get(6)?,
                last_refresh_failed_at: row.get(7)?,
                events: row.get::<_, i64>(8)?.try_into().unwrap_or(0),
            })
        })?;
        rows.collect::<Result<_, _>>()
            .context("cannot read the event store")
    }

    /// The stored events of the connection record `record_id` made, oldest first.
    pub fn connection_events(
        &self,
        provider: &str,
        record_id: &str,
    ) -> anyhow::Result<Vec<StoredEvent>> {
        let connection = self.lock();
        let mut statement = connection.prepare_cached(
            "SELECT e.seq, e.idempotency_key, e.event_type, e.occurred_at, e.received_at,
                    e.state, e.health, e.last_refresh_failed_at, e.connection_id
             FROM events e JOIN owned o
               ON o.provider = e.provider AND o.connection_key = e.connection_key
             WHERE e.provider = ?1 AND o.record_id = ?2
             ORDER BY e.seq",
        )?;
        let rows = statement.query_map(params![provider, record_id], |row| {
            Ok(StoredEvent {
                seq: row.get(0)?,
                idempotency_key: row.get(1)?,
                event_type: row.get(2)?,
                occurred_at: row.get(3)?,
                received_at: row.get(4)?,
                state: row.get(5)?,
                health: row.get(6)?,
                last_refresh_failed_at: row.get(7)?,
                connection_id: row.get(8)?,
            })
        })?;
        rows.collect::<Result<_, _>>()
            .context("cannot read the event store")
    }

    /// How many deliveries about connections this migration does not own were counted.
    pub fn unknown_count(&self, provider: &str) -> anyhow::Result<u64> {
        let count: Option<i64> = self
            .lock()
            .query_row(
                "SELECT count FROM unknown WHERE provider = ?1",
                params![provider],
                |row| row.get(0),
            )
            .optional()?;
        Ok(count.unwrap_or(0).try_into().unwrap_or(0))
    }

    /// How many events are stored for owned connections (all providers' history rows).
    pub fn stored_count(&self, provider: &str) -> anyhow::Result<u64> {
        let count: i64 = self.lock().query_row(
            "SELECT COUNT(*) FROM events WHERE provider = ?1",
            params![provider],
            |row| row.get(0),
        )?;
        Ok(count.try_into().unwrap_or(0))
    }
}

fn store_event(
    transaction: &rusqlite::Transaction<'_>,
    delivery: &Delivery,
    received_at: &str,
) -> anyhow::Result<()> {
    transaction
        .prepare_cached(
            "INSERT INTO events (provider, connection_key, idempotency_key, event_type, occurred_at,
                 received_at, state, health, last_refresh_failed_at, connection_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            delivery.provider,
            delivery.connection_key,
            delivery.idempotency_key,
            delivery.event_type,
            delivery.occurred_at,
            received_at,
            delivery.state,
            delivery.health,
            delivery.last_refresh_failed_at,
            delivery.connection_id,
        ])?;
    // A field an event does not carry keeps its last known value (e.g. a `created` event
    // without health does not erase a failure's `last_refresh_failed_at`).
    transaction
        .prepare_cached(
            "INSERT INTO latest (provider, connection_key, event_type, occurred_at, received_at,
                 state, health, last_refresh_failed_at, events)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1)
             ON CONFLICT (provider, connection_key) DO UPDATE SET
                 event_type = excluded.event_type,
                 occurred_at = excluded.occurred_at,
                 received_at = excluded.received_at,
                 state = COALESCE(excluded.state, state),
                 health = COALESCE(excluded.health, health),
                 last_refresh_failed_at = COALESCE(excluded.last_refresh_failed_at, last_refresh_failed_at),
                 events = events + 1",
        )?
        .execute(params![
            delivery.provider,
            delivery.connection_key,
            delivery.event_type,
            delivery.occurred_at,
            received_at,
            delivery.state,
            delivery.health,
            delivery.last_refresh_failed_at,
        ])?;
    Ok(())
}

/// The connections the journal at `state_path` records as written for `provider`, read through
/// a read-only open that never waits: what is committed, even while a run writes the journal.
/// `key_of` is the provider's connection key of a target ref (`None`: not a connection).
pub fn owned_in_journal(
    state_path: &Path,
    provider: &str,
    key_of: impl Fn(&TargetRef) -> Option<String>,
) -> anyhow::Result<Vec<OwnedConnection>> {
    crate::files::refuse_symlink("state file", state_path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let connection = Connection::open_with_flags(state_path, flags)
        .with_context(|| format!("cannot open state file {} to read", state_path.display()))?;
    connection.busy_timeout(Duration::ZERO)?;
    let application_id: i32 =
        connection.query_row("PRAGMA application_id", [], |row| row.get(0))?;
    if application_id != crate::state::schema::APPLICATION_ID {
        return Err(Refusal(format!(
            "{} is not an authport state file",
            state_path.display()
        ))
        .into());
    }
    let mut statement = connection.prepare(
        "SELECT record_id, target FROM journal WHERE provider = ?1 AND target IS NOT NULL",
    )?;
    let rows = statement
        .query_map(params![provider], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| {
            format!(
                "state file {} is in use or unreadable",
                state_path.display()
            )
        })?;
    owned_from(
        rows.into_iter().map(|(record_id, target)| {
            (record_id, serde_json::from_str::<TargetRef>(&target).ok())
        }),
        key_of,
    )
}

/// Publishes the connections an open journal records as written for `provider` to the event
/// store beside it, if there is one (a receiver made it): the import calls this when it ends,
/// while it still holds the journal, so a receiver learns what it created. Returns how many
/// were new.
pub fn publish_owned(
    state: &StateStore,
    provider: &str,
    key_of: impl Fn(&TargetRef) -> Option<String>,
) -> anyhow::Result<usize> {
    let Some(path) = state.path() else {
        return Ok(0);
    };
    // No receiver ever ran for this state: no file is made for nothing (it reads the journal
    // when it starts).
    if std::fs::symlink_metadata(events_path(path)).is_err() {
        return Ok(0);
    }
    let objects = state.objects(provider)?;
    let owned = owned_from(
        objects
            .into_iter()
            .map(|object| (object.record_id, Some(object.target))),
        key_of,
    )?;
    EventStore::open(path)?.own(provider, &owned)
}

fn owned_from(
    rows: impl Iterator<Item = (String, Option<TargetRef>)>,
    key_of: impl Fn(&TargetRef) -> Option<String>,
) -> anyhow::Result<Vec<OwnedConnection>> {
    Ok(rows
        .filter_map(|(record_id, target)| {
            let connection_key = key_of(target.as_ref()?)?;
            Some(OwnedConnection {
                connection_key,
                record_id,
            })
        })
        .collect())
}

fn check_ours(connection: &Connection, path: &Path) -> anyhow::Result<()> {
    let application_id: i32 =
        connection.query_row("PRAGMA application_id", [], |row| row.get(0))?;
    if application_id == APPLICATION_ID {
        return Ok(());
    }
    let tables: i64 = connection.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
        [],
        |row| row.get(0),
    )?;
    if tables == 0 {
        return Ok(());
    }
    Err(Refusal(format!(
        "{} is a SQLite database that is not an authport event store; it was left untouched",
        path.display()
    ))
    .into())
}

fn initialise(connection: &Connection) -> anyhow::Result<Vec<u8>> {
    connection.execute_batch(SCHEMA)?;
    connection.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID};"))?;
    crate::state::schema::salt(connection, "event store")
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
