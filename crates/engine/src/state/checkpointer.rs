//! The checkpointer: a thread with its own connection to the state file that copies the WAL back
//! into the database (`PRAGMA wal_checkpoint(PASSIVE)`) while the journal's writer goes on.
//!
//! A checkpoint syncs the WAL and the database file (`synchronous=NORMAL` syncs only there).
//! Run by the writer itself, every worker waited on those syncs: a quarter of an import's time
//! against a fast target (BENCHMARKS.md). A passive checkpoint takes no lock a writer needs, so
//! here it costs the import nothing but disk bandwidth. Durability is unchanged: the same
//! commits reach the disk at the same points of the WAL's life, by another thread.

use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::anyhow;
use rusqlite::Connection;

/// How often the WAL is copied back while a run writes. Each pass syncs twice when it copies
/// anything; an idle state costs one cheap read of the WAL index.
const INTERVAL: Duration = Duration::from_millis(200);

/// The thread; dropping it stops the thread (after its current pass) and waits for it.
pub(crate) struct Checkpointer {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the state file at `path`, whose WAL the journal writes.
    pub(crate) fn start(path: &Path) -> anyhow::Result<Self> {
        let connection = super::schema::connect(path)?;
        connection.execute_batch(&format!(
            "PRAGMA busy_timeout={}; PRAGMA wal_autocheckpoint=0;",
            super::schema::BUSY_TIMEOUT_MS
        ))?;
        let (stop, stopped) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("authport-checkpoint".to_owned())
            .spawn(move || serve(&connection, &stopped))
            .map_err(|error| anyhow!("cannot start the state checkpointer: {error}"))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(connection: &Connection, stopped: &Receiver<()>) {
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
        // A failed pass loses nothing: the WAL keeps the commits, and the next pass or the
        // writer's own checkpoint (the backstop) copies them.
        if let Err(error) = pass(connection) {
            tracing::debug!("state checkpoint pass failed: {error}");
        }
    }
}

/// One passive checkpoint: the frames in the WAL and how many of them are now in the database.
pub(crate) fn pass(connection: &Connection) -> rusqlite::Result<(i64, i64)> {
    connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get(1)?, row.get(2)?))
    })
}
