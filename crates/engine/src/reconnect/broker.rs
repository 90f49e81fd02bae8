//! `reconnect --links --broker URL`: one stable broker link per `end_user` row instead of a
//! vendor link. Nothing is sent to the vendor: the link is signed with the links store's key
//! ([`crate::links_store`]) and names the row's provider, owner, service, reason and expiry.
//! The expiry is the one first given to the row while it is still valid, else now + ttl, so a
//! re-run writes the same links until they expire. `config_fix` rows get no link, nor do the
//! rows of an owner `authport links revoke` covers (the link would answer 410).

use std::path::PathBuf;
use std::time::Duration;

use authport_core::Health;
use authport_links::{LinkClaims, link_url, sign};

use super::{END_USER, ReconnectSummary, RowWriter, WorkRow};
use crate::links_store::{IssuedLink, LinksStore};

/// What a broker link's row says about it.
pub const BROKER_NOTE: &str =
    "opens a page; the vendor's link is made when the person presses Reconnect";

/// The note of a row whose owner's links `authport links revoke` revoked: no link.
pub const REVOKED_NOTE: &str = "no link: the owner's broker links are revoked (authport links revoke); \
     new links need a new key (docs/links.md)";

/// `--broker URL [--link-ttl]`, and the state the links store sits beside.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// The broker's public address (`link_url` checks it: https, or http to loopback).
    pub url: String,
    /// How long a new link lasts.
    pub ttl: Duration,
    /// The `--state` file (the links store is `<state>.links`).
    pub state_path: PathBuf,
}

/// The expiry of a row's link: the stored one while valid at `now`, else `now + ttl`. Pure.
pub(super) fn link_expiry(stored: Option<i64>, now: i64, ttl: Duration) -> anyhow::Result<i64> {
    match stored {
        Some(expires_at) if expires_at > now => Ok(expires_at),
        _ => authport_links::expiry(now, ttl)
            .ok_or_else(|| anyhow::anyhow!("--link-ttl is too long: the expiry overflows")),
    }
}

/// The reason of a row's status (`refresh_failed`, `not_imported`, ...). Pure.
fn reason_of(status: &str) -> anyhow::Result<Health> {
    serde_json::from_value(serde_json::Value::String(status.to_owned()))
        .map_err(|_| anyhow::anyhow!("worklist status `{status}` is not a health"))
}

/// Gives every `end_user` row its broker link (recorded in the links store before the row is
/// written) and writes the rows in order.
pub(super) fn write_broker_links(
    provider: &str,
    broker: &BrokerOptions,
    rows: &mut [WorkRow],
    summary: &mut ReconnectSummary,
    writer: &mut RowWriter<'_>,
) -> anyhow::Result<()> {
    // Refused before anything is stored (the runner checks it too, for exit 2).
    link_url(&broker.url, "x").map_err(|e| anyhow::anyhow!("--broker: {e}"))?;
    let store = LinksStore::open(&broker.state_path)?;
    let key = store.key()?;
    let revocations = store.revocations()?;
    let now = chrono::Utc::now();
    for row in rows.iter_mut() {
        if row.kind == END_USER {
            let stored = store.issued(provider, &row.owner_id, &row.service)?;
            let claims = LinkClaims {
                provider: provider.to_owned(),
                owner_id: row.owner_id.clone(),
                service: row.service.clone(),
                reason: reason_of(&row.status)?,
                expires_at: link_expiry(
                    stored.map(|s| s.claims.expires_at),
                    now.timestamp(),
                    broker.ttl,
                )?,
            };
            if authport_links::is_revoked(&revocations, &claims) {
                // It would answer 410: say so rather than write a dead link.
                row.link_note = Some(REVOKED_NOTE.to_owned());
                writer.row(row)?;
                continue;
            }
            store.issue(
                &IssuedLink {
                    claims: claims.clone(),
                    owner_name: row.owner_name.clone(),
                    owner_email: row.owner_email.clone(),
                    vendor_ids: row.vendor.clone(),
                },
                now,
            )?;
            let link = link_url(&broker.url, &sign(&key, &claims))
                .map_err(|e| anyhow::anyhow!("--broker: {e}"))?;
            row.link = Some(link);
            row.link_expires_at = chrono::DateTime::from_timestamp(claims.expires_at, 0)
                .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            row.link_note = Some(BROKER_NOTE.to_owned());
            summary.broker_links += 1;
        }
        writer.row(row)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_stored_expiry_is_kept_and_an_expired_one_renewed() {
        let ttl = Duration::from_secs(14 * 86_400);
        assert_eq!(link_expiry(None, 1_000, ttl).unwrap(), 1_000 + 14 * 86_400);
        assert_eq!(link_expiry(Some(5_000), 1_000, ttl).unwrap(), 5_000);
        assert_eq!(
            link_expiry(Some(1_000), 1_000, ttl).unwrap(),
            1_000 + 14 * 86_400
        );
        assert!(link_expiry(None, i64::MAX, ttl).is_err());
    }

    #[test]
    fn a_row_status_is_the_links_reason() {
        assert_eq!(reason_of("refresh_failed").unwrap(), Health::RefreshFailed);
        assert_eq!(reason_of("not_imported").unwrap(), Health::NotImported);
        assert!(reason_of("nonsense").is_err());
    }
}
