//! The discovery cache every provider keeps: what the target offers for one key (a connector,
//! a service's environments...), discovered once per run with read-only calls and then read by
//! the pure `map`. Concurrent first requests for one key share one discovery (single flight),
//! and a failure is cached too, as text, so every record of that key fails the same way
//! without asking the target again.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

type Slot<V> = Arc<OnceCell<Result<Arc<V>, String>>>;

/// Discovered values by key. `V` must hold no secret.
pub struct DiscoveryCache<K, V> {
    slots: Mutex<HashMap<K, Slot<V>>>,
}

impl<K, V> Default for DiscoveryCache<K, V> {
    fn default() -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
        }
    }
}

impl<K, V> fmt::Debug for DiscoveryCache<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.slots.lock().map(|s| s.len()).unwrap_or(0);
        f.debug_struct("DiscoveryCache")
            .field("keys", &count)
            .finish()
    }
}

impl<K: Eq + Hash + Clone, V> DiscoveryCache<K, V> {
    /// The value for `key`, discovering it with `discover` if no one has yet. While one caller
    /// discovers, the others wait for its result. `Err` from `discover` is returned as is
    /// (a transient failure is not cached, so a later record may try again); `Ok(Err(text))`
    /// is a permanent answer ("no such connector") and is cached.
    pub async fn get_or_discover<F, Fut, E>(
        &self,
        key: &K,
        discover: F,
    ) -> Result<Result<Arc<V>, String>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Result<V, String>, E>>,
    {
        let slot = self.slot(key);
        slot.get_or_try_init(|| async { discover().await.map(|found| found.map(Arc::new)) })
            .await
            .cloned()
    }

    /// What was discovered for `key`, if anything (for the synchronous `map`).
    pub fn get(&self, key: &K) -> Option<Result<Arc<V>, String>> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.get(key).and_then(|slot| slot.get().cloned())
    }

    /// Records a value found another way (e.g. a list call that answers for many keys).
    pub fn insert(&self, key: K, value: Result<V, String>) {
        let cell = OnceCell::new_with(Some(value.map(Arc::new)));
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.insert(key, Arc::new(cell));
    }

    fn slot(&self, key: &K) -> Slot<V> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(key.clone()).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn concurrent_first_requests_share_one_discovery() {
        let cache: Arc<DiscoveryCache<String, u32>> = Arc::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, wait) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let (cache, calls, mut wait) = (cache.clone(), calls.clone(), wait.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_discover(&"slack".to_owned(), || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        let _ = wait.wait_for(|go| *go).await;
                        Ok::<_, ()>(Ok(7))
                    })
                    .await
            }));
        }
        drop(wait);
        release.send(true).unwrap();
        for task in tasks {
            assert_eq!(*task.await.unwrap().unwrap().unwrap(), 7);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(*cache.get(&"slack".to_owned()).unwrap().unwrap(), 7);
    }

    #[tokio::test]
    async fn transient_failures_are_not_cached_but_answers_are() {
        let cache: DiscoveryCache<u8, u32> = DiscoveryCache::default();
        let failed = cache
            .get_or_discover(&1, || async { Err::<Result<u32, String>, _>("down") })
            .await;
        assert_eq!(failed, Err("down"));
        assert!(cache.get(&1).is_none());
        let missing = cache
            .get_or_discover(&1, || async {
                Ok::<_, ()>(Err("no such connector".into()))
            })
            .await;
        assert_eq!(missing, Ok(Err("no such connector".to_owned())));
        let again = cache
            .get_or_discover(&1, || async { Ok::<_, ()>(Ok(1)) })
            .await;
        assert_eq!(again, Ok(Err("no such connector".to_owned())));
    }
}
