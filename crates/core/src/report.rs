//! The per-record report line (JSON Lines), shared by `validate`, `import`, `verify` and
//! `rollback`. It never holds a secret: targets are ids, errors are classified messages.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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

/// `error.kind` values the engine and runner use besides [`crate::ProviderError::kind`].
pub mod error_kind {
    /// The input line is not a valid v1 record (file, line, field in the message).
    pub const INVALID_RECORD: &str = "invalid_record";
    /// The record is valid but cannot be mapped to the target's catalogue.
    pub const MAPPING: &str = "mapping";
    /// The run stopped (fatal error or Ctrl-C) before this record was attempted.
    pub const NOT_ATTEMPTED: &str = "not_attempted";
    /// A pre-existing object at the target was left alone.
    pub const PRE_EXISTING: &str = "pre_existing";
    /// The record maps to the same target object as an earlier record.
    pub const CONFLICT: &str = "conflict";
}

/// The `error` object of a report line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportError {
    pub kind: String,
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

    pub fn with_error(mut self, kind: impl Into<String>, message: impl Into<String>) -> Self {
        self.error = Some(ReportError {
            kind: kind.into(),
            message: message.into(),
        });
        self
    }
}
