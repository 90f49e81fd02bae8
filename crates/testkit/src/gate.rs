//! A `RequestGate` that counts its permits: tests compare the count with the requests the
//! server saw, so a request sent around the gate (unpaced) fails a test.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use authport_core::RequestGate;
use authport_core::transport::RateWindow;

/// Counts every `ready()`; optionally passes it on to another gate (the engine's `RunGate`), so
/// a test can count the permits of a real, paced run.
pub struct CountingGate {
    permits: AtomicU64,
    /// The longest hold asked for (`hold_for`), in milliseconds.
    longest_hold_ms: AtomicU64,
    /// Requests reported ended (`answered`).
    answers: AtomicU64,
    /// The lowest `remaining` of the windows answers reported (`u64::MAX`: none yet).
    lowest_remaining: AtomicU64,
    inner: Option<Arc<dyn RequestGate>>,
}

impl fmt::Debug for CountingGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountingGate")
            .field("permits", &self.count())
            .field("wraps", &self.inner.is_some())
            .finish()
    }
}

impl Default for CountingGate {
    fn default() -> Self {
        Self::counting(None)
    }
}

impl CountingGate {
    /// A gate that never waits and counts.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::counting(None))
    }

    /// A gate that counts, then waits for `inner`.
    pub fn wrapping(inner: Arc<dyn RequestGate>) -> Arc<Self> {
        Arc::new(Self::counting(Some(inner)))
    }

    fn counting(inner: Option<Arc<dyn RequestGate>>) -> Self {
        Self {
            permits: AtomicU64::new(0),
            longest_hold_ms: AtomicU64::new(0),
            answers: AtomicU64::new(0),
            lowest_remaining: AtomicU64::new(u64::MAX),
            inner,
        }
    }

    /// Permits handed out so far.
    pub fn count(&self) -> u64 {
        self.permits.load(Ordering::SeqCst)
    }

    /// Requests reported ended so far (`answered`, with or without a window).
    pub fn answers(&self) -> u64 {
        self.answers.load(Ordering::SeqCst)
    }

    /// The lowest budget left (`X-RateLimit-Remaining`) that an answer through this gate
    /// reported; `None` when no answer carried the vendor's window.
    pub fn lowest_remaining(&self) -> Option<u64> {
        Some(self.lowest_remaining.load(Ordering::SeqCst)).filter(|&lowest| lowest != u64::MAX)
    }

    /// The longest hold a provider asked for so far (zero if none).
    pub fn longest_hold(&self) -> Duration {
        Duration::from_millis(self.longest_hold_ms.load(Ordering::SeqCst))
    }
}

#[async_trait]
impl RequestGate for CountingGate {
    async fn ready(&self) {
        self.permits.fetch_add(1, Ordering::SeqCst);
        if let Some(inner) = &self.inner {
            inner.ready().await;
        }
    }

    fn hold_for(&self, wait: Duration) {
        let millis = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        self.longest_hold_ms.fetch_max(millis, Ordering::SeqCst);
        if let Some(inner) = &self.inner {
            inner.hold_for(wait);
        }
    }

    // Every method the trait gives a default must be passed on: a wrapped `RunGate` paces on
    // the windows it is told of (`--budget-share`), and would pace blind without them.
    fn answered(&self, window: Option<RateWindow>) {
        self.answers.fetch_add(1, Ordering::SeqCst);
        if let Some(window) = window {
            self.lowest_remaining
                .fetch_min(window.remaining, Ordering::SeqCst);
        }
        if let Some(inner) = &self.inner {
            inner.answered(window);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_its_own_permits_and_passes_them_on() {
        let inner = CountingGate::new();
        let outer = CountingGate::wrapping(inner.clone());
        outer.ready().await;
        outer.ready().await;
        inner.ready().await;
        assert_eq!(outer.count(), 2);
        assert_eq!(inner.count(), 3);
    }

    #[test]
    fn passes_holds_and_answers_on() {
        let inner = CountingGate::new();
        let outer = CountingGate::wrapping(inner.clone());
        outer.hold_for(Duration::from_secs(3));
        outer.answered(None);
        outer.answered(Some(RateWindow {
            limit: 200,
            remaining: 150,
            reset: Duration::from_secs(30),
        }));
        assert_eq!(outer.answers(), 2);
        assert_eq!(inner.answers(), 2);
        assert_eq!(inner.lowest_remaining(), Some(150));
        assert_eq!(CountingGate::new().lowest_remaining(), None);
        assert_eq!(inner.longest_hold(), Duration::from_secs(3));
    }
}
