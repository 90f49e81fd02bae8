//! `verify` and `rollback`, both driven by the state journal, and the read pass `verify` and
//! `status` share ([`read_each`]).
//!
//! verify reads back every object the journal says a run applied and reports its live status
//! and its [`Health`](crate::health::Health) (the taxonomy `status` uses: `pending_refresh` is usable in both). Reads
//! run `concurrency` at a time through the run's gate; lines come in journal order as soon as
//! they and every line before them are known, with a progress bar on stderr; a signal stops
//! the pass (exit 130) and the summary counts what was not read.
//! rollback removes exactly the objects this tool created, newest first, and forgets each one in
//! the journal as soon as it is gone, so an interrupted rollback resumes where it stopped.
//! Objects that were only updated (pre-existing at the target) are never removed.

use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use authport_core::{
    AuthImporter, ErrorKind, ProviderError, ProviderLimits, Removal, VerifyReport,
};
use futures_util::{FutureExt as _, StreamExt as _};
use serde_json::{Value, json};

use crate::files::Refusal;
use crate::health::classify;
use crate::limiter::{RunGate, SendLimiter};
use crate::progress::Progress;
use crate::retrier::{Attempted, Retrier, WriteEffect};
use crate::retry::RetryPolicy;
use crate::state::{JournalObject, StateStore, TargetPart};
use crate::summary::{MaintenanceSummary, ReportWriter, Tally, failure_reason};

/// What verify and rollback are configured with.
#[derive(Debug, Clone)]
pub struct MaintenanceOptions {
    pub provider: String,
    /// The provider's documented limits (from its plugin).
    pub limits: ProviderLimits,
    /// The run's rate limit: build the provider with it (`BuildContext::gate`).
    pub gate: Arc<RunGate>,
    /// Rebind a state made for another target to this one instead of refusing.
    pub allow_target_change: bool,
    /// Objects read or removed at once (default: the provider's `default_concurrency`, as
    /// `import`'s).
    pub concurrency: Option<usize>,
    /// Draw a progress bar on stderr while reading back (the runner decides: TTY and not `-q`).
    pub progress: bool,
}

impl MaintenanceOptions {
    pub fn new(provider: impl Into<String>, limits: ProviderLimits) -> Self {
        Self {
            provider: provider.into(),
            limits,
            gate: RunGate::new(),
            allow_target_change: false,
            concurrency: None,
            progress: false,
        }
    }
}

/// Reads back every journalled object of `options.provider`. One JSON line per object goes to
/// `out` (and to `report` when given), in journal order as each is known:
/// `{"id", "status", "health", "healthy", "target", "detail"}` (`status` is the provider's live
/// word, `health` the [`Health`](crate::health::Health) word, `healthy` whether it is usable). `shutdown` stops it:
/// the summary is `interrupted` and counts the objects `not_read`.
pub async fn verify(
    importer: Arc<dyn AuthImporter>,
    state: &StateStore,
    options: &MaintenanceOptions,
    report: Option<&Path>,
    out: &mut dyn Write,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<MaintenanceSummary> {
    let started = Instant::now();
    let provider = options.provider.as_str();
    state.bind(provider, &importer.identity(), options.allow_target_change)?;
    let objects = state.objects(provider)?;
    let mut writer = ReportWriter::create_optional(report)?;
    let mut summary = summary_for("verify", provider);
    let mut failures = Tally::default();
    // Every read begins after this instant (verify has no events, so it only keeps `classify`
    // whole).
    let read_at = chrono::Utc::now();
    let pass = read_each(importer, objects, options, shutdown, |object, result| {
        let (line, problem) = match result {
            Ok(live) => {
                let health = classify(&live, None, read_at);
                *summary.counts.entry(live.status.clone()).or_default() += 1;
                let line = json!({"id": object.record_id, "status": live.status,
                    "health": health.as_str(), "healthy": health.is_usable(),
                    "target": object.target, "detail": live.detail});
                (line, !health.is_usable())
            }
            Err(error) => {
                *summary.counts.entry("error".to_owned()).or_default() += 1;
                note_failure(&mut failures, &error);
                (error_line(&object, &error), true)
            }
        };
        if problem {
            summary.problems += 1;
        }
        emit(&mut writer, out, &line)?;
        Ok(problem)
    })
    .await?;
    pass.note(&mut summary);
    summary.top_failures = failures.top_failures();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// How many finished reads may wait, per read in flight, for a slower read before them: lines
/// come in journal order, so one slow read holds back at most this many others while the
/// remaining reads go on.
const REORDER_PER_READ: usize = 4;

/// How a read pass ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ReadPass {
    /// A signal stopped it.
    pub interrupted: bool,
    /// Objects whose answer was not handed over (a stop).
    pub not_read: u64,
}

impl ReadPass {
    /// Marks the summary interrupted and counts the objects not read.
    pub(crate) fn note(self, summary: &mut MaintenanceSummary) {
        summary.interrupted |= self.interrupted;
        if self.not_read > 0 {
            *summary.counts.entry("not_read".to_owned()).or_default() += self.not_read;
        }
    }
}

/// The live read-back of journalled objects, shared by `verify` and `status`: each object with
/// the provider's answer, paced by the run's gate and retried like any idempotent read.
///
/// At most `concurrency` reads are in flight; `each` gets every answer in journal order, as soon
/// as it and every answer before it are known (a bounded reorder window), and says whether the
/// object is a problem (for the progress bar). `shutdown` ends the pass at once: reads in
/// flight are dropped (a read has nothing to finish, and a re-run reads again), answers already
/// known in order are still handed over, and the rest are counted `not_read`.
pub(crate) async fn read_each(
    importer: Arc<dyn AuthImporter>,
    objects: Vec<JournalObject>,
    options: &MaintenanceOptions,
    shutdown: impl Future<Output = ()>,
    mut each: impl FnMut(JournalObject, Result<VerifyReport, ProviderError>) -> anyhow::Result<bool>,
) -> anyhow::Result<ReadPass> {
    let total = objects.len() as u64;
    let progress = Progress::reads(options.progress, total);
    let context = Arc::new(CallContext::new(options));
    // Permits for reads in flight; the window of `buffered` bounds the answers held back. The
    // semaphore is fair, and `buffered` polls in journal order, so reads start in that order.
    let reads = Arc::new(tokio::sync::Semaphore::new(context.concurrency));
    let window = context.concurrency.saturating_mul(REORDER_PER_READ);
    let results = futures_util::stream::iter(objects)
        .map(|object| {
            let (importer, context, reads) = (importer.clone(), context.clone(), reads.clone());
            async move {
                // Closed on a stop: a read not begun never starts.
                let _permit = reads.acquire().await.ok()?;
                let result = context.call(|| importer.verify(&object.target)).await;
                Some((object, result))
            }
        })
        .buffered(window.max(1));
    let mut results = std::pin::pin!(results);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut handed = 0_u64;
    let mut interrupted = false;
    loop {
        let next = tokio::select! {
            biased;
            () = &mut shutdown => {
                interrupted = true;
                break;
            }
            next = results.next() => next,
        };
        let Some(Some((object, result))) = next else {
            break;
        };
        let problem = each(object, result)?;
        progress.read_one(problem);
        handed += 1;
    }
    if interrupted {
        reads.close();
        tracing::warn!(
            "stopping: reads in flight are dropped; the summary counts the objects not read"
        );
        // The answers already known, in order, up to the first read still in flight.
        while let Some(Some(Some((object, result)))) = results.next().now_or_never() {
            let problem = each(object, result)?;
            progress.read_one(problem);
            handed += 1;
        }
    }
    progress.finish();
    Ok(ReadPass {
        interrupted,
        not_read: total - handed,
    })
}

/// Removes every object of `options.provider` this tool created, newest first. One JSON line
/// per journalled object goes to `out` (and `report`): `removed`, `already_gone`, `kept` (not
/// created by this tool) or `error`. `shutdown` stops it between objects; a re-run resumes.
pub async fn rollback(
    importer: Arc<dyn AuthImporter>,
    state: &StateStore,
    options: &MaintenanceOptions,
    report: Option<&Path>,
    out: &mut dyn Write,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<MaintenanceSummary> {
    let started = Instant::now();
    let provider = options.provider.as_str();
    // A state made for another target would make rollback forget real objects: refuse it.
    // With --allow-target-change, another account is still refused (nothing it lists is there,
    // so every object would be forgotten while it lives on at the right target); another
    // endpoint of the same account is allowed, but what it finds gone stays in the journal.
    let identity = importer.identity();
    let changes = state.target_changes(provider, &identity)?;
    if options.allow_target_change && changes.contains(&TargetPart::Account) {
        return Err(Refusal(
            "rollback refuses --allow-target-change against another account: the state's objects are not there, so rollback would forget objects it cannot remove; nothing was sent. Roll back with the credentials of the account the state was made for".to_owned(),
        )
        .into());
    }
    state.bind(provider, &identity, options.allow_target_change)?;
    let target_changed = !changes.is_empty();
    let mut objects = state.objects(provider)?;
    // `objects` lists creations in order, then updated-only objects; newest creation first.
    objects.sort_by_key(|object| !object.created);
    let created = objects.iter().filter(|o| o.created).count();
    objects[..created].reverse();
    let mut writer = ReportWriter::create_optional(report)?;
    let context = CallContext::new(options);
    let mut summary = summary_for("rollback", provider);
    let mut failures = Tally::default();
    let mut shutdown = std::pin::pin!(shutdown);

    for object in objects.iter().filter(|o| !o.created) {
        *summary.counts.entry("kept".to_owned()).or_default() += 1;
        let line = json!({"id": object.record_id, "status": "kept", "target": object.target,
                          "note": "not created by authport; left in place"});
        emit(&mut writer, out, &line)?;
    }
    // On shutdown no new removal starts; the ones in flight finish and are journalled.
    let stopping = AtomicBool::new(false);
    let mut results = futures_util::stream::iter(objects.iter().filter(|o| o.created))
        .take_while(|_| std::future::ready(!stopping.load(Ordering::SeqCst)))
        .map(|object| {
            let importer = importer.clone();
            let context = &context;
            async move {
                let result = context.call(|| importer.remove(&object.target)).await;
                (object, result)
            }
        })
        .buffered(context.concurrency);
    loop {
        let next = tokio::select! {
            next = results.next() => next,
            () = &mut shutdown, if !summary.interrupted => {
                summary.interrupted = true;
                stopping.store(true, Ordering::SeqCst);
                continue;
            }
        };
        let Some((object, result)) = next else {
            break;
        };
        let line = match result {
            // After a target change, "not there" may mean "elsewhere": keep the row, so a
            // rollback at the target that holds the object can still remove it.
            Ok(Removal::AlreadyGone) if target_changed => {
                *summary.counts.entry("already_gone".to_owned()).or_default() += 1;
                json!({"id": object.record_id, "status": "already_gone", "target": object.target,
                       "note": "not found at this target, which the state was not made for; kept in the state"})
            }
            Ok(removal) => {
                state.forget(provider, &object.record_id)?;
                let word = match removal {
                    Removal::Removed => "removed",
                    Removal::AlreadyGone => "already_gone",
                };
                *summary.counts.entry(word.to_owned()).or_default() += 1;
                json!({"id": object.record_id, "status": word, "target": object.target})
            }
            Err(error) => {
                summary.problems += 1;
                *summary.counts.entry("error".to_owned()).or_default() += 1;
                note_failure(&mut failures, &error);
                error_line(object, &error)
            }
        };
        emit(&mut writer, out, &line)?;
    }
    // The records forgotten above released their claims and grants; delete those rows here,
    // off the import's path (see `state/journal.rs`).
    state.sweep_released()?;
    summary.top_failures = failures.top_failures();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

pub(crate) fn summary_for(action: &str, provider: &str) -> MaintenanceSummary {
    MaintenanceSummary {
        action: action.to_owned(),
        provider: provider.to_owned(),
        ..MaintenanceSummary::default()
    }
}

pub(crate) fn note_failure(failures: &mut Tally, error: &ProviderError) {
    let line = authport_core::ReportLine::new(None, 0, authport_core::Status::Failed)
        .with_error(ErrorKind::of(error), error.message());
    failures.add(&line);
}

pub(crate) fn error_line(object: &JournalObject, error: &ProviderError) -> Value {
    json!({"id": object.record_id, "status": "error", "target": object.target,
           "error": {"kind": ErrorKind::of(error), "message": error.message(),
                     "reason": failure_reason(ErrorKind::of(error), error.message())}})
}

pub(crate) fn emit(
    writer: &mut ReportWriter,
    out: &mut dyn Write,
    line: &Value,
) -> anyhow::Result<()> {
    writer.write_value(line)?;
    let mut text = serde_json::to_string(line)?;
    text.push('\n');
    match out.write_all(text.as_bytes()) {
        // A closed pipe (`| head`) is not an error: the rest still runs and is reported.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Rate limiting and retries for read and delete calls: the run's [`Retrier`] with the
/// limiter configured on the gate the provider paces its requests through. Both calls are
/// idempotent, so an ambiguous failure is simply retried; rollback stops between objects, so
/// calls in flight are never cut.
pub(crate) struct CallContext {
    limiter: Arc<SendLimiter>,
    policy: RetryPolicy,
    concurrency: usize,
}

impl CallContext {
    pub(crate) fn new(options: &MaintenanceOptions) -> Self {
        let limits = options.limits;
        Self {
            limiter: crate::run::pacing(&limits, crate::RateChoice::VendorDefault, None)
                .configure(&options.gate),
            policy: RetryPolicy::default(),
            concurrency: options
                .concurrency
                .unwrap_or(limits.default_concurrency)
                .max(1),
        }
    }

    pub(crate) async fn call<T, F, Fut>(&self, call: F) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let retrier = Retrier {
            policy: self.policy,
            limiter: &self.limiter,
            control: None,
            deadline: None,
            counters: None,
        };
        match retrier.call(WriteEffect::Idempotent, 0, call).await {
            Attempted::Done(value) => Ok(value),
            Attempted::Failed { error, .. } => Err(error),
            // Without a control the retrier neither stops nor abandons a call.
            Attempted::Stopped { last } => {
                Err(last.unwrap_or_else(|| ProviderError::transient("stopped")))
            }
            Attempted::Abandoned => Err(ProviderError::transient("abandoned")),
        }
    }
}
