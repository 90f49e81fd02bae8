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
//! history; for any other connection, only a count.
//!
//! Events count by when they happened, not by when they arrived, and only what the vendor signed
//! counts:
//! - deliveries are deduplicated on the signed event id, so a replay under a fresh (unsigned)
//!   idempotency key is stored once;
//! - an event becomes its connection's latest only when its `occurred_at` is not older than the
//!   latest's; an older one (a retry that arrives after what followed it) joins the history only;
//! - an event that happened more than [`EVENT_WINDOW`] (7 days) ago, or more than
//!   [`CLOCK_SKEW`] in the future, is refused ([`Recorded::OutsideWindow`]). A replay can only
//!   be recognised while its event id is kept, so the ids are kept exactly that long: the
//!   `deliveries` table expires rows whose event is older than the window, since such a replay
//!   is refused anyway. Apideck does not document how long it retries a delivery; we assume
//!   (apideck-api.md §8 says nothing) it gives up well within 7 days.
//!
//! Schema versions: 1 (no `schema_version` in `meta`) deduplicated on the idempotency key; 2 on
//! the event id. A version 1 file is migrated in place when it is opened: its history is kept
//! (without event ids), its dedupe rows are dropped (they hold no event id; a replay of such an
//! event may add one history row but, being no newer, never changes the latest).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use authport_core::{FingerprintKey, TargetIdentity, TargetRef};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension as _, TransactionBehavior, params};

use crate::files::{Refusal, precreate_private};
use crate::state::StateStore;
use crate::state::target::{RecordedTarget, mismatch};

/// SQLite's `application_id` of an event store ("APEV"), distinct from the journal's.
const APPLICATION_ID: i32 = 0x4150_4556;

/// How long a write waits for another writer (the receiver and an import publishing ownership).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema version this build writes (see the module docs); version 1 files are migrated.
const SCHEMA_VERSION: &str = "2";

/// Events that happened longer ago are refused, and their ids forgotten (module docs).
pub const EVENT_WINDOW: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// How far in the future an event may be dated (the vendor's clock against ours). A signed event
/// dated far ahead would otherwise stay every connection's latest until that date.
pub const CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

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
-- Every signed event id seen within the window (owned or not): a replay is stored once. Rows
-- expire once their event is older than the window (a replay of it is refused anyway).
CREATE TABLE IF NOT EXISTS deliveries (
    provider    TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    owned       INTEGER NOT NULL,
    PRIMARY KEY (provider, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_by_age ON deliveries (provider, occurred_at);
-- The history of owned connections' events (typed, non-secret fields only). `occurred_at` is
-- UTC in one fixed-width form, so text order is time order; `applied`: it became the latest.
CREATE TABLE IF NOT EXISTS events (
    seq                    INTEGER PRIMARY KEY AUTOINCREMENT,
    provider               TEXT NOT NULL,
    connection_key         TEXT NOT NULL,
    event_id               TEXT,
    event_type             TEXT NOT NULL,
    occurred_at            TEXT,
    received_at            TEXT NOT NULL,
    state                  TEXT,
    health                 TEXT,
    last_refresh_failed_at TEXT,
    connection_id          TEXT,
    applied                INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS events_by_connection ON events (provider, connection_key, seq);
-- The latest of each owned connection: the fields of its event that happened last.
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

/// One verified webhook delivery, reduced to its typed, non-secret fields by the provider. Every
/// field that decides something (id, type, time) comes from the signed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub provider: String,
    /// The vendor's signed id of the event (Apideck: `payload.event_id`): the dedupe key.
    pub event_id: String,
    /// The provider's key of the connection (see [`EventStore::own`]).
    pub connection_key: String,
    /// E.g. `vault.connection.token_refresh.failed`.
    pub event_type: String,
    /// When the event happened (the vendor's signed word), which orders events.
    pub occurred_at: DateTime<Utc>,
    pub state: Option<String>,
    pub health: Option<String>,
    pub last_refresh_failed_at: Option<String>,
    /// The vendor's id of the connection, when the event names it.
    pub connection_id: Option<String>,
}

/// What [`EventStore::record`] did with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// An owned connection's event joined its history; `latest`: it also became the
    /// connection's latest (false: an event that happened after it is already there).
    Stored { latest: bool },
    /// The event id was seen before: nothing changed.
    Duplicate,
    /// A connection this migration does not own: counted only.
    Unknown,
    /// Dated outside the window: nothing changed.
    OutsideWindow(OutsideWindow),
}

/// Why an event's date is refused (see [`EVENT_WINDOW`] and [`CLOCK_SKEW`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OutsideWindow {
    #[error("the event happened more than 7 days ago")]
    TooOld,
    #[error("the event is dated more than 5 minutes in the future")]
    InTheFuture,
}

/// Whether an event that happened at `occurred_at` may be recorded at `now`.
pub fn check_window(occurred_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), OutsideWindow> {
    if occurred_at < now - EVENT_WINDOW {
        Err(OutsideWindow::TooOld)
    } else if occurred_at > now + CLOCK_SKEW {
        Err(OutsideWindow::InTheFuture)
    } else {
        Ok(())
    }
}

/// The stored form of an instant: UTC, microseconds, fixed width, so text order is time order.
fn stamp(instant: DateTime<Utc>) -> String {
    instant.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A stored (or version 1) `occurred_at` read back as an instant.
pub fn parse_stamp(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
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

/// One stored event of an owned connection, in arrival order in
/// [`EventStore::connection_events`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: i64,
    /// `None` for events stored by schema version 1.
    pub event_id: Option<String>,
    pub event_type: String,
    pub occurred_at: Option<String>,
    pub received_at: String,
    pub state: Option<String>,
    pub health: Option<String>,
    pub last_refresh_failed_at: Option<String>,
    pub connection_id: Option<String>,
    /// It became the connection's latest when it arrived.
    pub applied: bool,
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
        let mut connection = Connection::open_with_flags(&path, flags)
            .with_context(|| format!("cannot open event store {}", path.display()))?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        check_ours(&connection, &path)?;
        connection.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")?;
        let salt = initialise(&mut connection, &path)
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

    /// Stores one verified delivery received at `now`, in one transaction: an event dated
    /// outside the window changes nothing; a repeated event id changes nothing; an owned
    /// connection's event joins its history and becomes its latest unless a later event is
    /// already there; any other delivery only increments the provider's unknown count. Event ids
    /// older than the window are forgotten on the way.
    pub fn record(&self, delivery: &Delivery, now: DateTime<Utc>) -> anyhow::Result<Recorded> {
        if let Err(outside) = check_window(delivery.occurred_at, now) {
            return Ok(Recorded::OutsideWindow(outside));
        }
        let received_at = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let occurred_at = stamp(delivery.occurred_at);
        let mut connection = self.lock();
        // Immediate: take the write lock first, so another writer (the import publishing its
        // connections) makes this wait (busy timeout) instead of failing a read-then-write.
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        transaction
            .prepare_cached("DELETE FROM deliveries WHERE provider = ?1 AND occurred_at < ?2")?
            .execute(params![delivery.provider, stamp(now - EVENT_WINDOW)])?;
        let owned = transaction
            .prepare_cached("SELECT 1 FROM owned WHERE provider = ?1 AND connection_key = ?2")?
            .query_row(params![delivery.provider, delivery.connection_key], |_| {
                Ok(())
            })
            .optional()?
            .is_some();
        let inserted = transaction
            .prepare_cached(
                "INSERT INTO deliveries (provider, event_id, occurred_at, received_at, owned)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                delivery.provider,
                delivery.event_id,
                occurred_at,
                received_at,
                owned
            ])?;
        if inserted == 0 {
            return Ok(Recorded::Duplicate);
        }
        let outcome = if owned {
            let latest = store_event(&transaction, delivery, &occurred_at, &received_at)?;
            Recorded::Stored { latest }
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

    /// How many event ids are kept for deduplication (they expire with the window).
    pub fn remembered_deliveries(&self, provider: &str) -> anyhow::Result<u64> {
        let count: i64 = self.lock().query_row(
            "SELECT COUNT(*) FROM deliveries WHERE provider = ?1",
            params![provider],
            |row| row.get(0),
        )?;
        Ok(count.try_into().unwrap_or(0))
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
            "SELECT e.seq, e.event_id, e.event_type, e.occurred_at, e.received_at,
                    e.state, e.health, e.last_refresh_failed_at, e.connection_id, e.applied
             FROM events e JOIN owned o
               ON o.provider = e.provider AND o.connection_key = e.connection_key
             WHERE e.provider = ?1 AND o.record_id = ?2
             ORDER BY e.seq",
        )?;
        let rows = statement.query_map(params![provider, record_id], |row| {
            Ok(StoredEvent {
                seq: row.get(0)?,
                event_id: row.get(1)?,
                event_type: row.get(2)?,
                occurred_at: row.get(3)?,
                received_at: row.get(4)?,
                state: row.get(5)?,
                health: row.get(6)?,
                last_refresh_failed_at: row.get(7)?,
                connection_id: row.get(8)?,
                applied: row.get(9)?,
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

/// Adds an owned connection's event to its history and, unless an event that happened later is
/// already its latest, makes it the latest. Returns whether it did.
fn store_event(
    transaction: &rusqlite::Transaction<'_>,
    delivery: &Delivery,
    occurred_at: &str,
    received_at: &str,
) -> anyhow::Result<bool> {
    // `None`: no latest yet; `Some(None)`: one without a date (version 1), which any dated
    // event follows.
    let current: Option<Option<String>> = transaction
        .prepare_cached(
            "SELECT occurred_at FROM latest WHERE provider = ?1 AND connection_key = ?2",
        )?
        .query_row(params![delivery.provider, delivery.connection_key], |row| {
            row.get(0)
        })
        .optional()?;
    let applies = match &current {
        Some(Some(latest)) => occurred_at >= latest.as_str(),
        Some(None) | None => true,
    };
    transaction
        .prepare_cached(
            "INSERT INTO events (provider, connection_key, event_id, event_type, occurred_at,
                 received_at, state, health, last_refresh_failed_at, connection_id, applied)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            delivery.provider,
            delivery.connection_key,
            delivery.event_id,
            delivery.event_type,
            occurred_at,
            received_at,
            delivery.state,
            delivery.health,
            delivery.last_refresh_failed_at,
            delivery.connection_id,
            applies,
        ])?;
    if !applies {
        transaction
            .prepare_cached(
                "UPDATE latest SET events = events + 1 WHERE provider = ?1 AND connection_key = ?2",
            )?
            .execute(params![delivery.provider, delivery.connection_key])?;
        return Ok(false);
    }
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
            occurred_at,
            received_at,
            delivery.state,
            delivery.health,
            delivery.last_refresh_failed_at,
        ])?;
    Ok(true)
}

/// Refuses a `--state` for the receiver that does not exist or is not an authport state file
/// ([`Refusal`], exit 2), before anything is created beside it: a receiver on a wrong path
/// would acknowledge every delivery and keep none of them.
pub fn require_state_file(state_path: &Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(state_path) {
        Err(_) => {
            return Err(Refusal(format!(
                "state file {} does not exist: the receiver runs on a migration's state, where \
                 it learns which connections are ours (run `authport import --state` first; a \
                 `--dry-run` makes it)",
                state_path.display()
            ))
            .into());
        }
        Ok(metadata) if metadata.is_dir() => {
            return Err(Refusal(format!(
                "state file {} is a directory",
                state_path.display()
            ))
            .into());
        }
        Ok(_) => {}
    }
    open_journal_read_only(state_path).map(drop)
}

/// The journal at `state_path`, opened read-only without waiting (never through a symlink),
/// after checking that it is an authport state file.
fn open_journal_read_only(state_path: &Path) -> anyhow::Result<Connection> {
    crate::files::refuse_symlink("state file", state_path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let connection = Connection::open_with_flags(state_path, flags)
        .with_context(|| format!("cannot open state file {} to read", state_path.display()))?;
    connection.busy_timeout(Duration::ZERO)?;
    let not_ours = || {
        Refusal(format!(
            "{} is not an authport state file; it was left untouched",
            state_path.display()
        ))
    };
    let application_id: i32 =
        match connection.query_row("PRAGMA application_id", [], |row| row.get(0)) {
            Ok(id) => id,
            Err(rusqlite::Error::SqliteFailure(error, _))
                if error.code == rusqlite::ErrorCode::NotADatabase =>
            {
                return Err(not_ours().into());
            }
            Err(error) => return Err(error.into()),
        };
    if application_id != crate::state::schema::APPLICATION_ID {
        return Err(not_ours().into());
    }
    Ok(connection)
}

/// The connections the journal at `state_path` records as written for `provider`, read through
/// a read-only open that never waits: what is committed, even while a run writes the journal.
/// `key_of` is the provider's connection key of a target ref (`None`: not a connection).
pub fn owned_in_journal(
    state_path: &Path,
    provider: &str,
    key_of: impl Fn(&TargetRef) -> Option<String>,
) -> anyhow::Result<Vec<OwnedConnection>> {
    let connection = open_journal_read_only(state_path)?;
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

/// Creates the tables of a new file or migrates a version 1 file (module docs), in one
/// transaction, so two processes opening an old file at once migrate it once.
fn initialise(connection: &mut Connection, path: &Path) -> anyhow::Result<Vec<u8>> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    transaction.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;",
    )?;
    let version = crate::state::schema::meta(&transaction, "schema_version")?;
    let has_deliveries: bool = transaction.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'deliveries'",
        [],
        |row| row.get(0),
    )?;
    match version.as_deref() {
        None if has_deliveries => migrate_from_v1(&transaction)?,
        None => transaction.execute_batch(SCHEMA)?,
        Some(SCHEMA_VERSION) => transaction.execute_batch(SCHEMA)?,
        Some(other) => {
            return Err(Refusal(format!(
                "event store {} has schema version {other}, made by a newer authport; it was left untouched",
                path.display()
            ))
            .into());
        }
    }
    transaction.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID};"))?;
    crate::state::schema::set_meta(&transaction, "schema_version", SCHEMA_VERSION)?;
    transaction.commit()?;
    crate::state::schema::salt(connection, "event store")
}

/// Version 1 → 2: the history is kept (no event ids), dates are rewritten in the ordered form
/// (an unreadable one becomes NULL: any dated event follows it), dedupe rows are dropped.
fn migrate_from_v1(transaction: &rusqlite::Transaction<'_>) -> anyhow::Result<()> {
    transaction.execute_batch(
        "DROP INDEX IF EXISTS events_by_connection;
         ALTER TABLE events RENAME TO events_v1;
         DROP TABLE deliveries;",
    )?;
    transaction.execute_batch(SCHEMA)?;
    transaction.execute_batch(
        "INSERT INTO events (seq, provider, connection_key, event_id, event_type, occurred_at,
             received_at, state, health, last_refresh_failed_at, connection_id, applied)
         SELECT seq, provider, connection_key, NULL, event_type, occurred_at, received_at,
             state, health, last_refresh_failed_at, connection_id, 1
         FROM events_v1 ORDER BY seq;
         DROP TABLE events_v1;",
    )?;
    normalise_dates(transaction)
}

/// Rewrites version 1's `occurred_at` texts (as the vendor sent them) in the ordered form.
fn normalise_dates(transaction: &rusqlite::Transaction<'_>) -> anyhow::Result<()> {
    let texts: Vec<String> = {
        let mut statement = transaction.prepare(
            "SELECT occurred_at FROM events WHERE occurred_at IS NOT NULL
             UNION SELECT occurred_at FROM latest WHERE occurred_at IS NOT NULL",
        )?;
        statement
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?
    };
    for text in texts {
        let normal = parse_stamp(&text).map(stamp);
        for table in ["events", "latest"] {
            transaction.execute(
                &format!("UPDATE {table} SET occurred_at = ?1 WHERE occurred_at = ?2"),
                params![normal, text],
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
