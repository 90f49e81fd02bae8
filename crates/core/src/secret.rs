//! Secret-holding types beyond `secrecy::SecretString`, and salted fingerprints.

use std::fmt;

use serde_json::Value;
use sha2::{Digest, Sha256};

pub use secrecy::{ExposeSecret, SecretString};

/// The word every redacted secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// A JSON value that carries secrets (a request body). No `Display`, no `Serialize`; `Debug`
/// prints nothing of the content. Read it with [`SecretJson::expose`] only where the request is
/// built.
#[derive(Clone, PartialEq)]
pub struct SecretJson(Value);

impl SecretJson {
    pub fn new(value: Value) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &Value {
        &self.0
    }
}

impl fmt::Debug for SecretJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretJson([redacted])")
    }
}

/// Replaces every string in `value` that contains one of `secrets` with [`REDACTED`].
/// Providers use it to derive the printable plan from the real body, so a new field can never
/// slip a secret into the plan.
pub fn redact_json(value: &Value, secrets: &[&str]) -> Value {
    match value {
        Value::String(text) if secrets.iter().any(|s| !s.is_empty() && text.contains(s)) => {
            Value::String(REDACTED.to_owned())
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| redact_json(v, secrets)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), redact_json(v, secrets)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A salted SHA-256 fingerprint (hex) of some bytes. The salt is per state file, so a
/// fingerprint of a low-entropy secret cannot be looked up in a precomputed table.
pub fn salted_fingerprint(salt: &[u8], parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    hasher.update((salt.len() as u64).to_be_bytes());
    hasher.update(salt);
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hex(&hasher.finalize())
}

/// The first 16 hex characters (64 bits) of SHA-256: a tag that tells records apart in names
/// shown at the target (a 32-bit tag collides about twice per million records of one owner).
pub fn record_tag(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    hex(&digest[..8])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
