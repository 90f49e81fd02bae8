//! Where the receiver learns which connections the migration owns: the journal, read without
//! its lock, and what an import publishes; and the check that `--state` is a journal at all.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use authport_core::{TargetRef, WebhookSource};
use rusqlite::{Connection, OpenFlags, params};

use super::{EventStore, OwnedConnection, Upgrade, events_path};
use crate::files::Refusal;
use crate::state::StateStore;

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
/// while it still holds the journal, so a receiver learns what it created. `source` is the
/// provider's webhook source, which keys the connections (and upgrades an older store). Returns
/// how many were new.
pub fn publish_owned(
    state: &StateStore,
    provider: &str,
    source: &dyn WebhookSource,
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
        |target| source.connection_key(target),
    )?;
    EventStore::open_upgrading(path, Upgrade { provider, source })?.own(provider, &owned)
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
