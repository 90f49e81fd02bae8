//! The per-record report file and the run summary (counts, top failure reasons, exit code).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use authport_core::{ErrorKind, ReportLine, Status};
use binding::BindingCounts;
use serde_json::{Value, json};

/// The process's exit codes: the one table (the README's is written from it). The runner exits
/// with [`Exit::code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// Every record succeeded.
    Ok,
    /// Some records failed; the rest are done.
    SomeFailed,
    /// Usage or configuration error, or a refusal ([`crate::Refusal`]): nothing was sent.
    Usage,
    /// The run stopped on a fatal target error or its deadline; the rest were not attempted.
    Stopped,
    /// The run could not proceed: input, state or report unreadable or unwritable.
    Io,
    /// Interrupted by Ctrl-C / SIGTERM; a re-run with the same state resumes.
    Interrupted,
    /// `status`: an imported record is not healthy (or could not be read back).
    Unhealthy,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::SomeFailed => 1,
            Exit::Usage => 2,
            Exit::Stopped => 3,
            Exit::Io => 4,
            Exit::Interrupted => 130,
            Exit::Unhealthy => 5,
        }
    }
}

/// The version of the JSON summary's shape (docs/output.md). Removing or renaming a field
/// bumps it; adding one does not.
pub const SUMMARY_SCHEMA: u32 = 1;

/// A command's `--format json` summary in the one shape every command prints: `type` tells it
/// apart from the record lines beside it, `schema` versions the shape, `command` names what
/// ran and `exit_code` is the process's; the command's own `fields` follow (a field of the
/// same name as one of these four never replaces it).
pub fn json_summary(command: &str, exit: Exit, fields: Value) -> Value {
    let mut summary = serde_json::Map::new();
    summary.insert("type".into(), json!("summary"));
    summary.insert("schema".into(), json!(SUMMARY_SCHEMA));
    summary.insert("command".into(), json!(command));
    summary.insert("exit_code".into(), json!(exit.code()));
    if let Value::Object(fields) = fields {
        for (name, value) in fields {
            summary.entry(name).or_insert(value);
        }
    }
    Value::Object(summary)
}

/// Distinct failure reasons kept for the summary; the rest are counted under "other reasons".
const MAX_DISTINCT_REASONS: usize = 1000;
/// Failure reasons shown in the summary.
const TOP_REASONS: usize = 5;

/// JSON Lines report, one [`ReportLine`] per input record, flushed line by line so a killed run
/// leaves a readable report of what it finished. The path `-` means stdout.
pub struct ReportWriter {
    out: Option<Box<dyn Write + Send>>,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for ReportWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportWriter")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ReportWriter {
    /// Creates (truncates) the report file; `-` writes to stdout.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        if path == Path::new("-") {
            return Ok(Self::to_writer(Box::new(std::io::stdout()), path));
        }
        let file = crate::files::create_private("report", path).map_err(|error| {
            if error.is::<crate::files::Refusal>() {
                error
            } else {
                error.context(format!("cannot create report {}", path.display()))
            }
        })?;
        Ok(Self::to_writer(Box::new(BufWriter::new(file)), path))
    }

    /// A report into any writer (`path` names it in error messages).
    pub fn to_writer(out: Box<dyn Write + Send>, path: &Path) -> Self {
        Self {
            out: Some(out),
            path: Some(path.to_owned()),
        }
    }

    /// A writer that discards lines (no `--report`).
    pub fn discard() -> Self {
        Self {
            out: None,
            path: None,
        }
    }

    pub fn create_optional(path: Option<&Path>) -> anyhow::Result<Self> {
        path.map_or_else(|| Ok(Self::discard()), Self::create)
    }

    pub fn write(&mut self, line: &ReportLine) -> anyhow::Result<()> {
        // Without `--report` the line is not built at all (a JSON tree per record, for nothing).
        if self.out.is_none() {
            return Ok(());
        }
        self.write_value(&serde_json::to_value(line)?)
    }

    /// Writes any JSON object as one line (verify and rollback lines).
    pub fn write_value(&mut self, value: &Value) -> anyhow::Result<()> {
        let Some(out) = &mut self.out else {
            return Ok(());
        };
        let path = self.path.as_deref().unwrap_or(Path::new("report"));
        let mut text = serde_json::to_vec(value)?;
        text.push(b'\n');
        match out.write_all(&text).and_then(|()| out.flush()) {
            // A closed pipe (`--report - | head`) is not an error: the run goes on.
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {
                self.out = None;
                Ok(())
            }
            other => other.with_context(|| format!("cannot write report {}", path.display())),
        }
    }
}

/// Counts per status and failure reason, as lines are reported.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub counts: BTreeMap<Status, u64>,
    /// Of the `skipped`, those the run never attempted (it stopped or was interrupted first).
    pub not_attempted: u64,
    reasons: HashMap<String, u64>,
    other_reasons: u64,
    /// The client binding findings ([`binding`]).
    pub binding: BindingCounts,
}

impl Tally {
    pub fn add(&mut self, line: &ReportLine) {
        *self.counts.entry(line.status).or_default() += 1;
        self.binding.add(line);
        if line.error.as_ref().map(|e| e.kind) == Some(ErrorKind::NotAttempted) {
            self.not_attempted += 1;
        }
        if line.status.is_failure() {
            let reason = line.error.as_ref().map_or_else(
                || "unknown".to_owned(),
                |e| failure_reason(e.kind, &e.message),
            );
            if let Some(count) = self.reasons.get_mut(&reason) {
                *count += 1;
            } else if self.reasons.len() < MAX_DISTINCT_REASONS {
                self.reasons.insert(reason, 1);
            } else {
                self.other_reasons += 1;
            }
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    pub fn count(&self, status: Status) -> u64 {
        self.counts.get(&status).copied().unwrap_or(0)
    }

    /// The most frequent failure reasons, most frequent first (ties by reason).
    pub fn top_failures(&self) -> Vec<(String, u64)> {
        let mut reasons: Vec<(String, u64)> =
            self.reasons.iter().map(|(r, c)| (r.clone(), *c)).collect();
        reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        reasons.truncate(TOP_REASONS);
        if self.other_reasons > 0 {
            reasons.push(("other reasons".to_owned(), self.other_reasons));
        }
        reasons
    }
}

/// A failure grouped for the summary: the kind, and the message without the record's location
/// (`file:line: `), so the same problem on many lines counts as one reason.
pub fn failure_reason(kind: ErrorKind, message: &str) -> String {
    // Each names its own first record: one reason for them all.
    if kind == ErrorKind::SharedGrant {
        return format!(
            "{kind}: the record holds the same OAuth grant as an earlier record (imported once; --allow-shared-grants if the provider does not rotate refresh tokens)"
        );
    }
    let message = if kind == ErrorKind::InvalidRecord {
        strip_location(message)
    } else {
        message
    };
    format!("{kind}: {message}")
}

/// `path:123: rest` -> `rest`. Paths may hold colons, so look for the first `:<digits>: `.
fn strip_location(message: &str) -> &str {
    let bytes = message.as_bytes();
    let mut index = 0;
    while let Some(offset) = message[index..].find(':') {
        let colon = index + offset;
        let digits = bytes[colon + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let after = colon + 1 + digits;
        if digits > 0 && message[after..].starts_with(": ") {
            return &message[after + 2..];
        }
        index = colon + 1;
    }
    message
}

/// `  label  count` lines with every count in one column, however long the labels
/// (`pending_refresh`, `not attempted`).
fn aligned(rows: &[(&str, u64)]) -> String {
    let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(label, count)| format!("  {label:<width$}  {count}\n"))
        .collect()
}

/// What an import (or validate) run did.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub provider: String,
    pub dry_run: bool,
    pub counts: BTreeMap<Status, u64>,
    /// Of the `skipped` in `counts`, the records the run never attempted (it stopped or was
    /// interrupted first): not part of the rate, and shown apart from records skipped on
    /// purpose.
    pub not_attempted: u64,
    pub top_failures: Vec<(String, u64)>,
    /// Why the run stopped early (fatal target error, deadline).
    pub stopped: Option<String>,
    /// Ctrl-C / SIGTERM.
    pub interrupted: bool,
    pub elapsed: Duration,
    /// Provider calls sent again after a retryable failure.
    pub retries: u64,
    /// 429 answers received.
    pub throttled: u64,
    /// Ambiguous writes (and crash leftovers) resolved by the provider's reconcile step.
    pub reconciled: u64,
    /// Records whose write may have happened and is not resolved in the journal after this run
    /// (including any no longer in the input): a run with the same state and an input holding
    /// them reconciles them.
    pub unresolved: u64,
    pub report: Option<PathBuf>,
    /// How the run was paced (`30/s, burst 50`, `auto (ceiling 100/s), ended at 38.2/s`).
    pub pacing: String,
    /// What held the run back: the rate, the target's latency or the client.
    pub bound: Option<crate::adaptive::Bound>,
    /// Records holding a refresh token their service rotates and revokes
    /// (`crate::run::rotation`): the source must stop refreshing them, or `migrate --cutover`.
    pub rotating: u64,
    /// Client binding counts (none for `validate`, which has no target).
    pub binding: BindingCounts,
}

impl RunSummary {
    pub fn from_tally(tally: &Tally) -> Self {
        Self {
            counts: tally.counts.clone(),
            not_attempted: tally.not_attempted,
            top_failures: tally.top_failures(),
            binding: tally.binding,
            ..Self::default()
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    pub fn count(&self, status: Status) -> u64 {
        self.counts.get(&status).copied().unwrap_or(0)
    }

    /// The process exit code: interrupted beats stopped beats failed.
    pub fn exit_code(&self) -> Exit {
        if self.interrupted {
            Exit::Interrupted
        } else if self.stopped.is_some() {
            Exit::Stopped
        } else if self
            .counts
            .iter()
            .any(|(status, count)| status.is_failure() && *count > 0)
        {
            Exit::SomeFailed
        } else {
            Exit::Ok
        }
    }

    /// The final summary for people (stderr).
    pub fn human(&self) -> String {
        let mut text = String::new();
        let seconds = self.elapsed.as_secs_f64();
        // Records the run never reached took no time: the rate is of the attempted ones.
        let attempted = self.total().saturating_sub(self.not_attempted);
        let rate = if seconds > 0.0 {
            attempted as f64 / seconds
        } else {
            0.0
        };
        let subject = if self.provider.is_empty() {
            String::new()
        } else {
            format!("{}: ", self.provider)
        };
        let mode = if self.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        };
        text.push_str(&format!(
            "{subject}{attempted} records in {seconds:.1}s ({rate:.1}/s){mode}\n"
        ));
        let mut rows: Vec<(&str, u64)> = Vec::new();
        for (status, count) in &self.counts {
            let count = if *status == Status::Skipped {
                count.saturating_sub(self.not_attempted)
            } else {
                *count
            };
            if count > 0 || *status != Status::Skipped {
                rows.push((status.as_str(), count));
            }
        }
        if self.not_attempted > 0 {
            rows.push(("not attempted", self.not_attempted));
        }
        text.push_str(&aligned(&rows));
        if self.retries + self.throttled + self.reconciled > 0 {
            text.push_str(&format!(
                "  retries {}, rate-limited answers {}, reconciled {}\n",
                self.retries, self.throttled, self.reconciled
            ));
        }
        if let (Some(bound), false) = (self.bound, self.dry_run) {
            text.push_str(&format!(
                "  paced {}; bounded by {}\n",
                self.pacing,
                bound.describe()
            ));
        }
        if !self.top_failures.is_empty() {
            text.push_str("top failure reasons:\n");
            for (reason, count) in &self.top_failures {
                text.push_str(&format!("  {count:>6}  {reason}\n"));
            }
        }
        if self.unresolved > 0 {
            text.push_str(&format!(
                "{} record(s) may have been written without an answer; re-run with the same --state to reconcile them\n",
                self.unresolved
            ));
        }
        if self.binding.has_findings() && !self.provider.is_empty() {
            text.push_str(&self.binding.human());
        }
        if self.rotating > 0 {
            text.push_str(&crate::run::rotation::advice(self.rotating));
            text.push('\n');
        }
        if let Some(reason) = &self.stopped {
            text.push_str(&format!(
                "stopped: {reason}; the remaining records were not attempted (re-run with the same --state to finish)\n"
            ));
        }
        if self.interrupted {
            text.push_str("interrupted: re-run with the same --state to resume\n");
        }
        match &self.report {
            Some(report) if report.as_os_str() == "-" => text.push_str("report: stdout\n"),
            Some(report) => text.push_str(&format!("report: {}\n", report.display())),
            None => {}
        }
        text
    }

    /// The `--format json` summary (stdout).
    pub fn to_json(&self) -> Value {
        let counts: serde_json::Map<String, Value> = Status::ALL
            .iter()
            .map(|status| (status.as_str().to_owned(), json!(self.count(*status))))
            .collect();
        json!({
            "provider": self.provider,
            "dry_run": self.dry_run,
            "total": self.total(),
            "counts": counts,
            "not_attempted": self.not_attempted,
            "top_failures": self.top_failures.iter()
                .map(|(reason, count)| json!({"reason": reason, "count": count}))
                .collect::<Vec<_>>(),
            "stopped": self.stopped,
            "interrupted": self.interrupted,
            "elapsed_seconds": self.elapsed.as_secs_f64(),
            "retries": self.retries,
            "throttled": self.throttled,
            "reconciled": self.reconciled,
            "unresolved": self.unresolved,
            "rotating_refresh_tokens": self.rotating,
            "client_binding": (!self.provider.is_empty()).then(|| self.binding.to_json()),
            "report": self.report.as_ref().map(|p| p.display().to_string()),
            "pacing": self.pacing,
            "bounded_by": self.bound.map(|b| format!("{b:?}").to_lowercase()),
            "exit_code": self.exit_code().code(),
        })
    }
}

/// What verify or rollback did: counts per outcome word.
#[derive(Debug, Clone, Default)]
pub struct MaintenanceSummary {
    /// `verify` or `rollback`.
    pub action: String,
    pub provider: String,
    /// Per outcome: verify's live status words (`present`, `missing`, ...) plus `error`;
    /// rollback's `removed`, `already_gone`, `kept`, `error`.
    pub counts: BTreeMap<String, u64>,
    /// Objects that are not healthy (verify) or could not be removed (rollback).
    pub problems: u64,
    pub top_failures: Vec<(String, u64)>,
    pub interrupted: bool,
    pub elapsed: Duration,
}

impl MaintenanceSummary {
    /// The count of one outcome word.
    pub fn count(&self, word: &str) -> u64 {
        self.counts.get(word).copied().unwrap_or(0)
    }

    pub fn exit_code(&self) -> Exit {
        if self.interrupted {
            Exit::Interrupted
        } else if self.problems > 0 {
            Exit::SomeFailed
        } else {
            Exit::Ok
        }
    }

    pub fn human(&self) -> String {
        let total: u64 = self.counts.values().sum();
        let mut text = format!(
            "{} {}: {total} objects in {:.1}s\n",
            self.provider,
            self.action,
            self.elapsed.as_secs_f64()
        );
        let rows: Vec<(&str, u64)> = self
            .counts
            .iter()
            .map(|(word, count)| (word.as_str(), *count))
            .collect();
        text.push_str(&aligned(&rows));
        if !self.top_failures.is_empty() {
            text.push_str("top failure reasons:\n");
            for (reason, count) in &self.top_failures {
                text.push_str(&format!("  {count:>6}  {reason}\n"));
            }
        }
        if self.interrupted {
            text.push_str(&format!(
                "interrupted: re-run {} with the same --state to finish\n",
                self.action
            ));
        }
        text
    }

    pub fn to_json(&self) -> Value {
        json!({
            "action": self.action,
            "provider": self.provider,
            "counts": self.counts,
            "problems": self.problems,
            "top_failures": self.top_failures.iter()
                .map(|(reason, count)| json!({"reason": reason, "count": count}))
                .collect::<Vec<_>>(),
            "interrupted": self.interrupted,
            "elapsed_seconds": self.elapsed.as_secs_f64(),
            "exit_code": self.exit_code().code(),
        })
    }
}

pub mod binding;
#[cfg(test)]
mod tests;
