//! `authport export`: a provider's exporter writes canonical v1 records, secrets included, to
//! a private file (or a pipe). The file rules: created 0600, never through a symbolic link,
//! never over an existing file without `--force`, never on a terminal; stderr says where the
//! secrets are and never shows one.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use authport_core::{
    BuildContext, CredentialRecord, EnvSnapshot, ExportFilter, ExportSink, InMemoryMemo,
    ProviderError, record_to_v1_json,
};
use authport_engine::files::{create_private, refuse_symlink};
use authport_engine::{Exit, Refusal, RunGate};
use chrono::Utc;
use clap::Args;

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

/// Writes each record as one v1 line, after checking it reads back as a valid record; reports
/// failures and warnings on stderr by id, field and reason (never a value).
struct FileSink {
    out: Box<dyn Write + Send>,
    quiet: bool,
    written: u64,
    failed: u64,
    warnings: u64,
}

#[async_trait]
impl ExportSink for FileSink {
    async fn record(&mut self, record: CredentialRecord) -> Result<(), ProviderError> {
        let json = record_to_v1_json(&record);
        if let Err(problems) = authport_core::record::from_json_located(json.expose(), Utc::now()) {
            // Problems name fields and reasons, never values.
            let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
            eprintln!(
                "error: {}: not exported: {}",
                record.id,
                problems.join("; ")
            );
            self.failed += 1;
            return Ok(());
        }
        for warning in &record.warnings {
            self.warnings += 1;
            if !self.quiet {
                eprintln!("warning: {}: {warning}", record.id);
            }
        }
        let written = serde_json::to_writer(&mut self.out, json.expose())
            .map_err(std::io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"));
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
        eprintln!("error: {source_id}: not exported: {error}");
        self.failed += 1;
        Ok(())
    }
}

pub async fn export(args: ExportArgs, quiet: bool) -> anyhow::Result<Exit> {
    let usage = |error: anyhow::Error| anyhow::Error::new(Refusal(format!("{error:#}")));
    let exporter_plugin =
        authport_core::find_exporter(&args.provider).map_err(|e| usage(e.into()))?;
    let provider = authport_core::find_provider(&args.provider).map_err(|e| usage(e.into()))?;
    let names = authport_core::provider_names();
    let config = match &args.config {
        Some(path) => ConfigFile::load(path, &names).map_err(usage)?,
        None => ConfigFile::default(),
    };
    // The provider's documented rate (or the config's), for every request the export sends.
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
    let exporter = (exporter_plugin.build)(&context)
        .map_err(|e| usage(anyhow::anyhow!("provider `{}`: {e}", provider.name)))?;
    // After every check that needs no file, so a refused configuration leaves none behind.
    let (out, destination) = open_output(&args)?;
    let filter = ExportFilter {
        owners: args.owners.clone(),
    };
    let mut sink = FileSink {
        out,
        quiet,
        written: 0,
        failed: 0,
        warnings: 0,
    };
    let result = exporter.export(&filter, &mut sink).await;
    let flushed = sink.out.flush();
    let secrets_warning = format!(
        "warning: {destination} holds {} exported credential(s) with their secrets in clear text: keep it private and delete it when done",
        sink.written
    );
    eprintln!("{secrets_warning}");
    let counts = match result {
        Ok(counts) => counts,
        Err(error) => {
            eprintln!(
                "error: the export stopped: {error}; {destination} is incomplete ({} written)",
                sink.written
            );
            return Ok(Exit::Stopped);
        }
    };
    flushed.with_context(|| format!("cannot write the export to {destination}"))?;
    if !quiet {
        eprintln!(
            "exported {} record(s) of {} owner(s) from {}: {} failed, {} warning(s)",
            sink.written, counts.owners, provider.name, sink.failed, sink.warnings
        );
    }
    Ok(if sink.failed == 0 {
        Exit::Ok
    } else {
        Exit::SomeFailed
    })
}

#[cfg(test)]
mod tests {
    #[rustfmt::skip]
    #[test]
    fn registry_lists_every_exporter() {
        let names: Vec<&str> = authport_core::exporters().iter().map(|p| p.name).collect();
        assert_eq!(names, vec!["nango", "tray"]);
    }
}
