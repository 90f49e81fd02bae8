//! Unit tests of `cutover.rs`: the pure pass verdicts, lines and notes.

use authport_core::ErrorKind;

use super::*;

fn line(status: Status) -> ReportLine {
    ReportLine::new(Some("a".into()), 0, status)
}

#[test]
fn a_pass_decides_by_the_re_import_s_status() {
    let complete = decide(Some(&line(Status::Unchanged)), 1, false);
    assert!(matches!(
        complete,
        Step::Decided(Outcome {
            handover: Handover::Complete,
            ..
        })
    ));
    let reimported = decide(Some(&line(Status::Unchanged)), 2, true);
    let Step::Decided(outcome) = reimported else {
        panic!("undecided")
    };
    assert_eq!(outcome.handover, Handover::Reimported);
    assert_eq!(outcome.status, Status::Updated);
    assert_eq!(outcome.note.as_deref(), Some(REFRESHED));
    assert_eq!(decide(Some(&line(Status::Updated)), 1, false), Step::Again);
    assert_eq!(decide(Some(&line(Status::Updated)), 2, true), Step::Again);
    let unstable = decide(Some(&line(Status::Updated)), MAX_PASSES, true);
    assert!(matches!(
        unstable,
        Step::Decided(Outcome {
            handover: Handover::Unstable,
            ..
        })
    ));
    let failed = line(Status::Failed).with_error(ErrorKind::Rejected, "gone");
    let Step::Decided(outcome) = decide(Some(&failed), 1, false) else {
        panic!("undecided")
    };
    assert_eq!(outcome.handover, Handover::Unstable);
    assert_eq!(outcome.error, Some(("rejected".into(), "gone".into())));
    assert!(matches!(decide(None, 1, false), Step::Decided(_)));
}

#[test]
fn only_a_handed_over_record_may_be_retired() {
    assert!(Handover::Complete.is_handed_over());
    assert!(Handover::Reimported.is_handed_over());
    assert!(!Handover::Unstable.is_handed_over());
    assert!(!Handover::Pending.is_handed_over());
}

#[test]
fn a_cutover_line_names_the_handover_and_the_retirement() {
    let outcome = Outcome {
        handover: Handover::Reimported,
        status: Status::Updated,
        note: Some(REFRESHED.into()),
        error: None,
    };
    let line = cutover_line("x/1", &outcome, true, None);
    assert_eq!(line["status"], "updated");
    assert_eq!(line["handover"], "reimported");
    assert_eq!(line["note"], REFRESHED);
    assert_eq!(line["source"], "retired");
    // A reader of report lines still reads it.
    let parsed: ReportLine = serde_json::from_value(line).unwrap();
    assert_eq!(parsed.status, Status::Updated);
}

#[test]
fn a_note_reads_back() {
    let note = Note {
        owner: "o".into(),
        handover: Handover::Complete,
        retired: Some(Retire::Done),
        reason: None,
    };
    let text = serde_json::to_string(&note).unwrap();
    let again: Note = serde_json::from_str(&text).unwrap();
    assert!(again.source_retired());
    assert_eq!(again, note);
}
