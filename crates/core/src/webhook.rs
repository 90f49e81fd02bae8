//! The optional webhook side of a provider: a [`WebhookSource`] checks a delivery's signature and
//! reduces its body to a typed [`HealthEvent`]. `authport webhooks --provider NAME` serves
//! whatever source the provider's plugin declares; the engine stores only the typed event, so
//! neither the runner nor the engine knows any vendor's event shapes.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};

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
}
