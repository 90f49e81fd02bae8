//! [`RecordSink`]: where an exporter's records go, one v1 line each, checked first.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use authport_core::{
    CredentialRecord, ErrorKind, ExportSink, ProviderError, ReadRetry, SourceObject,
    record_to_v1_json,
};
use chrono::Utc;

use super::reads::ExportReads;

/// A source object that did not reach the output: its non-secret id, the kind and the reason
/// (never a value).
#[derive(Debug, Clone, PartialEq)]
pub struct ExportFailure {
    pub source_id: String,
    pub kind: ErrorKind,
    pub message: String,
}

/// Writes each record as one v1 line, after checking it reads back as a valid record; keeps
/// failures by id, field and reason (never a value). `export` writes to a file or stdout and
/// prints failures on stderr; `migrate` writes to the in-memory pipe its import reads and
/// reports failures as report lines.
pub(crate) struct RecordSink {
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
    /// The engine's retry loop for the exporter's reads.
    pub reads: ExportReads,
    /// `migrate --cutover`: every record written, by id and owner (no secret), so the
    /// cutover can read each again.
    pub objects: Option<Vec<SourceObject>>,
}

impl RecordSink {
    pub fn new(out: Box<dyn Write + Send>, quiet: bool, reads: ExportReads) -> Self {
        Self {
            reads,
            out,
            quiet,
            print_failures: true,
            services: BTreeMap::new(),
            cancel: None,
            written: 0,
            failures: Vec::new(),
            warnings: 0,
            objects: None,
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
impl ExportSink for RecordSink {
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
        if let Some(objects) = &mut self.objects {
            objects.push(SourceObject {
                id: record.id.clone(),
                owner_id: record.owner.id.clone(),
            });
        }
        Ok(())
    }

    async fn failed(&mut self, source_id: &str, error: ProviderError) -> Result<(), ProviderError> {
        let message = format!("{} at the source: {}", error.kind(), error.message());
        self.fail(source_id, error.kind(), message);
        Ok(())
    }

    fn reads(&self) -> &dyn ReadRetry {
        &self.reads
    }
}
