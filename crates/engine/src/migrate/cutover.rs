//! `migrate --cutover` (issue 19, items 4 and 5): after the import, hand each migrated grant
//! over so that exactly one system refreshes it.
//!
//! ```text
//! export → import (as without --cutover)
//! pass 1..=3: re-read the records still to check (AuthExporter::reread, no forced refresh)
//!             → the same import: `unchanged` (the journal's keyed fingerprint of the mapped
//!               credential is the exported one) or `updated` (the source refreshed after the
//!               export: the fresh credential is imported, checked again next pass)
//! --retire-source: delete the source object of every complete hand-over
//! ```
//!
//! Each record's hand-over is journaled in the state's memo (namespace `cutover`): `pending`
//! when the passes start, then `complete`, `reimported` or `unstable`, and the retirement's
//! intent before the DELETE and `done` after it. A run stopped during the passes leaves
//! `pending` notes; the next run with the same state exports again (the fresh credential, so
//! its import says `updated` for a record the source refreshed meanwhile, which therefore
//! counts as `reimported`), runs the passes again and finishes retirements whose intent was
//! journaled, so it ends in the same state as a run never stopped.
//!
//! A pass's report goes to a private temporary file (report lines hold no secret); the
//! cutover's own line per migrated record (`"phase": "cutover"`) follows the import's lines in
//! the run's report.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use async_trait::async_trait;
use authport_core::{
    AuthExporter, AuthImporter, ExportCounts, ExportFilter, ExportSink, ProviderError, ReportLine,
    SourceObject, Status,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Migration, append_to, migrate_once};
use crate::error::EngineError;
use crate::export::is_stdout;
use crate::run::ImportOptions;
use crate::state::StateStore;
use crate::summary::RunSummary;

/// Re-read passes at most (issue 19).
pub const MAX_PASSES: u32 = 3;
/// The memo namespace of the hand-over notes.
const NAMESPACE: &str = "cutover";
/// The note of a record whose fresh credential was imported.
pub const REFRESHED: &str = "source refreshed after export";
const STILL_CHANGING: &str = "source refreshed after export, and again in every cutover pass: the copy at the target may be stale; reconnect the end user or stop the source's refreshes and run again";

/// What `--cutover` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutover {
    /// `--retire-source` (the runner has checked `--yes`).
    pub retire_source: bool,
}

/// A record's hand-over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Handover {
    /// The passes have not decided yet (a run stopped during them).
    Pending,
    /// The target holds the credential the source holds; the first pass found no change.
    Complete,
    /// The source refreshed after the export; its fresh credential was imported and then
    /// found unchanged.
    Reimported,
    /// Still changing after the last pass, or it could not be re-read or re-imported.
    Unstable,
}

impl Handover {
    pub fn as_str(self) -> &'static str {
        match self {
            Handover::Pending => "pending",
            Handover::Complete => "complete",
            Handover::Reimported => "reimported",
            Handover::Unstable => "unstable",
        }
    }

    /// Only the target refreshes from now on: the source may be retired.
    fn is_handed_over(self) -> bool {
        matches!(self, Handover::Complete | Handover::Reimported)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Retire {
    /// Journaled before the DELETE is sent.
    Intent,
    Done,
}

/// One record's hand-over as journaled (no secret: ids, words and reasons).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    owner: String,
    pub handover: Handover,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retired: Option<Retire>,
    /// Why it is unstable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Note {
    /// The source object was deleted (`--retire-source`).
    pub fn source_retired(&self) -> bool {
        self.retired == Some(Retire::Done)
    }
}

/// A record's hand-over note, if a cutover journaled one (`status` and `reconnect`).
pub fn note_of(state: &StateStore, record_id: &str) -> Option<Note> {
    let text = state.memo().get(NAMESPACE, record_id)?;
    serde_json::from_str(&text).ok()
}

/// `status`: a record's hand-over and a retired source in its line's `detail`.
pub fn annotate_status(
    state: &StateStore,
    record_id: &str,
    detail: &mut serde_json::Map<String, Value>,
) {
    if let Some(note) = note_of(state, record_id) {
        detail.insert("handover".into(), json!(note.handover.as_str()));
        if note.source_retired() {
            detail.insert("source".into(), json!("retired"));
        }
    }
}

/// `reconnect`: why a record's hand-over is unstable, if it is.
pub fn unstable_reason(state: &StateStore, record_id: &str) -> Option<String> {
    let note = note_of(state, record_id)?;
    (note.handover == Handover::Unstable).then(|| {
        note.reason
            .unwrap_or_else(|| "the cutover could not hand this grant over".to_owned())
    })
}

fn put(state: &StateStore, record_id: &str, note: &Note) {
    if let Ok(text) = serde_json::to_string(note) {
        state.memo().put(NAMESPACE, record_id, &text);
    }
}

fn notes(state: &StateStore) -> anyhow::Result<Vec<(String, Note)>> {
    Ok(state
        .memo_entries(NAMESPACE)?
        .into_iter()
        .filter_map(|(id, text)| Some((id, serde_json::from_str(&text).ok()?)))
        .collect())
}

/// What one pass's line says about a record.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// Changed: imported again, to be checked next pass.
    Again,
    Decided(Outcome),
}

/// A decided hand-over, with the line's status and its reason when not complete.
#[derive(Debug, Clone, PartialEq)]
struct Outcome {
    handover: Handover,
    status: Status,
    note: Option<String>,
    error: Option<(String, String)>,
}

/// One pass's verdict on a record from its line in the pass's report. Pure.
fn decide(line: Option<&ReportLine>, pass: u32, changed_before: bool) -> Step {
    match line.map(|l| l.status) {
        Some(Status::Unchanged) if changed_before => Step::Decided(Outcome {
            handover: Handover::Reimported,
            status: Status::Updated,
            note: Some(REFRESHED.to_owned()),
            error: None,
        }),
        Some(Status::Unchanged) => Step::Decided(Outcome {
            handover: Handover::Complete,
            status: Status::Unchanged,
            note: None,
            error: None,
        }),
        Some(Status::Updated | Status::Imported) if pass < MAX_PASSES => Step::Again,
        Some(Status::Updated | Status::Imported) => Step::Decided(Outcome {
            handover: Handover::Unstable,
            status: Status::Updated,
            note: Some(STILL_CHANGING.to_owned()),
            error: None,
        }),
        _ => {
            let (kind, message) = line.and_then(|l| l.error.as_ref()).map_or_else(
                || ("not_attempted".to_owned(), "not re-read".to_owned()),
                |e| (e.kind.as_str().to_owned(), e.message.clone()),
            );
            Step::Decided(Outcome {
                handover: Handover::Unstable,
                status: Status::Failed,
                note: Some(format!(
                    "cutover pass {pass}: the re-read or re-import failed"
                )),
                error: Some((kind, message)),
            })
        }
    }
}

/// The exporter of a pass: each object read again, nothing listed.
#[derive(Debug)]
struct Reread {
    source: Arc<dyn AuthExporter>,
    objects: Vec<SourceObject>,
}

#[async_trait]
impl AuthExporter for Reread {
    async fn export(
        &self,
        _filter: &ExportFilter,
        sink: &mut dyn ExportSink,
    ) -> Result<ExportCounts, ProviderError> {
        let mut counts = ExportCounts::default();
        for object in &self.objects {
            counts.objects += 1;
            match self.source.reread(object, sink.reads()).await {
                Ok(Some(record)) => sink.record(record).await?,
                Ok(None) => {
                    let gone = ProviderError::rejected("the source object is gone");
                    sink.failed(&object.id, gone).await?;
                }
                Err(error @ ProviderError::Fatal { .. }) => return Err(error),
                Err(error) => sink.failed(&object.id, error).await?,
            }
        }
        Ok(counts)
    }
}

/// The records' lines of a report file, by id (the last line of an id wins).
fn read_report(path: &Path) -> anyhow::Result<BTreeMap<String, ReportLine>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the report {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|line| serde_json::from_str::<ReportLine>(line).ok())
        .filter_map(|line| Some((line.id.clone()?, line)))
        .collect())
}

/// The cutover's report line of one migrated record. Pure.
fn cutover_line(id: &str, outcome: &Outcome, retired: bool, retire_error: Option<&str>) -> Value {
    let mut line = json!({
        "id": id,
        "line": 0,
        "status": outcome.status.as_str(),
        "phase": "cutover",
        "handover": outcome.handover.as_str(),
    });
    let object = line.as_object_mut().expect("an object");
    if let Some(note) = &outcome.note {
        object.insert("note".into(), json!(note));
    }
    if let Some((kind, message)) = &outcome.error {
        object.insert("error".into(), json!({"kind": kind, "message": message}));
    }
    if retired {
        object.insert("source".into(), json!("retired"));
    }
    if let Some(error) = retire_error {
        object.insert("source".into(), json!("not retired"));
        object.insert("retire_error".into(), json!(error));
    }
    line
}

/// Runs the migration and its cutover; `shutdown` stops either wherever it is.
pub(super) async fn run(
    migration: Migration,
    cutover: Cutover,
    importer: Arc<dyn AuthImporter>,
    state: &StateStore,
    options: ImportOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<RunSummary, EngineError> {
    // One signal, seen by every import of the run (each takes a future of its own).
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let when_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            if stopped.wait_for(|stop| *stop).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    let watcher = async move {
        shutdown.await;
        stop.send_replace(true);
        // Kept alive: the receivers must not see the sender go.
        std::future::pending::<()>().await;
    };
    let work = hand_over(migration, cutover, importer, state, options, when_stopped);
    tokio::select! {
        result = work => result,
        () = watcher => unreachable!("the watcher never ends"),
    }
}

/// The records this run migrated: exported, and `imported`, `updated` or `unchanged` in the
/// import's report.
fn migrated(objects: Vec<SourceObject>, lines: &BTreeMap<String, ReportLine>) -> Vec<SourceObject> {
    objects
        .into_iter()
        .filter(|o| {
            lines.get(&o.id).is_some_and(|l| {
                matches!(
                    l.status,
                    Status::Imported | Status::Updated | Status::Unchanged
                )
            })
        })
        .collect()
}

async fn hand_over<Stopped, Fut>(
    migration: Migration,
    cutover: Cutover,
    importer: Arc<dyn AuthImporter>,
    state: &StateStore,
    options: ImportOptions,
    stopped: Stopped,
) -> Result<RunSummary, EngineError>
where
    Stopped: Fn() -> Fut,
    Fut: Future<Output = ()> + Send,
{
    let source = migration.source.clone();
    let exporter = migration.exporter.clone();
    let services = migration.services.clone();
    let reads = migration.reads.clone();
    let quiet = migration.quiet;
    let provider = options.provider.clone();
    let report = options.report.clone().unwrap_or_else(|| PathBuf::from("-"));
    let dir = tempfile::tempdir().context("cannot make the cutover's temporary directory")?;

    // Records a stopped cutover left pending: an import that changes one now means the source
    // refreshed it after that run's export, as a pass would have found.
    let pending: BTreeMap<String, Option<String>> = notes(state)?
        .into_iter()
        .filter(|(_, note)| note.handover == Handover::Pending)
        .map(|(id, _)| {
            let applied = state.entry(&provider, &id)?.and_then(|e| e.fingerprint);
            anyhow::Ok((id, applied))
        })
        .collect::<Result<_, _>>()?;

    // The import's report is read back for its statuses: to stdout, it goes through a file.
    let first_report = if is_stdout(&report) {
        dir.path().join("import.jsonl")
    } else {
        report.clone()
    };
    let mut first = options.clone();
    first.report = Some(first_report.clone());
    let (mut summary, objects) =
        migrate_once(migration, importer.clone(), state, first, stopped()).await?;
    summary.report = options.report.clone();
    if is_stdout(&report) {
        let text = std::fs::read(&first_report).context("cannot read the import's report")?;
        std::io::Write::write_all(&mut std::io::stdout().lock(), &text)
            .context("cannot write the report")?;
    }
    if options.dry_run || summary.interrupted || summary.stopped.is_some() {
        if !quiet {
            eprintln!(
                "cutover: not run (the import did not finish); run again with the same --state"
            );
        }
        return Ok(summary);
    }
    let first_lines = read_report(&first_report)?;
    let migrated = migrated(objects, &first_lines);
    let mut changed: BTreeSet<String> = BTreeSet::new();
    for (id, before) in &pending {
        let now = state.entry(&provider, id)?.and_then(|e| e.fingerprint);
        if now != *before {
            changed.insert(id.clone());
        }
    }
    for object in &migrated {
        let note = Note {
            owner: object.owner_id.clone(),
            handover: Handover::Pending,
            retired: None,
            reason: None,
        };
        put(state, &object.id, &note);
    }

    let mut outcomes: BTreeMap<String, Outcome> = BTreeMap::new();
    let mut current = migrated.clone();
    for pass in 1..=MAX_PASSES {
        if current.is_empty() {
            break;
        }
        if !quiet {
            eprintln!(
                "cutover pass {pass}: re-reading {} records from {source} (no forced refresh)",
                current.len()
            );
        }
        let pass_report = dir.path().join(format!("pass-{pass}.jsonl"));
        let reread = Reread {
            source: exporter.clone(),
            objects: current.clone(),
        };
        let mut pass_migration = Migration::with_reads(
            source.clone(),
            Arc::new(reread),
            ExportFilter::default(),
            services.clone(),
            true,
            reads.clone(),
        );
        let mut pass_options = options.clone();
        pass_options.input = pass_migration.input();
        pass_options.report = Some(pass_report.clone());
        pass_options.progress = false;
        pass_options.progress_events = false;
        let (pass_summary, _) = migrate_once(
            pass_migration,
            importer.clone(),
            state,
            pass_options,
            stopped(),
        )
        .await?;
        if pass_summary.interrupted || pass_summary.stopped.is_some() {
            summary.interrupted |= pass_summary.interrupted;
            summary.stopped = summary.stopped.or_else(|| {
                pass_summary.stopped.map(|reason| {
                    format!("the cutover stopped in pass {pass} ({reason}); run again with the same --state to finish it")
                })
            });
            return Ok(summary);
        }
        let lines = read_report(&pass_report)?;
        let mut next = Vec::new();
        for object in current {
            match decide(lines.get(&object.id), pass, changed.contains(&object.id)) {
                Step::Again => {
                    changed.insert(object.id.clone());
                    next.push(object);
                }
                Step::Decided(outcome) => {
                    let note = Note {
                        owner: object.owner_id.clone(),
                        handover: outcome.handover,
                        retired: None,
                        reason: (outcome.handover == Handover::Unstable)
                            .then(|| outcome.note.clone())
                            .flatten(),
                    };
                    put(state, &object.id, &note);
                    outcomes.insert(object.id.clone(), outcome);
                }
            }
        }
        current = next;
    }

    let retirement = if cutover.retire_source {
        let retire = retire(&*exporter, &reads, state, &migrated, &outcomes, &stopped).await?;
        if retire.stopped {
            summary.interrupted = true;
            return Ok(summary);
        }
        retire
    } else {
        Retirement::default()
    };

    let mut writer = append_to(&report)?;
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for object in &migrated {
        let Some(outcome) = outcomes.get(&object.id) else {
            continue;
        };
        *counts.entry(outcome.handover.as_str()).or_default() += 1;
        let retired = retirement.retired.contains(&object.id);
        let error = retirement.errors.get(&object.id).map(String::as_str);
        writer.write_value(&cutover_line(&object.id, outcome, retired, error))?;
    }
    if !quiet {
        let said: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let mut text = format!("cutover: {}", said.join(", "));
        if cutover.retire_source {
            text.push_str(&format!(
                "; {} source connections retired",
                retirement.retired.len()
            ));
        }
        eprintln!("{text}");
    }
    Ok(summary)
}

#[derive(Debug, Default)]
struct Retirement {
    retired: BTreeSet<String>,
    errors: BTreeMap<String, String>,
    stopped: bool,
}

/// Deletes the source object of every handed-over record, and finishes the retirements an
/// earlier run journaled the intent of. The intent is journaled before each DELETE.
async fn retire<Stopped, Fut>(
    exporter: &dyn AuthExporter,
    reads: &crate::export::ExportReads,
    state: &StateStore,
    migrated: &[SourceObject],
    outcomes: &BTreeMap<String, Outcome>,
    stopped: &Stopped,
) -> anyhow::Result<Retirement>
where
    Stopped: Fn() -> Fut,
    Fut: Future<Output = ()> + Send,
{
    let mut due: Vec<(SourceObject, Note)> = notes(state)?
        .into_iter()
        .filter(|(_, note)| note.retired == Some(Retire::Intent))
        .map(|(id, note)| {
            let object = SourceObject {
                id,
                owner_id: note.owner.clone(),
            };
            (object, note)
        })
        .collect();
    for object in migrated {
        let handed_over = outcomes
            .get(&object.id)
            .is_some_and(|o| o.handover.is_handed_over());
        if handed_over && !due.iter().any(|(o, _)| o.id == object.id) {
            let note = note_of(state, &object.id).unwrap_or(Note {
                owner: object.owner_id.clone(),
                handover: outcomes[&object.id].handover,
                retired: None,
                reason: None,
            });
            due.push((object.clone(), note));
        }
    }
    let mut retirement = Retirement::default();
    for (object, mut note) in due {
        note.retired = Some(Retire::Intent);
        put(state, &object.id, &note);
        let answer = tokio::select! {
            answer = exporter.retire(&object, reads) => answer,
            () = stopped() => {
                retirement.stopped = true;
                return Ok(retirement);
            }
        };
        match answer {
            Ok(_) => {
                note.retired = Some(Retire::Done);
                put(state, &object.id, &note);
                retirement.retired.insert(object.id);
            }
            Err(error) => {
                let text = format!("{}: {}", error.kind(), error.message());
                retirement.errors.insert(object.id, text);
            }
        }
    }
    Ok(retirement)
}

#[cfg(test)]
#[path = "cutover_tests.rs"]
mod tests;
