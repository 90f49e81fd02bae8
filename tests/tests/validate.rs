//! `authport validate` and `authport providers`: offline, no provider, no network.

use crate::common;

use common::*;

#[tokio::test]
async fn providers_lists_every_registered_provider() {
    let dir = scratch();
    let out = authport(dir.path(), &["providers", "--format", "json"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list = parse_lines(&out.stdout);
    let names: Vec<&str> = list[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["apideck", "nango", "tray"]);
}

#[tokio::test]
async fn validate_reports_every_record_with_its_line_and_exits_1() {
    let dir = scratch();
    let input = example("bad-records.jsonl");
    let report = dir.path().join("report.jsonl");
    let out = authport(
        dir.path(),
        &[
            "validate",
            "--input",
            input.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let lines = read_lines(&report);
    let file = input.display().to_string();
    let brief: Vec<(u64, String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["line"].as_u64().unwrap(),
                l["status"].as_str().unwrap().to_owned(),
                l["error"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .replace(&file, "F"),
            )
        })
        .collect();
    let expect =
        |line: u64, status: &str, message: &str| (line, status.to_owned(), message.to_owned());
    assert_eq!(
        brief,
        vec![
            expect(1, "planned", ""),
            expect(
                2,
                "failed",
                "F:2: unknown top-level field (its name is not shown; did you mean `settings`?); expected one of: id, owner, service, name, auth, settings, metadata, targets"
            ),
            expect(3, "failed", "F:3: owner: is required"),
            expect(4, "planned", ""),
            expect(
                5,
                "failed",
                "F:5: malformed JSON: EOF while parsing an object (column 15)"
            ),
            expect(
                6,
                "failed",
                "F:6: id: duplicate id: an earlier record in this file has the same id"
            ),
            expect(7, "failed", "F:7: auth.password: secret is empty"),
        ]
    );
    // The suspect-milliseconds record is valid, with a warning.
    assert!(
        lines[3]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("looks like milliseconds")
    );
    assert_eq!(lines[1]["id"], "typo/slack");
    assert_eq!(lines[1]["error"]["kind"], "invalid_record");
    assert!(lines[4].get("id").is_none());
    // With the report in a file, stdout carries the summary.
    assert!(
        out.stdout.contains("failed"),
        "summary on stdout: {}",
        out.stdout
    );
}

#[tokio::test]
async fn validate_writes_the_report_to_stdout_without_report_flag() {
    let dir = scratch();
    let input = example("records.jsonl");
    let out = authport(
        dir.path(),
        &["validate", "--input", input.to_str().unwrap()],
        &[],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines = parse_lines(&out.stdout);
    assert_eq!(lines.len(), 6);
    assert!(lines.iter().all(|l| l["status"] == "planned"));
}

#[tokio::test]
async fn usage_errors_exit_2_and_name_the_problem() {
    let dir = scratch();
    let missing = authport(dir.path(), &["validate", "--input", "nope.jsonl"], &[]).await;
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("nope.jsonl"), "{}", missing.stderr);

    let unknown = authport(
        dir.path(),
        &[
            "import",
            "--provider",
            "tary",
            "--input",
            "x.jsonl",
            "--dry-run",
        ],
        &[],
    )
    .await;
    assert_eq!(unknown.code, 2);
    assert!(
        unknown
            .stderr
            .contains("unknown provider `tary`; registered providers: apideck, nango, tray"),
        "{}",
        unknown.stderr
    );

    let bad_flag = authport(
        dir.path(),
        &["import", "--provider", "tray", "--rate", "fast"],
        &[],
    )
    .await;
    assert_eq!(bad_flag.code, 2);
}
