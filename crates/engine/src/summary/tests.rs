//! The summary's unit tests: counts, exit-code precedence and the JSON shapes.
use super::*;

#[test]
fn failure_reasons_drop_the_location_of_invalid_records_only() {
    let check = |kind: ErrorKind, message: &str, expect: &str| {
        assert_eq!(failure_reason(kind, message), expect, "{kind} {message}");
    };
    check(
        ErrorKind::InvalidRecord,
        "in.jsonl:12: auth.type: is required",
        "invalid_record: auth.type: is required",
    );
    check(
        ErrorKind::InvalidRecord,
        "C:\\x:y.jsonl:3: id: duplicate id",
        "invalid_record: id: duplicate id",
    );
    check(
        ErrorKind::InvalidRecord,
        "no location here",
        "invalid_record: no location here",
    );
    check(
        ErrorKind::Rejected,
        "x:12: kept as is",
        "rejected: x:12: kept as is",
    );
    check(
        ErrorKind::Mapping,
        "settings.subdomain: is required",
        "mapping: settings.subdomain: is required",
    );
}

/// The column where each count line's number starts.
fn count_columns(text: &str) -> Vec<usize> {
    text.lines()
        .filter(|line| line.starts_with("  ") && line.ends_with(|c: char| c.is_ascii_digit()))
        .map(|line| line.rfind(' ').unwrap_or(0))
        .collect()
}

#[test]
fn an_interrupted_run_neither_rates_nor_skips_the_records_it_never_reached() {
    let mut tally = Tally::default();
    for _ in 0..10 {
        tally.add(&line(Status::Imported, None));
    }
    tally.add(&line(
        Status::Skipped,
        Some((ErrorKind::PreExisting, "theirs")),
    ));
    for _ in 0..89 {
        tally.add(&line(
            Status::Skipped,
            Some((ErrorKind::NotAttempted, "stopped")),
        ));
    }
    let mut summary = RunSummary::from_tally(&tally);
    summary.provider = "tray".into();
    summary.interrupted = true;
    summary.elapsed = Duration::from_secs(2);
    let text = summary.human();
    assert!(
        text.starts_with("tray: 11 records in 2.0s (5.5/s)\n"),
        "{text}"
    );
    assert!(text.contains("  skipped        1\n"), "{text}");
    assert!(text.contains("  not attempted  89\n"), "{text}");
    let columns = count_columns(&text);
    assert!(
        columns.len() >= 3 && columns.windows(2).all(|w| w[0] == w[1]),
        "{text}"
    );
    assert_eq!(summary.to_json()["not_attempted"], 89);
}

#[test]
fn the_verify_summary_keeps_its_counts_in_one_column() {
    let summary = MaintenanceSummary {
        action: "verify".into(),
        provider: "apideck".into(),
        counts: [
            ("present", 3),
            ("pending_refresh", 12),
            ("refresh_failed_long", 1),
        ]
        .into_iter()
        .map(|(word, count)| (word.to_owned(), count))
        .collect(),
        ..MaintenanceSummary::default()
    };
    let text = summary.human();
    let columns = count_columns(&text);
    assert_eq!(columns.len(), 3, "{text}");
    assert!(columns.windows(2).all(|w| w[0] == w[1]), "{text}");
}

fn line(status: Status, error: Option<(ErrorKind, &str)>) -> ReportLine {
    let line = ReportLine::new(Some("r".into()), 1, status);
    match error {
        Some((kind, message)) => line.with_error(kind, message),
        None => line,
    }
}

#[test]
fn tally_counts_statuses_and_ranks_failure_reasons() {
    let mut tally = Tally::default();
    tally.add(&line(Status::Imported, None));
    tally.add(&line(Status::Imported, None));
    tally.add(&line(
        Status::Skipped,
        Some((ErrorKind::NotAttempted, "stopped")),
    ));
    tally.add(&line(Status::Failed, Some((ErrorKind::Rejected, "b"))));
    tally.add(&line(Status::Failed, Some((ErrorKind::Rejected, "a"))));
    tally.add(&line(
        Status::Failed,
        Some((ErrorKind::InvalidRecord, "f:1: id: is required")),
    ));
    tally.add(&line(
        Status::Failed,
        Some((ErrorKind::InvalidRecord, "f:9: id: is required")),
    ));
    assert_eq!(tally.total(), 7);
    assert_eq!(tally.count(Status::Imported), 2);
    assert_eq!(
        tally.top_failures(),
        vec![
            ("invalid_record: id: is required".to_owned(), 2),
            ("rejected: a".to_owned(), 1),
            ("rejected: b".to_owned(), 1)
        ]
    );
}

#[test]
fn exit_codes_follow_the_documented_precedence() {
    let check = |failed: u64, stopped: bool, interrupted: bool, expect: Exit| {
        let mut summary = RunSummary::default();
        summary.counts.insert(Status::Imported, 3);
        if failed > 0 {
            summary.counts.insert(Status::Failed, failed);
        }
        summary.stopped = stopped.then(|| "plan limit".to_owned());
        summary.interrupted = interrupted;
        assert_eq!(
            summary.exit_code(),
            expect,
            "{failed} {stopped} {interrupted}"
        );
    };
    check(0, false, false, Exit::Ok);
    check(2, false, false, Exit::SomeFailed);
    check(0, true, false, Exit::Stopped);
    check(2, true, false, Exit::Stopped);
    check(2, true, true, Exit::Interrupted);
    check(0, false, true, Exit::Interrupted);
}

#[test]
fn every_json_summary_starts_with_the_shared_tagged_fields() {
    let summary = json_summary(
        "verify",
        Exit::SomeFailed,
        json!({"counts": {"present": 2}, "type": "record", "exit_code": 0}),
    );
    assert_eq!(
        summary["type"], "summary",
        "a command's field never replaces the tag"
    );
    assert_eq!(summary["schema"], SUMMARY_SCHEMA);
    assert_eq!(summary["command"], "verify");
    assert_eq!(summary["exit_code"], 1);
    assert_eq!(summary["counts"], json!({"present": 2}));
}

#[test]
fn json_summary_lists_every_status_and_the_exit_code() {
    let mut summary = RunSummary {
        provider: "tray".into(),
        ..RunSummary::default()
    };
    summary.counts.insert(Status::Failed, 1);
    summary.top_failures = vec![("rejected: nope".into(), 1)];
    let json = summary.to_json();
    assert_eq!(json["counts"]["imported"], 0);
    assert_eq!(json["counts"]["failed"], 1);
    assert_eq!(json["exit_code"], 1);
    assert_eq!(json["top_failures"][0]["reason"], "rejected: nope");
    let human = summary.human();
    assert!(human.contains("failed"), "{human}");
    assert!(human.contains("rejected: nope"), "{human}");
}

#[test]
fn report_writer_writes_one_flushed_line_per_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.jsonl");
    let mut writer = ReportWriter::create(&path).unwrap();
    writer.write(&line(Status::Imported, None)).unwrap();
    writer
        .write(&line(Status::Failed, Some((ErrorKind::Rejected, "no"))))
        .unwrap();
    // Flushed as it goes: readable before the writer is dropped.
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["error"]["kind"], "rejected");
    drop(writer);
}

#[test]
fn shared_grants_are_one_failure_reason_whatever_record_they_name() {
    let mut tally = Tally::default();
    for (line, first) in [(4, "a"), (9, "b"), (12, "a")] {
        let message = format!(
            "in.jsonl:{line}: auth.refresh_token: the same grant as record `{first}` (line 1) of this input"
        );
        tally.add(
            &ReportLine::new(Some(format!("r{line}")), line, Status::Failed)
                .with_error(ErrorKind::SharedGrant, message),
        );
    }
    let reasons = tally.top_failures();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].0.starts_with("shared_grant: "), "{reasons:?}");
    assert_eq!(reasons[0].1, 3);
}
