//! The event store's file: its tables, `application_id`, schema version and the in-place
//! upgrade of version 1 and 2 files (see the parent module's docs), and the one stored form of
//! an instant and of a health.

use std::path::Path;

use authport_core::{Health, StoredWords};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, TransactionBehavior, params};

use super::Upgrade;
use crate::files::Refusal;

/// SQLite's `application_id` of an event store ("APEV"), distinct from the journal's.
pub(super) const APPLICATION_ID: i32 = 0x4150_4556;

/// The schema version this build writes (see `super`'s docs); versions 1 and 2 are upgraded.
const SCHEMA_VERSION: &str = "3";

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
-- Every event id seen within the window (owned or not): a replay is stored once. Rows expire
-- once their event (an undated one: its arrival) is older than the window (a replay of it is
-- refused anyway).
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
-- UTC in one fixed-width form, so text order is time order (NULL: the vendor sends no time);
-- `health` is a `Health` word; `kind` the vendor's word, for display; `applied`: it became the
-- latest.
CREATE TABLE IF NOT EXISTS events (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    provider       TEXT NOT NULL,
    connection_key TEXT NOT NULL,
    event_id       TEXT,
    kind           TEXT NOT NULL,
    occurred_at    TEXT,
    received_at    TEXT NOT NULL,
    health         TEXT,
    connection_id  TEXT,
    applied        INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS events_by_connection ON events (provider, connection_key, seq);
-- The latest of each owned connection: its event that happened (or arrived) last.
CREATE TABLE IF NOT EXISTS latest (
    provider       TEXT NOT NULL,
    connection_key TEXT NOT NULL,
    kind           TEXT NOT NULL,
    occurred_at    TEXT,
    received_at    TEXT NOT NULL,
    health         TEXT,
    events         INTEGER NOT NULL,
    PRIMARY KEY (provider, connection_key)
) WITHOUT ROWID;
-- Deliveries about connections this migration does not own: counted, never stored.
CREATE TABLE IF NOT EXISTS unknown (
    provider TEXT PRIMARY KEY,
    count    INTEGER NOT NULL
) WITHOUT ROWID;
";

/// The stored form of an instant: UTC, microseconds, fixed width, so text order is time order.
pub(super) fn stamp(instant: DateTime<Utc>) -> String {
    instant.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A stored (or version 1) `occurred_at` read back as an instant.
pub fn parse_stamp(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub(super) fn check_ours(connection: &Connection, path: &Path) -> anyhow::Result<()> {
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

/// A stored health word read back; a word this build does not know (a newer authport wrote
/// it) reads as none, so the live read-back decides.
pub(super) fn health_column(
    row: &rusqlite::Row<'_>,
    index: usize,
) -> rusqlite::Result<Option<Health>> {
    Ok(row
        .get::<_, Option<String>>(index)?
        .and_then(|word| word.parse().ok()))
}

/// Creates the tables of a new file or upgrades a version 1 or 2 file (module docs), in one
/// transaction, so two processes opening an old file at once upgrade it once. An old file
/// without `upgrade` is refused untouched.
pub(super) fn initialise(
    connection: &mut Connection,
    path: &Path,
    upgrade: Option<Upgrade<'_>>,
) -> anyhow::Result<Vec<u8>> {
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
    let old = match version.as_deref() {
        None if has_deliveries => Some(1),
        Some("2") => Some(2),
        None | Some(SCHEMA_VERSION) => None,
        Some(other) => {
            return Err(Refusal(format!(
                "event store {} has schema version {other}, made by a newer authport; it was left untouched",
                path.display()
            ))
            .into());
        }
    };
    match (old, upgrade) {
        (None, _) => transaction.execute_batch(SCHEMA)?,
        (Some(old), Some(upgrade)) => upgrade_from(&transaction, old, upgrade)?,
        (Some(old), None) => {
            return Err(Refusal(format!(
                "event store {} has schema version {old}, made by an older authport; \
                 `authport webhooks` or `authport status` for its provider upgrades it; it was left untouched",
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

/// The columns of versions 1 and 2 that are not the vendor's words: copied as they are
/// (version 1's `idempotency_key` is dropped).
const NEUTRAL: [&str; 10] = [
    "seq",
    "idempotency_key",
    "provider",
    "connection_key",
    "event_id",
    "occurred_at",
    "received_at",
    "connection_id",
    "applied",
    "events",
];

/// Version 1 or 2 → 3: the history and the latest events are kept, each with the health the
/// provider reads in its old words; dates are rewritten in the ordered form (an unreadable one
/// becomes NULL: any event follows it). Version 1's dedupe rows are dropped (no event ids);
/// version 2's are kept.
fn upgrade_from(
    transaction: &rusqlite::Transaction<'_>,
    old: u8,
    upgrade: Upgrade<'_>,
) -> anyhow::Result<()> {
    transaction.execute_batch(
        "DROP INDEX IF EXISTS events_by_connection;
         ALTER TABLE events RENAME TO events_old;
         ALTER TABLE latest RENAME TO latest_old;",
    )?;
    if old == 1 {
        transaction.execute_batch("DROP TABLE deliveries;")?;
    }
    transaction.execute_batch(SCHEMA)?;
    let health_of = |provider: &str, words: &StoredWords| -> Option<&'static str> {
        (provider == upgrade.provider)
            .then(|| upgrade.source.stored_health(words))
            .flatten()
            .map(Health::as_str)
    };
    for row in old_rows(transaction, "events_old")? {
        let health = health_of(&row.text("provider"), &row.words);
        transaction.execute(
            "INSERT INTO events (seq, provider, connection_key, event_id, kind, occurred_at,
                 received_at, health, connection_id, applied)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                row.number("seq"),
                row.text("provider"),
                row.text("connection_key"),
                row.neutral.get("event_id"),
                row.kind(),
                row.neutral.get("occurred_at"),
                row.text("received_at"),
                health,
                row.neutral.get("connection_id"),
                row.neutral
                    .get("applied")
                    .map_or(1, |a| i64::from(a != "0")),
            ],
        )?;
    }
    for row in old_rows(transaction, "latest_old")? {
        let health = health_of(&row.text("provider"), &row.words);
        transaction.execute(
            "INSERT INTO latest (provider, connection_key, kind, occurred_at, received_at, health,
                 events)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                row.text("provider"),
                row.text("connection_key"),
                row.kind(),
                row.neutral.get("occurred_at"),
                row.text("received_at"),
                health,
                row.number("events"),
            ],
        )?;
    }
    transaction.execute_batch("DROP TABLE events_old; DROP TABLE latest_old;")?;
    normalise_dates(transaction)
}

/// One row of an old table: its neutral columns and its vendor words, by column name (NULLs
/// left out), all as text.
struct OldRow {
    neutral: std::collections::BTreeMap<String, String>,
    words: StoredWords,
}

impl OldRow {
    fn text(&self, column: &str) -> String {
        self.neutral.get(column).cloned().unwrap_or_default()
    }

    fn number(&self, column: &str) -> i64 {
        self.neutral
            .get(column)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// The vendor's word for the event (its old `event_type` column), for display.
    fn kind(&self) -> String {
        self.words.get("event_type").cloned().unwrap_or_default()
    }
}

fn old_rows(transaction: &rusqlite::Transaction<'_>, table: &str) -> anyhow::Result<Vec<OldRow>> {
    let mut statement = transaction.prepare(&format!("SELECT * FROM {table}"))?;
    let names: Vec<String> = statement
        .column_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let rows = statement.query_map([], |row| {
        let mut old = OldRow {
            neutral: Default::default(),
            words: Default::default(),
        };
        for (index, name) in names.iter().enumerate() {
            let text = match row.get_ref(index)? {
                rusqlite::types::ValueRef::Null => continue,
                rusqlite::types::ValueRef::Integer(n) => n.to_string(),
                rusqlite::types::ValueRef::Real(n) => n.to_string(),
                rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                    String::from_utf8_lossy(t).into_owned()
                }
            };
            if NEUTRAL.contains(&name.as_str()) {
                old.neutral.insert(name.clone(), text);
            } else {
                old.words.insert(name.clone(), text);
            }
        }
        Ok(old)
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Rewrites older versions' `occurred_at` texts in the ordered form (version 1 kept them as
/// the vendor sent them).
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
