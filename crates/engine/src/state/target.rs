//! The target a state file belongs to (invariant 6), and the keys of its fingerprints.
//!
//! On first use the state records the provider, its endpoints and an account identity: the
//! vendor's account name when it has one (Apideck's app id), otherwise a keyed hash of the
//! credential (never the credential). A later run against another target is refused, naming
//! the part that differs, unless the operator allows the change (the new identity is recorded).
//!
//! Fingerprints, claim keys and grant keys are HMAC-SHA256 under a key derived from the vendor
//! credential and the state's salt, so the state file alone cannot check guesses of a record's
//! secret. Fingerprints are hex text; claim and grant keys are the 32 bytes ([`Key`]), the
//! primary keys of the two tables the import writes per record.

use authport_core::{
    ExposeSecret as _, FingerprintKey, MappedRecord, SecretString, TargetIdentity,
};
use rusqlite::Connection;
use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};
use serde_json::{Map, Value};

use crate::files::Refusal;
use crate::state::schema::{meta, set_meta};

/// One part of a target's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetPart {
    Provider,
    Endpoint,
    Account,
}

impl TargetPart {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetPart::Provider => "provider",
            TargetPart::Endpoint => "endpoint",
            TargetPart::Account => "account",
        }
    }
}

/// What a state file records of its target (all non-secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordedTarget {
    pub provider: String,
    pub endpoints: String,
    pub account: String,
}

impl RecordedTarget {
    pub(crate) fn of(provider: &str, identity: &TargetIdentity, key: &FingerprintKey) -> Self {
        let account = match &identity.account {
            Some(name) => format!("name:{name}"),
            None => format!("credential:{}", key.fingerprint(&[b"account"])),
        };
        Self {
            provider: provider.to_owned(),
            endpoints: serde_json::to_string(&identity.endpoints).unwrap_or_default(),
            account,
        }
    }

    /// The target recorded in a file's `meta` table (the journal's or the event store's), if any.
    pub(crate) fn load(connection: &Connection) -> anyhow::Result<Option<Self>> {
        Ok(
            match (
                meta(connection, "target_provider")?,
                meta(connection, "target_endpoints")?,
                meta(connection, "target_account")?,
            ) {
                (Some(provider), Some(endpoints), Some(account)) => Some(Self {
                    provider,
                    endpoints,
                    account,
                }),
                _ => None,
            },
        )
    }

    /// Records `self` as the file's target.
    pub(crate) fn store(&self, connection: &Connection) -> anyhow::Result<()> {
        set_meta(connection, "target_provider", &self.provider)?;
        set_meta(connection, "target_endpoints", &self.endpoints)?;
        set_meta(connection, "target_account", &self.account)
    }

    /// The parts of `self` that differ from `other`, in a fixed order.
    pub(crate) fn differences(&self, other: &RecordedTarget) -> Vec<TargetPart> {
        let mut parts = Vec::new();
        if self.provider != other.provider {
            parts.push(TargetPart::Provider);
        }
        if self.endpoints != other.endpoints {
            parts.push(TargetPart::Endpoint);
        }
        if self.account != other.account {
            parts.push(TargetPart::Account);
        }
        parts
    }
}

/// The refusal for a state file used against another target (exit 2).
pub(crate) fn mismatch(parts: &[TargetPart]) -> Refusal {
    let names: Vec<&str> = parts.iter().map(|p| p.as_str()).collect();
    Refusal(format!(
        "the state file belongs to another target ({} differs); nothing was sent. Use the state file of this target, or pass --allow-target-change to bind this one to the new target",
        names.join(", ")
    ))
}

/// The keyed hash (HMAC-SHA256, see the module docs) a target address is claimed under or an
/// OAuth grant is held under: 32 bytes, stored as a BLOB. Not a secret (the state's salt and
/// the vendor credential key it), but `Debug` shows only its first bytes: enough to tell two
/// apart in a test's failure.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key([u8; 32]);

impl Key {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl From<[u8; 32]> for Key {
    fn from(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [a, b, c, d, ..] = self.0;
        write!(f, "Key({a:02x}{b:02x}{c:02x}{d:02x}…)")
    }
}

impl ToSql for Key {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Blob(&self.0)))
    }
}

/// The keyed fingerprints of one run (see the module docs).
#[derive(Debug, Clone)]
pub struct RunKeys {
    key: FingerprintKey,
}

impl RunKeys {
    pub(crate) fn new(key: FingerprintKey) -> Self {
        Self { key }
    }

    /// The fingerprint of a mapped request (body + target ids).
    pub fn fingerprint(&self, mapped: &MappedRecord) -> String {
        let target = serde_json::to_vec(&mapped.target).unwrap_or_default();
        self.content_key(mapped, &target)
    }

    /// The key a target address is claimed under, so the state holds no raw names.
    pub fn claim_key(&self, target: &Map<String, Value>) -> Key {
        let target = serde_json::to_vec(target).unwrap_or_default();
        self.address_key(&target)
    }

    /// [`RunKeys::fingerprint`] and [`RunKeys::claim_key`] of one mapped record, its target
    /// serialised once for both.
    pub fn record_keys(&self, mapped: &MappedRecord) -> (String, Key) {
        let target = serde_json::to_vec(&mapped.target).unwrap_or_default();
        (self.content_key(mapped, &target), self.address_key(&target))
    }

    /// The key of an OAuth grant (its refresh token, else its access token: `kind` names
    /// which, so a refresh token never matches an access token), so the journal can tell two
    /// records sharing one grant apart without holding the token.
    pub fn grant_key(&self, kind: &[u8], token: &SecretString) -> Key {
        Key(self
            .key
            .fingerprint_bytes(&[b"grant", kind, token.expose_secret().as_bytes()]))
    }

    fn address_key(&self, target_json: &[u8]) -> Key {
        Key(self.key.fingerprint_bytes(&[b"claim", target_json]))
    }

    fn content_key(&self, mapped: &MappedRecord, target_json: &[u8]) -> String {
        let body = serde_json::to_vec(mapped.body.expose()).unwrap_or_default();
        self.key.fingerprint(&[b"record", &body, target_json])
    }
}
