//! Secret-holding types beyond `secrecy::SecretString`, and keyed fingerprints.

use std::fmt;

use hmac::{Hmac, Mac};
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
/// `MappedRecord::redacted_body` derives the printable plan from the real body with it, so a
/// new field can never slip a secret into the plan.
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

/// The key of a state file's fingerprints: `HMAC-SHA256(credential, LABEL || salt)`, derived
/// from the vendor credential the run already needs and the state's random salt. Fingerprints
/// made with it are stable across re-runs with the same credential, and the state file alone
/// (salt and fingerprints) cannot check a guess of a record's secret: that also needs the
/// credential. `Debug` prints nothing of the key.
///
/// Holds the initialised MAC rather than the key bytes: cloning it per fingerprint skips the
/// key schedule (two SHA-256 blocks) that `new_from_slice` would redo on every call.
#[derive(Clone)]
pub struct FingerprintKey(HmacSha256);

type HmacSha256 = Hmac<Sha256>;

impl FingerprintKey {
    const LABEL: &'static [u8] = b"authport fingerprint key v1";

    pub fn derive(credential: &SecretString, salt: &[u8]) -> Self {
        let mut mac = new_mac(credential.expose_secret().as_bytes());
        mac.update(Self::LABEL);
        mac.update(salt);
        Self(new_mac(&mac.finalize().into_bytes()))
    }

    /// The keyed fingerprint (hex) of `parts`, each length-prefixed so that no two different
    /// lists of parts hash the same bytes.
    pub fn fingerprint(&self, parts: &[&[u8]]) -> String {
        hex(&self.fingerprint_bytes(parts))
    }

    /// [`FingerprintKey::fingerprint`] as its 32 bytes, for keys stored as a BLOB (half the
    /// size of the hex, and no text to build).
    pub fn fingerprint_bytes(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.0.clone();
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&mac.finalize().into_bytes());
        bytes
    }
}

impl fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FingerprintKey([redacted])")
    }
}

fn new_mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; the error type exists for other MACs only.
    <HmacSha256 as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("hmac accepts any key length"))
}

/// The first 16 hex characters (64 bits) of SHA-256: a tag that tells records apart in names
/// shown at the target (a 32-bit tag collides about twice per million records of one owner).
pub fn record_tag(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    hex(&digest[..8])
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}
