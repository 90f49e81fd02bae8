//! The providers' durable notes ([`Memo`]), in the state's `memo` table.

use std::sync::Arc;

use authport_core::Memo;
use rusqlite::{OptionalExtension as _, params};

use super::Shared;

/// The providers' notes, in the `memo` table.
pub(crate) struct StateMemo {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for StateMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateMemo")
    }
}

impl Memo for StateMemo {
    fn get(&self, namespace: &str, key: &str) -> Option<String> {
        let inner = self.shared.lock();
        let value = inner
            .connection
            .query_row(
                "SELECT value FROM memo WHERE namespace = ?1 AND key = ?2",
                params![namespace, key],
                |row| row.get(0),
            )
            .optional();
        value.unwrap_or_else(|error| {
            tracing::warn!(namespace, "cannot read a note from the state: {error}");
            None
        })
    }

    fn put(&self, namespace: &str, key: &str, value: &str) {
        let inner = self.shared.lock();
        let written = inner.connection.execute(
            "INSERT INTO memo (namespace, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
            params![namespace, key, value],
        );
        if let Err(error) = written {
            // A lost note only costs a look-up on the next run.
            tracing::warn!(namespace, "cannot write a note to the state: {error}");
        }
    }
}

impl super::StateStore {
    /// Every note of one namespace, by key (`migrate --cutover` lists its hand-over notes).
    pub fn memo_entries(&self, namespace: &str) -> anyhow::Result<Vec<(String, String)>> {
        let inner = self.shared.lock();
        let mut statement = inner
            .connection
            .prepare("SELECT key, value FROM memo WHERE namespace = ?1 ORDER BY key")?;
        let rows = statement.query_map(params![namespace], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}
