//! One record's way through the import, as a state machine over the journal:
//!
//! ```text
//! map ─> prepare (claim + entry + intent, one commit) ─┬─ conflict ───────────────> failed
//!                                                       ├─ unchanged ──────────────> unchanged
//!                                                       ├─ intent without object ─> reconcile ─┐
//!                                                       └─ intent committed ──────> write <────┘
//! write ─┬─ applied ──────────> commit outcome ─> imported / updated
//!        ├─ lost answer ──────> reconcile ─> found: adopt · absent: write again
//!        ├─ refused / given up > clear intent (and the claim) ─> failed
//!        └─ run stopped ──────> not_attempted (intent cleared) or interrupted (kept)
//! ```
//!
//! Every provider call goes through the run's [`Retrier`].

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use authport_core::{
    AuthImporter, CredentialRecord, DiscoveryKey, Disposition, ErrorKind, ImportOutcome,
    MappedRecord, PriorImport, ProviderError, ReportLine, Status, TargetRef,
};

use super::discovery::{Discovered, Discoveries};
use super::grants::{Grant, shared_message};
use crate::control::Control;
use crate::limiter::SendLimiter;
use crate::progress::Progress;
use crate::retrier::{Attempted, Retrier, RetryCounters, WriteEffect};
use crate::retry::{NextStep, RetryPolicy, backoff_delay};
use crate::state::{GrantUse, JournalEntry, Prepared, RunKeys, StateStore};
use crate::summary::{ReportWriter, Tally};

#[derive(Debug)]
pub(super) struct Output {
    pub report: ReportWriter,
    pub tally: Tally,
}

/// Shared by the workers of one run.
#[derive(Debug)]
pub(super) struct Run {
    pub importer: Arc<dyn AuthImporter>,
    pub state: StateStore,
    pub keys: RunKeys,
    pub provider: String,
    pub dry_run: bool,
    pub policy: RetryPolicy,
    pub limiter: Arc<SendLimiter>,
    pub control: Control,
    pub started: Instant,
    pub deadline: Option<Duration>,
    pub counters: RetryCounters,
    pub reconciled: AtomicU64,
    pub output: Mutex<Output>,
    pub progress: Progress,
    pub discoveries: Discoveries,
    pub on_applied: Option<super::AppliedHook>,
    /// `--allow-shared-grants`.
    pub shared_grants_allowed: bool,
    /// `--require-scopes`: a provider's `scope_deficit` warning fails the record.
    pub require_scopes: bool,
    /// Records whose service rotates (and revokes) refresh tokens ([`super::rotation`]).
    pub rotating: AtomicU64,
}

/// How a reconcile ended.
enum Resolution {
    /// The earlier write reached the target: adopt it, no second write.
    Found(ImportOutcome),
    /// It did not: safe to write.
    Absent,
    /// Could not find out; the intent stays for the next run.
    Unresolved(ProviderError),
    /// The run stopped first; the intent stays for the next run.
    Stopped,
}

fn skipped(mut line: ReportLine, kind: ErrorKind, message: &str) -> ReportLine {
    line.status = Status::Skipped;
    line.with_error(kind, message)
}

fn failed(mut line: ReportLine, kind: ErrorKind, message: &str) -> ReportLine {
    line.status = Status::Failed;
    line.with_error(kind, message)
}

fn failed_with(line: ReportLine, error: &ProviderError) -> ReportLine {
    failed(line, ErrorKind::of(error), error.message())
}

pub(super) const NOT_ATTEMPTED_MESSAGE: &str =
    "the run stopped before this record was sent; re-run with the same --state";
const INTERRUPTED_MESSAGE: &str =
    "the run stopped while this write was in flight; re-run with the same --state to reconcile it";

fn not_attempted(line: ReportLine) -> ReportLine {
    skipped(line, ErrorKind::NotAttempted, NOT_ATTEMPTED_MESSAGE)
}

fn interrupted(line: ReportLine) -> ReportLine {
    skipped(line, ErrorKind::Interrupted, INTERRUPTED_MESSAGE)
}

impl Run {
    /// Tells the `on_applied` hook, if any, that this record's object is committed.
    fn applied(&self, record_id: &str, target: &TargetRef) {
        if let Some(hook) = &self.on_applied {
            (hook.0)(record_id, target);
        }
    }

    pub(super) fn emit(&self, line: &ReportLine) -> anyhow::Result<()> {
        let mut output = self.output.lock().unwrap_or_else(|e| e.into_inner());
        output.report.write(line)?;
        output.tally.add(line);
        self.progress.record(line.status);
        Ok(())
    }

    /// The run's retry loop: stopped by the run, bounded by its deadline.
    fn retrier(&self) -> Retrier<'_> {
        Retrier {
            policy: self.policy,
            limiter: &self.limiter,
            control: Some(&self.control),
            deadline: self.deadline.map(|budget| (self.started, budget)),
            counters: Some(&self.counters),
        }
    }

    fn time_left(&self) -> Option<Duration> {
        self.retrier().time_left()
    }

    fn bump_reconciled(&self) {
        self.reconciled.fetch_add(1, Ordering::Relaxed);
    }

    /// Discovery of this record's key: read-only, retried like any read, once per key
    /// (single-flight, see `discovery`). A failure stops the run: nothing of that key can be
    /// mapped, and the operator must fix the target or the configuration first.
    async fn discovered(&self, record: &CredentialRecord) -> Discovered {
        let target = record.targets.get(&self.provider);
        let cell = self.discoveries.cell(&record.service, target);
        let discover = || async {
            let key = DiscoveryKey::for_record(record, &self.provider);
            let keys = std::slice::from_ref(&key);
            match self
                .retrier()
                .call(WriteEffect::Idempotent, 0, || self.importer.discover(keys))
                .await
            {
                Attempted::Done(()) => Discovered::Ready,
                Attempted::Failed { error, .. } => {
                    self.control.stop(format!(
                        "discovery failed ({}): {}",
                        error.kind(),
                        error.message()
                    ));
                    Discovered::Failed
                }
                Attempted::Stopped { .. } | Attempted::Abandoned => Discovered::Stopped,
            }
        };
        cell.get_or_init(discover).await.clone()
    }

    /// Under `--require-scopes`, the failure of a record the provider found short of scopes
    /// (its `scope_deficit` note names them). Before any write, as a mapping failure.
    fn scope_failure(&self, mapped: &MappedRecord) -> Option<String> {
        let note = mapped
            .notes
            .iter()
            .find(|note| note.starts_with(authport_core::SCOPE_DEFICIT))?;
        self.require_scopes
            .then(|| format!("{note} (--require-scopes)"))
    }

    /// One record, from mapping to its terminal report line. `Err` only for journal IO.
    pub(super) async fn process(
        &self,
        line: u64,
        record: &CredentialRecord,
        grant: Option<&Grant>,
    ) -> anyhow::Result<ReportLine> {
        let mut report = ReportLine::new(Some(record.id.clone()), line, Status::Failed);
        report.warnings = record.warnings.iter().map(ToString::to_string).collect();
        // The deadline is checked here too, not only by the run's timer: a worker may pick a
        // record before the timer's task is polled.
        if self.time_left() == Some(Duration::ZERO) {
            self.control.stop(super::deadline_reason(self.deadline));
        }
        if self.control.is_stopped() {
            return Ok(not_attempted(report));
        }
        // Nothing is mapped before its key's catalogue is known; a failed or stopped discovery
        // has stopped the run, and the record was not attempted.
        if !matches!(self.discovered(record).await, Discovered::Ready) {
            return Ok(not_attempted(report));
        }
        let mapped = match self.importer.map(record) {
            Ok(mapped) => mapped,
            Err(error) => return Ok(failed(report, error.kind, &error.to_string())),
        };
        report.warnings.extend(mapped.notes.iter().cloned());
        if let Some(deficit) = self.scope_failure(&mapped) {
            return Ok(failed(report, ErrorKind::Mapping, &deficit));
        }
        report.target = Some(mapped.target.clone());
        let (fingerprint, claim_key) = self.keys.record_keys(&mapped);
        if self.dry_run {
            // What the real run's `prepare` would refuse: a grant the journal holds under
            // another record.
            if let Some(grant) = grant
                && !self.shared_grants_allowed
                && let Some(holder) =
                    self.state
                        .grant_holder(&self.provider, &grant.key, &record.id)?
            {
                return Ok(shared_grant(report, grant, &holder));
            }
            let entry = self
                .state
                .entry(&self.provider, &record.id)?
                .unwrap_or_default();
            report.plan = Some(mapped.redacted_body(record));
            if entry.is_unchanged(&fingerprint) {
                report.status = Status::Unchanged;
                return Ok(report);
            }
            return Ok(self.predict(report, record, &mapped, entry.prior()).await);
        }

        // Claim, entry and intent in one transaction, shared with the other workers' journal
        // writes (group commit); it returns once committed, so a committed intent may be sent.
        let grant_use = grant.map(|grant| GrantUse {
            key: &grant.key,
            shared_allowed: self.shared_grants_allowed,
        });
        let prepared = self
            .state
            .prepare_with_grant(
                &self.provider,
                &record.id,
                &claim_key,
                &fingerprint,
                grant_use,
            )
            .await?;
        let mut entry = match prepared {
            Prepared::SharedGrant(holder) => {
                let grant = grant.unwrap_or_else(|| unreachable!("only a grant can be shared"));
                return Ok(shared_grant(report, grant, &holder));
            }
            Prepared::Conflict(other) => {
                let message = format!(
                    "maps to the same target object as record `{other}`; two records must not write one object (check owner and service, or make the target name unique)"
                );
                return Ok(failed(report, ErrorKind::Conflict, &message));
            }
            Prepared::IntentCommitted(entry) => {
                return self
                    .write(report, record, &mapped, entry.prior(), &fingerprint)
                    .await;
            }
            Prepared::Unwritten(entry) => entry,
        };

        let mut adopted = None;
        if entry.awaits_reconcile() {
            // A create may have reached the target before the last run died: ask first.
            match self.reconcile(record, &mapped).await {
                Resolution::Found(outcome) => {
                    self.bump_reconciled();
                    let pending = entry.pending_fingerprint.clone().unwrap_or_default();
                    let created = outcome.disposition == Disposition::Created;
                    self.state
                        .commit_outcome(
                            &self.provider,
                            &record.id,
                            &pending,
                            &outcome.target,
                            created,
                        )
                        .await?;
                    self.applied(&record.id, &outcome.target);
                    entry = self
                        .state
                        .entry(&self.provider, &record.id)?
                        .unwrap_or_default();
                    adopted = Some(outcome);
                }
                Resolution::Absent => {
                    // Nothing landed: the intent below replaces the old one, and the record
                    // keeps its row and its claim meanwhile.
                    self.bump_reconciled();
                    entry = JournalEntry::default();
                }
                Resolution::Unresolved(error) => return Ok(unresolved(report, &error)),
                Resolution::Stopped => return Ok(interrupted(report)),
            }
        }
        // An intent on an object we already have was an update: updates overwrite the same
        // object, so writing again is safe.

        if entry.is_unchanged(&fingerprint) {
            report.status = match &adopted {
                Some(outcome) => disposition_status(outcome.disposition),
                None => Status::Unchanged,
            };
            merge_target(&mut report, entry.target.as_ref().map(|t| &t.0));
            return Ok(report);
        }
        self.state
            .commit_intent(&self.provider, &record.id, &fingerprint)
            .await?;
        self.write(report, record, &mapped, entry.prior(), &fingerprint)
            .await
    }

    /// The write with its retries; the intent is committed.
    async fn write(
        &self,
        report: ReportLine,
        record: &CredentialRecord,
        mapped: &MappedRecord,
        prior: Option<PriorImport>,
        fingerprint: &str,
    ) -> anyhow::Result<ReportLine> {
        let effect = if prior.is_some() {
            WriteEffect::Update
        } else {
            WriteEffect::Create
        };
        let retrier = self.retrier();
        let mut attempts = 0;
        loop {
            let attempted = retrier
                .call(effect, attempts, || {
                    self.importer.import(record, mapped, prior.as_ref())
                })
                .await;
            let (error, step) = match attempted {
                Attempted::Done(outcome) => {
                    return self.finish(report, &record.id, fingerprint, outcome).await;
                }
                Attempted::Abandoned => return Ok(interrupted(report)),
                // Stopped while waiting to retry a write that may have landed: the next run
                // reconciles it. Otherwise nothing was applied.
                Attempted::Stopped {
                    last: Some(ProviderError::OutcomeUnknown { .. }),
                } => return Ok(interrupted(report)),
                Attempted::Stopped { .. } => {
                    self.clear_intent(&record.id).await?;
                    return Ok(not_attempted(report));
                }
                Attempted::Failed {
                    error,
                    step,
                    attempts: made,
                } => {
                    attempts = made;
                    (error, step)
                }
            };
            match step {
                NextStep::Reconcile => {
                    // A lost answer may belong to a request the target is still processing
                    // (a client timeout): give it a moment before asking what landed.
                    let settle =
                        backoff_delay(&self.policy, attempts, 0.5 + rand::random::<f64>() / 2.0);
                    if !self.control.sleep_unless_stopped(settle).await {
                        return Ok(interrupted(report));
                    }
                    match self.reconcile(record, mapped).await {
                        Resolution::Found(outcome) => {
                            self.bump_reconciled();
                            return self.finish(report, &record.id, fingerprint, outcome).await;
                        }
                        Resolution::Absent => {
                            self.bump_reconciled();
                            if attempts >= self.policy.max_attempts {
                                self.clear_intent(&record.id).await?;
                                return Ok(failed_with(report, &error));
                            }
                        }
                        Resolution::Unresolved(reconcile_error) => {
                            return Ok(unresolved(report, &reconcile_error));
                        }
                        Resolution::Stopped => return Ok(interrupted(report)),
                    }
                }
                NextStep::StopRun => {
                    self.clear_intent(&record.id).await?;
                    self.control.stop(error.message().to_owned());
                    return Ok(failed_with(report, &error));
                }
                NextStep::GiveUp | NextStep::RetryAfter(_) => {
                    // An update that may or may not have landed keeps its intent, so the next
                    // run writes it again; anything else certainly wrote nothing.
                    if !matches!(error, ProviderError::OutcomeUnknown { .. }) {
                        self.clear_intent(&record.id).await?;
                    }
                    return Ok(failed_with(report, &error));
                }
            }
        }
    }

    /// A dry run's line for a record the real run would write: the provider's read-only
    /// pre-existing checks (the real run's reads, retried as reads) tell `skipped` with the
    /// note the real run would give from `planned`. A read that fails is the record's failure,
    /// as it would be in the real run.
    async fn predict(
        &self,
        mut report: ReportLine,
        record: &CredentialRecord,
        mapped: &MappedRecord,
        prior: Option<PriorImport>,
    ) -> ReportLine {
        let attempted = self
            .retrier()
            .call(WriteEffect::Idempotent, 0, || {
                self.importer.predict_skip(record, mapped, prior.as_ref())
            })
            .await;
        match attempted {
            Attempted::Done(None) => {
                report.status = Status::Planned;
                report
            }
            Attempted::Done(Some(note)) => skipped(report, ErrorKind::PreExisting, &note),
            Attempted::Stopped { .. } | Attempted::Abandoned => not_attempted(report),
            Attempted::Failed { error, step, .. } => {
                if step == NextStep::StopRun {
                    self.control.stop(error.message().to_owned());
                }
                failed_with(report, &error)
            }
        }
    }

    /// Forgets an intent whose write did not happen; a record with nothing applied also lets
    /// its target claim go, so a corrected record may take it.
    async fn clear_intent(&self, record_id: &str) -> anyhow::Result<()> {
        self.state
            .commit_clear_intent(&self.provider, record_id)
            .await
    }

    /// Asks the provider whether an earlier write of this record reached the target, retrying
    /// the (read-only) question on transient failures.
    async fn reconcile(&self, record: &CredentialRecord, mapped: &MappedRecord) -> Resolution {
        let attempted = self
            .retrier()
            .call(WriteEffect::Idempotent, 0, || {
                self.importer.reconcile(record, mapped)
            })
            .await;
        match attempted {
            Attempted::Done(Some(outcome)) => Resolution::Found(outcome),
            Attempted::Done(None) => Resolution::Absent,
            Attempted::Stopped { .. } | Attempted::Abandoned => Resolution::Stopped,
            Attempted::Failed { error, step, .. } => {
                if step == NextStep::StopRun {
                    self.control.stop(error.message().to_owned());
                }
                Resolution::Unresolved(error)
            }
        }
    }

    async fn finish(
        &self,
        mut report: ReportLine,
        record_id: &str,
        fingerprint: &str,
        outcome: ImportOutcome,
    ) -> anyhow::Result<ReportLine> {
        merge_target(&mut report, Some(&outcome.target.0));
        if let (Some(note), false) = (&outcome.note, outcome.disposition == Disposition::Skipped) {
            report.warnings.push(note.clone());
        }
        match outcome.disposition {
            Disposition::Created | Disposition::Updated => {
                let created = outcome.disposition == Disposition::Created;
                self.state
                    .commit_outcome(
                        &self.provider,
                        record_id,
                        fingerprint,
                        &outcome.target,
                        created,
                    )
                    .await?;
                self.applied(record_id, &outcome.target);
                report.status = disposition_status(outcome.disposition);
                Ok(report)
            }
            Disposition::Skipped => {
                // Not ours: never journalled as applied, so rollback can never remove it.
                self.clear_intent(record_id).await?;
                let message = outcome
                    .note
                    .as_deref()
                    .unwrap_or("an object already exists at the target; left as it is");
                Ok(skipped(report, ErrorKind::PreExisting, message))
            }
        }
    }
}

/// A record whose grant the journal holds under another record: nothing written.
fn shared_grant(report: ReportLine, grant: &Grant, holder: &str) -> ReportLine {
    failed(
        report,
        ErrorKind::SharedGrant,
        &shared_message(grant.token, holder, None),
    )
}

fn unresolved(report: ReportLine, error: &ProviderError) -> ReportLine {
    let message = format!(
        "could not confirm whether an earlier write reached the target ({error}); the next run with the same --state checks again"
    );
    failed(report, ErrorKind::OutcomeUnknown, &message)
}

fn disposition_status(disposition: Disposition) -> Status {
    match disposition {
        Disposition::Created => Status::Imported,
        Disposition::Updated => Status::Updated,
        Disposition::Skipped => Status::Skipped,
    }
}

fn merge_target(report: &mut ReportLine, ids: Option<&serde_json::Map<String, serde_json::Value>>) {
    let Some(ids) = ids else {
        return;
    };
    let target = report.target.get_or_insert_with(Default::default);
    for (key, value) in ids {
        target.insert(key.clone(), value.clone());
    }
}
