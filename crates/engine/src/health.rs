//! The one health taxonomy of an imported record, shared by `status`, `verify` and `reconnect`:
//! the [`Health`] words, which of them count as usable ([`Health::is_usable`]), which make
//! `status` exit 5 ([`Health::is_problem`]), and the pure [`classify`] from a live read-back and
//! the latest stored webhook event. Kept in one module so it can move into the core as one
//! piece (the core `Health` type of issue 18).

pub use authport_core::Health;
use authport_core::VerifyReport;
use serde_json::Value;

/// The latest stored webhook event of one imported object, as `status::EventView` hands it over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatestEvent {
    /// The vendor's event type, e.g. `vault.connection.token_refresh.failed`.
    pub event_type: String,
    /// The connection's health the event carried, if any.
    pub health: Option<String>,
    /// When the event happened (`None`: stored undated by an older receiver).
    pub occurred_at: Option<chrono::DateTime<chrono::Utc>>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
