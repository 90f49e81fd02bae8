//! The event store's file: its tables, `application_id`, schema version and the migration of
//! version 1 files (see the parent module's docs), and the one stored form of an instant.

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, TransactionBehavior, params};

use crate::files::Refusal;

/// SQLite's `application_id` of an event store ("APEV"), distinct from the journal's.
pub(super) const APPLICATION_ID: i32 = 0x4150_4556;

/// The schema version this build writes (see `super`'s docs); version 1 files are migrated.
const SCHEMA_VERSION: &str = "2";

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

/// Creates the tables of a new file or migrates a version 1 file (module docs), in one
/// transaction, so two processes opening an old file at once migrate it once.
pub(super) fn initialise(connection: &mut Connection, path: &Path) -> anyhow::Result<Vec<u8>> {
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
