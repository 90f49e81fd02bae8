//! The links store: `<state>.links` beside the `--state` journal, what the reconnect-link
//! broker (`authport links serve`) and `reconnect --links --broker` share.
//!
//! A separate SQLite file, like the event store ([`crate::events`]): the journal is locked by a
//! running import, and the broker must answer while one runs. WAL, a busy timeout, mode 0600,
//! never opened through a symlink; it is made only beside an existing state file.
//!
//! It holds the link signing key (32 bytes from the OS RNG, generated once), the links
//! `reconnect --broker` issued (the claims' fields, the owner's name and email, and the
//! row's non-secret vendor ids), the revocations, and a journal of visits and mints (when,
//! which link, what happened). Never a token, a vendor URL or a secret: a token is derived
//! from the key and the claims, so nothing here can be replayed as a link without the key.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use authport_core::Health;
use authport_links::{LinkClaims, LinkKey, Revocation};
use rusqlite::{Connection, OpenFlags, OptionalExtension as _, params};
use serde_json::{Map, Value};

use crate::files::{Refusal, precreate_private};

/// SQLite's `application_id` of a links store ("APLK"), distinct from the journal's and the
/// event store's.
const APPLICATION_ID: i32 = 0x4150_4C4B;

/// The schema version this build writes.
const SCHEMA_VERSION: &str = "1";

/// How long a write waits for another writer (the broker and a `reconnect` or `links revoke`).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
-- The signing key: one row.
CREATE TABLE IF NOT EXISTS link_key (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    key BLOB NOT NULL CHECK (length(key) = 32)
);
-- One issued link per provider, owner and service: its claims and what the page and the mint
-- need (the owner's name and email, the row's vendor ids). No token, no URL.
CREATE TABLE IF NOT EXISTS issued (
    provider    TEXT NOT NULL,
    owner_id    TEXT NOT NULL,
    service     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    owner_name  TEXT,
    owner_email TEXT,
    vendor_ids  TEXT NOT NULL,
    issued_at   TEXT NOT NULL,
    PRIMARY KEY (provider, owner_id, service)
) WITHOUT ROWID;
-- Revocations: `service` '' covers all of the owner's services.
CREATE TABLE IF NOT EXISTS revocations (
    provider   TEXT NOT NULL,
    owner_id   TEXT NOT NULL,
    service    TEXT NOT NULL,
    revoked_at TEXT NOT NULL,
    PRIMARY KEY (provider, owner_id, service)
) WITHOUT ROWID;
-- Visits and mints: shown, expired, revoked, minted, refused.
CREATE TABLE IF NOT EXISTS journal (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    at       TEXT NOT NULL,
    provider TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    service  TEXT NOT NULL,
    what     TEXT NOT NULL
);
";

/// The store is made only beside a state file (a regular file or a link to one is refused
/// like the journal's: no symlink). The journal is not opened: an import or `reconnect` may
/// hold its lock.
fn require_state_file(state_path: &Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(state_path) {
        Ok(metadata) if metadata.is_file() => Ok(()),
        Ok(_) => Err(Refusal(format!(
            "state file {} is not a regular file",
            state_path.display()
        ))
        .into()),
        Err(_) => Err(Refusal(format!(
            "state file {} does not exist: reconnect links are made for a migration's state \
             (run `authport import --state` first)",
            state_path.display()
        ))
        .into()),
    }
}

/// `<state>.links`: the links store of the state file at `state_path`.
pub fn links_path(state_path: &Path) -> PathBuf {
    let mut name = state_path.as_os_str().to_owned();
    name.push(".links");
    PathBuf::from(name)
}

/// A link `reconnect --links --broker` issued: its claims and what the broker shows and mints
/// with. Nothing secret.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuedLink {
    pub claims: LinkClaims,
    pub owner_name: Option<String>,
    pub owner_email: Option<String>,
    /// The row's vendor ids (Tray `serviceId`, Apideck `unified_api`, ...).
    pub vendor_ids: Map<String, Value>,
}

/// What became of a visit or a mint, as the journal records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkEvent {
    Shown,
    Expired,
    Revoked,
    Minted,
    Refused,
}

impl LinkEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkEvent::Shown => "shown",
            LinkEvent::Expired => "expired",
            LinkEvent::Revoked => "revoked",
            LinkEvent::Minted => "minted",
            LinkEvent::Refused => "refused",
        }
    }
}

/// The links store (module docs).
pub struct LinksStore {
    connection: Mutex<Connection>,
    path: PathBuf,
}

impl std::fmt::Debug for LinksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinksStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl LinksStore {
    /// Creates or reopens the links store beside the existing state file at `state_path`
    /// (refused when there is none). An unrelated database there is refused untouched.
    pub fn open(state_path: &Path) -> anyhow::Result<LinksStore> {
        require_state_file(state_path)?;
        let path = links_path(state_path);
        precreate_private("links store", &path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let connection = Connection::open_with_flags(&path, flags)
            .with_context(|| format!("cannot open links store {}", path.display()))?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        check_ours(&connection, &path)?;
        connection.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")?;
        initialise(&connection)
            .with_context(|| format!("cannot initialise links store {}", path.display()))?;
        Ok(LinksStore {
            connection: Mutex::new(connection),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The signing key (made when the store was created).
    pub fn key(&self) -> anyhow::Result<LinkKey> {
        let bytes: Vec<u8> =
            self.lock()
                .query_row("SELECT key FROM link_key WHERE id = 1", [], |row| {
                    row.get(0)
                })?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("the links store's key is damaged"))?;
        Ok(LinkKey::from_bytes(bytes))
    }

    /// The link issued for `provider`'s owner and service, if any.
    pub fn issued(
        &self,
        provider: &str,
        owner_id: &str,
        service: &str,
    ) -> anyhow::Result<Option<IssuedLink>> {
        let row = self
            .lock()
            .query_row(
                "SELECT reason, expires_at, owner_name, owner_email, vendor_ids FROM issued
                 WHERE provider = ?1 AND owner_id = ?2 AND service = ?3",
                params![provider, owner_id, service],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, Option<String>>(2)?,
                        row.get::<_, Option<String>>(3)?,
                        row.get::<_, String>(4)?,
                    ))
                },
            )
            .optional()?;
        let Some((reason, expires_at, owner_name, owner_email, vendor_ids)) = row else {
            return Ok(None);
        };
        Ok(Some(IssuedLink {
            claims: LinkClaims {
                provider: provider.to_owned(),
                owner_id: owner_id.to_owned(),
                service: service.to_owned(),
                reason: parse_health(&reason)?,
                expires_at,
            },
            owner_name,
            owner_email,
            vendor_ids: serde_json::from_str(&vendor_ids)?,
        }))
    }

    /// Records (or replaces) the link issued for its provider, owner and service.
    pub fn issue(
        &self,
        link: &IssuedLink,
        now: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<()> {
        let c = &link.claims;
        self.lock().execute(
            "INSERT OR REPLACE INTO issued
             (provider, owner_id, service, reason, expires_at, owner_name, owner_email,
              vendor_ids, issued_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                c.provider,
                c.owner_id,
                c.service,
                c.reason.as_str(),
                c.expires_at,
                link.owner_name,
                link.owner_email,
                Value::Object(link.vendor_ids.clone()).to_string(),
                stamp(now),
            ],
        )?;
        Ok(())
    }

    /// Stores a revocation; answers how many issued links it covers.
    pub fn revoke(
        &self,
        revocation: &Revocation,
        now: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<u64> {
        let connection = self.lock();
        let service = revocation.service.as_deref().unwrap_or("");
        connection.execute(
            "INSERT OR IGNORE INTO revocations (provider, owner_id, service, revoked_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                revocation.provider,
                revocation.owner_id,
                service,
                stamp(now)
            ],
        )?;
        let covered: i64 = connection.query_row(
            "SELECT count(*) FROM issued WHERE provider = ?1 AND owner_id = ?2
             AND (?3 = '' OR service = ?3)",
            params![revocation.provider, revocation.owner_id, service],
            |row| row.get(0),
        )?;
        Ok(covered as u64)
    }

    /// The providers of the links issued to `owner_id` (for a revocation that names none).
    pub fn providers_of(&self, owner_id: &str) -> anyhow::Result<Vec<String>> {
        let connection = self.lock();
        let mut statement = connection.prepare(
            "SELECT DISTINCT provider FROM issued WHERE owner_id = ?1 ORDER BY provider",
        )?;
        let providers = statement
            .query_map([owner_id], |row| row.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(providers)
    }

    /// Every revocation, read afresh (so a `links revoke` while the broker runs takes effect).
    pub fn revocations(&self) -> anyhow::Result<Vec<Revocation>> {
        let connection = self.lock();
        let mut statement =
            connection.prepare("SELECT provider, owner_id, service FROM revocations")?;
        let revocations = statement
            .query_map([], |row| {
                let service: String = row.get(2)?;
                Ok(Revocation {
                    provider: row.get(0)?,
                    owner_id: row.get(1)?,
                    service: (!service.is_empty()).then_some(service),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(revocations)
    }

    /// Journals a visit or a mint of the link named by `claims`.
    pub fn journal(
        &self,
        claims: &LinkClaims,
        what: LinkEvent,
        now: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<()> {
        self.lock().execute(
            "INSERT INTO journal (at, provider, owner_id, service, what)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                stamp(now),
                claims.provider,
                claims.owner_id,
                claims.service,
                what.as_str()
            ],
        )?;
        Ok(())
    }

    /// The journal's entries in order: (owner id, service, what).
    pub fn journal_entries(&self) -> anyhow::Result<Vec<(String, String, String)>> {
        let connection = self.lock();
        let mut statement =
            connection.prepare("SELECT owner_id, service, what FROM journal ORDER BY seq")?;
        let entries = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(entries)
    }
}

fn stamp(now: chrono::DateTime<chrono::Utc>) -> String {
    now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn parse_health(word: &str) -> anyhow::Result<Health> {
    serde_json::from_value(Value::String(word.to_owned()))
        .map_err(|_| anyhow::anyhow!("the links store names an unknown reason `{word}`"))
}

/// Refuses a database that is not a links store (another application's, or the journal):
/// a new file has `application_id` 0 and no tables.
fn check_ours(connection: &Connection, path: &Path) -> anyhow::Result<()> {
    let id: i32 = connection.query_row("PRAGMA application_id", [], |row| row.get(0))?;
    let tables: i64 =
        connection.query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))?;
    if id == APPLICATION_ID || (id == 0 && tables == 0) {
        return Ok(());
    }
    Err(Refusal(format!(
        "{} is not an authport links store: refusing to touch it",
        path.display()
    ))
    .into())
}

/// Creates the tables and the key on a new file; checks the schema version of an old one.
fn initialise(connection: &Connection) -> anyhow::Result<()> {
    connection.execute_batch("BEGIN IMMEDIATE")?;
    let done = (|| -> anyhow::Result<()> {
        connection.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID};"))?;
        connection.execute_batch(SCHEMA)?;
        let version: Option<String> = connection
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |row| row.get(0),
            )
            .optional()?;
        match version.as_deref() {
            None => {
                connection.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                    [SCHEMA_VERSION],
                )?;
            }
            Some(SCHEMA_VERSION) => {}
            Some(other) => anyhow::bail!(
                "links store schema version {other} is not one this build reads ({SCHEMA_VERSION})"
            ),
        }
        let key = LinkKey::generate();
        connection.execute(
            "INSERT OR IGNORE INTO link_key (id, key) VALUES (1, ?1)",
            [key.expose_bytes().as_slice()],
        )?;
        Ok(())
    })();
    match done {
        Ok(()) => {
            connection.execute_batch("COMMIT")?;
            Ok(())
        }
        Err(error) => {
            let _ = connection.execute_batch("ROLLBACK");
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(owner: &str, service: &str) -> LinkClaims {
        LinkClaims {
            provider: "apideck".into(),
            owner_id: owner.into(),
            service: service.into(),
            reason: Health::RefreshFailed,
            expires_at: 2_000_000_000,
        }
    }

    fn state() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        std::fs::write(&state, b"").unwrap();
        (dir, state)
    }

    #[test]
    fn refused_without_a_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        assert!(LinksStore::open(&state).is_err());
        assert!(!links_path(&state).exists());
    }

    #[test]
    fn the_key_is_made_once_and_the_file_is_private() {
        let (_dir, state) = state();
        let first = LinksStore::open(&state).unwrap().key().unwrap();
        let again = LinksStore::open(&state).unwrap().key().unwrap();
        assert_eq!(first.expose_bytes(), again.expose_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(links_path(&state)).unwrap().permissions();
            assert_eq!(mode.mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn issued_links_revocations_and_the_journal_round_trip() {
        let (_dir, state) = state();
        let store = LinksStore::open(&state).unwrap();
        let now = chrono::Utc::now();
        let link = IssuedLink {
            claims: claims("u1", "hubspot"),
            owner_name: Some("Ada".into()),
            owner_email: None,
            vendor_ids: Map::from_iter([("unified_api".to_owned(), Value::from("crm"))]),
        };
        store.issue(&link, now).unwrap();
        assert_eq!(
            store.issued("apideck", "u1", "hubspot").unwrap(),
            Some(link.clone())
        );
        assert_eq!(store.issued("apideck", "u1", "xero").unwrap(), None);
        assert_eq!(store.providers_of("u1").unwrap(), ["apideck"]);
        let by_service = Revocation {
            provider: "apideck".into(),
            owner_id: "u1".into(),
            service: Some("xero".into()),
        };
        assert_eq!(store.revoke(&by_service, now).unwrap(), 0);
        let all = Revocation {
            service: None,
            ..by_service.clone()
        };
        assert_eq!(store.revoke(&all, now).unwrap(), 1);
        assert_eq!(store.revocations().unwrap().len(), 2);
        store.journal(&link.claims, LinkEvent::Minted, now).unwrap();
        assert_eq!(
            store.journal_entries().unwrap(),
            [("u1".into(), "hubspot".into(), "minted".into())]
        );
    }

    #[test]
    fn another_database_is_refused_untouched() {
        let (_dir, state) = state();
        let other = Connection::open(links_path(&state)).unwrap();
        other.execute_batch("CREATE TABLE mine (x)").unwrap();
        drop(other);
        let error = LinksStore::open(&state).unwrap_err().to_string();
        assert!(error.contains("not an authport links store"), "{error}");
    }
}
