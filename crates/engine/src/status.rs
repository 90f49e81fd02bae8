//! `status`: per record, what the operator must do after the import.
//!
//! It combines the journal (which records have an object at the target, and which rollback
//! removed), the live read-back that `verify` also uses ([`crate::maintenance::read_each`]:
//! concurrent, in journal order, stoppable), the stored webhook events (the [`EventView`]
//! seam) and, when given, the input file (records the journal never imported). Each record gets
//! one [`Health`] (the taxonomy lives in [`crate::health`]); `reconnect` builds its worklist
//! from the same lines.
//!
//! Lines stream as they are known: the journal's objects in journal order, then the records
//! rolled back, then the input's records never imported.

use std::collections::BTreeSet;
use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use authport_core::{AuthImporter, ProviderError, TargetRef, VerifyReport};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

pub use crate::health::{Health, LatestEvent, classify};
use crate::maintenance::{MaintenanceOptions, ReadPass, emit, read_each, summary_for};
use crate::state::StateStore;
use crate::summary::{Exit, MaintenanceSummary, ReportWriter, Tally};

pub mod page;

/// Where `status` reads stored webhook events: the event store of `authport webhooks`
/// ([`crate::events::EventStore`]); without one, [`NoEvents`] stands in and the live
/// read-back alone decides.
pub trait EventView: Send + Sync {
    /// The latest event of the object record `record_id` made, if any was stored.
    fn latest(&self, provider: &str, record_id: &str) -> Option<LatestEvent>;

    /// Every stored event of that object that said something of its health (when it happened,
    /// what it said), for the status page's history. None by default.
    fn health_events(&self, _provider: &str, _record_id: &str) -> Vec<(DateTime<Utc>, Health)> {
        Vec::new()
    }
}

/// The event store of `authport webhooks` (`<state>.events`). A store that cannot be read
/// counts as no events: the live read-back still decides, and the run says so in its log.
impl EventView for crate::events::EventStore {
    fn latest(&self, provider: &str, record_id: &str) -> Option<LatestEvent> {
        match crate::events::EventStore::latest(self, provider, record_id) {
            Ok(latest) => latest.map(|l| LatestEvent {
                // An undated event (a vendor that sends no time) counts from its arrival.
                at: l
                    .occurred_at
                    .as_deref()
                    .or(Some(l.received_at.as_str()))
                    .and_then(crate::events::parse_stamp),
                kind: l.kind,
                health: l.health,
            }),
            Err(error) => {
                tracing::warn!(error = %error, "cannot read the event store; using the live read-back only");
                None
            }
        }
    }

    fn health_events(&self, provider: &str, record_id: &str) -> Vec<(DateTime<Utc>, Health)> {
        match self.connection_events(provider, record_id) {
            Ok(events) => events
                .into_iter()
                .filter_map(|event| {
                    // An undated event counts from its arrival, as for `latest`.
                    let at = event.occurred_at.as_deref().unwrap_or(&event.received_at);
                    Some((crate::events::parse_stamp(at)?, event.health?))
                })
                .collect(),
            Err(error) => {
                tracing::warn!(error = %error, "cannot read the event store's history; the status page shows none");
                Vec::new()
            }
        }
    }
}

/// No stored events (no webhook receiver ran on this state).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

impl EventView for NoEvents {
    fn latest(&self, _provider: &str, _record_id: &str) -> Option<LatestEvent> {
        None
    }
}

/// One record's status line.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordStatus {
    pub record_id: String,
    /// `None` when the read-back itself failed (`error` says why).
    pub health: Option<Health>,
    /// The object at the target (`None` for records never imported).
    pub target: Option<TargetRef>,
    /// The provider's live status word and non-secret details.
    pub live_status: Option<String>,
    pub detail: Map<String, Value>,
    pub error: Option<String>,
}

impl RecordStatus {
    pub fn to_json(&self) -> Value {
        let mut line = json!({
            "id": self.record_id,
            "status": self.health.map_or("error", Health::as_str),
        });
        let object = line.as_object_mut().expect("an object");
        if let Some(health) = self.health {
            object.insert("healthy".into(), json!(health == Health::Healthy));
        }
        if let Some(target) = &self.target {
            object.insert("target".into(), json!(target));
        }
        if let Some(word) = &self.live_status {
            object.insert("live".into(), json!(word));
        }
        if !self.detail.is_empty() {
            object.insert("detail".into(), Value::Object(self.detail.clone()));
        }
        if let Some(error) = &self.error {
            object.insert("error".into(), json!(error));
        }
        line
    }

    fn text(&self) -> String {
        let status = self.health.map_or("error", Health::as_str);
        let mut text = format!("{:<16} {}", status, self.record_id);
        if let Some(word) = &self.live_status {
            text.push_str(&format!("  (target: {word})"));
        }
        if let Some(error) = &self.error {
            text.push_str(&format!("  {error}"));
        }
        if self.detail.get("source").and_then(Value::as_str) == Some("retired") {
            text.push_str("  source retired");
        }
        text
    }
}

/// Ids of the records in `input` (in input order, each once). Unreadable records are skipped:
/// `validate` reports them.
pub fn input_ids(input: &Path) -> anyhow::Result<Vec<String>> {
    let reader = authport_core::input::InputReader::open(input, chrono::Utc::now())
        .map_err(|e| anyhow::anyhow!("cannot read input file {}: {e}", input.display()))?;
    let mut seen = BTreeSet::new();
    Ok(reader
        .filter_map(|item| item.result.ok().map(|record| record.id))
        .filter(|id| seen.insert(id.clone()))
        .collect())
}

/// Every record's status: journalled objects read back live (with their stored events), then
/// the records rollback removed as [`Health::RolledBack`], then the records of `input` the
/// journal has neither, as [`Health::NotImported`].
pub async fn collect(
    importer: Arc<dyn AuthImporter>,
    state: &StateStore,
    options: &MaintenanceOptions,
    events: &dyn EventView,
    input: Option<&Path>,
) -> anyhow::Result<Vec<RecordStatus>> {
    let mut lines = Vec::new();
    let never = std::future::pending::<()>();
    each_status(importer, state, options, events, input, never, |line| {
        lines.push(line);
        Ok(())
    })
    .await?;
    Ok(lines)
}

/// Hands every record's status to `each` as soon as it is known (see [`collect`] for which
/// and in what order). The input is read before anything is sent. `shutdown` stops the
/// read-back (see [`read_each`]); the lines that need no read still follow.
async fn each_status(
    importer: Arc<dyn AuthImporter>,
    state: &StateStore,
    options: &MaintenanceOptions,
    events: &dyn EventView,
    input: Option<&Path>,
    shutdown: impl Future<Output = ()>,
    mut each: impl FnMut(RecordStatus) -> anyhow::Result<()>,
) -> anyhow::Result<ReadPass> {
    let provider = options.provider.as_str();
    state.bind(provider, &importer.identity(), options.allow_target_change)?;
    let objects = state.objects(provider)?;
    let rolled_back = state.rolled_back(provider)?;
    let input_ids = input.map(input_ids).transpose()?;
    let mut known: BTreeSet<String> = objects.iter().map(|o| o.record_id.clone()).collect();
    // Every read-back begins after this instant: an event before it is older than the read.
    let read_at = chrono::Utc::now();
    let pass = read_each(importer, objects, options, shutdown, |object, result| {
        let mut line = status_of(
            provider,
            object.record_id,
            object.target,
            (result, read_at),
            events,
        );
        crate::migrate::annotate_status(state, &line.record_id, &mut line.detail);
        let problem = line.health.is_none_or(Health::is_problem);
        each(line)?;
        Ok(problem)
    })
    .await?;
    let without_object = |id: String, health: Health| RecordStatus {
        record_id: id,
        health: Some(health),
        target: None,
        live_status: None,
        detail: Map::new(),
        error: None,
    };
    for id in rolled_back {
        if known.insert(id.clone()) {
            each(without_object(id, Health::RolledBack))?;
        }
    }
    for id in input_ids.into_iter().flatten() {
        if known.insert(id.clone()) {
            each(without_object(id, Health::NotImported))?;
        }
    }
    Ok(pass)
}

fn status_of(
    provider: &str,
    record_id: String,
    target: TargetRef,
    (result, read_at): (
        Result<VerifyReport, ProviderError>,
        chrono::DateTime<chrono::Utc>,
    ),
    events: &dyn EventView,
) -> RecordStatus {
    match result {
        Ok(live) => {
            let event = events.latest(provider, &record_id);
            let mut detail = live.detail.clone();
            if let Some(event) = &event {
                detail.insert("last_event".into(), json!(event.kind));
            }
            RecordStatus {
                record_id,
                health: Some(classify(&live, event.as_ref(), read_at)),
                target: Some(target),
                live_status: Some(live.status),
                detail,
                error: None,
            }
        }
        Err(error) => RecordStatus {
            record_id,
            health: None,
            target: Some(target),
            live_status: None,
            detail: Map::new(),
            error: Some(format!(
                "{}: {}",
                authport_core::ErrorKind::of(&error).as_str(),
                error.message()
            )),
        },
    }
}

/// `status`'s totals: the maintenance summary. Exit: 130 when a signal stopped it, else 5
/// ([`Exit::Unhealthy`]) when a record still imported is not usable or could not be read back
/// ([`Health::is_problem`]), else 0.
#[derive(Debug, Clone)]
pub struct StatusSummary(pub MaintenanceSummary);

impl StatusSummary {
    pub fn exit_code(&self) -> Exit {
        if self.0.interrupted {
            Exit::Interrupted
        } else if self.0.problems > 0 {
            Exit::Unhealthy
        } else {
            Exit::Ok
        }
    }

    pub fn human(&self) -> String {
        self.0.human()
    }

    pub fn to_json(&self) -> Value {
        let mut value = self.0.to_json();
        value["exit_code"] = json!(self.exit_code().code());
        value
    }
}

/// Where `status` writes and what it also reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatusOutput<'a> {
    /// The import's input: its records the journal never imported are `not_imported`.
    pub input: Option<&'a Path>,
    /// Also write the per-record JSON lines here.
    pub report: Option<&'a Path>,
    /// JSON Lines on `out` (else text).
    pub json_lines: bool,
    /// Also write the status page here (`--html`).
    pub html: Option<HtmlPage<'a>>,
}

/// `--html FILE [--broker URL]`.
#[derive(Debug, Clone, Copy)]
pub struct HtmlPage<'a> {
    pub path: &'a Path,
    /// The `--state` file, beside which `reconnect --broker` keeps the links it issued.
    pub state_path: &'a Path,
    /// With a broker address, the reconnect list shows the links issued for it.
    pub broker: Option<&'a str>,
}

/// Writes one line per record to `out` (JSON Lines or text) and to the report, each as soon as
/// it is known. `shutdown` (Ctrl-C, SIGTERM) stops the read-back: the summary is
/// `interrupted` (exit 130) and counts the objects `not_read`.
pub async fn status(
    importer: Arc<dyn AuthImporter>,
    state: &StateStore,
    options: &MaintenanceOptions,
    events: &dyn EventView,
    output: StatusOutput<'_>,
    out: &mut dyn Write,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<StatusSummary> {
    let StatusOutput {
        input,
        report,
        json_lines,
        html,
    } = output;
    // The page's owners and services: read with the other inputs, before any output.
    let records = match (html, input) {
        (Some(_), Some(input)) => page::input_records(input)?,
        _ => Default::default(),
    };
    let mut kept = Vec::new();
    let started = Instant::now();
    let mut writer = None;
    let mut summary = summary_for("status", &options.provider);
    let mut failures = Tally::default();
    let pass = each_status(importer, state, options, events, input, shutdown, |line| {
        // Opened with the first line: a bad input or state fails with nothing written.
        let writer = match &mut writer {
            Some(writer) => writer,
            None => writer.insert(ReportWriter::create_optional(report)?),
        };
        let word = line.health.map_or("error", Health::as_str);
        *summary.counts.entry(word.to_owned()).or_default() += 1;
        if line.health.is_none_or(Health::is_problem) {
            summary.problems += 1;
        }
        if html.is_some() {
            kept.push(line.clone());
        }
        if let Some(error) = &line.error {
            failures.add(
                &authport_core::ReportLine::new(None, 0, authport_core::Status::Failed)
                    .with_error(authport_core::ErrorKind::Transient, error.clone()),
            );
        }
        if json_lines {
            emit(writer, out, &line.to_json())
        } else {
            writer.write_value(&line.to_json())?;
            write_text(out, &line.text())
        }
    })
    .await?;
    if writer.is_none() {
        // No line at all: the report still exists, empty, as before.
        ReportWriter::create_optional(report)?;
    }
    let interrupted = pass.interrupted;
    pass.note(&mut summary);
    summary.top_failures = failures.top_failures();
    if let Some(html) = html {
        if interrupted {
            // Partial numbers would read as the migration's state.
            tracing::warn!("status was stopped: the status page was not written");
        } else {
            write_html(html, &options.provider, events, kept, records)?;
        }
    }
    summary.elapsed = started.elapsed();
    Ok(StatusSummary(summary))
}

/// Gathers the page's history and links, then builds and writes it.
fn write_html(
    html: HtmlPage<'_>,
    provider: &str,
    events: &dyn EventView,
    lines: Vec<RecordStatus>,
    records: std::collections::BTreeMap<String, page::RecordInfo>,
) -> anyhow::Result<()> {
    let now = Utc::now();
    let links = match html.broker {
        Some(broker) => {
            let wanted = page::reconnect_keys(&lines, &records);
            page::issued_links(html.state_path, provider, broker, &wanted, now)?
        }
        None => None,
    };
    let history = lines
        .iter()
        .filter(|line| line.target.is_some())
        .map(|line| {
            let events = events.health_events(provider, &line.record_id);
            (line.record_id.clone(), events)
        })
        .filter(|(_, events)| !events.is_empty())
        .collect();
    let data = page::PageData {
        provider: provider.to_owned(),
        now,
        records,
        events: history,
        links,
    };
    page::write_page(html.path, &page::build(&lines, &data))
}

fn write_text(out: &mut dyn Write, text: &str) -> anyhow::Result<()> {
    match writeln!(out, "{text}") {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
