//! The optional webhook side of a provider: a [`WebhookSource`] checks a delivery's signature and
//! reduces its body to a typed [`HealthEvent`]. `authport webhooks --provider NAME` serves
//! whatever source the provider's plugin declares; the engine stores only the typed event, so
//! neither the runner nor the engine knows any vendor's event shapes.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use hmac::Mac as _;

use crate::health::Health;
use crate::importer::{TargetIdentity, TargetRef};

/// A delivery's headers, names lower-cased. Built by the receiver from the HTTP request.
#[derive(Clone, Default)]
pub struct WebhookHeaders(BTreeMap<String, String>);

impl WebhookHeaders {
    /// Headers whose value is not text are left out (no vendor signs with such a header).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> Self {
        Self(
            pairs
                .into_iter()
                .filter_map(|(name, value)| Some((name.to_ascii_lowercase(), value?.to_owned())))
                .collect(),
        )
    }

    /// The value of `name` (any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
}

impl fmt::Debug for WebhookHeaders {
    // Names only: a signature is a keyed value, and a proxy may add credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// What one signed delivery says about one connection. Every field comes from the signed body
/// (or, for `id`, from a hash of it when the vendor signs no id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEvent {
    /// The dedupe key: the vendor's signed event id, or a hash of the raw body when it has none
    /// (Nango). Non-secret, at most 200 characters.
    pub id: String,
    /// The provider's key of the connection (the same as [`WebhookSource::connection_key`]
    /// gives for the journal's target ref), empty when the event names none.
    pub connection_key: String,
    /// What the event says of the connection's health; `None` when it says nothing about it
    /// (e.g. a creation the migration did not make).
    pub health: Option<Health>,
    /// When it happened, in the vendor's signed words; `None` when the vendor sends no time
    /// (Nango): such events are ordered by arrival.
    pub occurred_at: Option<DateTime<Utc>>,
    /// The vendor's own word for the event, for display and history only
    /// (`vault.connection.token_refresh.failed`, `auth.refresh.failed`). Never decides anything.
    pub kind: String,
    /// The vendor's id of the connection, when the event names it (non-secret).
    pub connection_id: Option<String>,
}

/// Why a delivery is refused: the receiver answers `status` with `message` (never a secret, never
/// a value of the payload) and rate-limits its log lines by `reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct WebhookRefusal {
    pub status: u16,
    pub reason: &'static str,
    pub message: String,
}

impl WebhookRefusal {
    /// 401: a missing or wrong signature.
    pub fn unsigned(message: impl Into<String>) -> Self {
        Self {
            status: 401,
            reason: "signature",
            message: message.into(),
        }
    }

    /// 400: a signed body that cannot be used (`reason` names which rule, for the log).
    pub fn malformed(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: 400,
            reason,
            message: message.into(),
        }
    }
}

/// A provider's webhook receiver logic. Pure: no IO, so it is tested on bytes alone.
pub trait WebhookSource: Send + Sync + fmt::Debug {
    /// The header that carries the signature (for docs and refusals).
    fn signature_header(&self) -> &'static str;

    /// Checks the signature of the raw body, in constant time. Called before anything of the
    /// body is read.
    fn verify(&self, headers: &WebhookHeaders, body: &[u8]) -> Result<(), WebhookRefusal>;

    /// Reduces a verified body to its event. The body was checked by [`Self::verify`] first.
    fn parse(&self, body: &[u8]) -> Result<HealthEvent, WebhookRefusal>;

    /// The key of the connection a journal's target ref names (what `parse` gives as
    /// `connection_key` for events about it); `None` when the ref names none.
    fn connection_key(&self, target: &TargetRef) -> Option<String>;

    /// The target the deliveries come from, so the event store is bound to one target as the
    /// state file is. No IO.
    fn identity(&self) -> TargetIdentity;

    /// What the source still needs before it can verify deliveries (its signing secret), as a
    /// message that names the setting, never a value; `None` when it can. `authport webhooks`
    /// refuses to start without it (exit 2); import and `status`, which build the source only for
    /// [`Self::connection_key`] and [`Self::stored_health`], do not need it.
    fn missing_setting(&self) -> Option<String> {
        None
    }

    /// The health an event kept by an older event store (schema 1 or 2, which stored the
    /// vendor's own words) meant, from those words by column name (`event_type`, `state`,
    /// `health`, ... as [`StoredWords`]); `None`: it said nothing about health. The event store's
    /// in-place upgrade asks the provider, so no vendor word is read by the engine.
    fn stored_health(&self, words: &StoredWords) -> Option<Health> {
        let _ = words;
        None
    }
}

/// The hex HMAC-SHA256 of `bytes` keyed with `key` (how Apideck and Nango sign deliveries).
pub fn hmac_sha256_hex(key: &[u8], bytes: &[u8]) -> String {
    hex(&hmac_of(key, bytes).finalize().into_bytes())
}

/// Whether `signature` (64 hex digits, either case, surrounding spaces ignored) is the
/// HMAC-SHA256 of `bytes` keyed with `key`. The digests are compared in constant time
/// (`hmac`'s `verify_slice`); a signature of the wrong form is refused before any MAC is made.
pub fn hmac_sha256_hex_matches(key: &[u8], bytes: &[u8], signature: &str) -> bool {
    decode_hex_digest(signature)
        .is_some_and(|expected| hmac_of(key, bytes).verify_slice(&expected).is_ok())
}

/// The hex SHA-256 of `bytes`: the dedupe id of a delivery whose vendor signs no event id.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex(&sha2::Sha256::digest(bytes))
}

fn hmac_of(key: &[u8], bytes: &[u8]) -> hmac::Hmac<sha2::Sha256> {
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(bytes);
    mac
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A SHA-256 digest in hex (64 digits), else `None`.
fn decode_hex_digest(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// The vendor's words one event of an older event store kept, by column name; columns that were
/// empty are absent.
pub type StoredWords = BTreeMap<String, String>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hmac_matches_its_hex_in_either_case_and_nothing_else() {
        // RFC 4231 test case 2.
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let body = b"what do ya want for nothing?";
        assert_eq!(hmac_sha256_hex(b"Jefe", body), expected);
        assert!(hmac_sha256_hex_matches(b"Jefe", body, expected));
        assert!(hmac_sha256_hex_matches(
            b"Jefe",
            body,
            &expected.to_uppercase()
        ));
        assert!(!hmac_sha256_hex_matches(b"other", body, expected));
        assert!(!hmac_sha256_hex_matches(b"Jefe", b"tampered", expected));
        assert!(!hmac_sha256_hex_matches(b"Jefe", body, &expected[..62]));
        assert!(!hmac_sha256_hex_matches(b"Jefe", body, "not hex"));
        assert!(!hmac_sha256_hex_matches(b"Jefe", body, ""));
    }

    #[test]
    fn headers_are_found_in_any_case_and_debug_shows_names_only() {
        let headers = WebhookHeaders::from_pairs([("X-Sig", Some("canary-value")), ("bin", None)]);
        assert_eq!(headers.get("x-sig"), Some("canary-value"));
        assert_eq!(headers.get("X-SIG"), Some("canary-value"));
        assert_eq!(headers.get("bin"), None);
        assert!(!format!("{headers:?}").contains("canary"));
    }

    #[test]
    fn a_body_digest_is_sha256_in_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
