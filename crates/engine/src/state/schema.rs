//! The state file itself: its tables, its SQLite `application_id`, how it is opened (exclusive,
//! WAL, mode 0600, never through a symlink) and its random salt.

use std::fs::{File, TryLockError};
use std::path::Path;

use anyhow::Context as _;
use rand::RngCore as _;
use rusqlite::{Connection, OpenFlags, OptionalExtension as _, params};

use crate::files::{Refusal, open_nofollow, precreate_private};

/// The schema version this build writes; older files are migrated on open, once
/// ([`migrate`]): 2 added the `grants` table; 3 stores claim and grant keys as 32-byte BLOBs
/// and drops the two by-record indexes. A file of a newer version is refused untouched.
const SCHEMA_VERSION: u32 = 3;

/// SQLite's `application_id` of an authport state file ("APRT"): set on creation, checked on
/// open, so an unrelated database given as `--state` is refused instead of modified.
pub(crate) const APPLICATION_ID: i32 = 0x4150_5254;

/// WAL pages after which the journal's writer checkpoints on its own (SQLite's default: 1000).
/// The checkpointer thread copies the WAL back meanwhile, but under a steady import the WAL is
/// never empty when a write begins, so it is reused from its start only after such a checkpoint:
/// the writer's, which finds nearly everything copied and synced already. Large enough that it
/// comes about once a second at 20,000 records/s (2–3 pages a record); the WAL file may reach
/// about this many 4 KiB pages (160 MB) during a run and is removed when the run ends.
const WAL_AUTOCHECKPOINT_PAGES: u32 = 40_000;

/// The tables of a state file, as written before it had an `application_id` (before
/// [`ADDED_TABLES`] too).
const TABLES: [&str; 4] = ["claims", "journal", "memo", "meta"];

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS journal (
    provider            TEXT    NOT NULL,
    record_id           TEXT    NOT NULL,
    -- Keyed fingerprint of the content last applied at the target (NULL: nothing applied).
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
-- Which record owns each target address (MappedRecord.target, keyed: 32 bytes): two records
-- must never write the same object at the target. A claim holds only while its record has a
-- journal row (see `journal.rs`), so releasing one needs no index by record.
CREATE TABLE IF NOT EXISTS claims (
    provider   TEXT NOT NULL,
    target_key BLOB NOT NULL,
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

/// Tables added to schema version 1 in place: every open creates them if missing, and older
/// binaries ignore them.
///
/// `rolled_back`: records whose object `rollback` removed (their journal row is gone), so
/// `status` shows them as `rolled_back` instead of forgetting them. A record imported again
/// has a journal row, which outranks this one.
pub(crate) const ADDED_TABLES: &str = "
CREATE TABLE IF NOT EXISTS rolled_back (
    provider  TEXT NOT NULL,
    record_id TEXT NOT NULL,
    PRIMARY KEY (provider, record_id)
) WITHOUT ROWID;
";

/// Schema 2: which record holds each OAuth grant (the keyed hash of its refresh token, else its
/// access token; never the token: 32 bytes since schema 3), written with the intent, so a later
/// run refuses a second record carrying the same grant. A record may hold several (its token
/// changed between runs); they hold while its journal row exists, as claims do.
pub(crate) const GRANTS_TABLE: &str = "
CREATE TABLE IF NOT EXISTS grants (
    provider  TEXT NOT NULL,
    grant_key BLOB NOT NULL,
    record_id TEXT NOT NULL,
    PRIMARY KEY (provider, grant_key)
) WITHOUT ROWID;
";

/// Schema 1 or 2 → 3, inside [`migrate`]'s transaction: the hex keys become their 32 bytes
/// (`unhex`; a row that is not hex could never match a key, so it is not copied), the tables
/// are rebuilt without the by-record indexes, and claims and grants whose record has no journal
/// row are swept ([`SWEEP`]). A schema-1 file has no `grants` yet: it gets the new table.
const CLAIMS_TO_3: &str = "
DROP INDEX IF EXISTS claims_by_record;
ALTER TABLE claims RENAME TO claims_before_3;
CREATE TABLE claims (
    provider   TEXT NOT NULL,
    target_key BLOB NOT NULL,
    record_id  TEXT NOT NULL,
    PRIMARY KEY (provider, target_key)
) WITHOUT ROWID;
INSERT INTO claims (provider, target_key, record_id)
    SELECT provider, unhex(target_key), record_id FROM claims_before_3
    WHERE unhex(target_key) IS NOT NULL;
DROP TABLE claims_before_3;
";

const GRANTS_TO_3: &str = "
DROP INDEX IF EXISTS grants_by_record;
ALTER TABLE grants RENAME TO grants_before_3;
CREATE TABLE grants (
    provider  TEXT NOT NULL,
    grant_key BLOB NOT NULL,
    record_id TEXT NOT NULL,
    PRIMARY KEY (provider, grant_key)
) WITHOUT ROWID;
INSERT INTO grants (provider, grant_key, record_id)
    SELECT provider, unhex(grant_key), record_id FROM grants_before_3
    WHERE unhex(grant_key) IS NOT NULL;
DROP TABLE grants_before_3;
";

/// Deletes the claims and grants whose record has no journal row: released ones (see
/// `journal.rs`), which the hot path leaves in place. Run at the end of rollback and by the
/// migration; a full scan of both tables, never per record.
pub(crate) const SWEEP: &str = "
DELETE FROM claims WHERE NOT EXISTS (
    SELECT 1 FROM journal j WHERE j.provider = claims.provider AND j.record_id = claims.record_id);
DELETE FROM grants WHERE NOT EXISTS (
    SELECT 1 FROM journal j WHERE j.provider = grants.provider AND j.record_id = grants.record_id);
";

/// Opens the state file at `path` for one run: refuses a symlink and a database that is not an
/// authport state (before writing anything to it), creates a new file with mode 0600, then takes
/// the file exclusively. Returns the connection and the open file that holds the run's lock.
pub(crate) fn open_file(path: &Path, synchronous: &str) -> anyhow::Result<(Connection, File)> {
    precreate_private("state file", path)?;
    // One run per state file: a second run fails at once instead of racing this one (two runs
    // would import the same records twice). The lock is the OS's (flock), held by this open
    // file until the store is dropped, and not SQLite's exclusive locking mode, so that the
    // checkpointer's own connection can copy the WAL back while the journal writes on.
    let lock = open_nofollow(path)
        .with_context(|| format!("cannot open state file {}", path.display()))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Err(InUse.into()),
        Err(TryLockError::Error(error)) => {
            return Err(anyhow::Error::from(error)
                .context(format!("cannot lock state file {}", path.display())));
        }
    }
    let connection = connect(path)?;
    // Only reads until the file is known to be ours.
    check_ours(&connection, path)?;
    // The writer checkpoints on its own only past this many WAL pages: the checkpointer does
    // it meanwhile (see `super::checkpointer`), off the journal's thread.
    connection.execute_batch(&format!(
        "PRAGMA busy_timeout={BUSY_TIMEOUT_MS}; \
         PRAGMA journal_mode=WAL; PRAGMA synchronous={synchronous}; \
         PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES};"
    ))?;
    Ok((connection, lock))
}

/// A connection to the state file at `path`, never through a symlink.
pub(crate) fn connect(path: &Path) -> anyhow::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    Connection::open_with_flags(path, flags)
        .with_context(|| format!("cannot open state file {}", path.display()))
}

/// How long a connection waits for SQLite's own locks between the journal's writer and the
/// checkpointer (moments in practice; the run's exclusivity is the file lock's).
pub(crate) const BUSY_TIMEOUT_MS: u32 = 5_000;

/// Another run holds the state file's lock.
#[derive(Debug, thiserror::Error)]
#[error("the state file is locked by another process")]
pub(crate) struct InUse;

/// Refuses a database that holds tables and is not an authport state file. An empty file is
/// new; a file with exactly our tables and no id is one written before the id existed.
fn check_ours(connection: &Connection, path: &Path) -> anyhow::Result<()> {
    let application_id: i32 = connection
        .query_row("PRAGMA application_id", [], |row| row.get(0))
        .map_err(|error| not_a_database(error, path))?;
    if application_id == APPLICATION_ID {
        return Ok(());
    }
    let mut statement =
        connection.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?;
    let tables = statement
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    if tables.is_empty() || (application_id == 0 && tables == TABLES) {
        return Ok(());
    }
    Err(Refusal(format!(
        "{} is a SQLite database that is not an authport state file; it was left untouched (give a new path for --state)",
        path.display()
    ))
    .into())
}

/// A file that is not a SQLite database at all (a text file given as `--state`) is the
/// operator's mistake, refused in a plain sentence (exit 2), not SQLite's own words.
fn not_a_database(error: rusqlite::Error, path: &Path) -> anyhow::Error {
    if error.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) {
        return Refusal(format!(
            "{} is not an authport state file (not a SQLite database); it was left untouched (give the state file a run wrote, or a new path for --state)",
            path.display()
        ))
        .into();
    }
    error.into()
}

/// Creates the tables (new file) or brings an older file to [`SCHEMA_VERSION`] ([`migrate`]),
/// and returns the state's salt (made on first use). `what` names the file in a refusal.
pub(crate) fn initialise(connection: &Connection, what: &str) -> anyhow::Result<Vec<u8>> {
    let version = file_version(connection)?;
    match version.as_deref().map(|text| (text, parse_version(text))) {
        None => {
            connection.execute_batch(SCHEMA)?;
            connection.execute_batch(ADDED_TABLES)?;
            connection.execute_batch(GRANTS_TABLE)?;
            connection.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID};"))?;
        }
        Some((text, number)) if number.is_none_or(|number| number > SCHEMA_VERSION) => {
            return Err(Refusal(format!(
                "{what} has schema version {text}, made by a newer authport (this one reads up to {SCHEMA_VERSION}); it was left untouched (use that authport or a newer one)"
            ))
            .into());
        }
        Some(_) => {
            migrate(connection)?;
        }
    }
    // A write at once: a file that cannot be written fails here, before anything is sent.
    connection.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)
         ON CONFLICT (key) DO NOTHING",
        params![SCHEMA_VERSION.to_string()],
    )?;
    salt(connection, what)
}

/// The schema version the file records: `None` for a new (empty) file, "1" for a file with a
/// journal and no recorded version (written before versions were recorded).
fn file_version(connection: &Connection) -> anyhow::Result<Option<String>> {
    let has_table = |name: &str| -> rusqlite::Result<bool> {
        connection.query_row(
            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            params![name],
            |row| row.get(0),
        )
    };
    let recorded = if has_table("meta")? {
        meta(connection, "schema_version")?
    } else {
        None
    };
    Ok(match recorded {
        Some(text) => Some(text),
        None if has_table("journal")? => Some("1".to_owned()),
        None => None,
    })
}

/// A recorded schema version as a number; `None` for one that is not (no build wrote it).
fn parse_version(text: &str) -> Option<u32> {
    text.parse().ok()
}

/// Brings a file written by an older build to [`SCHEMA_VERSION`], once, in one transaction that
/// also records the version. Returns whether it changed anything.
///
/// - 1 → 2: the `grants` table, empty; the next import fills it for every record it prepares
///   (unchanged ones included), so grants journalled before are known from then on.
/// - 2 → 3: claim and grant keys from hex TEXT to 32-byte BLOBs ([`CLAIMS_TO_3`]), without the
///   by-record indexes, and the released rows swept ([`SWEEP`]).
///
/// A file at this version only gets any table it lacks (dropped by hand).
pub(crate) fn migrate(connection: &Connection) -> anyhow::Result<bool> {
    // Tables older builds added in place, and any table missing: `IF NOT EXISTS` leaves an
    // existing one (an old-shaped `claims` included) as it is.
    connection.execute_batch(SCHEMA)?;
    connection.execute_batch(ADDED_TABLES)?;
    let version = file_version(connection)?
        .as_deref()
        .and_then(parse_version)
        .unwrap_or(SCHEMA_VERSION);
    if version >= SCHEMA_VERSION {
        connection.execute_batch(GRANTS_TABLE)?;
        return Ok(false);
    }
    let has_grants: bool = connection.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'grants'",
        [],
        |row| row.get(0),
    )?;
    connection
        .execute_batch("BEGIN IMMEDIATE")
        .and_then(|()| connection.execute_batch(CLAIMS_TO_3))
        .and_then(|()| {
            connection.execute_batch(if has_grants {
                GRANTS_TO_3
            } else {
                GRANTS_TABLE
            })
        })
        .and_then(|()| connection.execute_batch(SWEEP))
        .and_then(|()| {
            connection.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID};"))
        })
        .and_then(|()| {
            connection
                .execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    params![SCHEMA_VERSION.to_string()],
                )
                .map(drop)
        })
        .and_then(|()| connection.execute_batch("COMMIT"))
        .map_err(|error| {
            if !connection.is_autocommit() {
                let _ = connection.execute_batch("ROLLBACK");
            }
            anyhow::Error::from(error).context(format!(
                "cannot upgrade the state file to schema {SCHEMA_VERSION}"
            ))
        })?;
    tracing::info!(
        from = version,
        "state file upgraded to schema {SCHEMA_VERSION} (binary claim and grant keys)"
    );
    Ok(true)
}

/// The file's random salt from its `meta` table, made on first use. `what` names the file in
/// the error for a malformed salt. Should another process make it first, theirs wins.
pub(crate) fn salt(connection: &Connection, what: &str) -> anyhow::Result<Vec<u8>> {
    let malformed = || format!("{what} has a malformed salt");
    if let Some(hex) = meta(connection, "salt")? {
        return decode_hex(&hex).with_context(malformed);
    }
    let mut salt = vec![0u8; 32];
    rand::rng().fill_bytes(&mut salt);
    let hex = encode_hex(&salt);
    connection.execute(
        "INSERT INTO meta (key, value) VALUES ('salt', ?1) ON CONFLICT (key) DO NOTHING",
        params![hex],
    )?;
    let hex = meta(connection, "salt")?.unwrap_or(hex);
    decode_hex(&hex).with_context(malformed)
}

/// A `meta` value, if set.
pub(crate) fn meta(connection: &Connection, key: &str) -> anyhow::Result<Option<String>> {
    Ok(connection
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            params![key],
            |row| row.get(0),
        )
        .optional()?)
}

pub(crate) fn set_meta(connection: &Connection, key: &str, value: &str) -> anyhow::Result<()> {
    connection.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

pub(crate) fn is_busy(error: &anyhow::Error) -> bool {
    error.is::<InUse>()
        || error.chain().any(|cause| {
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
    anyhow::ensure!(
        hex.len().is_multiple_of(2) && hex.is_ascii(),
        "not an even number of hex digits"
    );
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).context("not hex"))
        .collect()
}
