//! How `status` (and `verify`, `reconnect`) merge what is known of one imported record: the
//! provider's typed reading of the live read-back ([`VerifyReport::health`]) and the latest
//! stored webhook event's typed health, each with its time. Pure, and typed only: every vendor
//! word was mapped to a [`Health`] by its provider (in `verify` and in its webhook source).

pub use authport_core::Health;
use authport_core::VerifyReport;
use chrono::{DateTime, Utc};

/// The latest stored webhook event of one imported object, as `status::EventView` hands it over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatestEvent {
    /// The vendor's word for the event, for display only (`last_event` in `status`'s detail).
    pub kind: String,
    /// What the event said of the connection's health (`None`: nothing).
    pub health: Option<Health>,
    /// When the event happened: the vendor's signed time, else (a vendor that sends none) when
    /// it arrived; `None` for an event an older receiver stored undated.
    pub at: Option<DateTime<Utc>>,
}

/// The [`Health`] of an imported object from its live read-back, begun at `read_at`, and its
/// latest stored event. Pure.
///
/// A live read-back that finds the object usable outranks an event that happened before it (or
/// is undated): the read-back is the newer word. Otherwise an event can only make things worse,
/// in this order: a deletion explains a missing object (and outranks anything), a missing object
/// stays missing, a revocation (live or event) outranks a failed refresh (live or event), which
/// outranks `pending_refresh` (what a connection whose refresh failed shows while the platform
/// keeps retrying). An event saying healthy (a recovery) never outranks the read-back.
pub fn classify(
    live: &VerifyReport,
    event: Option<&LatestEvent>,
    read_at: DateTime<Utc>,
) -> Health {
    merge(live.health, event, read_at)
}

/// [`classify`] on the live health alone.
pub fn merge(live: Health, event: Option<&LatestEvent>, read_at: DateTime<Utc>) -> Health {
    let newer = event.filter(|e| e.at.is_some_and(|at| at >= read_at));
    if live.is_usable() && newer.is_none() {
        return live;
    }
    match (live, event.and_then(|e| e.health)) {
        (_, Some(Health::Deleted)) => Health::Deleted,
        (Health::Missing | Health::Deleted, _) => live,
        (Health::Revoked, _) | (_, Some(Health::Revoked)) => Health::Revoked,
        (Health::RefreshFailed, _) | (_, Some(Health::RefreshFailed)) => Health::RefreshFailed,
        (live, _) => live,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        crate::events::parse_stamp(text).unwrap()
    }

    fn event(health: Health, when: Option<&str>) -> LatestEvent {
        LatestEvent {
            kind: format!("vendor.{}", health.as_str()),
            health: Some(health),
            at: when.map(at),
        }
    }

    /// Events dated after a read-back begun before every event (as classified before dates
    /// counted), so the event is never outranked for being older.
    fn after(live: Health, event_health: Option<Health>) -> Health {
        let event = event_health.map(|h| event(h, Some("2026-11-25T10:00:00Z")));
        merge(live, event.as_ref(), at("2026-11-25T09:00:00Z"))
    }

    #[test]
    fn a_usable_live_read_back_outranks_an_event_that_happened_before_it() {
        let read_at = at("2026-11-25T10:00:00Z");
        for bad in [Health::RefreshFailed, Health::Revoked, Health::Deleted] {
            let before = event(bad, Some("2026-11-25T09:59:00Z"));
            let undated = event(bad, None);
            let later = event(bad, Some("2026-11-25T10:00:01Z"));
            assert_eq!(
                merge(Health::Healthy, Some(&before), read_at),
                Health::Healthy
            );
            assert_eq!(
                merge(Health::Healthy, Some(&undated), read_at),
                Health::Healthy
            );
            assert_eq!(
                merge(Health::PendingRefresh, Some(&before), read_at),
                Health::PendingRefresh
            );
            assert_eq!(merge(Health::Healthy, Some(&later), read_at), bad);
        }
        // A read-back that finds the object gone or unusable is not outranked by anything older.
        let deleted_before = event(Health::Deleted, Some("2026-11-25T09:59:00Z"));
        assert_eq!(
            merge(Health::Missing, Some(&deleted_before), read_at),
            Health::Deleted
        );
    }

    #[test]
    fn each_live_health_and_event_gets_the_operator_word() {
        use Health::*;
        let cases = [
            // (live, latest event's health) -> status
            ((Healthy, None), Healthy),
            ((PendingRefresh, None), PendingRefresh),
            ((RefreshFailed, None), RefreshFailed),
            ((PendingRefresh, Some(RefreshFailed)), RefreshFailed),
            ((Healthy, Some(RefreshFailed)), RefreshFailed),
            ((Revoked, None), Revoked),
            ((Revoked, Some(RefreshFailed)), Revoked),
            ((RefreshFailed, Some(Revoked)), Revoked),
            ((Missing, None), Missing),
            ((Missing, Some(Deleted)), Deleted),
            ((Missing, Some(RefreshFailed)), Missing),
            ((Healthy, Some(Deleted)), Deleted),
            // A recovery or a creation never outranks the read-back.
            ((RefreshFailed, Some(Healthy)), RefreshFailed),
            ((Healthy, Some(PendingRefresh)), Healthy),
            ((Revoked, Some(Healthy)), Revoked),
        ];
        for ((live, event_health), expected) in cases {
            assert_eq!(
                after(live, event_health),
                expected,
                "{live:?} {event_health:?}"
            );
        }
        // An event that says nothing of health leaves the read-back's word.
        let silent = LatestEvent {
            kind: "vendor.created".to_owned(),
            health: None,
            at: Some(at("2026-11-25T10:00:00Z")),
        };
        assert_eq!(
            merge(Healthy, Some(&silent), at("2026-11-25T09:00:00Z")),
            Healthy
        );
    }

    #[test]
    fn classify_reads_the_providers_typed_health_not_its_words() {
        let live = VerifyReport {
            health: Health::RefreshFailed,
            // Words that once meant other things: only `health` counts.
            status: "usable".to_owned(),
            detail: serde_json::Map::new(),
        };
        assert_eq!(
            classify(&live, None, at("2026-11-25T09:00:00Z")),
            Health::RefreshFailed
        );
    }

    #[test]
    fn only_lost_connections_need_a_reconnect() {
        let needing: Vec<&str> = Health::ALL
            .into_iter()
            .filter(|h| h.needs_reconnect())
            .map(Health::as_str)
            .collect();
        assert_eq!(needing, ["refresh_failed", "revoked", "deleted"]);
    }

    /// Issue 21 item 6: one rule for `verify`'s `healthy` and `status`'s exit code.
    #[test]
    fn pending_refresh_is_usable_and_only_imported_unusable_records_are_problems() {
        let words = |keep: fn(Health) -> bool| -> Vec<&str> {
            Health::ALL
                .into_iter()
                .filter(|h| keep(*h))
                .map(Health::as_str)
                .collect()
        };
        assert_eq!(words(Health::is_usable), ["healthy", "pending_refresh"]);
        assert_eq!(
            words(Health::is_problem),
            ["refresh_failed", "revoked", "deleted", "missing"]
        );
    }
}
