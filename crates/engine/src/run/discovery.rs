//! Lazy discovery with single-flight: the first record with a new `(service, targets.<provider>)`
//! key asks the provider to `discover` that key; records with the same key arriving meanwhile
//! wait for that one call, and later ones find its answer. So the input is read once, and each
//! key is discovered once whatever the order of the records.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
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

/// One discovery per distinct target object of a service.
type Cells = Vec<(Option<Value>, Arc<OnceCell<Discovered>>)>;

/// The keys seen so far, each with its one discovery.
#[derive(Debug, Default)]
pub(super) struct Discoveries {
    /// By service, then the `targets.<provider>` value compared as JSON (`DiscoveryKey` is
    /// neither `Hash` nor `Ord`; a service has few distinct targets, and nothing is serialised
    /// per record this way).
    keys: Mutex<HashMap<String, Cells>>,
}

impl Discoveries {
    /// The cell of the key `(service, target)`, created on first sight. Borrowed parts: a
    /// record's key is only built (cloned) when its discovery runs.
    pub(super) fn cell(&self, service: &str, target: Option<&Value>) -> Arc<OnceCell<Discovered>> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let cells = match keys.get_mut(service) {
            Some(cells) => cells,
            None => keys.entry(service.to_owned()).or_default(),
        };
        if let Some((_, cell)) = cells.iter().find(|(known, _)| known.as_ref() == target) {
            return cell.clone();
        }
        let cell = Arc::new(OnceCell::new());
        cells.push((target.cloned(), cell.clone()));
        cell
    }

    /// Distinct keys seen (for the summary and logs).
    pub(super) fn len(&self) -> usize {
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn one_discovery_per_key_whatever_the_number_of_waiters() {
        let discoveries = Discoveries::default();
        let calls = AtomicU32::new(0);
        let discover = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Discovered::Ready
        };
        let crm = serde_json::json!({"unified_api": "crm"});
        let keys = [("slack", None), ("slack", Some(&crm)), ("hubspot", None)];
        let waits = (0..9).map(|i| {
            let (service, target) = keys[i % 3];
            let cell = discoveries.cell(service, target);
            async move { cell.get_or_init(discover).await.clone() }
        });
        for answer in futures_util::future::join_all(waits).await {
            assert!(matches!(answer, Discovered::Ready));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(discoveries.len(), 3);
        // An equal target value, another allocation: the same key.
        let same = serde_json::json!({"unified_api": "crm"});
        assert!(Arc::ptr_eq(
            &discoveries.cell("slack", Some(&same)),
            &discoveries.cell("slack", Some(&crm))
        ));
        assert!(!Arc::ptr_eq(
            &discoveries.cell("slack", None),
            &discoveries.cell("slack", Some(&crm))
        ));
    }
}
