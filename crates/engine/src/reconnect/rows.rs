//! Writing the worklist's rows: JSON Lines, or CSV with a header row and cells a spreadsheet
//! will not run as formulas.

use std::borrow::Cow;
use std::io::Write;

use serde_json::{Map, Value, json};

use super::{Destination, WorkRow};

pub(super) const CSV_HEADER: [&str; 14] = [
    "owner_id",
    "owner_name",
    "owner_email",
    "service",
    "status",
    "reason",
    "record_ids",
    "vendor_ids",
    "link",
    "link_expires_at",
    "link_note",
    "link_minted_at",
    "kind",
    "setting",
];

/// A CSV cell a spreadsheet will not run as a formula: a cell starting with `=`, `+`, `-`,
/// `@`, a tab or a carriage return gets a leading `'` (OWASP's rule for CSV injection). Pure.
pub fn csv_cell(text: &str) -> Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// `key=value` pairs joined by `;`, for a mail-merge column. Pure.
fn flat_ids(vendor: &Map<String, Value>) -> String {
    vendor
        .iter()
        .map(|(key, value)| match value {
            Value::String(text) => format!("{key}={text}"),
            other => format!("{key}={other}"),
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Writes rows as JSON Lines or CSV (a header row first), one row at a time.
pub(super) struct RowWriter<'a> {
    csv: bool,
    pub(super) out: Destination<'a>,
}

impl<'a> RowWriter<'a> {
    pub(super) fn new(csv: bool, mut out: Destination<'a>) -> anyhow::Result<Self> {
        if csv {
            out.write_all(&csv_line(&CSV_HEADER.map(str::to_owned))?)?;
        }
        Ok(Self { csv, out })
    }

    pub(super) fn row(&mut self, row: &WorkRow) -> anyhow::Result<()> {
        let line = if self.csv {
            let opt = |v: &Option<String>| v.clone().unwrap_or_default();
            let cells = [
                row.owner_id.clone(),
                opt(&row.owner_name),
                opt(&row.owner_email),
                row.service.clone(),
                row.status.clone(),
                row.reason.clone(),
                row.record_ids.join(" "),
                flat_ids(&row.vendor),
                opt(&row.link),
                opt(&row.link_expires_at),
                opt(&row.link_note),
                opt(&row.link_minted_at),
                row.kind.to_owned(),
                opt(&row.setting),
            ]
            .map(|cell| csv_cell(&cell).into_owned());
            csv_line(&cells)?
        } else {
            let mut text = serde_json::to_string(&json!(row))?;
            text.push('\n');
            text.into_bytes()
        };
        self.out.write_all(&line)?;
        Ok(())
    }
}

/// One CSV record (quoted as needed), with its line end.
fn csv_line(cells: &[String]) -> anyhow::Result<Vec<u8>> {
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    writer.write_record(cells)?;
    writer
        .into_inner()
        .map_err(|e| anyhow::anyhow!("{}", e.error()))
}

/// Writes the rows as JSON Lines or CSV (with a header row), without minting.
pub fn write_rows(rows: &[WorkRow], csv: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut writer = RowWriter::new(csv, Destination::Writer(out))?;
    for row in rows {
        writer.row(row)?;
    }
    writer.out.commit()?;
    Ok(())
}
