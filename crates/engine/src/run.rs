//! The import run: a streaming pipeline from the input file through mapping to the provider.
//!
//! ```text
//! reader thread ──(bounded channel, 2 × concurrency)──> N workers ──> report + tally
//!   (parse, dedupe ids)                                 (map, journal, limiter, retries)
//! ```
//!
//! Memory is bounded by the channel and the workers, whatever the file size: the reader blocks
//! when the workers fall behind, ids seen are kept in a temporary SQLite file, and the journal
//! is on disk. The input is read twice: a first pass collects the distinct (service, target)
//! pairs for the provider's discovery and counts the records for the progress bar.
//!
//! Per record, the journal protocol is: commit the intent (fingerprint) → write → commit the
//! outcome. A record found with an intent and no outcome is reconciled before any new write.
//! Workers' journal writes share commits (`StateStore::prepare` and the `commit_*` methods wait
//! for theirs), which keeps the journal from bounding the import rate.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use authport_core::input::{InputItem, InputReader};
use authport_core::report::error_kind;
use authport_core::{
    AuthImporter, CredentialRecord, DiscoveryKey, Disposition, ImportOutcome, MappedRecord,
    PriorImport, ProviderError, ProviderLimits, ReportLine, Status,
};
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::control::Control;
use crate::dedupe::SeenIds;
use crate::files::refuse_same_as_input;
use crate::limiter::{RunGate, SendLimiter};
use crate::progress::Progress;
use crate::retry::{NextStep, RetryPolicy, backoff_delay, next_step};
use crate::state::{JournalEntry, Prepared, RunKeys, StateStore};
use crate::summary::{ReportWriter, RunSummary, Tally};

/// Everything an import run is configured with. Build with [`ImportOptions::new`] and set
/// fields; `None` means the provider's documented default.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub provider: String,
    /// The provider's documented limits (from its plugin): the defaults for rate, burst and
    /// concurrency.
    pub limits: ProviderLimits,
    pub input: PathBuf,
    pub report: Option<PathBuf>,
    /// Records in flight at once (default: the provider's `default_concurrency`).
    pub concurrency: Option<usize>,
    /// Provider calls per second (default: the provider's documented limit). `0` or a
    /// non-finite value: no limit.
    pub rate: Option<f64>,
    /// Calls allowed at once above the rate (default: the provider's documented burst).
    pub burst: Option<u32>,
    pub dry_run: bool,
    /// Draw a progress bar on stderr (the runner decides: TTY and not `-q`).
    pub progress: bool,
    /// Calls of one kind per record, the first included.
    pub max_attempts: u32,
    /// The whole run's time budget; when it runs out the run stops (exit 3) and the rest is
    /// reported `skipped`/`not_attempted`.
    pub deadline: Option<Duration>,
    /// How long in-flight calls may still run after Ctrl-C or a fatal error.
    pub stop_grace: Duration,
    /// The first backoff ceiling (doubled per attempt, full jitter).
    pub retry_base_delay: Duration,
    /// The largest backoff ceiling.
    pub retry_max_delay: Duration,
    /// Rebind a state made for another target to this one (`--allow-target-change`) instead of
    /// refusing the run.
    pub allow_target_change: bool,
    /// The run's rate limit. Build the provider with it (`BuildContext::gate`), so the limit
    /// applies to every HTTP request the provider sends; the engine configures it once when the
    /// run starts and slows it down on 429s.
    pub gate: Arc<RunGate>,
}

impl ImportOptions {
    pub fn new(
        provider: impl Into<String>,
        limits: ProviderLimits,
        input: impl Into<PathBuf>,
    ) -> Self {
        let policy = RetryPolicy::default();
        Self {
            provider: provider.into(),
            limits,
            input: input.into(),
            report: None,
            concurrency: None,
            rate: None,
            burst: None,
            dry_run: false,
            progress: false,
            max_attempts: policy.max_attempts,
            deadline: None,
            stop_grace: Duration::from_secs(30),
            retry_base_delay: policy.base_delay,
            retry_max_delay: policy.max_delay,
            allow_target_change: false,
            gate: RunGate::new(),
        }
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts.max(1),
            base_delay: self.retry_base_delay,
            max_delay: self.retry_max_delay.max(self.retry_base_delay),
            ..RetryPolicy::default()
        }
    }
}

/// One unit of work from the reader.
#[derive(Debug)]
enum Work {
    Record {
        line: u64,
        record: Box<CredentialRecord>,
    },
    Invalid {
        line: u64,
        id: Option<String>,
        message: String,
    },
}

/// What the first pass learns.
#[derive(Debug, Default)]
struct Survey {
    /// Distinct keys, by their JSON form (`DiscoveryKey` is not `Ord`).
    keys: BTreeMap<String, DiscoveryKey>,
    records: u64,
}

#[derive(Debug, Default)]
struct Counters {
    retries: AtomicU64,
    throttled: AtomicU64,
    reconciled: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct Output {
    report: ReportWriter,
    tally: Tally,
}

/// Shared by the workers of one run.
#[derive(Debug)]
struct Run {
    importer: Arc<dyn AuthImporter>,
    state: StateStore,
    keys: RunKeys,
    provider: String,
    dry_run: bool,
    policy: RetryPolicy,
    limiter: Arc<SendLimiter>,
    control: Control,
    started: Instant,
    deadline: Option<Duration>,
    counters: Counters,
    output: Mutex<Output>,
    progress: Progress,
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

/// Imports every record of `options.input` with `importer`, journalling in `state`.
///
/// Returns `Err` only for problems that make the run itself impossible (unreadable input,
/// unwritable report or state); everything about records and the target is in the summary.
pub async fn import(
    importer: Arc<dyn AuthImporter>,
    state: &StateStore,
    options: &ImportOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<RunSummary> {
    let started = Instant::now();
    let now = Utc::now();
    // Before anything is read or sent: outputs that would overwrite the input, and a state
    // made for another target, are refused.
    if let Some(report) = &options.report {
        refuse_same_as_input("report", report, &options.input)?;
    }
    if let Some(path) = state.path() {
        refuse_same_as_input("state file", path, &options.input)?;
    }
    let keys = state.bind(
        &options.provider,
        &importer.identity(),
        options.allow_target_change,
    )?;
    let survey = {
        let input = options.input.clone();
        let provider = options.provider.clone();
        tokio::task::spawn_blocking(move || survey_input(&input, &provider, now))
            .await
            .context("input survey panicked")??
    };
    let report = ReportWriter::create_optional(options.report.as_deref())?;
    let limits = options.limits;
    let concurrency = options
        .concurrency
        .unwrap_or(limits.default_concurrency)
        .max(1);
    let (rate, burst) = match options.rate {
        Some(rate) => (rate, options.burst.unwrap_or(limits.burst)),
        None => {
            let (rate, burst) = default_send_rate(&limits);
            (rate, options.burst.unwrap_or(burst))
        }
    };
    tracing::info!(
        provider = %options.provider,
        records = survey.records,
        services = survey.keys.len(),
        concurrency,
        rate,
        burst,
        "starting import"
    );
    let survey_records = survey.records;
    let run = Arc::new(Run {
        importer,
        state: state.clone(),
        keys,
        provider: options.provider.clone(),
        dry_run: options.dry_run,
        policy: options.retry_policy(),
        limiter: options.gate.configure(rate, burst),
        control: Control::new(options.stop_grace),
        started,
        deadline: options.deadline,
        counters: Counters::default(),
        output: Mutex::new(Output {
            report,
            tally: Tally::default(),
        }),
        progress: Progress::new(options.progress, survey.records),
    });

    let mut shutdown = std::pin::pin!(shutdown);
    let deadline_passed = async {
        match options.deadline {
            // A deadline beyond the clock's range never comes.
            Some(deadline) => match started.checked_add(deadline) {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    };
    let mut deadline_passed = std::pin::pin!(deadline_passed);

    // A completed future must not be polled again: these say which ones are still pending.
    let mut watching_shutdown = true;
    let mut watching_deadline = options.deadline.is_some();

    // Discovery (read-only) before any write; a failure stops the run with nothing written.
    {
        let keys: Vec<DiscoveryKey> = survey.keys.into_values().collect();
        let discovery = run.discover(&keys);
        // Biased: a stop that is already due wins over a discovery answered from cache.
        tokio::select! {
            biased;
            () = &mut shutdown => {
                watching_shutdown = false;
                run.control.interrupt();
            }
            () = &mut deadline_passed, if watching_deadline => {
                watching_deadline = false;
                run.control.stop(deadline_reason(options.deadline));
            }
            result = discovery => if let Err(error) = result {
                run.control.stop(format!("discovery failed ({}): {}", error.kind(), error.message()));
            },
        }
    }

    let (sender, receiver) = mpsc::channel::<Work>(concurrency.saturating_mul(2));
    let reader = {
        let input = options.input.clone();
        tokio::task::spawn_blocking(move || feed(&input, now, &sender))
    };
    let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        workers.spawn(worker(run.clone(), receiver.clone()));
    }
    let finished = async {
        while let Some(result) = workers.join_next().await {
            result.context("import worker panicked")??;
        }
        let read = reader.await.context("input reader panicked")??;
        check_same_input(survey_records, read)
    };
    let mut finished = std::pin::pin!(finished);
    let outcome: anyhow::Result<()> = loop {
        tokio::select! {
            result = &mut finished => break result,
            () = &mut shutdown, if watching_shutdown => {
                watching_shutdown = false;
                tracing::warn!("stopping: finishing in-flight records, the rest will be reported as not attempted");
                run.control.interrupt();
            }
            () = &mut deadline_passed, if watching_deadline => {
                watching_deadline = false;
                run.control.stop(deadline_reason(options.deadline));
            }
        }
    };
    run.progress.finish();
    outcome?;

    let output = run.output.lock().unwrap_or_else(|e| e.into_inner());
    let mut summary = RunSummary::from_tally(&output.tally);
    summary.provider = run.provider.clone();
    summary.dry_run = run.dry_run;
    summary.stopped = run.control.reason();
    summary.interrupted = run.control.is_interrupted();
    summary.elapsed = started.elapsed();
    summary.retries = run.counters.retries.load(Ordering::Relaxed);
    summary.throttled = run.counters.throttled.load(Ordering::Relaxed);
    summary.reconciled = run.counters.reconciled.load(Ordering::Relaxed);
    // Every journalled write whose outcome is still unknown, including records that are no
    // longer in this input (the journal, not this run's counter, is the truth).
    summary.unresolved = if run.dry_run {
        0
    } else {
        run.state.pending_count(&run.provider)?
    };
    summary.report = options.report.clone();
    Ok(summary)
}

/// Below the vendor's documented rate, this fraction of it is kept free.
const DEFAULT_RATE_HEADROOM: f64 = 0.03;

/// The send rate and burst used when the operator gives no `--rate`: a little under the
/// vendor's documented limit, with a burst of a third of a second's worth at most. A record can
/// need calls the engine does not see (Tray's user look-ups and token mints count against the
/// same limit), so sending at exactly the documented rate with its full burst would drain the
/// vendor's bucket and keep hitting 429; the headroom lets it refill instead.
pub fn default_send_rate(limits: &ProviderLimits) -> (f64, u32) {
    let rate = limits.requests_per_second * (1.0 - DEFAULT_RATE_HEADROOM);
    let third_of_a_second = (rate / 3.0).ceil().max(1.0) as u32;
    (rate, limits.burst.min(third_of_a_second).max(1))
}

fn deadline_reason(deadline: Option<Duration>) -> String {
    format!(
        "the run's deadline of {}s was reached",
        deadline.unwrap_or_default().as_secs()
    )
}

/// Checks `input` offline (no provider): every record valid or located errors.
pub fn validate(input: &Path, report: Option<&Path>) -> anyhow::Result<RunSummary> {
    let started = Instant::now();
    if let Some(report) = report {
        refuse_same_as_input("report", report, input)?;
    }
    let mut writer = ReportWriter::create_optional(report)?;
    let mut tally = Tally::default();
    let mut seen = SeenIds::new()?;
    let reader = open_input(input, Utc::now())?;
    let file = reader.file_name().to_owned();
    for item in reader {
        let line = match to_work(item, &mut seen, &file)? {
            Work::Record { line, record } => {
                let mut report_line =
                    ReportLine::new(Some(record.id.clone()), line, Status::Planned);
                report_line.warnings = record.warnings.iter().map(ToString::to_string).collect();
                report_line
            }
            Work::Invalid { line, id, message } => ReportLine::new(id, line, Status::Failed)
                .with_error(error_kind::INVALID_RECORD, message),
        };
        writer.write(&line)?;
        tally.add(&line);
    }
    let mut summary = RunSummary::from_tally(&tally);
    summary.elapsed = started.elapsed();
    summary.report = report.map(Path::to_owned);
    Ok(summary)
}

fn open_input(input: &Path, now: DateTime<Utc>) -> anyhow::Result<InputReader> {
    // The engine detects duplicate ids itself, in constant memory (see `dedupe`).
    Ok(InputReader::open(input, now)
        .with_context(|| format!("cannot read input {}", input.display()))?
        .without_duplicate_check())
}

fn survey_input(input: &Path, provider: &str, now: DateTime<Utc>) -> anyhow::Result<Survey> {
    let mut survey = Survey::default();
    for item in open_input(input, now)? {
        survey.records += 1;
        if let Ok(record) = &item.result {
            let key = DiscoveryKey::for_record(record, provider);
            let text = serde_json::to_string(&key)?;
            survey.keys.entry(text).or_insert(key);
        }
    }
    Ok(survey)
}

/// Turns a reader item into work, catching duplicate ids (located like the reader's errors).
fn to_work(item: InputItem, seen: &mut SeenIds, file: &str) -> anyhow::Result<Work> {
    Ok(match item.result {
        Ok(record) => {
            if seen.first_time(&record.id)? {
                Work::Record {
                    line: item.line,
                    record: Box::new(record),
                }
            } else {
                Work::Invalid {
                    line: item.line,
                    id: Some(record.id.clone()),
                    message: format!(
                        "{file}:{}: id: duplicate id: an earlier record in this file has the same id",
                        item.line
                    ),
                }
            }
        }
        Err(error) => Work::Invalid {
            line: item.line,
            id: error.id.clone(),
            message: error.to_string(),
        },
    })
}

/// The reader thread: parses and sends records until the input ends or the workers are gone.
/// Returns how many records it read, or `None` when the workers went away first.
fn feed(
    input: &Path,
    now: DateTime<Utc>,
    sender: &mpsc::Sender<Work>,
) -> anyhow::Result<Option<u64>> {
    let mut seen = SeenIds::new()?;
    let reader = open_input(input, now)?;
    let file = reader.file_name().to_owned();
    let mut records = 0;
    for item in reader {
        records += 1;
        let work = to_work(item, &mut seen, &file)?;
        if sender.blocking_send(work).is_err() {
            return Ok(None);
        }
    }
    Ok(Some(records))
}

/// The two passes over the input must see the same records: a file changed between them (or
/// one that reads differently twice) would leave records neither imported nor reported.
fn check_same_input(first: u64, second: Option<u64>) -> anyhow::Result<()> {
    match second {
        Some(second) if second != first => anyhow::bail!(
            "the input changed while it was read: the first pass saw {first} records, the second {second}; check the report, then re-run with the same --state on a file that does not change"
        ),
        _ => Ok(()),
    }
}

async fn worker(
    run: Arc<Run>,
    receiver: Arc<tokio::sync::Mutex<mpsc::Receiver<Work>>>,
) -> anyhow::Result<()> {
    loop {
        let work = receiver.lock().await.recv().await;
        let Some(work) = work else {
            return Ok(());
        };
        let line = match work {
            Work::Invalid { line, id, message } => ReportLine::new(id, line, Status::Failed)
                .with_error(error_kind::INVALID_RECORD, message),
            Work::Record { line, record } => run.process(line, &record).await?,
        };
        run.emit(&line)?;
    }
}

/// Discovery and reconcile only read: an ambiguous answer to a read is as good as a transient
/// failure (nothing can have been applied), so it is retried like one.
fn as_read(error: ProviderError) -> ProviderError {
    match error {
        ProviderError::OutcomeUnknown { message } => ProviderError::Transient { message },
        other => other,
    }
}

fn skipped(mut line: ReportLine, kind: &str, message: &str) -> ReportLine {
    line.status = Status::Skipped;
    line.with_error(kind, message)
}

fn failed(mut line: ReportLine, kind: &str, message: &str) -> ReportLine {
    line.status = Status::Failed;
    line.with_error(kind, message)
}

const NOT_ATTEMPTED_MESSAGE: &str =
    "the run stopped before this record was sent; re-run with the same --state";
const INTERRUPTED_KIND: &str = "interrupted";
const INTERRUPTED_MESSAGE: &str =
    "the run stopped while this write was in flight; re-run with the same --state to reconcile it";

impl Run {
    fn emit(&self, line: &ReportLine) -> anyhow::Result<()> {
        let mut output = self.output.lock().unwrap_or_else(|e| e.into_inner());
        output.report.write(line)?;
        output.tally.add(line);
        self.progress.record(line.status);
        Ok(())
    }

    fn time_left(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_sub(self.started.elapsed()))
    }

    async fn discover(&self, keys: &[DiscoveryKey]) -> Result<(), ProviderError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match self.importer.discover(keys).await {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            self.note_throttle(&error);
            let as_read = as_read(error);
            match next_step(
                &as_read,
                &self.policy,
                attempt,
                self.time_left(),
                rand::random(),
            ) {
                NextStep::RetryAfter(delay) => {
                    Counters::bump(&self.counters.retries);
                    tokio::time::sleep(delay).await;
                }
                _ => return Err(as_read),
            }
        }
    }

    fn note_throttle(&self, error: &ProviderError) {
        if let ProviderError::RateLimited { retry_after, .. } = error {
            Counters::bump(&self.counters.throttled);
            self.limiter.throttled(*retry_after);
        }
    }

    /// One record, from mapping to its terminal report line. `Err` only for journal IO.
    async fn process(&self, line: u64, record: &CredentialRecord) -> anyhow::Result<ReportLine> {
        let mut report = ReportLine::new(Some(record.id.clone()), line, Status::Failed);
        report.warnings = record.warnings.iter().map(ToString::to_string).collect();
        // The deadline is checked here too, not only by the run's timer: a worker may pick a
        // record before the timer's task is polled.
        if self.time_left() == Some(Duration::ZERO) {
            self.control.stop(deadline_reason(self.deadline));
        }
        if self.control.is_stopped() {
            return Ok(skipped(
                report,
                error_kind::NOT_ATTEMPTED,
                NOT_ATTEMPTED_MESSAGE,
            ));
        }
        let mapped = match self.importer.map(record) {
            Ok(mapped) => mapped,
            Err(error) => return Ok(failed(report, error_kind::MAPPING, &error.to_string())),
        };
        report.warnings.extend(mapped.notes.iter().cloned());
        report.target = Some(mapped.target.clone());
        let fingerprint = self.keys.fingerprint(&mapped);
        if self.dry_run {
            let entry = self
                .state
                .entry(&self.provider, &record.id)?
                .unwrap_or_default();
            report.plan = Some(mapped.redacted_body.clone());
            report.status = if entry.is_unchanged(&fingerprint) {
                Status::Unchanged
            } else {
                Status::Planned
            };
            return Ok(report);
        }

        // Claim, entry and intent in one transaction, shared with the other workers' journal
        // writes (group commit); it returns once committed, so a committed intent may be sent.
        let prepared = self
            .state
            .prepare(
                &self.provider,
                &record.id,
                &self.keys.claim_key(&mapped.target),
                &fingerprint,
            )
            .await?;
        let mut entry = match prepared {
            Prepared::Conflict(other) => {
                let message = format!(
                    "maps to the same target object as record `{other}`; two records must not write one object (check owner and service, or make the target name unique)"
                );
                return Ok(failed(report, error_kind::CONFLICT, &message));
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
                    Counters::bump(&self.counters.reconciled);
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
                    entry = self
                        .state
                        .entry(&self.provider, &record.id)?
                        .unwrap_or_default();
                    adopted = Some(outcome);
                }
                Resolution::Absent => {
                    Counters::bump(&self.counters.reconciled);
                    self.state
                        .commit_clear_intent(&self.provider, &record.id)
                        .await?;
                    entry = JournalEntry::default();
                }
                Resolution::Unresolved(error) => return Ok(self.unresolved(report, &error)),
                Resolution::Stopped => {
                    return Ok(skipped(report, INTERRUPTED_KIND, INTERRUPTED_MESSAGE));
                }
            }
        }
        // An intent on an object we already have was an update: updates overwrite the same
        // object, so writing again is safe.

        if entry.is_unchanged(&fingerprint) {
            let status = match &adopted {
                Some(outcome) => disposition_status(outcome.disposition),
                None => Status::Unchanged,
            };
            report.status = status;
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
        let mut attempt = 0;
        loop {
            // Every path back to the top of this loop knows the last write was not applied.
            if self.control.is_stopped() {
                self.state
                    .commit_clear_intent(&self.provider, &record.id)
                    .await?;
                return Ok(skipped(
                    report,
                    error_kind::NOT_ATTEMPTED,
                    NOT_ATTEMPTED_MESSAGE,
                ));
            }
            attempt += 1;
            if attempt > 1 {
                Counters::bump(&self.counters.retries);
            }
            let Some(result) = self
                .control
                .bounded(self.importer.import(record, mapped, prior.as_ref()))
                .await
            else {
                return Ok(skipped(report, INTERRUPTED_KIND, INTERRUPTED_MESSAGE));
            };
            let error = match result {
                Ok(outcome) => {
                    self.limiter.succeeded();
                    return self.finish(report, &record.id, fingerprint, outcome).await;
                }
                Err(error) => error,
            };
            self.note_throttle(&error);
            let step = match (&error, &prior) {
                // An ambiguous update: the object is ours and an update overwrites it, so
                // retrying is safe where a create would need a reconcile.
                (ProviderError::OutcomeUnknown { .. }, Some(_)) => {
                    let delay = backoff_delay(&self.policy, attempt, rand::random());
                    if attempt >= self.policy.max_attempts {
                        NextStep::GiveUp
                    } else {
                        NextStep::RetryAfter(delay)
                    }
                }
                _ => next_step(
                    &error,
                    &self.policy,
                    attempt,
                    self.time_left(),
                    rand::random(),
                ),
            };
            match step {
                NextStep::RetryAfter(delay) => {
                    if !self.control.sleep_unless_stopped(delay).await {
                        if matches!(error, ProviderError::OutcomeUnknown { .. }) {
                            return Ok(skipped(report, INTERRUPTED_KIND, INTERRUPTED_MESSAGE));
                        }
                        self.state
                            .commit_clear_intent(&self.provider, &record.id)
                            .await?;
                        return Ok(skipped(
                            report,
                            error_kind::NOT_ATTEMPTED,
                            NOT_ATTEMPTED_MESSAGE,
                        ));
                    }
                }
                NextStep::Reconcile => {
                    // A lost answer may belong to a request the target is still processing
                    // (a client timeout): give it a moment before asking what landed.
                    let settle =
                        backoff_delay(&self.policy, attempt, 0.5 + rand::random::<f64>() / 2.0);
                    if !self.control.sleep_unless_stopped(settle).await {
                        return Ok(skipped(report, INTERRUPTED_KIND, INTERRUPTED_MESSAGE));
                    }
                    match self.reconcile(record, mapped).await {
                        Resolution::Found(outcome) => {
                            Counters::bump(&self.counters.reconciled);
                            return self.finish(report, &record.id, fingerprint, outcome).await;
                        }
                        Resolution::Absent => {
                            Counters::bump(&self.counters.reconciled);
                            if attempt >= self.policy.max_attempts {
                                self.state
                                    .commit_clear_intent(&self.provider, &record.id)
                                    .await?;
                                return Ok(failed(report, error.kind(), error.message()));
                            }
                        }
                        Resolution::Unresolved(reconcile_error) => {
                            return Ok(self.unresolved(report, &reconcile_error));
                        }
                        Resolution::Stopped => {
                            return Ok(skipped(report, INTERRUPTED_KIND, INTERRUPTED_MESSAGE));
                        }
                    }
                }
                NextStep::GiveUp => {
                    if matches!(error, ProviderError::OutcomeUnknown { .. }) {
                        // An update that may or may not have landed: keep the intent so the
                        // next run writes it again.
                        return Ok(failed(report, error.kind(), error.message()));
                    }
                    self.state
                        .commit_clear_intent(&self.provider, &record.id)
                        .await?;
                    return Ok(failed(report, error.kind(), error.message()));
                }
                NextStep::StopRun => {
                    self.state
                        .commit_clear_intent(&self.provider, &record.id)
                        .await?;
                    self.control.stop(error.message().to_owned());
                    return Ok(failed(report, error.kind(), error.message()));
                }
            }
        }
    }

    /// Asks the provider whether an earlier write of this record reached the target, retrying
    /// the (read-only) question on transient failures.
    async fn reconcile(&self, record: &CredentialRecord, mapped: &MappedRecord) -> Resolution {
        let mut attempt = 0;
        loop {
            if self.control.is_stopped() {
                return Resolution::Stopped;
            }
            attempt += 1;
            let Some(result) = self
                .control
                .bounded(self.importer.reconcile(record, mapped))
                .await
            else {
                return Resolution::Stopped;
            };
            let error = match result {
                Ok(Some(outcome)) => return Resolution::Found(outcome),
                Ok(None) => return Resolution::Absent,
                Err(error) => error,
            };
            self.note_throttle(&error);
            let as_read = as_read(error);
            match next_step(
                &as_read,
                &self.policy,
                attempt,
                self.time_left(),
                rand::random(),
            ) {
                NextStep::RetryAfter(delay) => {
                    Counters::bump(&self.counters.retries);
                    if !self.control.sleep_unless_stopped(delay).await {
                        return Resolution::Stopped;
                    }
                }
                NextStep::StopRun => {
                    self.control.stop(as_read.message().to_owned());
                    return Resolution::Unresolved(as_read);
                }
                NextStep::Reconcile | NextStep::GiveUp => return Resolution::Unresolved(as_read),
            }
        }
    }

    fn unresolved(&self, report: ReportLine, error: &ProviderError) -> ReportLine {
        let message = format!(
            "could not confirm whether an earlier write reached the target ({error}); the next run with the same --state checks again"
        );
        failed(report, "outcome_unknown", &message)
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
                report.status = disposition_status(outcome.disposition);
                Ok(report)
            }
            Disposition::Skipped => {
                // Not ours: never journalled as applied, so rollback can never remove it.
                self.state
                    .commit_clear_intent(&self.provider, record_id)
                    .await?;
                let message = outcome
                    .note
                    .as_deref()
                    .unwrap_or("an object already exists at the target; left as it is");
                Ok(skipped(report, error_kind::PRE_EXISTING, message))
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_send_rate_keeps_headroom_under_the_documented_limit() {
        let check = |rps: f64, burst: u32, expect_rate: f64, expect_burst: u32| {
            let limits = ProviderLimits {
                requests_per_second: rps,
                burst,
                default_concurrency: 8,
            };
            let (rate, got_burst) = default_send_rate(&limits);
            assert!((rate - expect_rate).abs() < 1e-9, "{rps}: {rate}");
            assert_eq!(got_burst, expect_burst, "{rps}/{burst}");
        };
        check(30.0, 50, 29.1, 10);
        check(10.0, 5, 9.7, 4);
        check(10.0, 2, 9.7, 2);
        check(1.0, 1, 0.97, 1);
        check(100.0, 0, 97.0, 1);
    }
}
