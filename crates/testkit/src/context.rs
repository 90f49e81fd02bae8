//! A builder for `BuildContext`, so tests state only what they change and a new field of the
//! struct is filled in one place.

use std::sync::Arc;
use std::time::Duration;

use authport_core::{
    AuthImporter, BuildContext, ConfigError, EnvSnapshot, InMemoryMemo, Memo, RequestGate, Ungated,
    find_provider,
};
use serde_json::Value;

/// The request timeout of test contexts: long enough for a loaded CI machine, short enough that
/// a hang fails the test instead of the job.
const TEST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A context with no config, an empty environment, a fresh in-memory memo, no pacing and a
/// 10-second request timeout. `Sandbox::context()` starts from this with the sandbox's env.
pub fn context() -> ContextBuilder {
    ContextBuilder {
        config: Value::Null,
        env: EnvSnapshot::default(),
        memo: Arc::new(InMemoryMemo::default()),
        gate: Arc::new(Ungated),
        request_timeout: TEST_REQUEST_TIMEOUT,
    }
}

/// See [`context`].
#[derive(Debug, Clone)]
pub struct ContextBuilder {
    config: Value,
    env: EnvSnapshot,
    memo: Arc<dyn Memo>,
    gate: Arc<dyn RequestGate>,
    request_timeout: Duration,
}

impl ContextBuilder {
    /// The provider's config section (`[tray]`, `[apideck]`...) as JSON.
    pub fn config(mut self, config: Value) -> Self {
        self.config = config;
        self
    }

    /// Adds these variables to the environment (later ones win).
    pub fn env<I, K, V>(mut self, pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        for (name, value) in pairs {
            self.env.set(name, value);
        }
        self
    }

    /// Sets one environment variable.
    pub fn var(mut self, name: &str, value: &str) -> Self {
        self.env.set(name, value);
        self
    }

    pub fn memo(mut self, memo: Arc<dyn Memo>) -> Self {
        self.memo = memo;
        self
    }

    pub fn gate(mut self, gate: Arc<dyn RequestGate>) -> Self {
        self.gate = gate;
        self
    }

    pub fn timeout(mut self, request_timeout: Duration) -> Self {
        self.request_timeout = request_timeout;
        self
    }

    /// The one place a test `BuildContext` is written out.
    pub fn build(&self) -> BuildContext {
        BuildContext {
            config: self.config.clone(),
            env: self.env.clone(),
            memo: self.memo.clone(),
            gate: self.gate.clone(),
            request_timeout: self.request_timeout,
        }
    }

    /// Builds the registered provider `name` (its crate must be linked into the test, e.g.
    /// with `use authport_tray as _;`).
    pub fn try_provider(&self, name: &str) -> Result<Box<dyn AuthImporter>, ConfigError> {
        let plugin = find_provider(name).unwrap_or_else(|unknown| panic!("{unknown}"));
        (plugin.build)(&self.build())
    }

    /// Like [`Self::try_provider`], for tests where the configuration is valid.
    #[track_caller]
    pub fn provider(&self, name: &str) -> Box<dyn AuthImporter> {
        self.try_provider(name)
            .unwrap_or_else(|e| panic!("{name} does not build: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_what_was_set_and_defaults_the_rest() {
        let built = context()
            .config(serde_json::json!({"x": 1}))
            .env([("A", "1"), ("B", "2")])
            .var("A", "3")
            .timeout(Duration::from_secs(2))
            .build();
        assert_eq!(built.config["x"], 1);
        assert_eq!(built.env.get("A"), Some("3"));
        assert_eq!(built.env.get("B"), Some("2"));
        assert_eq!(built.request_timeout, Duration::from_secs(2));
        assert_eq!(built.memo.get("n", "k"), None);
    }
}
