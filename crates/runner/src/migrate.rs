//! `authport migrate --from SOURCE --to TARGET`: the source's exporter streams canonical records
//! into an in-memory pipe whose read end is the import's input, so no secret touches the disk.
//!
//! ```text
//! export thread (own runtime, source's rate) ──pipe, 64 records──> import (the engine, as-is)
//! ```
//!
//! The import side is `authport import` unchanged: its journal (`--state`) makes the run
//! resumable and a re-run `unchanged`, one report line per source object, the same stops and
//! exit codes. The pipe is bounded: the exporter blocks when the import falls behind. A source
//! object the exporter cannot read becomes a `failed` report line for that object (line 0: it
//! never reached the stream) and the rest goes on; a fatal source error ends the stream and
//! stops the run (exit 3), like a fatal target error.
//!
//! Service names: each record's `service` is the canonical slug the target's defaults tables
//! read (Apideck's service → unified API, Nango's integration by provider). `[migrate.services]`
//! renames a source's service name to the slug for one run; the target's own section
//! (`[apideck.services.<slug>]`, `[nango]`) picks the target details as for `import`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use authport_core::{
    AuthExporter, BuildContext, ExportCounts, ExportFilter, InMemoryMemo, ProviderError,
    ReportLine, Status,
};
use authport_engine::{Exit, ImportOptions, Input, ReportWriter, RunGate, RunSummary};
use clap::Args;
use serde::Deserialize;

use crate::cli::{Format, ProviderArgs, RateArg, parse_concurrency, parse_rate, parse_rate_arg};
use crate::config::ConfigFile;
use crate::export::{ExportFailure, FileSink};

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Provider to export from (`authport providers` lists those that can).
    #[arg(long, value_name = "NAME")]
    pub from: String,
    /// Provider to import into.
    #[arg(long, value_name = "NAME")]
    pub to: String,
    /// Only this owner's authentications (the end user's id); repeat for several.
    #[arg(long = "owner", value_name = "ID")]
    pub owners: Vec<String>,
    /// TOML config file: `[engine]`, one section per provider, and `[migrate]` (service
    /// renames, the source's rate).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Start the bundled sandbox in-process and point both providers at it.
    #[arg(long)]
    pub sandbox: bool,
    /// The target's state file (journal): makes the run resumable and re-runs idempotent.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Per-source-object report (JSON Lines); default: stdout.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Read the source and map for the target, but send the target no write.
    #[arg(long)]
    pub dry_run: bool,
    /// Records in flight at once at the target, 1 to 1024 (default: the target's).
    #[arg(long, value_name = "N", value_parser = parse_concurrency)]
    pub concurrency: Option<u32>,
    /// The target's requests per second, as `import --rate` (`0` for no limit, or `auto`).
    #[arg(long, value_name = "R/s|auto", value_parser = parse_rate_arg)]
    pub rate: Option<RateArg>,
    /// The source's requests per second (default: its documented limit; `0` for no limit).
    #[arg(long, value_name = "R/s", value_parser = parse_rate)]
    pub source_rate: Option<f64>,
    /// Summary format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Use a state file made for another target anyway, as `import --allow-target-change`.
    #[arg(long)]
    pub allow_target_change: bool,
}

/// The config file's `[migrate]` section.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct MigrateSection {
    /// Source service name → canonical service slug.
    #[serde(default)]
    services: BTreeMap<String, String>,
    /// The source's requests per second (`0`: no limit).
    source_rate: Option<f64>,
}

fn section_of(config: &ConfigFile, name: &str) -> anyhow::Result<MigrateSection> {
    match config.section("migrate") {
        serde_json::Value::Null => Ok(MigrateSection::default()),
        value => {
            let section: MigrateSection = crate::config::typed_section(
                name,
                "migrate",
                &value,
                crate::config::MIGRATE_SETTINGS,
            )?;
            if let Some(rate) = section.source_rate {
                crate::cli::rules::rate(rate).map_err(|message| {
                    anyhow::anyhow!("{name}: [migrate] source_rate {message}")
                })?;
            }
            Ok(section)
        }
    }
}

/// The config file, which may also hold `[migrate]`.
fn load_config(path: Option<&Path>) -> anyhow::Result<(ConfigFile, MigrateSection)> {
    let Some(path) = path else {
        return Ok((ConfigFile::default(), MigrateSection::default()));
    };
    let mut names = authport_core::provider_names();
    names.push("migrate");
    let config = ConfigFile::load(path, &names)?;
    let section = section_of(&config, &path.display().to_string())?;
    Ok((config, section))
}

/// Records in the pipe at once: the exporter blocks when the import falls this far behind.
const PIPE_RECORDS: usize = 64;

/// An in-memory, bounded pipe of byte chunks (one record line per chunk). Drained chunks are
/// zeroed: the secrets they held do not linger in freed memory.
fn pipe(capacity: usize) -> (PipeWriter, PipeReader) {
    let (sender, receiver) = std::sync::mpsc::sync_channel(capacity);
    (
        PipeWriter(sender),
        PipeReader {
            receiver,
            chunk: Vec::new(),
            read: 0,
        },
    )
}

struct PipeWriter(std::sync::mpsc::SyncSender<Vec<u8>>);

impl std::io::Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Blocks while the pipe is full; fails once the import dropped its end.
        self.0
            .send(buf.to_vec())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct PipeReader {
    receiver: std::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    read: usize,
}

impl std::io::Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.read == self.chunk.len() {
            self.chunk.fill(0);
            match self.receiver.recv() {
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.read = 0;
                }
                // Every writer is gone: the export ended.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.read);
        buf[..n].copy_from_slice(&self.chunk[self.read..self.read + n]);
        self.read += n;
        Ok(n)
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        self.chunk.fill(0);
    }
}

/// What the export thread did.
struct Exported {
    result: Result<ExportCounts, ProviderError>,
    failures: Vec<ExportFailure>,
}

/// Runs the export on its own thread and runtime: the sink writes to a blocking pipe, and a
/// blocked write must hold up the exporter only, never the import's workers. When `stop` turns
/// true (a signal, or the import ended first) the export is dropped wherever it waits: a
/// source's `Retry-After`, a backoff or a call in flight; lines already in the pipe are whole.
fn run_export(
    exporter: Box<dyn AuthExporter>,
    filter: ExportFilter,
    mut sink: FileSink,
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
    }
}

fn usage(message: String) -> anyhow::Error {
    crate::usage(anyhow::anyhow!(message))
}

pub async fn migrate(args: MigrateArgs, quiet: bool) -> anyhow::Result<Exit> {
    if args.from == args.to {
        return Err(usage(format!(
            "--from and --to name the same provider ({}): migrate moves auths between platforms",
            args.to
        )));
    }
    let exporter_plugin =
        authport_core::find_exporter(&args.from).map_err(|e| crate::usage(e.into()))?;
    let source = authport_core::find_provider(&args.from).map_err(|e| crate::usage(e.into()))?;
    let (config, section) = load_config(args.config.as_deref()).map_err(crate::usage)?;
    let target_args = ProviderArgs {
        provider: args.to.clone(),
        config: None,
        sandbox: args.sandbox,
        format: args.format,
        allow_target_change: args.allow_target_change,
    };
    let mut setup = crate::provider_setup_for(
        &target_args,
        crate::sandbox_mode::SandboxData::for_run(args.state.as_deref()),
    )
    .await?;
    setup.config = config;

    // The source, paced at its own documented rate (the target's limit is the import's).
    let source_gate = RunGate::new();
    let source_rate = args
        .source_rate
        .or(section.source_rate)
        .unwrap_or(source.limits.requests_per_second);
    if source_rate > 0.0 {
        source_gate.configure(source_rate, source.limits.burst);
    }
    let context = BuildContext {
        config: setup.config.section(source.name),
        env: setup.env.clone(),
        memo: Arc::new(InMemoryMemo::default()),
        gate: source_gate,
        request_timeout: setup.config.engine.request_timeout(),
    };
    let exporter = (exporter_plugin.build)(&context)
        .map_err(|e| usage(format!("provider `{}`: {e}", source.name)))?;

    // The input is an in-memory pipe: no input file to protect.
    let state = crate::run_state(
        args.state.as_deref(),
        args.report.as_deref(),
        None,
        &setup.config,
    )?;
    let report = crate::report_path(args.report.as_deref());
    let (pipe_out, pipe_in) = pipe(PIPE_RECORDS);
    let input = Input::reader(format!("{} export", source.name), pipe_in);
    let defaults = ImportOptions::new(setup.plugin.name, setup.plugin.limits, input);
    let importer = crate::build_importer(&setup, &state, &defaults.gate)?;
    let options = crate::run_options(
        defaults,
        &setup,
        &state,
        crate::RunFlags {
            concurrency: args.concurrency,
            rate: args.rate,
            dry_run: args.dry_run,
            allow_target_change: args.allow_target_change,
            report: report.clone(),
            quiet,
        },
    );

    let cancel = Arc::new(AtomicBool::new(false));
    let mut sink = FileSink::new(Box::new(pipe_out), quiet);
    sink.print_failures = false;
    sink.services = section.services;
    sink.cancel = Some(cancel.clone());
    let filter = ExportFilter {
        owners: args.owners.clone(),
    };
    let (stop_export, export_stop) = tokio::sync::watch::channel(false);
    let export = std::thread::Builder::new()
        .name("authport-export".to_owned())
        .spawn(move || run_export(exporter, filter, sink, export_stop))
        .context("cannot start the export thread")?;
    let shutdown = {
        let cancel = cancel.clone();
        let stop_export = stop_export.clone();
        async move {
            crate::shutdown_signal().await;
            cancel.store(true, Ordering::Relaxed);
            stop_export.send_replace(true);
        }
    };
    let imported = authport_engine::import(importer, &state, &options, shutdown).await;
    if imported.is_err() {
        cancel.store(true, Ordering::Relaxed);
    }
    // The import is over: an export still waiting (a stopped run) has no reader left. One that
    // finished already is not affected.
    stop_export.send_replace(true);
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
            "the export from {} stopped ({}): {}; the records it sent were imported, run again with the same --state to finish",
            source.name,
            error.kind(),
            error.message()
        ));
    }
    crate::publish_owned(&state, setup.plugin.name);
    crate::finish(
        "migrate",
        &summary,
        args.format,
        crate::report_is_stdout(&report),
        quiet,
    )
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
    let mut writer = if crate::report_is_stdout(report) {
        ReportWriter::create(report)?
    } else {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(report)
            .with_context(|| format!("cannot write report {}", report.display()))?;
        ReportWriter::to_writer(Box::new(file), report)
    };
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for failure in failures {
        let line = failure_line(failure);
        writer.write(&line)?;
        *reasons
            .entry(format!("not exported: {}", kind_name(failure.kind)))
            .or_default() += 1;
    }
    *summary.counts.entry(Status::Failed).or_default() += failures.len() as u64;
    summary.top_failures.extend(reasons);
    summary
        .top_failures
        .sort_by_key(|(_, count)| std::cmp::Reverse(*count));
    Ok(())
}

fn kind_name(kind: authport_core::ErrorKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
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
    use super::*;

    #[test]
    fn the_migrate_section_renames_services_and_checks_the_rate() {
        let names = ["apideck", "nango", "tray", "migrate"];
        let text = "[migrate]\nsource_rate = 5\n[migrate.services]\nhubspot-v3 = \"hubspot\"\n";
        let config = ConfigFile::parse(text, "c.toml", &names).unwrap();
        let section = section_of(&config, "c.toml").unwrap();
        assert_eq!(section.services["hubspot-v3"], "hubspot");
        assert_eq!(section.source_rate, Some(5.0));
        let bad = ConfigFile::parse("[migrate]\nsource_rate = -1\n", "c.toml", &names).unwrap();
        let error = section_of(&bad, "c.toml").unwrap_err().to_string();
        assert!(error.contains("source_rate"), "{error}");
        let typo = ConfigFile::parse("[migrate]\nservice = 1\n", "c.toml", &names).unwrap();
        assert!(section_of(&typo, "c.toml").is_err());
        assert_eq!(
            section_of(&ConfigFile::default(), "c.toml").unwrap(),
            MigrateSection::default()
        );
    }

    #[test]
    fn the_pipe_carries_every_byte_in_order_and_ends_when_the_writer_goes() {
        use std::io::{Read as _, Write as _};
        let (mut writer, mut reader) = pipe(2);
        let producer = std::thread::spawn(move || {
            for i in 0..100 {
                writer.write_all(format!("line {i}\n").as_bytes()).unwrap();
            }
        });
        let mut text = String::new();
        reader.read_to_string(&mut text).unwrap();
        producer.join().unwrap();
        let expected: String = (0..100).map(|i| format!("line {i}\n")).collect();
        assert_eq!(text, expected);
        // The reader gone, a write fails instead of blocking forever.
        let (mut writer, reader) = pipe(1);
        drop(reader);
        let error = writer.write_all(b"x").unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn an_export_failure_is_a_failed_line_for_its_object() {
        let failure = ExportFailure {
            source_id: "auth-7".to_owned(),
            kind: authport_core::ErrorKind::Transient,
            message: "transient at the source: timed out".to_owned(),
        };
        let line = serde_json::to_value(failure_line(&failure)).unwrap();
        assert_eq!(line["id"], "auth-7");
        assert_eq!(line["status"], "failed");
        assert_eq!(line["line"], 0);
        assert_eq!(line["error"]["kind"], "transient");
    }
}
