//! `migrate`: the source's exporter streams canonical records into an in-memory pipe whose
//! read end is the import's input, so no secret touches the disk.
//!
//! ```text
//! export thread (own runtime, source's rate) ──pipe, 64 records──> import (the engine, as-is)
//! ```
//!
//! The import side is [`crate::import`] unchanged: its journal makes the run resumable and a
//! re-run `unchanged`, one report line per source object, the same stops and exit codes. The
//! pipe is bounded: the exporter blocks when the import falls behind. A source object the
//! exporter cannot read becomes a `failed` report line for that object (line 0: it never
//! reached the stream) and the rest goes on; a fatal source error ends the stream and stops the
//! run (exit 3), like a fatal target error.
//!
//! With `--cutover` ([`Migration::cutover`], `cutover.rs`) the import is followed by re-read
//! passes that hand each grant over so that exactly one system refreshes it.

mod cutover;
mod pipe;

pub use cutover::{Cutover, Handover, annotate_status, note_of, unstable_reason};

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use authport_core::{
    AuthExporter, AuthImporter, ExportCounts, ExportFilter, ProviderError, ReportLine,
    SourceObject, Status,
};

use crate::error::EngineError;
use crate::export::{ExportFailure, ExportReads, RecordSink, is_stdout};
use crate::limiter::RunGate;
use crate::run::{ImportOptions, Input};
use crate::state::StateStore;
use crate::summary::{ReportWriter, RunSummary};
use pipe::{PipeReader, PipeWriter};

/// Records in the pipe at once: the exporter blocks when the import falls this far behind.
const PIPE_RECORDS: usize = 64;

/// The source side of a migration: the exporter and what it reads, and the pipe its records
/// go through. [`Migration::input`] is the import's input.
pub struct Migration {
    source: String,
    exporter: Arc<dyn AuthExporter>,
    filter: ExportFilter,
    /// Source service name → canonical slug (`[migrate.services]`).
    services: BTreeMap<String, String>,
    /// No record warnings on stderr (`-q`).
    quiet: bool,
    /// The retry loop of the source's reads, on the gate the exporter was built with.
    reads: ExportReads,
    writer: PipeWriter,
    reader: Option<PipeReader>,
    /// `--cutover` (and `--retire-source`): the hand-over after the import.
    cutover: Option<Cutover>,
}

impl std::fmt::Debug for Migration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migration")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Migration {
    pub fn new(
        source: impl Into<String>,
        exporter: Box<dyn AuthExporter>,
        filter: ExportFilter,
        services: BTreeMap<String, String>,
        quiet: bool,
        gate: &RunGate,
    ) -> Self {
        Self::with_reads(
            source,
            Arc::from(exporter),
            filter,
            services,
            quiet,
            ExportReads::new(gate),
        )
    }

    fn with_reads(
        source: impl Into<String>,
        exporter: Arc<dyn AuthExporter>,
        filter: ExportFilter,
        services: BTreeMap<String, String>,
        quiet: bool,
        reads: ExportReads,
    ) -> Self {
        let (writer, reader) = pipe::pipe(PIPE_RECORDS);
        Self {
            reads,
            source: source.into(),
            exporter,
            filter,
            services,
            quiet,
            writer,
            reader: Some(reader),
            cutover: None,
        }
    }

    /// After the import, hand every migrated grant over (`migrate --cutover`).
    #[must_use]
    pub fn cutover(mut self, cutover: Cutover) -> Self {
        self.cutover = Some(cutover);
        self
    }

    /// The import's input: the pipe's read end (taken once; later calls give an empty input).
    pub fn input(&mut self) -> Input {
        let name = format!("{} export", self.source);
        match self.reader.take() {
            Some(reader) => Input::reader(name, reader),
            None => Input::reader(name, std::io::empty()),
        }
    }
}

/// What the export thread did.
struct Exported {
    result: Result<ExportCounts, ProviderError>,
    failures: Vec<ExportFailure>,
    /// The records sent, when the cutover asked for them.
    objects: Vec<SourceObject>,
}

/// Runs the export on its own thread and runtime: the sink writes to a blocking pipe, and a
/// blocked write must hold up the exporter only, never the import's workers. When `stop` turns
/// true (a signal, or the import ended first) the export is dropped wherever it waits: a
/// source's `Retry-After`, a backoff or a call in flight; lines already in the pipe are whole.
fn run_export(
    exporter: Arc<dyn AuthExporter>,
    filter: ExportFilter,
    mut sink: RecordSink,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Exported {
    let stopped = async move {
        // A sender gone without a stop is no reason to stop.
        if stop.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let result = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(async {
            tokio::select! {
                result = exporter.export(&filter, &mut sink) => result,
                () = stopped => Err(ProviderError::fatal("the run is stopping")),
            }
        }),
        Err(error) => Err(ProviderError::fatal(format!(
            "cannot start the export's runtime: {}",
            error.kind()
        ))),
    };
    // Dropping the write end ends the import's input.
    let _ = sink.out.flush();
    drop(std::mem::replace(&mut sink.out, Box::new(std::io::sink())));
    Exported {
        result,
        failures: sink.failures,
        objects: sink.objects.unwrap_or_default(),
    }
}

/// Migrates: runs the export into the pipe and [`crate::import`] from it (`options.input` is
/// the migration's [`Migration::input`]), then the cutover when asked. `shutdown` (a signal)
/// stops both.
pub async fn migrate(
    migration: Migration,
    importer: Arc<dyn AuthImporter>,
    state: &StateStore,
    options: ImportOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<RunSummary, EngineError> {
    match migration.cutover {
        Some(cutover) => cutover::run(migration, cutover, importer, state, options, shutdown).await,
        None => Ok(migrate_once(migration, importer, state, options, shutdown)
            .await?
            .0),
    }
}

/// One export piped into one import; the records sent (by id and owner) when a cutover follows.
async fn migrate_once(
    migration: Migration,
    importer: Arc<dyn AuthImporter>,
    state: &StateStore,
    options: ImportOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(RunSummary, Vec<SourceObject>), EngineError> {
    let Migration {
        source,
        exporter,
        filter,
        services,
        quiet,
        reads,
        writer,
        reader,
        cutover,
    } = migration;
    // A reader never handed to the import: the export has no one to write to.
    drop(reader);
    let cancel = Arc::new(AtomicBool::new(false));
    let mut sink = RecordSink::new(Box::new(writer), quiet, reads);
    sink.print_failures = false;
    sink.services = services;
    sink.cancel = Some(cancel.clone());
    if cutover.is_some() {
        sink.objects = Some(Vec::new());
    }
    let (stop_export, export_stop) = tokio::sync::watch::channel(false);
    let export = std::thread::Builder::new()
        .name("authport-export".to_owned())
        .spawn(move || run_export(exporter, filter, sink, export_stop))
        .context("cannot start the export thread")?;
    let shutdown = {
        let cancel = cancel.clone();
        let stop_export = stop_export.clone();
        async move {
            shutdown.await;
            cancel.store(true, Ordering::Relaxed);
            stop_export.send_replace(true);
        }
    };
    let imported = crate::import(importer, state, &options, shutdown).await;
    if imported.is_err() {
        cancel.store(true, Ordering::Relaxed);
    }
    // The import is over: an export still waiting (a stopped run) has no reader left. One that
    // finished already is not affected.
    stop_export.send_replace(true);
    let report = options
        .report
        .clone()
        .unwrap_or_else(|| Path::new("-").to_owned());
    // The pipe's read end, if the run failed before reading it: the exporter's next write fails.
    drop(options);
    let exported = tokio::task::spawn_blocking(move || export.join())
        .await
        .context("the export thread was lost")?
        .map_err(|_| anyhow::anyhow!("the export panicked"))?;
    let mut summary = imported?;
    report_failures(&report, &exported.failures, &mut summary)?;
    if let Err(error) = &exported.result
        && !cancel.load(Ordering::Relaxed)
        && summary.stopped.is_none()
    {
        summary.stopped = Some(format!(
            "the export from {source} stopped ({}): {}; the records it sent were imported, run again with the same --state to finish",
            error.kind(),
            error.message()
        ));
    }
    Ok((summary, exported.objects))
}

/// One report line per source object the export could not read (after the import's lines).
fn report_failures(
    report: &Path,
    failures: &[ExportFailure],
    summary: &mut RunSummary,
) -> anyhow::Result<()> {
    if failures.is_empty() {
        return Ok(());
    }
    let mut writer = append_to(report)?;
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for failure in failures {
        writer.write(&failure_line(failure))?;
        *reasons
            .entry(format!("not exported: {}", failure.kind))
            .or_default() += 1;
    }
    *summary.counts.entry(Status::Failed).or_default() += failures.len() as u64;
    summary.top_failures.extend(reasons);
    summary
        .top_failures
        .sort_by_key(|(_, count)| std::cmp::Reverse(*count));
    Ok(())
}

/// The report, to add lines after the import's (stdout, or the file the import wrote).
fn append_to(report: &Path) -> anyhow::Result<ReportWriter> {
    if is_stdout(report) {
        return ReportWriter::create(report);
    }
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(report)
        .with_context(|| format!("cannot write report {}", report.display()))?;
    Ok(ReportWriter::to_writer(Box::new(file), report))
}

/// The report line of a source object that never reached the stream (line 0).
fn failure_line(failure: &ExportFailure) -> ReportLine {
    ReportLine::new(Some(failure.source_id.clone()), 0, Status::Failed).with_error(
        failure.kind,
        format!("not exported from the source: {}", failure.message),
    )
}

#[cfg(test)]
mod tests {
    use authport_core::ErrorKind;

    use super::*;

    #[test]
    fn an_export_failure_is_a_failed_line_for_its_object() {
        let failure = ExportFailure {
            source_id: "auth-7".to_owned(),
            kind: ErrorKind::Transient,
            message: "transient at the source: timed out".to_owned(),
        };
        let line = serde_json::to_value(failure_line(&failure)).unwrap();
        assert_eq!(line["id"], "auth-7");
        assert_eq!(line["status"], "failed");
        assert_eq!(line["line"], 0);
        assert_eq!(line["error"]["kind"], "transient");
    }
}
