use super::*;
use serde_json::Map;

fn line(id: &str, health: Option<Health>) -> RecordStatus {
    RecordStatus {
        record_id: id.to_owned(),
        health,
        target: Some(authport_core::TargetRef(Map::new())),
        live_status: None,
        detail: Map::new(),
        error: health
            .is_none()
            .then(|| "transient: the vendor said 503".to_owned()),
    }
}

fn info(owner: &str, name: Option<&str>, service: &str) -> RecordInfo {
    RecordInfo {
        owner_id: owner.to_owned(),
        owner_name: name.map(str::to_owned),
        service: service.to_owned(),
    }
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn data(now: &str) -> PageData {
    PageData {
        provider: "apideck".to_owned(),
        now: at(now),
        records: [
            ("r1", info("o1", Some("Zoë <Sales>"), "salesforce")),
            ("r2", info("o1", Some("Zoë <Sales>"), "hubspot")),
            ("r3", info("o2", None, "salesforce")),
            ("r4", info("o3", Some("Priya"), "salesforce")),
        ]
        .into_iter()
        .map(|(id, info)| (id.to_owned(), info))
        .collect(),
        events: BTreeMap::new(),
        links: None,
    }
}

#[test]
fn totals_services_failures_and_the_reconnect_list_come_from_the_lines() {
    let lines = [
        line("r1", Some(Health::RefreshFailed)),
        line("r2", Some(Health::Healthy)),
        line("r3", Some(Health::NotImported)),
        line("r4", None),
        line("r5", Some(Health::Revoked)),
    ];
    let mut data = data("2026-12-05T09:00:00Z");
    let link = "https://links.example.com/r/t".to_owned();
    let issued = ("o1".to_owned(), "salesforce".to_owned());
    data.links = Some([(issued.clone(), Some(link.clone()))].into());
    let page = build(&lines, &data);
    assert_eq!(page.title, "Migration to Apideck");
    assert_eq!(page.generated_at, "5 December 2026, 09:00 UTC");
    // The failed read-back is in no count.
    assert_eq!(page.total(), 4);
    assert_eq!(page.totals.get(&Health::RefreshFailed), Some(&1));
    let salesforce = page
        .services
        .iter()
        .find(|s| s.service == "salesforce")
        .unwrap();
    assert_eq!(salesforce.counts.values().sum::<u64>(), 2);
    assert_eq!(page.services[0].service, "salesforce");
    assert!(page.services.iter().any(|s| s.service == UNKNOWN_SERVICE));
    let reasons: Vec<(&str, u64)> = page
        .failures_by_reason
        .iter()
        .map(|r| (r.reason.as_str(), r.count))
        .collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(reasons.contains(&("the connection could not be read back (transient)", 1)));
    assert!(!reasons.iter().any(|(r, _)| r.contains("503")));
    // reconnect --broker gave no link to o2's record never imported: a re-run of the import
    // or a setting fixes it, not the person.
    assert_eq!(
        rows_of(&page),
        [
            ("o1", "Zoë <Sales>", "salesforce", Some(link.as_str())),
            ("r5", "record r5", UNKNOWN_SERVICE, None),
        ]
    );
    assert!(!format!("{data:?}").contains(&link), "no link in Debug");
    // An expired or revoked link: the row, without it.
    data.links = Some([(issued, None)].into());
    assert_eq!(rows_of(&build(&lines, &data))[0].3, None);
    // Without reconnect --broker's word, every record never imported is listed.
    data.links = None;
    assert_eq!(
        rows_of(&build(&lines, &data)),
        [
            ("o1", "Zoë <Sales>", "salesforce", None),
            ("o2", "o2", "salesforce", None),
            ("r5", "record r5", UNKNOWN_SERVICE, None),
        ]
    );
}

type Row<'a> = (&'a str, &'a str, &'a str, Option<&'a str>);

fn rows_of(page: &StatusPage) -> Vec<Row<'_>> {
    page.reconnect
        .iter()
        .map(|r| {
            (
                r.owner_id.as_str(),
                r.owner_name.as_str(),
                r.service.as_str(),
                r.link.as_deref(),
            )
        })
        .collect()
}

#[test]
fn history_counts_each_record_as_its_events_said_until_today_which_is_the_live_state() {
    let lines = [
        line("r1", Some(Health::Healthy)),
        line("r2", Some(Health::Revoked)),
        line("r3", Some(Health::Healthy)),
        line("r4", None),
    ];
    let mut data = data("2026-12-05T09:00:00Z");
    // r1 failed on the 3rd and was reconnected on the 4th; r2 was revoked on the 4th.
    data.events.insert(
        "r1".to_owned(),
        vec![
            (at("2026-12-03T10:00:00Z"), Health::RefreshFailed),
            (at("2026-12-04T10:00:00Z"), Health::Healthy),
        ],
    );
    data.events.insert(
        "r2".to_owned(),
        vec![(at("2026-12-04T11:00:00Z"), Health::Revoked)],
    );
    let page = build(&lines, &data);
    let points: Vec<(&str, Vec<(Health, u64)>)> = page
        .history
        .iter()
        .map(|p| {
            (
                p.label.as_str(),
                p.counts.iter().map(|(h, n)| (*h, *n)).collect(),
            )
        })
        .collect();
    use Health::*;
    assert_eq!(
        points,
        [
            ("3 Dec", vec![(Healthy, 2), (RefreshFailed, 1)]),
            ("4 Dec", vec![(Healthy, 2), (Revoked, 1)]),
            ("5 Dec", vec![(Healthy, 2), (Revoked, 1)]),
        ]
    );
    assert_eq!(page.history.last().unwrap().counts, page.totals);
}

#[test]
fn no_health_event_gives_no_history_and_a_long_one_is_cut_to_the_last_days() {
    let lines = [line("r1", Some(Health::Healthy))];
    let page = build(&lines, &data("2026-12-05T09:00:00Z"));
    assert!(page.history.is_empty());
    let mut data = data("2026-12-05T09:00:00Z");
    data.events.insert(
        "r1".to_owned(),
        vec![(at("2026-01-01T00:00:00Z"), Health::Revoked)],
    );
    let page = build(&lines, &data);
    assert_eq!(page.history.len(), MOST_DAYS);
    assert_eq!(page.history.last().unwrap().label, "5 Dec");
}

#[test]
fn a_page_is_written_private_and_never_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("page.html");
    std::fs::write(&path, "old").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let page = build(
        &[line("r1", Some(Health::Healthy))],
        &data("2026-12-05T09:00:00Z"),
    );
    write_page(&path, &page).unwrap();
    let html = std::fs::read_to_string(&path).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let link = dir.path().join("link.html");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(write_page(&link, &page).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), html);
    }
}
