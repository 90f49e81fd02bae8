//! A `RequestGate` that counts its permits: tests compare the count with the requests the
//! server saw, so a request sent around the gate (unpaced) fails a test.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use authport_core::RequestGate;

/// Counts every `ready()`; optionally passes it on to another gate (the engine's `RunGate`), so
/// a test can count the permits of a real, paced run.
#[derive(Default)]
pub struct CountingGate {
    permits: AtomicU64,
    /// The longest hold asked for (`hold_for`), in milliseconds.
    longest_hold_ms: AtomicU64,
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

impl CountingGate {
    /// A gate that never waits and counts.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A gate that counts, then waits for `inner`.
    pub fn wrapping(inner: Arc<dyn RequestGate>) -> Arc<Self> {
        Arc::new(Self {
            permits: AtomicU64::new(0),
            longest_hold_ms: AtomicU64::new(0),
            inner: Some(inner),
        })
    }

    /// Permits handed out so far.
    pub fn count(&self) -> u64 {
        self.permits.load(Ordering::SeqCst)
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
}
