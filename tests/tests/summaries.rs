//! Issue 21 item 7: `--format json` means the same on every command that prints a summary. The
//! summary is one tagged shape (`type`, `schema`, `command`, `exit_code`, then the command's own
//! fields), the last line on stdout after any record lines, and never silently dropped: not
//! when the report is on stdout, not for `verify` without `--report`, not for `export` (whose
//! summary goes to stderr when the records go to stdout, so a pipe stays records only). The
//! field names of each command's summary are a snapshot: docs/output.md documents them.

use crate::common;

use std::collections::BTreeMap;

use common::*;
use serde_json::Value;

/// The summary line of `text` (the last line), checked against the shared part of the shape.
fn summary_of(command: &str, code: i32, text: &str) -> Value {
    let lines = parse_lines(text);
    let summary = lines
        .last()
        .unwrap_or_else(|| panic!("{command}: no summary line"))
        .clone();
    assert_eq!(summary["type"], "summary", "{command}: {summary}");
    assert_eq!(
        summary["schema"],
        authport_engine::SUMMARY_SCHEMA,
        "{command}"
    );
    assert_eq!(summary["command"], command, "{summary}");
    assert_eq!(
        summary["exit_code"], code,
        "{command}: the process's own exit code"
    );
    // Record lines are never tagged as summaries: one summary, last.
    let tagged = lines.iter().filter(|l| l["type"] == "summary").count();
    assert_eq!(tagged, 1, "{command}: {lines:?}");
    summary
}

fn field_names(summary: &Value) -> Vec<String> {
    summary
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_summary_has_one_tagged_shape_and_json_is_never_ignored() {
    let sandbox = sandbox().await;
    let env = sandbox.env();
    let dir = scratch();
    let input = example("records.jsonl");
    let input = input.to_str().unwrap();
    let mut shapes = BTreeMap::new();

    // The report on stdout: the summary follows the record lines there.
    let validate = authport(
        dir.path(),
        &["validate", "--input", input, "--format", "json"],
        &env,
    )
    .await;
    let summary = summary_of("validate", validate.code, &validate.stdout);
    shapes.insert("validate", field_names(&summary));

    let import = authport(
        dir.path(),
        &[
            "import",
            "--provider",
            "tray",
            "--input",
            input,
            "--state",
            "state.db",
            "--format",
            "json",
        ],
        &env,
    )
    .await;
    let summary = summary_of("import", import.code, &import.stdout);
    assert!(
        parse_lines(&import.stdout).len() > 1,
        "the report lines come first"
    );
    shapes.insert("import", field_names(&summary));

    // verify without --report: its object lines, then the summary.
    let verify = authport(
        dir.path(),
        &[
            "verify",
            "--provider",
            "tray",
            "--state",
            "state.db",
            "--format",
            "json",
        ],
        &env,
    )
    .await;
    let summary = summary_of("verify", verify.code, &verify.stdout);
    shapes.insert("verify", field_names(&summary));

    let status = authport(
        dir.path(),
        &[
            "status",
            "--provider",
            "tray",
            "--state",
            "state.db",
            "--input",
            input,
            "--format",
            "json",
        ],
        &env,
    )
    .await;
    let summary = summary_of("status", status.code, &status.stdout);
    shapes.insert("status", field_names(&summary));

    // export to a file: the summary alone on stdout; to stdout: on stderr, the pipe stays
    // records only.
    let export = authport(
        dir.path(),
        &[
            "export",
            "--provider",
            "tray",
            "--output",
            "export.jsonl",
            "--format",
            "json",
        ],
        &env,
    )
    .await;
    let summary = summary_of("export", export.code, &export.stdout);
    shapes.insert("export", field_names(&summary));
    let piped = authport(
        dir.path(),
        &["export", "--provider", "tray", "--format", "json"],
        &env,
    )
    .await;
    assert!(
        parse_lines(&piped.stdout)
            .iter()
            .all(|line| line.get("type").is_none() && line["id"].is_string()),
        "stdout holds records only"
    );
    let last_stderr = piped.stderr.lines().last().unwrap_or_default();
    summary_of("export", piped.code, last_stderr);

    let rollback = authport(
        dir.path(),
        &[
            "rollback",
            "--provider",
            "tray",
            "--state",
            "state.db",
            "--format",
            "json",
        ],
        &env,
    )
    .await;
    let summary = summary_of("rollback", rollback.code, &rollback.stdout);
    shapes.insert("rollback", field_names(&summary));

    for out in [&validate, &import, &verify, &status, &export, &rollback] {
        assert_no_canary("a summary run", &out.printed().replace(&piped.stdout, ""));
    }
    insta::assert_json_snapshot!("summary_fields", shapes);
}
