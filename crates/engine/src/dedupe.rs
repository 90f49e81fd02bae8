//! Duplicate-id detection for one pass over the input, in constant memory.
//!
//! The reader's own check keeps a set of id hashes in memory (~16 bytes a record); the engine
//! turns it off and keeps the ids it has seen in a private, throw-away SQLite database instead:
//! SQLite pages it to a temporary file beyond a small cache, so a file of millions of records
//! costs disk, not memory.
//!
//! The same file keeps the OAuth grants seen (`first_grant`): a 64-bit keyed hash of the token
//! (never the token) with the first record's line and id, for the `shared_grant` message.

use anyhow::Context as _;
use rusqlite::{Connection, params};

/// Inserts are grouped in transactions of this many ids (no durability needed).
const BATCH: u32 = 1000;

#[derive(Debug)]
pub struct SeenIds {
    connection: Connection,
    in_batch: u32,
}

impl SeenIds {
    pub fn new() -> anyhow::Result<Self> {
        // An empty path is a private temporary database that SQLite deletes on close.
        let connection = Connection::open("").context("cannot create the duplicate-id index")?;
        connection.execute_batch(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-2048;
             CREATE TABLE seen (id TEXT PRIMARY KEY) WITHOUT ROWID;
             CREATE TABLE grants (hash INTEGER PRIMARY KEY, line INTEGER NOT NULL, id TEXT NOT NULL);",
        )?;
        Ok(Self {
            connection,
            in_batch: 0,
        })
    }

    /// `true` the first time `id` is seen, `false` for a duplicate.
    pub fn first_time(&mut self, id: &str) -> anyhow::Result<bool> {
        self.begin()?;
        let inserted = self
            .connection
            .prepare_cached("INSERT OR IGNORE INTO seen (id) VALUES (?1)")
            .and_then(|mut statement| statement.execute(params![id]))
            .context("cannot update the duplicate-id index")?;
        self.counted()?;
        Ok(inserted == 1)
    }

    /// `None` the first time the grant `hash` is seen (it is then the record `id`'s, at
    /// `line`), else the line and id of the record that had it first.
    pub fn first_grant(
        &mut self,
        hash: i64,
        line: u64,
        id: &str,
    ) -> anyhow::Result<Option<(u64, String)>> {
        self.begin()?;
        let line = i64::try_from(line).unwrap_or(i64::MAX);
        let inserted = self
            .connection
            .prepare_cached("INSERT OR IGNORE INTO grants (hash, line, id) VALUES (?1, ?2, ?3)")
            .and_then(|mut statement| statement.execute(params![hash, line, id]))
            .context("cannot update the shared-grant index")?;
        self.counted()?;
        if inserted == 1 {
            return Ok(None);
        }
        let (line, id): (i64, String) = self
            .connection
            .prepare_cached("SELECT line, id FROM grants WHERE hash = ?1")
            .and_then(|mut statement| {
                statement.query_row(params![hash], |row| Ok((row.get(0)?, row.get(1)?)))
            })
            .context("cannot read the shared-grant index")?;
        Ok(Some((u64::try_from(line).unwrap_or(0), id)))
    }

    fn begin(&mut self) -> anyhow::Result<()> {
        if self.in_batch == 0 {
            self.connection.execute_batch("BEGIN")?;
        }
        Ok(())
    }

    fn counted(&mut self) -> anyhow::Result<()> {
        self.in_batch += 1;
        if self.in_batch >= BATCH {
            self.connection.execute_batch("COMMIT")?;
            self.in_batch = 0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_each_id_once_across_batches() {
        let mut seen = SeenIds::new().unwrap();
        for i in 0..2500 {
            assert!(seen.first_time(&format!("r{i}")).unwrap());
        }
        assert!(!seen.first_time("r0").unwrap());
        assert!(!seen.first_time("r2499").unwrap());
        assert!(seen.first_time("r2500").unwrap());
        assert!(!seen.first_time("r2500").unwrap());
    }

    #[test]
    fn a_grant_is_the_first_records_across_batches() {
        let mut seen = SeenIds::new().unwrap();
        for i in 0..1500_i64 {
            assert_eq!(
                seen.first_grant(i, (i + 1) as u64, &format!("r{i}"))
                    .unwrap(),
                None
            );
            assert!(seen.first_time(&format!("r{i}")).unwrap());
        }
        assert_eq!(
            seen.first_grant(7, 9000, "later").unwrap(),
            Some((8, "r7".to_owned()))
        );
        // The first holder stays the one named, however many records share it.
        assert_eq!(
            seen.first_grant(7, 9001, "later-still").unwrap(),
            Some((8, "r7".to_owned()))
        );
        assert_eq!(seen.first_grant(-5, 9002, "negative").unwrap(), None);
    }
}
