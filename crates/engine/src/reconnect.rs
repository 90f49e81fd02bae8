//! `reconnect`: the worklist of end users who must connect again, one row per owner and
//! service, built from the same per-record status as `status` ([`crate::status::collect`]).
//! The pure classification is in `kind`, writing rows in `rows`, vendor links minted on the
//! spot in `mint`, broker links in `broker`, the unit tests in `tests`.
//!
//! It lists records imported and later `refresh_failed`, `revoked` or `deleted`, and records
//! that failed permanently: their mapping can never succeed (e.g. an API key for an OAuth
//! connector) or the target rejected them. `pre_existing` records are left out
//! (the end user is already connected), and so are failures a re-run of the import may fix
//! (transient, rate limited, not attempted, conflicts). The import's report tells the kinds
//! apart; without it, records the journal never imported are mapped again (no writes) and
//! only mapping failures are listed.
//!
//! `--links` mints one link per row (or per owner when the vendor's link covers all of an
//! owner's services), paced by the run's gate. Each mint is noted in the state's memo (when,
//! never the link), so a re-run does not mint twice unless `force_links`; the rows holding a
//! link are written, flushed and (for a file) synced before the mint is noted, so a full disk
//! or a stop between the two costs a second mint, never a lost link. The memo key is the owner
//! and service, or for a link that serves all of an owner's services, the owner and the set of
//! vendor ids it was minted for (Apideck: each row's unified API and service): a later run that
//! needs a link for more mints again.
//!
//! `--links --broker URL` mints nothing: each `end_user` row gets a signed link to the broker
//! (`authport links serve`), stable across re-runs until it expires (`broker`).
//!
//! Every input is read ([`worklist`]) before the output is opened ([`write_worklist`]). CSV
//! cells that a spreadsheet would run as a formula are prefixed with `'` ([`csv_cell`]).
//!
//! Each row has a `kind`: `end_user` (the end user must connect again) or `config_fix` (the
//! operator can fix it: the failure names a setting, e.g. a missing `service_environment`, a
//! service with no connector mapping, a solution step Tray refused). `config_fix` rows carry
//! the setting to change in `setting` and never get a link: a link cannot fix the
//! configuration, and a one-link-per-owner session minted with them would not cover their
//! service ([`config_setting`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use authport_core::{
    AuthImporter, CredentialRecord, DiscoveryKey, ErrorKind, ReconnectLinks, ReportLine, TargetRef,
};
#[cfg(test)]
use serde_json::json;
use serde_json::{Map, Value};

use crate::maintenance::MaintenanceOptions;
use crate::state::StateStore;
use crate::status::{EventView, Health, collect};

mod broker;
mod kind;
mod mint;
mod rows;
pub use broker::{BROKER_NOTE, BrokerOptions};
pub use kind::config_setting;
use kind::field_of;
#[cfg(test)]
use mint::mint_key;
use mint::mint_links;
#[cfg(test)]
use rows::CSV_HEADER;
use rows::RowWriter;
pub use rows::{csv_cell, write_rows};

/// A row the end user acts on (connect again): it may get a link.
pub const END_USER: &str = "end_user";
/// A row the operator acts on (change a setting, re-run the import): never a link.
pub const CONFIG_FIX: &str = "config_fix";

/// How `reconnect` runs.
#[derive(Debug, Clone, Default)]
pub struct ReconnectOptions {
    /// The import run's report (JSON Lines), to tell rejected records from other failures.
    pub import_report: Option<std::path::PathBuf>,
    /// Mint links on the spot.
    pub links: bool,
    /// Mint again even when the memo says a link was minted before.
    pub force_links: bool,
    /// CSV instead of JSON Lines.
    pub csv: bool,
    /// With `links`: write broker links instead of minting vendor links (`--broker`).
    pub broker: Option<BrokerOptions>,
}

/// One worklist row: an owner and a service. Its `Debug` leaves out the link (it grants access
/// to the owner's connection settings until it expires).
#[derive(Clone, PartialEq, serde::Serialize)]
pub struct WorkRow {
    pub owner_id: String,
    pub owner_name: Option<String>,
    pub owner_email: Option<String>,
    pub service: String,
    /// `refresh_failed`, `revoked`, `deleted` or `not_imported`.
    pub status: String,
    /// [`END_USER`] or [`CONFIG_FIX`].
    pub kind: &'static str,
    pub reason: String,
    /// For a `config_fix` row: the setting(s) to change, as the failure names them.
    pub setting: Option<String>,
    pub record_ids: Vec<String>,
    /// What a link needs (Tray `serviceId`/`serviceEnvironmentId`, Apideck
    /// `unified_api`/`service_id`).
    pub vendor: Map<String, Value>,
    pub link: Option<String>,
    pub link_expires_at: Option<String>,
    pub link_note: Option<String>,
    /// When this row's link was minted (RFC 3339): by this run (`link` is set) or by an earlier
    /// one (not minted again, `link` is empty).
    pub link_minted_at: Option<String>,
}

impl std::fmt::Debug for WorkRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkRow")
            .field("owner_id", &self.owner_id)
            .field("service", &self.service)
            .field("status", &self.status)
            .field("kind", &self.kind)
            .field("record_ids", &self.record_ids)
            .field("vendor", &self.vendor)
            .field("has_link", &self.link.is_some())
            .field("link_expires_at", &self.link_expires_at)
            .field("link_minted_at", &self.link_minted_at)
            .finish_non_exhaustive()
    }
}

/// Where the worklist goes. A file is flushed and synced before a mint is noted; any other
/// writer (stdout) is flushed.
pub enum Destination<'a> {
    File(std::fs::File),
    Writer(&'a mut dyn Write),
}

impl std::fmt::Debug for Destination<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Destination::File(_) => "Destination::File",
            Destination::Writer(_) => "Destination::Writer",
        })
    }
}

impl Write for Destination<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Destination::File(file) => file.write(buf),
            Destination::Writer(writer) => writer.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Destination::File(file) => file.flush(),
            Destination::Writer(writer) => writer.flush(),
        }
    }
}

impl Destination<'_> {
    /// Flushes, and syncs a regular file: what was written survives a crash after this.
    fn commit(&mut self) -> std::io::Result<()> {
        self.flush()?;
        if let Destination::File(file) = self
            && file.metadata()?.is_file()
        {
            file.sync_data()?;
        }
        Ok(())
    }
}

/// The rows to write, from every input, before the output is opened.
#[derive(Debug)]
pub struct Worklist {
    pub rows: Vec<WorkRow>,
    pub summary: ReconnectSummary,
}

/// Counts for the summary on stderr.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconnectSummary {
    pub rows: u64,
    pub records: u64,
    pub links_minted: u64,
    pub links_already_minted: u64,
    pub link_errors: u64,
    /// Records the journal never imported whose failure kind is unknown (no import report)
    /// or is one a re-run may fix: left out.
    pub left_out: u64,
    /// Rows of kind `config_fix` (included in `rows`).
    pub config_fixes: u64,
    /// Imported records whose read-back failed: their state is unknown, so they are not listed.
    pub unreadable: u64,
    /// Rows given a broker link (`--broker`): nothing minted at the vendor.
    pub broker_links: u64,
}

impl ReconnectSummary {
    pub fn human(&self) -> String {
        let broker = if self.broker_links > 0 {
            format!(
                "; {} broker links written (nothing minted at the vendor)",
                self.broker_links
            )
        } else {
            String::new()
        };
        format!(
            "reconnect: {} rows ({} records), {} of them configuration fixes (kind config_fix: no link); \
             links minted {}, minted earlier {}, failed {}; \
             {} records left out (pre-existing, or a re-run of the import may fix them); \
             {} imported records could not be read back (run status to see why){broker}",
            self.rows,
            self.records,
            self.config_fixes,
            self.links_minted,
            self.links_already_minted,
            self.link_errors,
            self.left_out,
            self.unreadable
        )
    }
}

/// Why a record the journal never imported failed, from the import's report. Pure.
fn permanent_failure(kind: ErrorKind) -> Option<&'static str> {
    match kind {
        ErrorKind::Mapping => Some("the credentials cannot be imported into this platform"),
        ErrorKind::Rejected => Some("the platform rejected the imported credentials"),
        ErrorKind::ClientMismatch => Some("client_mismatch"),
        _ => None,
    }
}

/// A never-imported record's worklist row: a client mismatch keeps its whole message (the
/// service and both client ids, public identifiers) after its reason. Pure.
fn never_imported_row(kind: ErrorKind, message: &str) -> Option<(String, Option<String>)> {
    let generic = permanent_failure(kind)?;
    if kind == ErrorKind::ClientMismatch {
        return Some((format!("{generic}: {message}"), None));
    }
    Some(failure_row(generic, message))
}

/// A record's failure as the worklist shows it: the reason (with the field it failed on),
/// and the setting when it is a configuration fix. Pure.
fn failure_row(generic: &str, message: &str) -> (String, Option<String>) {
    match config_setting(message) {
        Some(setting) => (message.to_owned(), Some(setting)),
        None => match field_of(message).0 {
            Some(field) => (format!("{generic} ({field})"), None),
            None => (generic.to_owned(), None),
        },
    }
}

fn read_import_report(path: &Path) -> anyhow::Result<HashMap<String, ReportedError>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read import report {}: {e}", path.display()))?;
    let mut kinds = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        // Summary or foreign lines are not per-record lines: skip them.
        let Ok(parsed) = serde_json::from_str::<ReportLine>(line) else {
            continue;
        };
        if let (Some(id), Some(error)) = (parsed.id, parsed.error) {
            kinds.insert(
                id,
                ReportedError {
                    kind: error.kind,
                    message: error.message,
                },
            );
        }
    }
    Ok(kinds)
}

fn read_input(path: &Path) -> anyhow::Result<BTreeMap<String, CredentialRecord>> {
    let reader = authport_core::input::InputReader::open(path, chrono::Utc::now())
        .map_err(|e| anyhow::anyhow!("cannot read input file {}: {e}", path.display()))?;
    Ok(reader
        .filter_map(|item| item.result.ok())
        .map(|record| (record.id.clone(), record))
        .collect())
}

/// A failure as the import's report gives it.
struct ReportedError {
    kind: ErrorKind,
    message: String,
}

/// One record on the worklist, before grouping.
struct Listed {
    record: String,
    status: &'static str,
    reason: String,
    /// `Some`: a configuration fix, with the setting to change.
    setting: Option<String>,
    target: Option<TargetRef>,
}

/// Builds the worklist from the state, the events, the input and the import report (every
/// input, read before any output is opened). Sends read-only calls at most.
pub async fn worklist(
    importer: Arc<dyn AuthImporter>,
    state: &StateStore,
    options: &MaintenanceOptions,
    events: &dyn EventView,
    input: &Path,
    reconnect: &ReconnectOptions,
) -> anyhow::Result<Worklist> {
    let provider = options.provider.as_str();
    let records = read_input(input)?;
    let statuses = collect(importer.clone(), state, options, events, None).await?;
    let journalled: BTreeSet<&str> = statuses.iter().map(|s| s.record_id.as_str()).collect();
    let mut listed = Vec::new();
    let mut summary = ReconnectSummary::default();
    for line in &statuses {
        if line.health.is_none() {
            summary.unreadable += 1;
        }
        if let Some(health) = line.health.filter(|h| h.needs_reconnect()) {
            listed.push(Listed {
                record: line.record_id.clone(),
                status: health.as_str(),
                reason: health.reason().to_owned(),
                setting: None,
                target: line.target.clone(),
            });
        } else if let Some(reason) = crate::migrate::unstable_reason(state, &line.record_id) {
            // `migrate --cutover` could not hand this grant over.
            listed.push(Listed {
                record: line.record_id.clone(),
                status: "unstable",
                reason,
                setting: None,
                target: line.target.clone(),
            });
        }
    }
    let never: Vec<&CredentialRecord> = records
        .values()
        .filter(|r| !journalled.contains(r.id.as_str()))
        .collect();
    let reported = match &reconnect.import_report {
        Some(path) => Some(read_import_report(path)?),
        None => None,
    };
    if reported.is_none() && !never.is_empty() {
        let keys = distinct_keys(&never, provider);
        importer.discover(&keys).await?;
    }
    for record in never {
        let failure = match &reported {
            Some(kinds) => kinds
                .get(&record.id)
                .and_then(|error| never_imported_row(error.kind, &error.message)),
            None => importer
                .map(record)
                .err()
                .and_then(|error| never_imported_row(error.kind, &error.to_string())),
        };
        match failure {
            Some((reason, setting)) => listed.push(Listed {
                record: record.id.clone(),
                status: Health::NotImported.as_str(),
                reason,
                setting,
                target: None,
            }),
            None => summary.left_out += 1,
        }
    }
    if !listed.is_empty() && reported.is_some() {
        // `link_ids` may need the catalogue (e.g. Tray's service of an environment).
        let wanted: Vec<&CredentialRecord> = listed
            .iter()
            .filter_map(|l| records.get(&l.record))
            .collect();
        importer.discover(&distinct_keys(&wanted, provider)).await?;
    }
    let rows = group(&listed, &records, links_of(provider, importer.as_ref())).await;
    summary.rows = rows.len() as u64;
    summary.records = rows.iter().map(|r| r.record_ids.len() as u64).sum();
    summary.config_fixes = rows.iter().filter(|r| r.kind == CONFIG_FIX).count() as u64;
    Ok(Worklist { rows, summary })
}

/// Mints links when asked and writes the rows to `out`: the rows of each mint are written and
/// committed before the mint is noted in the memo.
pub async fn write_worklist(
    importer: &dyn AuthImporter,
    state: &StateStore,
    options: &MaintenanceOptions,
    reconnect: &ReconnectOptions,
    worklist: Worklist,
    out: Destination<'_>,
) -> anyhow::Result<ReconnectSummary> {
    let Worklist {
        mut rows,
        mut summary,
    } = worklist;
    let mut writer = RowWriter::new(reconnect.csv, out)?;
    if let (true, Some(broker)) = (reconnect.links, &reconnect.broker) {
        broker::write_broker_links(
            &options.provider,
            broker,
            &mut rows,
            &mut summary,
            &mut writer,
        )?;
    } else if reconnect.links {
        mint_links(
            importer,
            state,
            options,
            reconnect,
            &mut rows,
            &mut summary,
            &mut writer,
        )
        .await?;
    } else {
        for row in &rows {
            writer.row(row)?;
        }
    }
    writer.out.commit()?;
    Ok(summary)
}

fn distinct_keys(records: &[&CredentialRecord], provider: &str) -> Vec<DiscoveryKey> {
    let mut keys: Vec<DiscoveryKey> = Vec::new();
    for record in records {
        let key = DiscoveryKey::for_record(record, provider);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys
}

/// The reconnect links of `importer`, when its provider's plugin declares them.
fn links_of<'a>(provider: &str, importer: &'a dyn AuthImporter) -> Option<&'a dyn ReconnectLinks> {
    authport_core::find_provider(provider)
        .ok()
        .and_then(|plugin| plugin.links(importer))
}

/// Rows per (owner, service, kind), in owner order; owner details from the input record only.
async fn group(
    listed: &[Listed],
    records: &BTreeMap<String, CredentialRecord>,
    links: Option<&dyn ReconnectLinks>,
) -> Vec<WorkRow> {
    let mut rows: BTreeMap<(String, String, &'static str), WorkRow> = BTreeMap::new();
    for item in listed {
        // A journalled record missing from this input has no owner to write to: skip it.
        let Some(record) = records.get(&item.record) else {
            continue;
        };
        let vendor = match links {
            Some(links) => links.link_ids(record, item.target.as_ref()).await,
            None => item.target.clone().map(|t| t.0).unwrap_or_default(),
        };
        let kind = if item.setting.is_some() {
            CONFIG_FIX
        } else {
            END_USER
        };
        let key = (record.owner.id.clone(), record.service.clone(), kind);
        let row = rows.entry(key).or_insert_with(|| WorkRow {
            owner_id: record.owner.id.clone(),
            owner_name: record.owner.name.clone(),
            owner_email: record.owner.email.clone(),
            service: record.service.clone(),
            status: item.status.to_owned(),
            kind,
            reason: item.reason.clone(),
            setting: item.setting.clone(),
            record_ids: Vec::new(),
            vendor: vendor.clone(),
            link: None,
            link_expires_at: None,
            link_note: None,
            link_minted_at: None,
        });
        row.record_ids.push(record.id.clone());
        for (key, value) in vendor {
            row.vendor.entry(key).or_insert(value);
        }
    }
    rows.into_values().collect()
}

#[cfg(test)]
mod tests;
