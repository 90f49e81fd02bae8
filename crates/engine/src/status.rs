//! `status`: per record, what the operator must do after the import.
//!
//! It combines the journal (which records have an object at the target), the live read-back
//! that `verify` also uses ([`crate::maintenance::read_back`]), the stored webhook events (the
//! [`EventView`] seam) and, when given, the input file (records the journal never imported).
//! Each record gets one [`Health`]; `reconnect` builds its worklist from the same lines.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use authport_core::{AuthImporter, ProviderError, TargetRef, VerifyReport};
use futures_util::StreamExt as _;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::maintenance::{MaintenanceOptions, emit, read_back, summary_for};
use crate::state::StateStore;
use crate::summary::{Exit, MaintenanceSummary, ReportWriter, Tally};

/// What an operator must do about one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Imported and usable: nothing to do.
    Healthy,
    /// Imported; the target still has to refresh the token (wait, then look again).
    PendingRefresh,
    /// Imported, then a token refresh failed: the end user must connect again.
    RefreshFailed,
    /// Imported, then revoked or otherwise unusable at the target: connect again.
    Revoked,
    /// Imported, then deleted at the target (a webhook said so): connect again.
    Deleted,
    /// The journal has an object the target no longer has.
    Missing,
    /// In the input, never imported (failed or skipped): see `reconnect`.
    NotImported,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::PendingRefresh => "pending_refresh",
            Health::RefreshFailed => "refresh_failed",
            Health::Revoked => "revoked",
            Health::Deleted => "deleted",
            Health::Missing => "missing",
            Health::NotImported => "not_imported",
        }
    }

    /// The end user must connect again (`reconnect` lists the record).
    pub fn needs_reconnect(self) -> bool {
        matches!(
            self,
            Health::RefreshFailed | Health::Revoked | Health::Deleted
        )
    }

    /// The reason in plain words, for the worklist.
    pub fn reason(self) -> &'static str {
        match self {
            Health::Healthy => "connected",
            Health::PendingRefresh => "waiting for the first token refresh",
            Health::RefreshFailed => "the imported token could not be refreshed",
            Health::Revoked => "the connection was revoked or is no longer usable",
            Health::Deleted => "the connection was deleted at the target",
            Health::Missing => "the imported connection is gone",
            Health::NotImported => "the credentials could not be imported",
        }
    }
}

/// The latest stored webhook event of one imported object, as [`EventView`] hands it over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatestEvent {
    /// The vendor's event type, e.g. `vault.connection.token_refresh.failed`.
    pub event_type: String,
    /// The connection's health the event carried, if any.
    pub health: Option<String>,
    /// When the event happened (`None`: stored undated by an older receiver).
    pub occurred_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Where `status` reads stored webhook events: the event store of `authport webhooks`
/// ([`crate::events::EventStore`]); without one, [`NoEvents`] stands in and the live
/// read-back alone decides.
pub trait EventView: Send + Sync {
    /// The latest event of the object record `record_id` made, if any was stored.
    fn latest(&self, provider: &str, record_id: &str) -> Option<LatestEvent>;
}

/// The event store of `authport webhooks` (`<state>.events`). A store that cannot be read
/// counts as no events: the live read-back still decides, and the run says so in its log.
impl EventView for crate::events::EventStore {
    fn latest(&self, provider: &str, record_id: &str) -> Option<LatestEvent> {
        match crate::events::EventStore::latest(self, provider, record_id) {
            Ok(latest) => latest.map(|l| LatestEvent {
                occurred_at: l
                    .occurred_at
                    .as_deref()
                    .and_then(crate::events::parse_stamp),
                event_type: l.event_type,
                health: l.health,
            }),
            Err(error) => {
                tracing::warn!(error = %error, "cannot read the event store; using the live read-back only");
                None
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

/// A timestamp field that says a refresh failed: set, and not the vendor's "never" (`0`, empty).
fn is_set(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|n| n != 0.0),
        Some(Value::String(s)) => !s.trim().is_empty() && s != "0",
        Some(_) => true,
    }
}

/// The [`Health`] of an imported object from its live read-back, begun at `read_at`, and its
/// latest stored event. Pure. A live read-back that finds the object usable outranks an event
/// that happened before it (or is undated): the read-back is the newer word. Otherwise a deletion
/// event explains a missing object; a failed refresh (the event, or the live
/// `last_refresh_failed_at` while the health is not `ok`) outranks `pending_refresh`, which is
/// what a connection whose refresh failed shows while Vault keeps retrying.
pub fn classify(
    live: &VerifyReport,
    event: Option<&LatestEvent>,
    read_at: chrono::DateTime<chrono::Utc>,
) -> Health {
    let live_alone = classify_event(live, None);
    let older = |e: &&LatestEvent| e.occurred_at.is_none_or(|at| at < read_at);
    if matches!(live_alone, Health::Healthy | Health::PendingRefresh)
        && event.is_some_and(|e| older(&e))
    {
        return live_alone;
    }
    classify_event(live, event)
}

fn classify_event(live: &VerifyReport, event: Option<&LatestEvent>) -> Health {
    let event_type = event.map_or("", |e| e.event_type.as_str());
    let vendor_health = live.detail.get("health").and_then(Value::as_str);
    if live.status == "missing" || event_type.ends_with(".deleted") {
        return if event_type.ends_with(".deleted") {
            Health::Deleted
        } else {
            Health::Missing
        };
    }
    if vendor_health == Some("revoked") || event_type.ends_with(".revoked") {
        return Health::Revoked;
    }
    let failed_live =
        is_set(live.detail.get("last_refresh_failed_at")) && vendor_health != Some("ok");
    if event_type.ends_with("token_refresh.failed") || failed_live {
        return Health::RefreshFailed;
    }
    if live.healthy
        && (live.status == "pending_refresh" || vendor_health == Some("pending_refresh"))
    {
        return Health::PendingRefresh;
    }
    if live.healthy {
        Health::Healthy
    } else {
        // Not usable for another reason (needs_auth, missing settings, changed): the end user
        // has to connect again; the vendor's word is in `detail`.
        Health::Revoked
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
/// the records of `input` the journal has no object for, as [`Health::NotImported`].
pub async fn collect(
    importer: Arc<dyn AuthImporter>,
    state: &StateStore,
    options: &MaintenanceOptions,
    events: &dyn EventView,
    input: Option<&Path>,
) -> anyhow::Result<Vec<RecordStatus>> {
    let provider = options.provider.as_str();
    state.bind(provider, &importer.identity(), options.allow_target_change)?;
    let objects = state.objects(provider)?;
    let imported: BTreeSet<String> = objects.iter().map(|o| o.record_id.clone()).collect();
    let mut lines = Vec::with_capacity(objects.len());
    // Every read-back begins after this instant: an event before it is older than the read.
    let read_at = chrono::Utc::now();
    let mut results = std::pin::pin!(read_back(importer, objects, options));
    while let Some((object, result)) = results.next().await {
        lines.push(status_of(
            provider,
            object.record_id,
            object.target,
            (result, read_at),
            events,
        ));
    }
    if let Some(input) = input {
        for id in input_ids(input)? {
            if !imported.contains(&id) {
                lines.push(RecordStatus {
                    record_id: id,
                    health: Some(Health::NotImported),
                    target: None,
                    live_status: None,
                    detail: Map::new(),
                    error: None,
                });
            }
        }
    }
    Ok(lines)
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
                detail.insert("last_event".into(), json!(event.event_type));
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

/// `status`'s totals: the maintenance summary, whose exit code is [`Exit::Unhealthy`] when an
/// imported record is not healthy (or could not be read back).
#[derive(Debug, Clone)]
pub struct StatusSummary(pub MaintenanceSummary);

impl StatusSummary {
    pub fn exit_code(&self) -> Exit {
        if self.0.problems > 0 {
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
}

/// Writes one line per record to `out` (JSON Lines or text) and to the report.
pub async fn status(
    importer: Arc<dyn AuthImporter>,
    state: &StateStore,
    options: &MaintenanceOptions,
    events: &dyn EventView,
    output: StatusOutput<'_>,
    out: &mut dyn Write,
) -> anyhow::Result<StatusSummary> {
    let StatusOutput {
        input,
        report,
        json_lines,
    } = output;
    let started = Instant::now();
    let lines = collect(importer, state, options, events, input).await?;
    let mut writer = ReportWriter::create_optional(report)?;
    let mut summary = summary_for("status", &options.provider);
    let mut failures = Tally::default();
    for line in &lines {
        let word = line.health.map_or("error", Health::as_str);
        *summary.counts.entry(word.to_owned()).or_default() += 1;
        // Records never imported are `reconnect`'s business; the exit code is about imports.
        if line.target.is_some() && line.health != Some(Health::Healthy) {
            summary.problems += 1;
        }
        if let Some(error) = &line.error {
            failures.add(
                &authport_core::ReportLine::new(None, 0, authport_core::Status::Failed)
                    .with_error(authport_core::ErrorKind::Transient, error.clone()),
            );
        }
        if json_lines {
            emit(&mut writer, out, &line.to_json())?;
        } else {
            writer.write_value(&line.to_json())?;
            write_text(out, &line.text())?;
        }
    }
    summary.top_failures = failures.top_failures();
    summary.elapsed = started.elapsed();
    Ok(StatusSummary(summary))
}

fn write_text(out: &mut dyn Write, text: &str) -> anyhow::Result<()> {
    match writeln!(out, "{text}") {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(healthy: bool, status: &str, detail: Value) -> VerifyReport {
        VerifyReport {
            healthy,
            status: status.to_owned(),
            detail: detail.as_object().cloned().unwrap_or_default(),
        }
    }

    fn event(kind: &str) -> LatestEvent {
        LatestEvent {
            event_type: kind.to_owned(),
            health: None,
            occurred_at: None,
        }
    }

    fn at(text: &str) -> chrono::DateTime<chrono::Utc> {
        crate::events::parse_stamp(text).unwrap()
    }

    /// Events without a date (as classified before dates counted): against a read-back begun
    /// before every event, so the event is never outranked for being older.
    fn classify(live: &VerifyReport, event: Option<&LatestEvent>) -> Health {
        let dated = event.map(|e| LatestEvent {
            occurred_at: Some(at("2026-11-25T10:00:00Z")),
            ..e.clone()
        });
        super::classify(live, dated.as_ref(), at("2026-11-25T09:00:00Z"))
    }

    #[test]
    fn a_usable_live_read_back_outranks_an_event_that_happened_before_it() {
        let ok = live(true, "callable", json!({"health": "ok"}));
        let pending = live(
            true,
            "pending_refresh",
            json!({"health": "pending_refresh"}),
        );
        let read_at = at("2026-11-25T10:00:00Z");
        for kind in [
            "vault.connection.token_refresh.failed",
            "vault.connection.revoked",
            "vault.connection.deleted",
        ] {
            let before = LatestEvent {
                occurred_at: Some(at("2026-11-25T09:59:00Z")),
                ..event(kind)
            };
            let undated = event(kind);
            let after = LatestEvent {
                occurred_at: Some(at("2026-11-25T10:00:01Z")),
                ..event(kind)
            };
            assert_eq!(
                super::classify(&ok, Some(&before), read_at),
                Health::Healthy,
                "{kind}"
            );
            assert_eq!(
                super::classify(&ok, Some(&undated), read_at),
                Health::Healthy,
                "{kind}"
            );
            assert_eq!(
                super::classify(&pending, Some(&before), read_at),
                Health::PendingRefresh,
                "{kind}"
            );
            assert_ne!(
                super::classify(&ok, Some(&after), read_at),
                Health::Healthy,
                "{kind}"
            );
        }
        // A read-back that finds the object gone or unusable is not outranked by anything older.
        let missing = live(false, "missing", json!({}));
        let deleted_before = LatestEvent {
            occurred_at: Some(at("2026-11-25T09:59:00Z")),
            ..event("vault.connection.deleted")
        };
        assert_eq!(
            super::classify(&missing, Some(&deleted_before), read_at),
            Health::Deleted
        );
    }

    #[test]
    fn each_live_answer_and_event_gets_the_operator_word() {
        let ok = live(
            true,
            "callable",
            json!({"health": "ok", "last_refresh_failed_at": 0}),
        );
        assert_eq!(classify(&ok, None), Health::Healthy);
        let pending = live(
            true,
            "pending_refresh",
            json!({"health": "pending_refresh"}),
        );
        assert_eq!(classify(&pending, None), Health::PendingRefresh);
        let failed = live(
            true,
            "pending_refresh",
            json!({"health": "pending_refresh", "last_refresh_failed_at": "2026-11-25T10:00:00Z"}),
        );
        assert_eq!(classify(&failed, None), Health::RefreshFailed);
        let recovered = live(
            true,
            "callable",
            json!({"health": "ok", "last_refresh_failed_at": 1_764_000_000_000_i64}),
        );
        assert_eq!(classify(&recovered, None), Health::Healthy);
        assert_eq!(
            classify(
                &pending,
                Some(&event("vault.connection.token_refresh.failed"))
            ),
            Health::RefreshFailed
        );
        let revoked = live(false, "callable", json!({"health": "revoked"}));
        assert_eq!(classify(&revoked, None), Health::Revoked);
        let missing = live(false, "missing", json!({}));
        assert_eq!(classify(&missing, None), Health::Missing);
        assert_eq!(
            classify(&missing, Some(&event("vault.connection.deleted"))),
            Health::Deleted
        );
        assert_eq!(
            classify(&live(false, "changed", json!({})), None),
            Health::Revoked
        );
        assert_eq!(
            classify(&live(true, "present", json!({})), None),
            Health::Healthy
        );
    }

    #[test]
    fn only_lost_connections_need_a_reconnect() {
        let needing: Vec<&str> = [
            Health::Healthy,
            Health::PendingRefresh,
            Health::RefreshFailed,
            Health::Revoked,
            Health::Deleted,
            Health::Missing,
            Health::NotImported,
        ]
        .into_iter()
        .filter(|h| h.needs_reconnect())
        .map(Health::as_str)
        .collect();
        assert_eq!(needing, ["refresh_failed", "revoked", "deleted"]);
    }
}
