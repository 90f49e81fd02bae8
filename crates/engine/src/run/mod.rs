//! The import run: a streaming pipeline from the input file through mapping to the provider.
//! Its options and input are in `options.rs`; what happens to one record lives in `record.rs`.
//!
//! ```text
//! reader thread ──(bounded channel, 2 × concurrency)──> N workers ──> report + tally
//!   (parse, dedupe ids)                       (discover once per key, map, journal, limiter,
//!                                              retries)
//! ```
//!
//! Memory is bounded by the channel and the workers, whatever the file size: the reader blocks
//! when the workers fall behind, ids seen are kept in a temporary SQLite file, and the journal
//! is on disk. The input is read once (a file or stdin): each line is parsed once, and the
//! first record with a new (service, target) key triggers the provider's discovery of that key
//! (single-flight, `discovery`), which the records with the same key wait for.
//!
//! This module is the pipeline; `record` is what happens to one record (the journal protocol:
//! commit the intent → write → commit the outcome; an intent without an outcome is reconciled
//! before any new write). Workers' journal writes share commits (`StateStore::prepare` and the
//! `commit_*` methods wait for theirs), which keeps the journal from bounding the import rate.

mod discovery;
mod grants;
mod options;
pub(crate) mod pacing;
mod record;
pub mod rotation;

pub use options::{AppliedHook, ImportOptions, Input};
pub use pacing::{Pace, Pacing, RateChoice, default_send_rate, pace, pacing};

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use authport_core::input::{InputItem, InputReader};
use authport_core::{
    AuthImporter, CredentialRecord, ErrorKind, FingerprintKey, ReportLine, SecretString, Status,
};
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::control::Control;
use crate::dedupe::SeenIds;
use crate::error::EngineError;
use crate::files::{Refusal, refuse_same_as_input, same_file};
use crate::progress::{InputSize, Progress};
use crate::retrier::RetryCounters;
use crate::state::{RunKeys, StateStore};
use crate::summary::{ReportWriter, RunSummary, Tally};

use grants::{Grant, GrantCheck};
use record::{Output, Run};

/// One unit of work from the reader.
#[derive(Debug)]
enum Work {
    Record {
        line: u64,
        record: Box<CredentialRecord>,
        /// Its OAuth grant's key, for the journal.
        grant: Option<Grant>,
    },
    Invalid {
        line: u64,
        id: Option<String>,
        /// `invalid_record`, or `shared_grant` for a grant an earlier record of the input holds.
        kind: ErrorKind,
        message: String,
    },
}

/// Imports every record of `options.input` with `importer`, journalling in `state`.
///
/// Returns `Err` only for problems that make the run itself impossible (a refused file, an
/// unreadable input, an unwritable report or state): [`EngineError::exit`] says which;
/// everything about records and the target is in the summary.
pub async fn import(
    importer: Arc<dyn AuthImporter>,
    state: &StateStore,
    options: &ImportOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<RunSummary, EngineError> {
    Ok(run_import(importer, state, options, shutdown).await?)
}

async fn run_import(
    importer: Arc<dyn AuthImporter>,
    state: &StateStore,
    options: &ImportOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<RunSummary> {
    let started = Instant::now();
    let now = Utc::now();
    // Before anything is read or sent: outputs that would overwrite the input (stdin included,
    // when it is redirected from a file), and a state made for another target, are refused.
    let input = options.input.identity();
    if let Some(report) = &options.report
        && let Some(input) = input
    {
        refuse_same_as_input("report", report, input)?;
    }
    if let Some(path) = state.path() {
        if let Some(input) = input {
            refuse_same_as_input("state file", path, input)?;
        }
        if let Some(report) = &options.report
            && same_file(report, path)
        {
            return Err(Refusal(format!(
                "the report {} is the state file {} (same file): writing it would destroy the journal; choose another path",
                report.display(),
                path.display()
            ))
            .into());
        }
    }
    let keys = state.bind(
        &options.provider,
        &importer.identity(),
        options.allow_target_change,
    )?;
    // Opened before the report is created: an unreadable input fails with nothing written.
    let (reader, size) = open_input(&options.input, now)?;
    let report = ReportWriter::create_optional(options.report.as_deref())?;
    let limits = options.limits;
    let concurrency = options
        .concurrency
        .unwrap_or(limits.default_concurrency)
        .max(1);
    let pace = pace(
        &limits,
        options.rate,
        options.rate_ceiling,
        options.budget_share,
    );
    let pacing = pace.pacing;
    tracing::info!(
        provider = %options.provider,
        input = %options.input,
        concurrency,
        pacing = %pacing,
        "starting import"
    );
    let run = Arc::new(Run {
        importer,
        state: state.clone(),
        keys,
        provider: options.provider.clone(),
        dry_run: options.dry_run,
        policy: options.retry_policy(),
        limiter: pace.configure(&options.gate),
        control: Control::new(options.stop_grace),
        started,
        deadline: options.deadline,
        counters: RetryCounters::default(),
        reconciled: AtomicU64::new(0),
        output: Mutex::new(Output {
            report,
            tally: Tally::default(),
        }),
        progress: Progress::new(options.progress, size, options.progress_events),
        discoveries: Default::default(),
        on_applied: options.on_applied.clone(),
        shared_grants_allowed: options.allow_shared_grants,
        require_scopes: options.require_scopes,
        rotating: AtomicU64::new(0),
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

    // A stop that is already due wins before any worker starts (the workers run on other
    // threads as soon as they are spawned, before the loop below polls anything).
    let due =
        std::future::poll_fn(|cx| std::task::Poll::Ready(shutdown.as_mut().poll(cx).is_ready()))
            .await;
    if due {
        watching_shutdown = false;
        run.control.interrupt();
    }

    let (sender, receiver) = mpsc::channel::<Work>(concurrency.saturating_mul(2));
    let grants = GrantCheck {
        keys: run.keys.clone(),
        shared_allowed: options.allow_shared_grants,
    };
    let reader = tokio::task::spawn_blocking(move || feed(reader, &sender, &grants));
    let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        workers.spawn(worker(run.clone(), receiver.clone()));
    }
    let finished = async {
        while let Some(result) = workers.join_next().await {
            result.context("import worker panicked")??;
        }
        reader.await.context("input reader panicked")??;
        anyhow::Ok(())
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
    // Deferred provider work (after every record, so it never holds one up). A signal while it
    // runs ends it at once: what it still had to do is durable with the provider (Tray's
    // enable queue is in the state's memo), and the next run does it.
    if !run.dry_run && !run.control.is_interrupted() {
        tracing::info!("every record is done; running the provider's last step");
        let finished = tokio::select! {
            result = run.importer.finish() => Some(result),
            () = &mut shutdown, if watching_shutdown => None,
        };
        match finished {
            Some(Ok(())) => {}
            Some(Err(error)) => run.control.stop(format!(
                "the provider's last step failed ({}): {}",
                error.kind(),
                error.message()
            )),
            None => {
                tracing::warn!(
                    "stopping: the provider's last step was interrupted; run again with the same --state to finish it"
                );
                run.control.interrupt();
            }
        }
    }

    let output = run.output.lock().unwrap_or_else(|e| e.into_inner());
    let mut summary = RunSummary::from_tally(&output.tally);
    summary.provider = run.provider.clone();
    summary.dry_run = run.dry_run;
    summary.stopped = run.control.reason();
    summary.interrupted = run.control.is_interrupted();
    summary.elapsed = started.elapsed();
    tracing::debug!(keys = run.discoveries.len(), "discovery keys");
    summary.retries = run.counters.retries.load(Ordering::Relaxed);
    summary.throttled = run.counters.throttled.load(Ordering::Relaxed);
    summary.reconciled = run.reconciled.load(Ordering::Relaxed);
    summary.rotating = run.rotating.load(Ordering::Relaxed);
    summary.bound = Some(run.limiter.bound(concurrency));
    summary.pacing = pace.describe(run.limiter.current_rate());
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

fn deadline_reason(deadline: Option<Duration>) -> String {
    format!(
        "the run's deadline of {}s was reached",
        deadline.unwrap_or_default().as_secs()
    )
}

/// Checks `input` offline (no provider): every record valid or located errors, and shared
/// grants as an import reports them.
pub fn validate(input: &Path, report: Option<&Path>) -> Result<RunSummary, EngineError> {
    validate_input(input, report, false)
}

/// [`validate`]; `allow_shared_grants` as `--allow-shared-grants`.
pub fn validate_input(
    input: &Path,
    report: Option<&Path>,
    allow_shared_grants: bool,
) -> Result<RunSummary, EngineError> {
    Ok(run_validate(input, report, allow_shared_grants)?)
}

/// Keys for a run without a state or a target (`validate`): random, never stored, so the
/// grants of one input are compared by a keyed hash all the same.
fn ephemeral_keys() -> RunKeys {
    let secret: [u8; 32] = rand::random();
    let salt: [u8; 32] = rand::random();
    let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    RunKeys::new(FingerprintKey::derive(&SecretString::from(secret), &salt))
}

fn run_validate(
    input: &Path,
    report: Option<&Path>,
    allow_shared_grants: bool,
) -> anyhow::Result<RunSummary> {
    let started = Instant::now();
    if let Some(report) = report {
        refuse_same_as_input("report", report, input_identity(input))?;
    }
    let mut writer = ReportWriter::create_optional(report)?;
    let mut tally = Tally::default();
    let mut seen = SeenIds::new()?;
    let grants = GrantCheck {
        keys: ephemeral_keys(),
        shared_allowed: allow_shared_grants,
    };
    let mut rotating = 0;
    let (reader, _) = open_input(&Input::from(input), Utc::now())?;
    let file = reader.file_name().to_owned();
    for item in reader {
        let line = match to_work(item, &mut seen, &file, &grants)? {
            Work::Record { line, record, .. } => {
                rotating += u64::from(rotation::holds_rotating_refresh_token(&record));
                let mut report_line =
                    ReportLine::new(Some(record.id.clone()), line, Status::Planned);
                report_line.warnings = record.warnings.iter().map(ToString::to_string).collect();
                report_line
            }
            Work::Invalid {
                line,
                id,
                kind,
                message,
            } => ReportLine::new(id, line, Status::Failed).with_error(kind, message),
        };
        writer.write(&line)?;
        tally.add(&line);
    }
    let mut summary = RunSummary::from_tally(&tally);
    summary.rotating = rotating;
    summary.elapsed = started.elapsed();
    summary.report = report.map(Path::to_owned);
    Ok(summary)
}

/// The input path that names stdin.
pub const STDIN: &str = "-";

/// Whether `input` means stdin.
pub fn is_stdin(input: &Path) -> bool {
    input == Path::new(STDIN)
}

/// The path whose file is the input, for the same-file refusals: stdin's own file when the
/// input is `-` (a redirect `< in.jsonl` must not be overwritten by `--report in.jsonl`).
pub fn input_identity(input: &Path) -> &Path {
    if is_stdin(input) {
        Path::new("/dev/stdin")
    } else {
        input
    }
}

/// Opens the input; for a file also its size and a counter of the bytes read (the progress).
fn open_input(
    input: &Input,
    now: DateTime<Utc>,
) -> anyhow::Result<(InputReader, Option<InputSize>)> {
    let (reader, size) = match input {
        Input::Stdin => {
            let stdin = std::io::BufReader::with_capacity(64 * 1024, std::io::stdin());
            (InputReader::from_reader("<stdin>", stdin, now), None)
        }
        Input::Reader { name, source } => {
            let taken = source.0.lock().unwrap_or_else(|e| e.into_inner()).take();
            let source = taken.context("the input was already read: a reader is read once")?;
            let source = std::io::BufReader::with_capacity(64 * 1024, source);
            (InputReader::from_reader(name, source, now), None)
        }
        Input::File(input) => {
            let file = std::fs::File::open(input)
                .with_context(|| format!("cannot read input {}", input.display()))?;
            let size = InputSize {
                bytes: file.metadata().map(|m| m.len()).unwrap_or(0),
                read: Arc::default(),
                lines: Arc::default(),
            };
            let counted = Counted {
                inner: file,
                read: size.read.clone(),
                lines: size.lines.clone(),
            };
            let source = std::io::BufReader::with_capacity(64 * 1024, counted);
            let name = input.display().to_string();
            (InputReader::from_reader(&name, source, now), Some(size))
        }
    };
    // The engine detects duplicate ids itself, in constant memory (see `dedupe`).
    Ok((reader.without_duplicate_check(), size))
}

/// A reader that counts the bytes and lines read through it (the progress's ETA).
struct Counted<R> {
    inner: R,
    read: Arc<AtomicU64>,
    lines: Arc<AtomicU64>,
}

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        let lines = buf[..n].iter().filter(|&&b| b == b'\n').count();
        self.lines.fetch_add(lines as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Turns a reader item into work, catching duplicate ids (located like the reader's errors)
/// and grants an earlier record of the input holds (in input order: the first one keeps it).
fn to_work(
    item: InputItem,
    seen: &mut SeenIds,
    file: &str,
    grants: &GrantCheck,
) -> anyhow::Result<Work> {
    Ok(match item.result {
        Ok(record) => {
            if seen.first_time(&record.id)? {
                let grant = grants.grant(&record);
                if let Some(grant) = &grant
                    && let Err(message) =
                        grants.check_in_input(seen, grant, file, item.line, &record.id)?
                {
                    return Ok(Work::Invalid {
                        line: item.line,
                        id: Some(record.id.clone()),
                        kind: ErrorKind::SharedGrant,
                        message,
                    });
                }
                Work::Record {
                    line: item.line,
                    record: Box::new(record),
                    grant,
                }
            } else {
                Work::Invalid {
                    line: item.line,
                    id: Some(record.id.clone()),
                    kind: ErrorKind::InvalidRecord,
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
            kind: ErrorKind::InvalidRecord,
            message: error.to_string(),
        },
    })
}

/// The reader thread: parses each line once and sends the records until the input ends or the
/// workers are gone.
fn feed(
    reader: InputReader,
    sender: &mpsc::Sender<Work>,
    grants: &GrantCheck,
) -> anyhow::Result<()> {
    let mut seen = SeenIds::new()?;
    let file = reader.file_name().to_owned();
    for item in reader {
        let work = to_work(item, &mut seen, &file, grants)?;
        if sender.blocking_send(work).is_err() {
            break;
        }
    }
    Ok(())
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
            Work::Invalid {
                line,
                id,
                kind,
                message,
            } => ReportLine::new(id, line, Status::Failed).with_error(kind, message),
            Work::Record {
                line,
                record,
                grant,
            } => {
                if rotation::holds_rotating_refresh_token(&record) {
                    run.rotating.fetch_add(1, Ordering::Relaxed);
                }
                run.process(line, &record, grant.as_ref()).await?
            }
        };
        run.emit(&line)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_input_reports_its_size_and_the_bytes_read_stdin_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        let text = "{\"id\": \"a\"}\n{\"id\": \"b\"}\n";
        std::fs::write(&path, text).unwrap();
        let (reader, size) = open_input(&Input::from(&path), Utc::now()).unwrap();
        let size = size.unwrap();
        assert_eq!(size.bytes, text.len() as u64);
        assert_eq!(reader.count(), 2);
        assert_eq!(size.read.load(Ordering::Relaxed), size.bytes);
        assert!(matches!(Input::from(STDIN), Input::Stdin));
        assert!(
            open_input(&Input::from(STDIN), Utc::now())
                .unwrap()
                .1
                .is_none()
        );
    }

    #[test]
    fn a_reader_input_is_read_once_and_located_by_its_name() {
        let text: &[u8] = b"{\"id\": \"a\"}\nnot json\n";
        let input = Input::reader("tray export", text);
        assert_eq!(input.identity(), None);
        let (reader, size) = open_input(&input, Utc::now()).unwrap();
        assert!(size.is_none());
        assert_eq!(reader.file_name(), "tray export");
        assert_eq!(reader.count(), 2);
        // A clone shares the reader: the run cannot read the stream twice.
        let error = open_input(&input.clone(), Utc::now()).err().unwrap();
        assert!(error.to_string().contains("read once"), "{error}");
    }
}
