//! Duplicate-id detection for one pass over the input, in constant memory.
//!
//! The reader's own check keeps a set of id hashes in memory (~16 bytes a record); the engine
//! turns it off and keeps the ids it has seen in a private, throw-away SQLite database instead:
//! SQLite pages it to a temporary file beyond a small cache, so a file of millions of records
//! costs disk, not memory.

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
             CREATE TABLE seen (id TEXT PRIMARY KEY) WITHOUT ROWID;",
        )?;
        Ok(Self {
            connection,
            in_batch: 0,
        })
    }

    /// `true` the first time `id` is seen, `false` for a duplicate.
    pub fn first_time(&mut self, id: &str) -> anyhow::Result<bool> {
        if self.in_batch == 0 {
            self.connection.execute_batch("BEGIN")?;
        }
        let inserted = self
            .connection
            .prepare_cached("INSERT OR IGNORE INTO seen (id) VALUES (?1)")
            .and_then(|mut statement| statement.execute(params![id]))
            .context("cannot update the duplicate-id index")?;
        self.in_batch += 1;
        if self.in_batch >= BATCH {
            self.connection.execute_batch("COMMIT")?;
            self.in_batch = 0;
        }
        Ok(inserted == 1)
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
}
