//! The event store: what a provider's webhooks said about the connections a migration owns,
//! kept in `<state>.events` beside the `--state` journal.
//!
//! It is a separate SQLite file because the journal is held exclusively by a running import or
//! verify (a file lock, one run per state file): a receiver writing there would stop the
//! import, or be stopped by it. The event store uses WAL with normal locking and a busy timeout, so the
//! receiver writes while `status` reads, and none of them touches the journal's lock.
//!
//! Which connections the migration owns is learnt from the journal's target references, keyed by
//! the provider's webhook source (a "connection key", [`WebhookSource::connection_key`]), and
//! written here by [`EventStore::own`]: the import publishes what it wrote when it ends
//! ([`publish_owned`]), and the receiver reads the journal once when it starts, through a
//! read-only open that sees what is committed, even while a run writes ([`owned_in_journal`]).
//!
//! Only typed, non-secret fields of a delivery are ever stored ([`Delivery`] has no payload): for
//! an owned connection, its latest event's [`Health`] and the event history; for any other
//! connection, only a count. The vendor's word for an event (`kind`) is kept for display only.
//!
//! Events count by when they happened, not by when they arrived, and only what the vendor signed
//! counts:
//! - deliveries are deduplicated on the event id the provider gives (the vendor's signed id, or
//!   a hash of the signed body when the vendor sends none), so a replay under a fresh (unsigned)
//!   idempotency key is stored once;
//! - an event becomes its connection's latest only when its `occurred_at` is not older than the
//!   latest's; an older one (a retry that arrives after what followed it) joins the history only.
//!   A vendor that sends no time is ordered by arrival: its events always become the latest,
//!   and their dedupe ids expire by arrival time;
//! - an event that happened more than [`EVENT_WINDOW`] (7 days) ago, or more than
//!   [`CLOCK_SKEW`] in the future, is refused ([`Recorded::OutsideWindow`]). A replay can only
//!   be recognised while its event id is kept, so the ids are kept exactly that long: the
//!   `deliveries` table expires rows whose event is older than the window, since such a replay
//!   is refused anyway. We assume every vendor gives up retrying a delivery well within 7 days
//!   (each provider's docs say what its vendor documents).
//!
//! Schema versions: 1 (no `schema_version` in `meta`) deduplicated on the idempotency key; 2 on
//! the event id, and both kept the vendor's own words; 3 keeps typed health. Older files are
//! migrated in place when they are opened ([`EventStore::open_upgrading`]): the history and the
//! latest events are kept, each old event's words turned into a [`Health`] by the provider
//! ([`WebhookSource::stored_health`]); version 1's dedupe rows are dropped (they hold no event
//! id; a replay of such an event may add one history row but, being no newer, never changes
//! the latest).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use authport_core::{FingerprintKey, Health, HealthEvent, TargetIdentity, WebhookSource};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension as _, TransactionBehavior, params};

use crate::files::{Refusal, precreate_private};
use crate::state::target::{RecordedTarget, mismatch};

mod journal;
mod schema;

pub use journal::{owned_in_journal, publish_owned, require_state_file};
pub use schema::parse_stamp;
use schema::{check_ours, health_column, initialise, stamp};

/// How long a write waits for another writer (the receiver and an import publishing ownership).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Events that happened longer ago are refused, and their ids forgotten (module docs).
pub const EVENT_WINDOW: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// How far in the future an event may be dated (the vendor's clock against ours). A signed event
/// dated far ahead would otherwise stay every connection's latest until that date.
pub const CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// One verified webhook delivery, reduced to its typed, non-secret fields by the provider's
/// [`WebhookSource`]. Every field that decides something (id, health, time) comes from the
/// signed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub provider: String,
    /// The dedupe key ([`HealthEvent::id`]).
    pub event_id: String,
    /// The provider's key of the connection (see [`EventStore::own`]).
    pub connection_key: String,
    /// The vendor's word for the event, for display only.
    pub kind: String,
    /// When the event happened (the vendor's signed word), which orders events; `None`: the
    /// vendor sends no time, so arrival orders them.
    pub occurred_at: Option<DateTime<Utc>>,
    /// What the event says of the connection's health (`None`: nothing).
    pub health: Option<Health>,
    /// The vendor's id of the connection, when the event names it.
    pub connection_id: Option<String>,
}

impl Delivery {
    /// The delivery of `provider`'s parsed `event`.
    pub fn of(provider: &str, event: HealthEvent) -> Delivery {
        Delivery {
            provider: provider.to_owned(),
            event_id: event.id,
            connection_key: event.connection_key,
            kind: event.kind,
            occurred_at: event.occurred_at,
            health: event.health,
            connection_id: event.connection_id,
        }
    }
}

/// How an event store of an older schema is upgraded in place: the provider whose rows it
/// holds, and that provider's webhook source, which turns each old event's vendor words into a
/// [`Health`] ([`WebhookSource::stored_health`]).
#[derive(Clone, Copy)]
pub struct Upgrade<'a> {
    pub provider: &'a str,
    pub source: &'a dyn WebhookSource,
}

impl std::fmt::Debug for Upgrade<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgrade")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
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
    /// The vendor's word for the event, for display only.
    pub kind: String,
    /// `None`: the vendor sends no time (or an older receiver stored it undated).
    pub occurred_at: Option<String>,
    pub received_at: String,
    /// What the latest event said of the connection's health (`None`: nothing).
    pub health: Option<Health>,
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
    pub kind: String,
    pub occurred_at: Option<String>,
    pub received_at: String,
    pub health: Option<Health>,
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
    /// never through a symlink; an unrelated database there is refused untouched). A store of
    /// an older schema is refused untouched: only [`Self::open_upgrading`], given the provider's
    /// webhook source, can read its vendor words.
    pub fn open(state_path: &Path) -> anyhow::Result<EventStore> {
        Self::open_with(state_path, None)
    }

    /// [`Self::open`], upgrading a store of an older schema in place (module docs).
    pub fn open_upgrading(state_path: &Path, upgrade: Upgrade<'_>) -> anyhow::Result<EventStore> {
        Self::open_with(state_path, Some(upgrade))
    }

    fn open_with(state_path: &Path, upgrade: Option<Upgrade<'_>>) -> anyhow::Result<EventStore> {
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
        let salt = initialise(&mut connection, &path, upgrade)
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
    /// app never mix with another's.
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
        if let Some(occurred_at) = delivery.occurred_at
            && let Err(outside) = check_window(occurred_at, now)
        {
            return Ok(Recorded::OutsideWindow(outside));
        }
        let received_at = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let occurred_at = delivery.occurred_at.map(stamp);
        // An undated event's id expires by its arrival.
        let dated = stamp(delivery.occurred_at.unwrap_or(now));
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
                dated,
                received_at,
                owned
            ])?;
        if inserted == 0 {
            return Ok(Recorded::Duplicate);
        }
        let outcome = if owned {
            let latest = store_event(&transaction, delivery, occurred_at.as_deref(), &received_at)?;
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
            "SELECT o.record_id, l.connection_key, l.kind, l.occurred_at, l.received_at,
                    l.health, l.events
             FROM latest l JOIN owned o
               ON o.provider = l.provider AND o.connection_key = l.connection_key
             WHERE l.provider = ?1 AND (?2 IS NULL OR o.record_id = ?2)
             ORDER BY o.record_id",
        )?;
        let rows = statement.query_map(params![provider, record_id], |row| {
            Ok(ConnectionLatest {
                record_id: row.get(0)?,
                connection_key: row.get(1)?,
                kind: row.get(2)?,
                occurred_at: row.get(3)?,
                received_at: row.get(4)?,
                health: health_column(row, 5)?,
                events: row.get::<_, i64>(6)?.try_into().unwrap_or(0),
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
            "SELECT e.seq, e.event_id, e.kind, e.occurred_at, e.received_at, e.health,
                    e.connection_id, e.applied
             FROM events e JOIN owned o
               ON o.provider = e.provider AND o.connection_key = e.connection_key
             WHERE e.provider = ?1 AND o.record_id = ?2
             ORDER BY e.seq",
        )?;
        let rows = statement.query_map(params![provider, record_id], |row| {
            Ok(StoredEvent {
                seq: row.get(0)?,
                event_id: row.get(1)?,
                kind: row.get(2)?,
                occurred_at: row.get(3)?,
                received_at: row.get(4)?,
                health: health_column(row, 5)?,
                connection_id: row.get(6)?,
                applied: row.get(7)?,
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
/// already its latest, makes it the latest. Returns whether it did. An undated event (`None`)
/// is ordered by arrival: it always becomes the latest.
fn store_event(
    transaction: &rusqlite::Transaction<'_>,
    delivery: &Delivery,
    occurred_at: Option<&str>,
    received_at: &str,
) -> anyhow::Result<bool> {
    // `None`: no latest yet; `Some(None)`: one without a date, which any event follows.
    let current: Option<Option<String>> = transaction
        .prepare_cached(
            "SELECT occurred_at FROM latest WHERE provider = ?1 AND connection_key = ?2",
        )?
        .query_row(params![delivery.provider, delivery.connection_key], |row| {
            row.get(0)
        })
        .optional()?;
    let applies = match (occurred_at, &current) {
        (Some(new), Some(Some(latest))) => new >= latest.as_str(),
        _ => true,
    };
    let health = delivery.health.map(Health::as_str);
    transaction
        .prepare_cached(
            "INSERT INTO events (provider, connection_key, event_id, kind, occurred_at,
                 received_at, health, connection_id, applied)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            delivery.provider,
            delivery.connection_key,
            delivery.event_id,
            delivery.kind,
            occurred_at,
            received_at,
            health,
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
    // The latest's health is the latest event's own (none when it says nothing): an event that
    // says nothing (a creation) does not keep an earlier failure alive.
    transaction
        .prepare_cached(
            "INSERT INTO latest (provider, connection_key, kind, occurred_at, received_at,
                 health, events)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1)
             ON CONFLICT (provider, connection_key) DO UPDATE SET
                 kind = excluded.kind,
                 occurred_at = excluded.occurred_at,
                 received_at = excluded.received_at,
                 health = excluded.health,
                 events = events + 1",
        )?
        .execute(params![
            delivery.provider,
            delivery.connection_key,
            delivery.kind,
            occurred_at,
            received_at,
            health,
        ])?;
    Ok(true)
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
