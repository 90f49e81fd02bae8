//! Run control: the stop signal (Ctrl-C, fatal target error, deadline) shared by every worker,
//! with interruptible waits and the grace period in-flight calls get after a stop.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

#[derive(Debug)]
pub(crate) struct Control {
    stopped: watch::Sender<bool>,
    stopped_at: Mutex<Option<Instant>>,
    reason: Mutex<Option<String>>,
    interrupted: AtomicBool,
    /// How long in-flight calls may still run after a stop.
    grace: Duration,
}

impl Control {
    pub(crate) fn new(grace: Duration) -> Self {
        Self {
            stopped: watch::Sender::new(false),
            stopped_at: Mutex::new(None),
            reason: Mutex::new(None),
            interrupted: AtomicBool::new(false),
            grace,
        }
    }

    /// Stops the run for a reason (fatal error, deadline). The first reason is kept.
    pub(crate) fn stop(&self, reason: impl Into<String>) {
        {
            let mut current = self.reason.lock().unwrap_or_else(|e| e.into_inner());
            if current.is_none() && !self.is_interrupted() {
                let reason = reason.into();
                tracing::warn!("stopping the run: {reason}");
                *current = Some(reason);
            }
        }
        self.mark_stopped();
    }

    /// Ctrl-C / SIGTERM.
    pub(crate) fn interrupt(&self) {
        if !self.is_stopped() {
            self.interrupted.store(true, Ordering::SeqCst);
        }
        self.mark_stopped();
    }

    fn mark_stopped(&self) {
        self.stopped_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(Instant::now);
        self.stopped.send_replace(true);
    }

    pub(crate) fn is_stopped(&self) -> bool {
        *self.stopped.borrow()
    }

    pub(crate) fn is_interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    pub(crate) fn reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Resolves when the run is stopped.
    pub(crate) async fn wait_stopped(&self) {
        let mut receiver = self.stopped.subscribe();
        let _ = receiver.wait_for(|stopped| *stopped).await;
    }

    /// Resolves when the grace period after a stop is over.
    async fn grace_expired(&self) {
        self.wait_stopped().await;
        let stopped_at = self
            .stopped_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or_else(Instant::now);
        tokio::time::sleep_until((stopped_at + self.grace).into()).await;
    }

    /// Runs an in-flight call to its end, unless the grace period after a stop runs out first
    /// (`None`: abandoned; the journal's intent makes the next run reconcile it).
    pub(crate) async fn bounded<T>(&self, call: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            biased;
            result = call => Some(result),
            () = self.grace_expired() => None,
        }
    }

    /// Sleeps, or returns `false` at once when the run stops meanwhile.
    pub(crate) async fn sleep_unless_stopped(&self, delay: Duration) -> bool {
        if self.is_stopped() {
            return false;
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => !self.is_stopped(),
            () = self.wait_stopped() => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_reason_wins_and_interrupts_have_none() {
        let control = Control::new(Duration::ZERO);
        assert!(!control.is_stopped());
        control.stop("plan limit");
        control.stop("deadline");
        control.interrupt();
        assert!(control.is_stopped());
        assert!(
            !control.is_interrupted(),
            "an interrupt after a fatal stop does not count"
        );
        assert_eq!(control.reason().as_deref(), Some("plan limit"));

        let control = Control::new(Duration::ZERO);
        control.interrupt();
        control.stop("fatal later");
        assert!(control.is_interrupted());
        assert_eq!(control.reason(), None);
    }

    #[tokio::test]
    async fn waits_end_when_the_run_stops() {
        let control = Control::new(Duration::ZERO);
        let (slept, bounded, ()) = tokio::join!(
            control.sleep_unless_stopped(Duration::from_secs(3600)),
            control.bounded(std::future::pending::<u8>()),
            async { control.stop("test") },
        );
        assert!(!slept);
        assert_eq!(bounded, None);
        assert!(control.bounded(async { 7 }).await == Some(7));
    }
}
