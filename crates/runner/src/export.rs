//! `authport export`: a provider's exporter writes canonical v1 records, secrets included, to
//! a private file (or a pipe). The file rules: created 0600, never through a symbolic link,
//! never over an existing file without `--force`, never on a terminal; stderr says where the
//! secrets are and never shows one.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use async_trait::async_trait;
use authport_core::{
    BuildContext, CredentialRecord, EnvSnapshot, ErrorKind, ExportFilter, ExportSink, InMemoryMemo,
    ProviderError, ProviderPlugin, record_to_v1_json,
};
use authport_engine::files::{create_private, refuse_symlink};
use authport_engine::{Exit, Refusal, RunGate};
use chrono::Utc;
use clap::Args;

use crate::cli::Format;
use crate::config::ConfigFile;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Provider to export from (`authport providers` lists those that can).
    #[arg(long, short = 'p', value_name = "NAME")]
    pub provider: String,
    /// TOML config file: `[engine]` defaults and one section per provider.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Only this owner's authentications (the end user's id); repeat for several.
    #[arg(long = "owner", value_name = "ID")]
    pub owners: Vec<String>,
    /// Where the records go (JSON Lines, with secrets): a new file, created 0600, or `-` for
    /// stdout when it is a pipe or a file. Never a terminal.
    #[arg(long, short = 'o', value_name = "FILE|-", default_value = "-")]
    pub output: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
    /// Summary format: `json` prints the one summary shape every command shares (on stdout,
    /// or on stderr when the records go to stdout, so a pipe stays records only).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

fn refusal(message: String) -> anyhow::Error {
    anyhow::Error::new(Refusal(message))
}

/// Opens the destination before anything is read from the provider, so a refused output costs
/// no request.
fn open_output(args: &ExportArgs) -> anyhow::Result<(Box<dyn Write + Send>, String)> {
    if args.output == Path::new("-") {
        if std::io::stdout().is_terminal() {
            return Err(refusal(
                "refusing to write an export (it holds secrets) to a terminal: give --output FILE or redirect stdout".to_owned(),
            ));
        }
        // `> file` made a file with the shell's umask (often 0644): make it private before a
        // secret is written, or refuse.
        let restricted = restrict_stdout_file().map_err(|error| {
            refusal(format!(
                "stdout is a file others may read and cannot be made private ({}): give --output FILE",
                error.kind()
            ))
        })?;
        if restricted {
            eprintln!("note: stdout is a file others could read: its mode is now 0600");
        }
        return Ok((
            Box::new(std::io::BufWriter::new(std::io::stdout())),
            "stdout".to_owned(),
        ));
    }
    let path = &args.output;
    refuse_symlink("export file", path)?;
    if std::fs::symlink_metadata(path).is_ok() && !args.force {
        return Err(refusal(format!(
            "the export file {} exists; an export holds secrets and replaces nothing without --force",
            path.display()
        )));
    }
    let file = create_private("export file", path)
        .with_context(|| format!("cannot create the export file {}", path.display()))?;
    if file.is_terminal() {
        return Err(refusal(format!(
            "refusing to write an export (it holds secrets) to the terminal {}",
            path.display()
        )));
    }
    // A replaced file keeps its old mode when opened: make it private too.
    restrict_mode(&file)
        .with_context(|| format!("cannot make the export file {} private", path.display()))?;
    Ok((
        Box::new(std::io::BufWriter::new(file)),
        path.display().to_string(),
    ))
}

#[cfg(unix)]
fn restrict_mode(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict_mode(_file: &std::fs::File) -> std::io::Result<()> {
    Ok(())
}

/// When stdout is a regular file that group or others may read, sets its mode to 0600
/// (`true`); a pipe or an already private file is left alone (`false`).
#[cfg(unix)]
fn restrict_stdout_file() -> std::io::Result<bool> {
    use std::os::fd::AsFd as _;
    use std::os::unix::fs::PermissionsExt as _;
    let stdout = std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    let meta = stdout.metadata()?;
    if !meta.is_file() || meta.permissions().mode() & 0o077 == 0 {
        return Ok(false);
    }
    restrict_mode(&stdout)?;
    Ok(true)
}

#[cfg(not(unix))]
fn restrict_stdout_file() -> std::io::Result<bool> {
    Ok(false)
}

/// A source object that did not reach the output: its non-secret id, the kind and the reason
/// (never a value).
#[derive(Debug)]
pub(crate) struct ExportFailure {
    pub source_id: String,
    pub kind: ErrorKind,
    pub message: String,
}

/// Writes each record as one v1 line, after checking it reads back as a valid record; keeps
/// failures by id, field and reason (never a value). `export` writes to a file or stdout and
/// prints failures on stderr; `migrate` writes to the in-memory pipe its import reads and
/// reports failures as report lines.
pub(crate) struct FileSink {
    pub out: Box<dyn Write + Send>,
    pub quiet: bool,
    /// Print each failure on stderr as it happens (`export`); `migrate` reports them instead.
    pub print_failures: bool,
    /// Source service name → canonical slug (`[migrate.services]`); empty for `export`.
    pub services: BTreeMap<String, String>,
    /// Set when the run is stopping: the next record ends the export.
    pub cancel: Option<Arc<AtomicBool>>,
    pub written: u64,
    pub failures: Vec<ExportFailure>,
    pub warnings: u64,
}

impl FileSink {
    pub fn new(out: Box<dyn Write + Send>, quiet: bool) -> Self {
        Self {
            out,
            quiet,
            print_failures: true,
            services: BTreeMap::new(),
            cancel: None,
            written: 0,
            failures: Vec::new(),
            warnings: 0,
        }
    }

    fn fail(&mut self, source_id: &str, kind: ErrorKind, message: String) {
        if self.print_failures {
            eprintln!("error: {source_id}: not exported: {message}");
        }
        self.failures.push(ExportFailure {
            source_id: source_id.to_owned(),
            kind,
            message,
        });
    }
}

#[async_trait]
impl ExportSink for FileSink {
    async fn record(&mut self, mut record: CredentialRecord) -> Result<(), ProviderError> {
        if self
            .cancel
            .as_ref()
            .is_some_and(|cancel| cancel.load(Ordering::Relaxed))
        {
            return Err(ProviderError::fatal("the run is stopping"));
        }
        if let Some(slug) = self.services.get(&record.service) {
            record.service.clone_from(slug);
        }
        let json = record_to_v1_json(&record);
        if let Err(problems) = authport_core::record::from_json_located(json.expose(), Utc::now()) {
            // Problems name fields and reasons, never values.
            let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
            self.fail(&record.id, ErrorKind::InvalidRecord, problems.join("; "));
            return Ok(());
        }
        for warning in &record.warnings {
            self.warnings += 1;
            if !self.quiet {
                eprintln!("warning: {}: {warning}", record.id);
            }
        }
        // One write per line: a pipe reader sees whole records.
        let mut line = serde_json::to_vec(json.expose()).unwrap_or_default();
        line.push(b'\n');
        let written = self.out.write_all(&line);
        line.fill(0);
        if let Err(error) = written {
            return Err(ProviderError::fatal(format!(
                "cannot write the export: {}",
                error.kind()
            )));
        }
        self.written += 1;
        Ok(())
    }

    async fn failed(&mut self, source_id: &str, error: ProviderError) -> Result<(), ProviderError> {
        let message = format!("{} at the source: {}", error.kind(), error.message());
        self.fail(source_id, ErrorKind::of(&error), message);
        Ok(())
    }
}

/// The config file (when given) and a provider's build context for a command that keeps no
/// state (`export`, `targets`): its config section, the environment, a memo in memory, and a
/// gate at the provider's documented rate, or `[engine] rate`, for every request it sends.
pub(crate) fn stateless_context(
    provider: &ProviderPlugin,
    config_path: Option<&Path>,
) -> anyhow::Result<(ConfigFile, BuildContext)> {
    let names = authport_core::provider_names();
    let config = match config_path {
        Some(path) => ConfigFile::load(path, &names)?,
        None => ConfigFile::default(),
    };
    let gate = RunGate::new();
    let rate = config
        .engine
        .rate
        .unwrap_or(provider.limits.requests_per_second);
    if rate > 0.0 {
        gate.configure(rate, provider.limits.burst);
    }
    let context = BuildContext {
        config: config.section(provider.name),
        env: EnvSnapshot::from_process(),
        memo: Arc::new(InMemoryMemo::default()),
        gate,
        request_timeout: config.engine.request_timeout(),
    };
    Ok((config, context))
}

pub async fn export(args: ExportArgs, quiet: bool) -> anyhow::Result<Exit> {
    let usage = |error: anyhow::Error| anyhow::Error::new(Refusal(format!("{error:#}")));
    let exporter_plugin =
        authport_core::find_exporter(&args.provider).map_err(|e| usage(e.into()))?;
    let provider = authport_core::find_provider(&args.provider).map_err(|e| usage(e.into()))?;
    let (config, context) = stateless_context(provider, args.config.as_deref()).map_err(usage)?;
    let exporter = (exporter_plugin.build)(&context)
        .map_err(|e| usage(anyhow::anyhow!("provider `{}`: {e}", provider.name)))?;
    // After every check that needs no file, so a refused configuration leaves none behind;
    // never over the config file it read, even with --force.
    crate::ReadFiles::default()
        .config(&config)
        .refuse_outputs(&[("--output", Some(&args.output))])?;
    let (out, destination) = open_output(&args)?;
    let filter = ExportFilter {
        owners: args.owners.clone(),
    };
    let mut sink = FileSink::new(out, quiet);
    // A signal drops the export wherever it waits (a source's Retry-After, a backoff, a call);
    // each record is one write, so what was written is whole lines.
    let result = tokio::select! {
        result = exporter.export(&filter, &mut sink) => Some(result),
        () = crate::interrupted() => None,
    };
    let flushed = sink.out.flush();
    let secrets_warning = format!(
        "warning: {destination} holds {} exported credential(s) with their secrets in clear text: keep it private and delete it when done",
        sink.written
    );
    eprintln!("{secrets_warning}");
    // One summary for every ending, so `--format json` is never silently ignored.
    let (exit, ending, owners) = match result {
        Some(Ok(counts)) => {
            flushed.with_context(|| format!("cannot write the export to {destination}"))?;
            let exit = if sink.failures.is_empty() {
                Exit::Ok
            } else {
                Exit::SomeFailed
            };
            (exit, "complete".to_owned(), Some(counts.owners))
        }
        None => {
            eprintln!(
                "interrupted: {destination} is incomplete ({} whole record(s) written); export again to get every record",
                sink.written
            );
            (Exit::Interrupted, "interrupted".to_owned(), None)
        }
        Some(Err(error)) => {
            eprintln!(
                "error: the export stopped: {error}; {destination} is incomplete ({} written)",
                sink.written
            );
            (Exit::Stopped, "stopped".to_owned(), None)
        }
    };
    let human = format!(
        "exported {} record(s){} from {}: {} failed, {} warning(s)",
        sink.written,
        owners.map_or_else(String::new, |owners| format!(" of {owners} owner(s)")),
        provider.name,
        sink.failures.len(),
        sink.warnings
    );
    let fields = serde_json::json!({
        "provider": provider.name,
        "ending": ending,
        "written": sink.written,
        "owners": owners,
        "failed": sink.failures.len(),
        "warnings": sink.warnings,
    });
    crate::summary_out::print_summary(
        crate::summary_out::Summary {
            command: "export",
            human,
            fields,
            exit,
        },
        args.format,
        if args.output == Path::new("-") {
            crate::summary_out::Stdout::Records
        } else {
            // The text summary stays on stderr beside the secrets warning, as it always has;
            // the JSON one is stdout's only line.
            crate::summary_out::Stdout::RecordLines
        },
        quiet,
    )
}

#[cfg(test)]
mod tests {
    #[rustfmt::skip]
    #[test]
    fn registry_lists_every_exporter() {
        let names = authport_core::names_with(|c| c.export);
        assert_eq!(names, vec!["nango", "tray"]);
    }
}
