//! The per-record report line (JSON Lines), shared by `validate`, `import`, `verify` and
//! `rollback`. It never holds a secret: targets are ids, errors are classified messages.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ProviderError;

/// A record's terminal status in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Created at the target by this run.
    Imported,
    /// An earlier import (or a pre-existing object we may overwrite) was updated.
    Updated,
    /// Already imported with the same content: nothing sent.
    Unchanged,
    /// Deliberately not written (pre-existing object, or not attempted because the run stopped;
    /// `error.kind` says which).
    Skipped,
    /// Not imported: bad input, mapping failure, rejected by the target, retries exhausted.
    Failed,
    /// `--dry-run` / `validate`: the record is valid (and mapped) but nothing was written.
    Planned,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Imported,
        Status::Updated,
        Status::Unchanged,
        Status::Skipped,
        Status::Failed,
        Status::Planned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Imported => "imported",
            Status::Updated => "updated",
            Status::Unchanged => "unchanged",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
            Status::Planned => "planned",
        }
    }

    /// Whether a run with this status for some record must exit 1.
    pub fn is_failure(self) -> bool {
        matches!(self, Status::Failed)
    }
}

/// Why a record (or, in verify and rollback, an object) did not end well: the report's
/// `error.kind`. The provider's classes come from [`ErrorKind::of`]; the others are the
/// engine's. One enum, so no kind is ever spelled twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The input line is not a valid v1 record (file, line, field in the message).
    InvalidRecord,
    /// The record is valid but cannot be mapped to the target's catalogue.
    Mapping,
    /// The run stopped (fatal error, deadline or Ctrl-C) before this record was attempted.
    NotAttempted,
    /// The run stopped while this record's write was in flight; the next run reconciles it.
    Interrupted,
    /// A pre-existing object at the target was left alone.
    PreExisting,
    /// The record maps to the same target object as an earlier record.
    Conflict,
    /// [`ProviderError::Transient`].
    Transient,
    /// [`ProviderError::RateLimited`].
    RateLimited,
    /// [`ProviderError::OutcomeUnknown`], or an earlier write nobody could confirm.
    OutcomeUnknown,
    /// [`ProviderError::Rejected`].
    Rejected,
    /// [`ProviderError::Fatal`].
    Fatal,
    /// The record's OAuth `client_id` is not the target's client for its service: the target
    /// could never refresh the token (RFC 6749 §6), so it is not written.
    ClientMismatch,
    /// The record's OAuth grant (its refresh token, else its access token) is an earlier
    /// record's, in this input or in the journal: one grant is imported once.
    SharedGrant,
}

impl ErrorKind {
    /// The kind of a provider's failure.
    pub fn of(error: &ProviderError) -> Self {
        match error {
            ProviderError::Transient { .. } => ErrorKind::Transient,
            ProviderError::RateLimited { .. } => ErrorKind::RateLimited,
            ProviderError::OutcomeUnknown { .. } => ErrorKind::OutcomeUnknown,
            ProviderError::Rejected { .. } => ErrorKind::Rejected,
            ProviderError::Fatal { .. } => ErrorKind::Fatal,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidRecord => "invalid_record",
            ErrorKind::Mapping => "mapping",
            ErrorKind::NotAttempted => "not_attempted",
            ErrorKind::Interrupted => "interrupted",
            ErrorKind::PreExisting => "pre_existing",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Transient => "transient",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::OutcomeUnknown => "outcome_unknown",
            ErrorKind::Rejected => "rejected",
            ErrorKind::Fatal => "fatal",
            ErrorKind::SharedGrant => "shared_grant",
            ErrorKind::ClientMismatch => "client_mismatch",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The warning of a record imported without knowing which OAuth client its token belongs to
/// (no `auth.client_id`, or no client known for the target). Every such warning starts so.
pub const CLIENT_BINDING_UNKNOWN: &str = "client binding unknown";

/// The warning of a record whose `auth.scopes` lack scopes the target asks for; it starts so
/// and names them. `--require-scopes` fails the record instead.
pub const SCOPE_DEFICIT: &str = "scope_deficit";

/// The `error` object of a report line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportError {
    pub kind: ErrorKind,
    pub message: String,
}

/// One line of the report file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportLine {
    /// Absent when the line could not be parsed far enough to find its id.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    /// 1-based line of the input file where the record starts.
    pub line: u64,
    pub status: Status,
    /// Non-secret ids at the target.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub target: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<ReportError>,
    /// Non-fatal findings on the record or its mapping.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub warnings: Vec<String>,
    /// `--dry-run` only: the request that would be sent, secrets redacted.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub plan: Option<Value>,
}

impl ReportLine {
    pub fn new(id: Option<String>, line: u64, status: Status) -> Self {
        Self {
            id,
            line,
            status,
            target: None,
            error: None,
            warnings: Vec::new(),
            plan: None,
        }
    }

    pub fn with_error(mut self, kind: ErrorKind, message: impl Into<String>) -> Self {
        self.error = Some(ReportError {
            kind,
            message: message.into(),
        });
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_serialise_as_their_names() {
        for (kind, name) in [
            (ErrorKind::InvalidRecord, "invalid_record"),
            (ErrorKind::NotAttempted, "not_attempted"),
            (ErrorKind::PreExisting, "pre_existing"),
            (ErrorKind::OutcomeUnknown, "outcome_unknown"),
            (ErrorKind::RateLimited, "rate_limited"),
        ] {
            assert_eq!(kind.as_str(), name);
            assert_eq!(serde_json::to_value(kind).unwrap(), Value::from(name));
        }
        // Every provider class keeps the name `ProviderError::kind` gives it.
        for error in [
            ProviderError::transient("x"),
            ProviderError::rate_limited(None, "x"),
            ProviderError::outcome_unknown("x"),
            ProviderError::rejected("x"),
            ProviderError::fatal("x"),
        ] {
            assert_eq!(ErrorKind::of(&error), error.kind());
        }
    }
}
