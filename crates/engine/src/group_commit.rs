//! Group commit: one writer thread runs the journal operations of every worker waiting at that
//! moment in a single transaction, and answers each of them only once that transaction is
//! committed.
//!
//! A commit is the expensive part of a journal write (WAL frames, page copies, checkpoints), and
//! with one commit per statement the journal, not the target, bounded the import rate. Batching
//! keeps the protocol's guarantee: an operation's caller learns its result after the commit that
//! made it durable, never before, so "intent committed before the write is sent" still holds.
//!
//! The batch forms on its own: while the writer commits one batch, the operations submitted
//! meanwhile queue up and become the next one. Nothing waits for a batch to fill.

use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::anyhow;

/// The most operations one transaction takes; bounds how long the resource stays locked.
const MAX_BATCH: usize = 256;

/// A resource with transactions (the journal's SQLite connection).
pub(crate) trait Transactional: Send + 'static {
    fn begin(&mut self) -> anyhow::Result<()>;
    fn commit(&mut self) -> anyhow::Result<()>;
    /// Undoes everything since `begin`; must leave the resource usable.
    fn rollback(&mut self);
}

/// One submitted operation: runs inside the batch's transaction (or learns why there is none)
/// and keeps its result until the transaction ends.
type Operation<R> = Box<dyn FnOnce(Result<&mut R, &str>) -> Staged + Send>;

/// Hands an operation's result to its caller: called with `None` once the transaction is
/// committed, or with why the whole batch was rolled back.
type Deliver = Box<dyn FnOnce(Option<&str>) + Send>;

/// An operation's result, held back until its transaction is committed or rolled back.
struct Staged {
    failed: bool,
    deliver: Deliver,
}

/// The writer thread and the queue to it. Dropping it stops the thread and waits for it, so the
/// resource is released (the state file's lock) when the last handle is gone.
pub(crate) struct GroupCommit<R: Transactional> {
    sender: Option<Sender<Operation<R>>>,
    thread: Option<JoinHandle<()>>,
}

impl<R: Transactional> GroupCommit<R> {
    /// Starts the writer thread for `resource`. Other code may lock `resource` between
    /// batches (single statements in autocommit); a batch holds the lock from begin to commit.
    pub(crate) fn start(resource: Arc<Mutex<R>>) -> anyhow::Result<Self> {
        let (sender, receiver) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("authport-journal".to_owned())
            .spawn(move || serve(&resource, &receiver))
            .map_err(|error| anyhow!("cannot start the journal writer: {error}"))?;
        Ok(Self {
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    /// Runs `work` in the next batch's transaction and returns its result once that
    /// transaction is committed. If any operation of the batch fails, the batch is rolled back
    /// and every operation in it returns an error (journal errors stop the run anyway).
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut R) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let operation: Operation<R> = Box::new(move |resource: Result<&mut R, &str>| {
            let result = match resource {
                Ok(resource) => work(resource),
                Err(why) => Err(anyhow!("{why}")),
            };
            Staged {
                failed: result.is_err(),
                deliver: Box::new(move |rolled_back| {
                    let result = match rolled_back {
                        None => result,
                        Some(why) => result.and_then(|_| Err(anyhow!("{why}"))),
                    };
                    // The caller may have given up waiting (its task was dropped): nothing to do.
                    let _ = reply.send(result);
                }),
            }
        });
        self.sender
            .as_ref()
            .and_then(|sender| sender.send(operation).ok())
            .ok_or_else(|| anyhow!("the journal writer has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow!("the journal writer has stopped"))?
    }
}

impl<R: Transactional> Drop for GroupCommit<R> {
    fn drop(&mut self) {
        // Closing the queue ends the thread's loop once the queued batches are done.
        drop(self.sender.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread: waits for one operation, takes every other one already queued, and runs
/// them as one transaction; until the queue is closed.
fn serve<R: Transactional>(resource: &Mutex<R>, receiver: &Receiver<Operation<R>>) {
    while let Ok(first) = receiver.recv() {
        let mut batch = Vec::with_capacity(16);
        batch.push(first);
        batch.extend(receiver.try_iter().take(MAX_BATCH - 1));
        let mut guard = resource.lock().unwrap_or_else(|e| e.into_inner());
        run_batch(&mut *guard, batch);
    }
}

fn run_batch<R: Transactional>(resource: &mut R, batch: Vec<Operation<R>>) {
    if let Err(error) = resource.begin() {
        let why = format!("cannot begin a journal transaction: {error:#}");
        for operation in batch {
            // Nothing ran, so nothing to undo: each caller gets the error as its result.
            (operation(Err(&why)).deliver)(None);
        }
        return;
    }
    let staged: Vec<Staged> = batch.into_iter().map(|op| op(Ok(&mut *resource))).collect();
    let outcome = if staged.iter().any(|s| s.failed) {
        resource.rollback();
        Err("a journal write in the same transaction failed; rolled back".to_owned())
    } else {
        resource.commit().map_err(|error| {
            resource.rollback();
            format!("cannot commit to the state journal: {error:#}")
        })
    };
    let rolled_back = outcome.err();
    for s in staged {
        (s.deliver)(rolled_back.as_deref());
    }
}
