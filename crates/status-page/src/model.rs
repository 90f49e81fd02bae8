//! What the page shows, as data: the caller (`authport status --html`) fills it from the
//! journal and the event store; [`crate::render`] only formats it.

use std::collections::{BTreeMap, BTreeSet};

use authport_core::Health;
use serde::{Deserialize, Serialize};

/// Counts of records by health. A map, so that each health appears once and in
/// [`Health`]'s order.
pub type HealthCounts = BTreeMap<Health, u64>;

/// One status page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusPage {
    /// The page's heading and the browser tab's title, e.g. "Migration to Apideck".
    pub title: String,
    /// When the numbers were read, already formatted for people (e.g. "5 December 2026, 09:00 UTC").
    pub generated_at: String,
    /// The target platform's name as the operator knows it (e.g. "Apideck").
    pub provider: String,
    /// Every record by health.
    pub totals: HealthCounts,
    /// Why records failed (import failures and unusable connections), most frequent first.
    pub failures_by_reason: Vec<ReasonCount>,
    /// One row per service (e.g. "salesforce").
    pub services: Vec<ServiceRow>,
    /// Health over time, oldest first (from the event store).
    pub history: Vec<HistoryPoint>,
    /// The connections whose owner must connect again.
    pub reconnect: Vec<ReconnectRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasonCount {
    /// In plain words (e.g. "the imported token could not be refreshed").
    pub reason: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRow {
    pub service: String,
    pub counts: HealthCounts,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPoint {
    /// The day or time the counts describe, formatted for people (e.g. "2026-12-01").
    pub label: String,
    pub counts: HealthCounts,
}

/// One connection to make again. Owner names are end-user data: the page escapes them. Its
/// `Debug` says whether a link is there, never the link (a bearer capability).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconnectRow {
    pub owner_name: String,
    pub owner_id: String,
    pub service: String,
    /// Why, in plain words.
    pub reason: String,
    /// A durable broker link (`--broker`); only `http(s)` links become links on the page.
    pub link: Option<String>,
}

impl std::fmt::Debug for ReconnectRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconnectRow")
            .field("owner_name", &self.owner_name)
            .field("owner_id", &self.owner_id)
            .field("service", &self.service)
            .field("reason", &self.reason)
            .field("link", &self.link.as_ref().map(|_| "[link]"))
            .finish()
    }
}

impl StatusPage {
    /// Every record.
    pub fn total(&self) -> u64 {
        sum(&self.totals)
    }

    /// Records whose connection works ([`Health::is_usable`]).
    pub fn working(&self) -> u64 {
        usable(&self.totals)
    }

    /// Distinct people (owner ids) in the reconnect list.
    pub fn people_to_reconnect(&self) -> usize {
        let owners: BTreeSet<&str> = self
            .reconnect
            .iter()
            .map(|row| row.owner_id.as_str())
            .collect();
        owners.len()
    }

    /// The healths that have a count somewhere in `rows`, in [`Health`]'s order: the columns
    /// of a table (a health no row has would be a column of zeros).
    pub(crate) fn columns<'a>(rows: impl Iterator<Item = &'a HealthCounts>) -> Vec<Health> {
        let present: BTreeSet<Health> = rows
            .flat_map(|counts| counts.iter())
            .filter(|(_, count)| **count > 0)
            .map(|(health, _)| *health)
            .collect();
        present.into_iter().collect()
    }
}

pub(crate) fn sum(counts: &HealthCounts) -> u64 {
    counts.values().sum()
}

pub(crate) fn usable(counts: &HealthCounts) -> u64 {
    counts
        .iter()
        .filter(|(health, _)| health.is_usable())
        .map(|(_, count)| count)
        .sum()
}

/// A health's name for people who do not read the docs (the page's column and row headers).
pub fn label(health: Health) -> &'static str {
    match health {
        Health::Healthy => "Working",
        Health::PendingRefresh => "Waiting for first refresh",
        Health::RefreshFailed => "Refresh failed",
        Health::Revoked => "Revoked",
        Health::Deleted => "Deleted",
        Health::Missing => "Missing",
        Health::NotImported => "Not imported",
        Health::RolledBack => "Rolled back",
    }
}

/// Made-up numbers for the docs' screenshot and the tests: every section filled and consistent
/// (the services, the last day and the reconnect list add up to the totals), and names that
/// need escaping.
pub fn example() -> StatusPage {
    use Health::*;
    let counts = |pairs: &[(Health, u64)]| pairs.iter().copied().collect::<HealthCounts>();
    let totals = counts(&[
        (Healthy, 1240),
        (PendingRefresh, 2),
        (RefreshFailed, 4),
        (Revoked, 1),
        (NotImported, 3),
    ]);
    let history = vec![
        ("1 Dec", counts(&[(NotImported, 1250)])),
        ("2 Dec", counts(&[(Healthy, 1180), (NotImported, 70)])),
        (
            "3 Dec",
            counts(&[(Healthy, 1231), (RefreshFailed, 2), (NotImported, 17)]),
        ),
        (
            "4 Dec",
            counts(&[
                (Healthy, 1238),
                (PendingRefresh, 3),
                (RefreshFailed, 3),
                (NotImported, 6),
            ]),
        ),
        ("5 Dec", totals.clone()),
    ];
    let reason = |health: Health, count: u64| ReasonCount {
        reason: health.reason().to_owned(),
        count,
    };
    let reconnect_row =
        |owner_name: &str, owner_id: &str, service: &str, health: Health| ReconnectRow {
            owner_name: owner_name.to_owned(),
            owner_id: owner_id.to_owned(),
            service: service.to_owned(),
            reason: health.reason().to_owned(),
            link: Some(format!("https://links.example.com/r/{owner_id}-{service}")),
        };
    StatusPage {
        title: "Migration to Apideck".to_owned(),
        generated_at: "5 December 2026, 09:00 UTC".to_owned(),
        provider: "Apideck".to_owned(),
        totals,
        failures_by_reason: vec![
            reason(RefreshFailed, 4),
            reason(NotImported, 3),
            reason(Revoked, 1),
        ],
        services: vec![
            ServiceRow {
                service: "salesforce".to_owned(),
                counts: counts(&[
                    (Healthy, 702),
                    (PendingRefresh, 1),
                    (RefreshFailed, 3),
                    (NotImported, 2),
                ]),
            },
            ServiceRow {
                service: "hubspot".to_owned(),
                counts: counts(&[
                    (Healthy, 432),
                    (PendingRefresh, 1),
                    (RefreshFailed, 1),
                    (Revoked, 1),
                    (NotImported, 1),
                ]),
            },
            ServiceRow {
                service: "google-drive".to_owned(),
                counts: counts(&[(Healthy, 106)]),
            },
        ],
        history: history
            .into_iter()
            .map(|(label, counts)| HistoryPoint {
                label: label.to_owned(),
                counts,
            })
            .collect(),
        reconnect: vec![
            reconnect_row(
                "Zoë O'Brien & Partners <Sales>",
                "cust-0042",
                "salesforce",
                RefreshFailed,
            ),
            reconnect_row(
                "Zoë O'Brien & Partners <Sales>",
                "cust-0042",
                "hubspot",
                Revoked,
            ),
            reconnect_row("Jean-Luc Émile", "cust-0107", "salesforce", RefreshFailed),
            reconnect_row("Priya Raman", "cust-0215", "salesforce", RefreshFailed),
            reconnect_row("Acme Widgets Ltd", "cust-0311", "hubspot", NotImported),
            reconnect_row("Acme Widgets Ltd", "cust-0311", "salesforce", NotImported),
            reconnect_row("Tomás García", "cust-0388", "hubspot", RefreshFailed),
            reconnect_row("Nordlicht GmbH", "cust-0420", "salesforce", NotImported),
        ],
    }
}
