//! `reconnect --links` without a broker: vendor links minted on the spot, one per row (or per
//! owner when the vendor's link covers all of an owner's services), each noted in the state's
//! memo after it is on disk, so a re-run does not mint twice unless `force_links`.

use std::collections::BTreeSet;

use authport_core::AuthImporter;
use serde_json::{Map, Value};

use super::rows::RowWriter;
use super::{END_USER, ReconnectOptions, ReconnectSummary, WorkRow, links_of};
use crate::maintenance::{CallContext, MaintenanceOptions};
use crate::state::StateStore;

/// The memo namespace of minted links (value: when it was minted, RFC 3339).
const MINTED: &str = "reconnect_link_minted";

/// The memo key of one mint: the owner and service, or (one link per owner) the owner and the
/// set of vendor ids the link covers, so a link never stands in for services it was not
/// minted for.
pub(super) fn mint_key(provider: &str, one_link_per_owner: bool, rows: &[&WorkRow]) -> String {
    let owner = &rows[0].owner_id;
    if !one_link_per_owner {
        return format!("{provider}\u{1f}{owner}\u{1f}{}", rows[0].service);
    }
    let covered: BTreeSet<String> = rows
        .iter()
        .map(|row| Value::Object(row.vendor.clone()).to_string())
        .collect();
    let covered: Vec<String> = covered.into_iter().collect();
    format!("{provider}\u{1f}{owner}\u{1f}{}", covered.join("\u{1f}"))
}

pub(super) async fn mint_links(
    importer: &dyn AuthImporter,
    state: &StateStore,
    options: &MaintenanceOptions,
    reconnect: &ReconnectOptions,
    rows: &mut [WorkRow],
    summary: &mut ReconnectSummary,
    writer: &mut RowWriter<'_>,
) -> anyhow::Result<()> {
    let Some(links) = links_of(&options.provider, importer) else {
        anyhow::bail!("provider {} cannot mint reconnect links", options.provider);
    };
    let memo = state.memo();
    let context = CallContext::new(options);
    let one_link_per_owner = links.one_link_per_owner();
    // Groups of row indexes that share one link, in row order (rows are sorted by owner, so
    // an owner's rows are adjacent and the file keeps the row order).
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        if row.kind != END_USER {
            continue;
        }
        let joins_last = groups.last().is_some_and(|last| {
            let first = &rows[last[0]];
            first.owner_id == row.owner_id && (one_link_per_owner || first.service == row.service)
        });
        match groups.last_mut() {
            Some(last) if joins_last => last.push(index),
            _ => groups.push(vec![index]),
        }
    }
    // Configuration fixes get no link: written first, as they are.
    for row in rows.iter().filter(|row| row.kind != END_USER) {
        writer.row(row)?;
    }
    for indexes in groups {
        let memo_key = mint_key(
            &options.provider,
            one_link_per_owner,
            &indexes.iter().map(|&i| &rows[i]).collect::<Vec<_>>(),
        );
        if !reconnect.force_links
            && let Some(when) = memo.get(MINTED, &memo_key)
        {
            summary.links_already_minted += 1;
            for &index in &indexes {
                rows[index].link_minted_at = Some(when.clone());
                writer.row(&rows[index])?;
            }
            continue;
        }
        let first = &rows[indexes[0]];
        let owner = authport_core::Owner {
            id: first.owner_id.clone(),
            name: first.owner_name.clone(),
            email: first.owner_email.clone(),
        };
        let ids: Vec<Map<String, Value>> =
            indexes.iter().map(|&i| rows[i].vendor.clone()).collect();
        match context.call(|| links.mint(&owner, &ids)).await {
            Ok(link) => {
                let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                for &index in &indexes {
                    rows[index].link = Some(link.url.clone());
                    rows[index].link_expires_at = Some(link.expires_at.clone());
                    rows[index].link_note = Some(link.note.clone());
                    rows[index].link_minted_at = Some(now.clone());
                    writer.row(&rows[index])?;
                }
                // The link is on disk before the mint is noted: a failed write above leaves
                // it un-noted, and the next run mints again.
                writer.out.commit()?;
                memo.put(MINTED, &memo_key, &now);
                summary.links_minted += 1;
            }
            Err(error) => {
                summary.link_errors += 1;
                let note = format!("no link: {}", error.message());
                for &index in &indexes {
                    rows[index].link_note = Some(note.clone());
                    writer.row(&rows[index])?;
                }
            }
        }
    }
    Ok(())
}
