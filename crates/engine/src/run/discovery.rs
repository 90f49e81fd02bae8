//! Lazy discovery with single-flight: the first record with a new `(service, targets.<provider>)`
//! key asks the provider to `discover` that key; records with the same key arriving meanwhile
//! wait for that one call, and later ones find its answer. So the input is read once, and each
//! key is discovered once whatever the order of the records.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use authport_core::DiscoveryKey;
use tokio::sync::OnceCell;

/// How one key's discovery ended, shared by every record with that key.
#[derive(Debug, Clone)]
pub(super) enum Discovered {
    Ready,
    /// The provider's discovery failed: the run stops (nothing of this key can be mapped).
    Failed,
    /// The run stopped before discovery finished.
    Stopped,
}

/// The keys seen so far, each with its one discovery.
#[derive(Debug, Default)]
pub(super) struct Discoveries {
    keys: Mutex<HashMap<String, Arc<OnceCell<Discovered>>>>,
}

impl Discoveries {
    /// The cell of `key`, created on first sight. `DiscoveryKey` is neither `Hash` nor `Ord`:
    /// its JSON form is the map key.
    pub(super) fn cell(&self, key: &DiscoveryKey) -> Arc<OnceCell<Discovered>> {
        let text = serde_json::to_string(key).unwrap_or_default();
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.entry(text).or_default().clone()
    }

    /// Distinct keys seen (for the summary and logs).
    pub(super) fn len(&self) -> usize {
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_discovery_per_key_whatever_the_number_of_waiters() {
        let discoveries = Discoveries::default();
        let key = |service: &str, target: Option<serde_json::Value>| DiscoveryKey {
            service: service.to_owned(),
            target,
        };
        let calls = std::sync::atomic::AtomicU32::new(0);
        let discover = || async {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Discovered::Ready
        };
        let a = key("slack", None);
        let b = key("slack", Some(serde_json::json!({"unified_api": "crm"})));
        let waits = (0..8).map(|i| {
            let cell = discoveries.cell(if i % 2 == 0 { &a } else { &b });
            async move { cell.get_or_init(discover).await.clone() }
        });
        for answer in futures_util::future::join_all(waits).await {
            assert!(matches!(answer, Discovered::Ready));
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(discoveries.len(), 2);
        assert!(Arc::ptr_eq(
            &discoveries.cell(&a),
            &discoveries.cell(&key("slack", None))
        ));
    }
}
