//! `status --html`: the status page's model ([`StatusPage`]) from the same status lines
//! `status` prints, the input's owners and services, the event store's history and, with a
//! broker, the links `reconnect --links --broker` issued. [`build`] is pure; `status` gathers
//! its inputs ([`input_records`], [`issued_links`], the [`super::EventView`]'s history) and
//! [`write_page`] writes the file.
//!
//! Health over time, one point per day from the day of the first stored event to today: a
//! record counts as it is now (the live read-back) unless the event store has a health event of
//! it after that day; then it counts as its latest health event up to that day, or as working
//! before its first one (an event reports a change from the connection the import made). A
//! store with no health event gives no history (the page says so). Records whose read-back
//! failed are in no count but in "failures by reason".

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::Path;

use authport_core::Health;
use authport_status_page::{
    HealthCounts, HistoryPoint, ReasonCount, ReconnectRow, ServiceRow, StatusPage,
};
use chrono::{DateTime, NaiveDate, Utc};

use super::RecordStatus;
use crate::links_store::{LinksStore, links_path};

/// At most this many days of history (the oldest are left out).
const MOST_DAYS: usize = 60;

/// The service of a record when the input does not have it.
const UNKNOWN_SERVICE: &str = "unknown (not in --input)";

/// The rows `reconnect --links --broker` gave a link, by (owner id, service); the link, signed
/// again, while it is valid.
pub type IssuedRows = BTreeMap<(String, String), Option<String>>;

/// What the input says of a record: its owner and service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordInfo {
    pub owner_id: String,
    pub owner_name: Option<String>,
    pub service: String,
}

/// Everything the page shows besides the status lines. Its `Debug` leaves out the links (each
/// lets whoever has it reconnect the owner's account until it expires).
#[derive(Clone)]
pub struct PageData {
    /// The provider's name (`apideck`); the page shows it capitalised.
    pub provider: String,
    pub now: DateTime<Utc>,
    /// By record id, from the input.
    pub records: BTreeMap<String, RecordInfo>,
    /// Each record's health events (when it happened, what it said), from the event store.
    pub events: BTreeMap<String, Vec<(DateTime<Utc>, Health)>>,
    /// With `--broker` and a links store: the rows `reconnect --links --broker` gave a link,
    /// by (owner id, service), with the link while it is valid (not expired, not revoked).
    /// `None`: all records never imported are listed, none with a link.
    pub links: Option<IssuedRows>,
}

impl std::fmt::Debug for PageData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageData")
            .field("provider", &self.provider)
            .field("now", &self.now)
            .field("records", &self.records.len())
            .field("events", &self.events.len())
            .field("links", &self.links.as_ref().map(BTreeMap::len))
            .finish()
    }
}

/// The page's model. Pure.
pub fn build(lines: &[RecordStatus], data: &PageData) -> StatusPage {
    let provider = capitalised(&data.provider);
    let mut totals = HealthCounts::new();
    let mut services: BTreeMap<&str, HealthCounts> = BTreeMap::new();
    for line in lines {
        let Some(health) = line.health else { continue };
        *totals.entry(health).or_default() += 1;
        let service = data
            .records
            .get(&line.record_id)
            .map_or(UNKNOWN_SERVICE, |r| r.service.as_str());
        *services
            .entry(service)
            .or_default()
            .entry(health)
            .or_default() += 1;
    }
    let mut services: Vec<ServiceRow> = services
        .into_iter()
        .map(|(service, counts)| ServiceRow {
            service: service.to_owned(),
            counts,
        })
        .collect();
    // The biggest services first; a stable order among equals.
    services.sort_by_key(|row| std::cmp::Reverse(row.counts.values().sum::<u64>()));
    StatusPage {
        title: format!("Migration to {provider}"),
        generated_at: data.now.format("%-d %B %Y, %H:%M UTC").to_string(),
        provider,
        totals,
        failures_by_reason: failures(lines),
        services,
        history: history(lines, &data.events, data.now.date_naive()),
        reconnect: reconnect_rows(lines, data),
    }
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Records not working (rolled back ones were removed on purpose), and read-backs that failed,
/// by reason, most frequent first. Pure.
fn failures(lines: &[RecordStatus]) -> Vec<ReasonCount> {
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for line in lines {
        let reason = match line.health {
            Some(health) if health.is_usable() || health == Health::RolledBack => continue,
            Some(health) => health.reason().to_owned(),
            None => {
                // "transient: ..." -> the kind only: the message may name vendor details.
                let kind = line.error.as_deref().and_then(|e| e.split(':').next());
                format!(
                    "the connection could not be read back ({})",
                    kind.unwrap_or("error")
                )
            }
        };
        *reasons.entry(reason).or_default() += 1;
    }
    let mut reasons: Vec<ReasonCount> = reasons
        .into_iter()
        .map(|(reason, count)| ReasonCount { reason, count })
        .collect();
    reasons.sort_by_key(|r| std::cmp::Reverse(r.count));
    reasons
}

/// One row per owner and service to connect again (as `reconnect` groups them): records that
/// need a reconnect, and records never imported. When `reconnect --broker` ran, it told which
/// records never imported only the person can fix (it gave them a link; a re-run of the import
/// or a setting fixes the others): only those are listed. Pure.
fn reconnect_rows(lines: &[RecordStatus], data: &PageData) -> Vec<ReconnectRow> {
    let mut rows: BTreeMap<(String, String), ReconnectRow> = BTreeMap::new();
    for line in lines {
        let Some(health) = line
            .health
            .filter(|h| h.needs_reconnect() || *h == Health::NotImported)
        else {
            continue;
        };
        let (owner_id, owner_name, service) = match data.records.get(&line.record_id) {
            Some(info) => (
                info.owner_id.clone(),
                info.owner_name
                    .clone()
                    .unwrap_or_else(|| info.owner_id.clone()),
                info.service.clone(),
            ),
            None => (
                line.record_id.clone(),
                format!("record {}", line.record_id),
                UNKNOWN_SERVICE.to_owned(),
            ),
        };
        let key = (owner_id.clone(), service.clone());
        let issued = data.links.as_ref().map(|links| links.get(&key));
        if health == Health::NotImported && issued.is_some_and(|row| row.is_none()) {
            continue;
        }
        let link = issued.flatten().cloned().flatten();
        rows.entry(key).or_insert_with(|| ReconnectRow {
            owner_name,
            owner_id,
            service,
            reason: health.reason().to_owned(),
            link,
        });
    }
    rows.into_values().collect()
}

/// Health over time (module docs). Pure.
fn history(
    lines: &[RecordStatus],
    events: &BTreeMap<String, Vec<(DateTime<Utc>, Health)>>,
    today: NaiveDate,
) -> Vec<HistoryPoint> {
    let Some(first) = events
        .values()
        .flatten()
        .map(|(at, _)| at.date_naive())
        .min()
    else {
        return Vec::new();
    };
    let first = first.min(today);
    let days: Vec<NaiveDate> = first.iter_days().take_while(|day| *day <= today).collect();
    let days = &days[days.len().saturating_sub(MOST_DAYS)..];
    days.iter()
        .map(|day| {
            let mut counts = HealthCounts::new();
            for line in lines {
                let Some(now) = line.health else { continue };
                let health = if *day == today {
                    now
                } else {
                    let record_events = events.get(&line.record_id).map_or(&[][..], Vec::as_slice);
                    health_on(now, record_events, *day)
                };
                *counts.entry(health).or_default() += 1;
            }
            HistoryPoint {
                label: day.format("%-d %b").to_string(),
                counts,
            }
        })
        .collect()
}

/// A record's health at the end of `day` (module docs). Pure.
fn health_on(now: Health, events: &[(DateTime<Utc>, Health)], day: NaiveDate) -> Health {
    if !events.iter().any(|(at, _)| at.date_naive() > day) {
        return now;
    }
    events
        .iter()
        .filter(|(at, _)| at.date_naive() <= day)
        .max_by_key(|(at, _)| *at)
        .map_or(Health::Healthy, |(_, health)| *health)
}

/// Owners and services of the input's records (unreadable records skipped: `validate` reports
/// them).
pub fn input_records(input: &Path) -> anyhow::Result<BTreeMap<String, RecordInfo>> {
    let reader = authport_core::input::InputReader::open(input, Utc::now())
        .map_err(|e| anyhow::anyhow!("cannot read input file {}: {e}", input.display()))?;
    Ok(reader
        .filter_map(|item| item.result.ok())
        .map(|record| {
            let info = RecordInfo {
                owner_id: record.owner.id.clone(),
                owner_name: record.owner.name.clone(),
                service: record.service.clone(),
            };
            (record.id, info)
        })
        .collect())
}

/// Which of these owners and services `reconnect --links --broker` gave a link, and that link
/// while it is valid (not expired, not revoked), signed again with the store's key: the same
/// link the worklist holds. Nothing is issued here, and no store is created: without
/// `<state>.links`, `None`.
pub fn issued_links(
    state_path: &Path,
    provider: &str,
    broker: &str,
    wanted: &BTreeSet<(String, String)>,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<IssuedRows>> {
    let mut links = IssuedRows::new();
    if !links_path(state_path).is_file() {
        return Ok(None);
    }
    let store = LinksStore::open(state_path)?;
    let key = store.key()?;
    let revocations = store.revocations()?;
    for (owner_id, service) in wanted {
        let Some(issued) = store.issued(provider, owner_id, service)? else {
            continue;
        };
        let valid = !issued.claims.is_expired_at(now.timestamp())
            && !authport_links::is_revoked(&revocations, &issued.claims);
        let link = if valid {
            let token = authport_links::sign(&key, &issued.claims);
            let link = authport_links::link_url(broker, &token)
                .map_err(|e| anyhow::anyhow!("--broker: {e}"))?;
            Some(link)
        } else {
            None
        };
        links.insert((owner_id.clone(), service.clone()), link);
    }
    Ok(Some(links))
}

/// The (owner id, service) pairs the reconnect list will show. Pure.
pub fn reconnect_keys(
    lines: &[RecordStatus],
    records: &BTreeMap<String, RecordInfo>,
) -> BTreeSet<(String, String)> {
    lines
        .iter()
        .filter(|line| {
            line.health
                .is_some_and(|h| h.needs_reconnect() || h == Health::NotImported)
        })
        .filter_map(|line| records.get(&line.record_id))
        .map(|info| (info.owner_id.clone(), info.service.clone()))
        .collect()
}

/// Writes the page to `path`: created 0600 (an existing file is truncated and set to 0600),
/// never through a symbolic link, synced.
pub fn write_page(path: &Path, page: &StatusPage) -> anyhow::Result<()> {
    let html = authport_status_page::render(page);
    // A refusal (a symbolic link) stays one, with its own words: the runner exits 2 for it.
    crate::files::refuse_symlink("status page", path)?;
    let mut file = crate::files::create_private("status page", path)
        .map_err(|e| anyhow::anyhow!("cannot write the status page {}: {e:#}", path.display()))?;
    #[cfg(unix)]
    if file.metadata()?.is_file() {
        use std::os::unix::fs::PermissionsExt as _;
        // Owner names (and broker links): private even when the file was there before.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(html.as_bytes())?;
    file.sync_data()?;
    Ok(())
}

#[cfg(test)]
#[path = "page_tests.rs"]
mod tests;
