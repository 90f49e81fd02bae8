//! `export`: a provider's exporter writes canonical v1 records, secrets included, to a private
//! file or a pipe (`output.rs`); stderr says where the secrets are and never shows one. Also the
//! source side `migrate` shares: finding and building an exporter, and pacing its reads.

mod output;
mod reads;
mod sink;

use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use authport_core::{
    AuthExporter, BuildContext, ExportCapability, ExportFilter, ProviderLimits, ProviderPlugin,
};
use serde_json::Value;

use crate::error::EngineError;
use crate::limiter::{RunGate, auto_burst};
use crate::run::{Pacing, RateChoice, pacing};
use crate::summary::Exit;

pub(crate) use output::is_stdout;
pub use reads::{ExportReads, READ_POLICY};
pub use sink::ExportFailure;
pub(crate) use sink::RecordSink;

/// A migration source by name: its plugin and export capability, or a usage error naming the
/// providers that can export.
pub fn source(name: &str) -> Result<(&'static ProviderPlugin, ExportCapability), EngineError> {
    let capability = authport_core::find_exporter(name)?;
    let plugin = authport_core::find_provider(name)?;
    Ok((plugin, capability))
}

/// Builds the exporter (no network calls); a refused configuration is a usage error.
pub fn build(
    plugin: &ProviderPlugin,
    capability: ExportCapability,
    context: &BuildContext,
) -> Result<Box<dyn AuthExporter>, EngineError> {
    (capability.build)(context).map_err(|error| EngineError::config(plugin.name, &error))
}

/// The pace of a source's reads: the operator's rate, else the vendor's documented rate (for a
/// vendor that documents none, its ceiling). Never auto: an export's reads report no 429 to
/// the limiter, so an adaptive rate would never move.
pub fn source_pacing(limits: &ProviderLimits, choice: RateChoice) -> Pacing {
    match choice {
        RateChoice::Unlimited | RateChoice::Fixed { .. } => pacing(limits, choice, None),
        RateChoice::VendorDefault | RateChoice::Auto { .. } => {
            let per_second = limits.rate.ceiling();
            pacing(
                limits,
                RateChoice::Fixed {
                    per_second,
                    burst: Some(
                        limits
                            .rate
                            .burst()
                            .unwrap_or_else(|| auto_burst(per_second)),
                    ),
                },
                None,
            )
        }
    }
}

/// A gate for a command that keeps no state (`export`, `targets`, `migrate`'s source), paced
/// by [`source_pacing`].
pub fn source_gate(limits: &ProviderLimits, choice: RateChoice) -> Arc<RunGate> {
    let gate = RunGate::new();
    source_pacing(limits, choice).configure(&gate);
    gate
}

/// What `export` is asked to do.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub provider: String,
    /// Only these owners' authentications; empty: every owner.
    pub owners: Vec<String>,
    /// The output file, or `-` for stdout (a pipe or a file, never a terminal).
    pub output: PathBuf,
    /// Replace an existing output file.
    pub force: bool,
    /// No warnings on stderr (the secrets warning and failures are always shown).
    pub quiet: bool,
    /// The gate the exporter was built with ([`source_gate`]): its reads' retries slow it.
    pub gate: Arc<RunGate>,
}

/// How an export ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Complete,
    Interrupted,
    Stopped,
}

impl Ending {
    fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Interrupted => "interrupted",
            Self::Stopped => "stopped",
        }
    }
}

/// What an export did, for the summary.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    pub provider: String,
    pub ending: Ending,
    pub written: u64,
    /// Owners read (a complete export only).
    pub owners: Option<u64>,
    pub failures: Vec<ExportFailure>,
    pub warnings: u64,
}

impl ExportSummary {
    pub fn exit_code(&self) -> Exit {
        match self.ending {
            Ending::Complete if self.failures.is_empty() => Exit::Ok,
            Ending::Complete => Exit::SomeFailed,
            Ending::Interrupted => Exit::Interrupted,
            Ending::Stopped => Exit::Stopped,
        }
    }

    pub fn human(&self) -> String {
        format!(
            "exported {} record(s){} from {}: {} failed, {} warning(s)",
            self.written,
            self.owners
                .map_or_else(String::new, |owners| format!(" of {owners} owner(s)")),
            self.provider,
            self.failures.len(),
            self.warnings
        )
    }

    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "provider": self.provider,
            "ending": self.ending.as_str(),
            "written": self.written,
            "owners": self.owners,
            "failed": self.failures.len(),
            "warnings": self.warnings,
        })
    }
}

/// Exports every authentication `options` selects. The output is opened before anything is
/// read, so a refused output costs no request. `stop` (a signal) drops the export wherever it
/// waits (a source's Retry-After, a backoff, a call); each record is one write, so what was
/// written is whole lines.
pub async fn export(
    exporter: &dyn AuthExporter,
    options: &ExportOptions,
    stop: impl Future<Output = ()>,
) -> Result<ExportSummary, EngineError> {
    let (out, destination) = output::open_output(&options.output, options.force)?;
    let filter = ExportFilter {
        owners: options.owners.clone(),
    };
    let mut sink = RecordSink::new(out, options.quiet, ExportReads::new(&options.gate));
    let result = tokio::select! {
        result = exporter.export(&filter, &mut sink) => Some(result),
        () = stop => None,
    };
    let flushed = sink.out.flush();
    eprintln!(
        "warning: {destination} holds {} exported credential(s) with their secrets in clear text: keep it private and delete it when done",
        sink.written
    );
    let (ending, owners) = match result {
        Some(Ok(counts)) => {
            flushed.with_context(|| format!("cannot write the export to {destination}"))?;
            (Ending::Complete, Some(counts.owners))
        }
        None => {
            eprintln!(
                "interrupted: {destination} is incomplete ({} whole record(s) written); export again to get every record",
                sink.written
            );
            (Ending::Interrupted, None)
        }
        Some(Err(error)) => {
            eprintln!(
                "error: the export stopped: {error}; {destination} is incomplete ({} written)",
                sink.written
            );
            (Ending::Stopped, None)
        }
    };
    Ok(ExportSummary {
        provider: options.provider.clone(),
        ending,
        written: sink.written,
        owners,
        failures: sink.failures,
        warnings: sink.warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_reads_at_the_operators_rate_else_the_vendors() {
        let (documented, undocumented) = crate::run::pacing::tests::vendor_limits();
        let fixed = |rate, burst| Pacing::Fixed { rate, burst };
        let at = |per_second| RateChoice::Fixed {
            per_second,
            burst: None,
        };
        let cases = [
            (documented, RateChoice::VendorDefault, fixed(30.0, 50)),
            (documented, at(5.0), fixed(5.0, 50)),
            (documented, RateChoice::Unlimited, Pacing::Unlimited),
            (undocumented, RateChoice::VendorDefault, fixed(100.0, 10)),
            (undocumented, at(20.0), fixed(20.0, 10)),
        ];
        for (index, (limits, choice, expect)) in cases.into_iter().enumerate() {
            assert_eq!(source_pacing(&limits, choice), expect, "case {index}");
        }
    }

    #[test]
    fn the_summary_says_how_the_export_ended() {
        let mut summary = ExportSummary {
            provider: "tray".into(),
            ending: Ending::Complete,
            written: 3,
            owners: Some(2),
            failures: Vec::new(),
            warnings: 1,
        };
        assert_eq!(summary.exit_code(), Exit::Ok);
        assert_eq!(
            summary.human(),
            "exported 3 record(s) of 2 owner(s) from tray: 0 failed, 1 warning(s)"
        );
        summary.failures.push(ExportFailure {
            source_id: "a".into(),
            kind: authport_core::ErrorKind::Transient,
            message: "m".into(),
        });
        assert_eq!(summary.exit_code(), Exit::SomeFailed);
        summary.ending = Ending::Interrupted;
        assert_eq!(summary.exit_code(), Exit::Interrupted);
        assert_eq!(summary.to_json()["ending"], "interrupted");
        summary.ending = Ending::Stopped;
        assert_eq!(summary.exit_code(), Exit::Stopped);
    }
}
