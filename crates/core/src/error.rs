//! The error taxonomy. Providers classify what went wrong; the engine decides what to do.

use std::time::Duration;

use crate::report::ErrorKind;

/// A failure talking to a target, classified by what the engine may do next.
///
/// Messages must never contain a secret, a request body or a response body that may echo
/// secrets: vendors' `message` fields are fine, bodies are not.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// The request was not applied and may succeed if tried again (connect error before
    /// sending, 502/503/504 on a read, ...).
    #[error("transient failure: {message}")]
    Transient { message: String },
    /// The target said "too many requests": not applied; wait and retry.
    #[error("rate limited: {message}")]
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    /// The write may or may not have been applied (timeout or lost connection after sending,
    /// 5xx on a non-idempotent write). The engine reconciles before any retry.
    #[error("outcome unknown: {message}")]
    OutcomeUnknown { message: String },
    /// The target refused this record (validation, unknown service, not found...). Retrying
    /// will not help; the other records go on.
    #[error("rejected by target: {message}")]
    Rejected { message: String },
    /// Nothing more can succeed in this run (bad credentials, plan limit reached): the engine
    /// stops taking records and reports the rest as not attempted.
    #[error("run stopped: {message}")]
    Fatal { message: String },
}

impl ProviderError {
    pub fn transient(message: impl Into<String>) -> Self {
        Self::Transient {
            message: message.into(),
        }
    }
    pub fn rate_limited(retry_after: Option<Duration>, message: impl Into<String>) -> Self {
        Self::RateLimited {
            retry_after,
            message: message.into(),
        }
    }
    pub fn outcome_unknown(message: impl Into<String>) -> Self {
        Self::OutcomeUnknown {
            message: message.into(),
        }
    }
    pub fn rejected(message: impl Into<String>) -> Self {
        Self::Rejected {
            message: message.into(),
        }
    }
    pub fn fatal(message: impl Into<String>) -> Self {
        Self::Fatal {
            message: message.into(),
        }
    }

    /// The report's `error.kind` for this failure (its `Display` is the report's word).
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::of(self)
    }

    /// The message without the classification prefix.
    pub fn message(&self) -> &str {
        match self {
            Self::Transient { message }
            | Self::RateLimited { message, .. }
            | Self::OutcomeUnknown { message }
            | Self::Rejected { message }
            | Self::Fatal { message } => message,
        }
    }

    /// Whether the same call may simply be sent again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Transient { .. } | Self::RateLimited { .. })
    }
}

/// A record that cannot be mapped to the target, located to the record's field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct MappingError {
    /// The record's field path (`auth.api_key`, `settings.subdomain`, `targets.tray`), or the
    /// target's field that could not be filled (`credentials.account`).
    pub field: String,
    pub message: String,
    /// The report's `error.kind`: [`ErrorKind::Mapping`] unless a finding has its own
    /// ([`ErrorKind::ClientMismatch`]).
    ///
    /// [`ErrorKind::Mapping`]: crate::report::ErrorKind::Mapping
    /// [`ErrorKind::ClientMismatch`]: crate::report::ErrorKind::ClientMismatch
    pub kind: crate::report::ErrorKind,
}

impl MappingError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            kind: crate::report::ErrorKind::Mapping,
        }
    }

    /// The same error reported under another `error.kind`.
    pub fn with_kind(mut self, kind: crate::report::ErrorKind) -> Self {
        self.kind = kind;
        self
    }
}
