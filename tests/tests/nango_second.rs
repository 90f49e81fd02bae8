//! Nango: a record whose owner already has a connection in the record's integration gets no
//! second one (issue 21 item 9). The example records are imported into Nango directly and into
//! Tray; `migrate --from tray --to nango` then finds each owner's connection by its
//! `end_user_id` tag and skips the Tray auth as `pre_existing`, saying which connection and who
//! made it, unless `[nango] allow_second_connection = true`.

use crate::common;

use common::*;
use serde_json::Value;

/// The example records imported into Tray and, under their own ids, into Nango: every
/// owner's service has a Nango connection that another record id made.
pub async fn in_tray_and_nango(sandbox: &Sandbox) {
    let env = sandbox.env();
    for provider in ["tray", "nango"] {
        let dir = scratch();
        let input = write_lines(dir.path(), "in.jsonl", &example_lines());
        let run = import_with_state(provider, &env, dir.path(), &input, &[]).await;
        let imported = statuses(&run.report)
            .into_iter()
            .filter(|(_, status)| status == "imported")
            .count();
        assert_eq!(
            imported, 6,
            "{provider}: {:?}\n{}",
            run.report, run.out.stderr
        );
    }
    assert_eq!(sandbox.nango.connection_count(), 6);
}

fn migrate<'a>(report: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "migrate", "--from", "tray", "--to", "nango", "--state", "moved.db", "--report", report,
    ];
    args.extend_from_slice(extra);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nango_never_makes_an_owner_a_second_connection_in_an_integration_unasked() {
    let sandbox = sandbox().await;
    in_tray_and_nango(&sandbox).await;
    let env = sandbox.env();
    let dir = scratch();
    let upserts = sandbox.nango.upsert_count();

    let out = authport(dir.path(), &migrate("moved.jsonl", &[]), &env).await;
    let report = read_lines(&dir.path().join("moved.jsonl"));
    assert_eq!(out.code, 0, "{report:?}\n{}", out.stderr);
    assert_eq!(report.len(), 6, "{report:?}");
    for line in &report {
        assert_eq!(line["status"], "skipped", "{line}");
        assert_eq!(line["error"]["kind"], "pre_existing", "{line}");
        let message = line["error"]["message"].as_str().unwrap();
        // What is known: which connection, and that authport made it for another record id.
        assert!(
            message.contains("already has a connection in integration")
                && message.contains("imported by authport for record `")
                && message.contains("allow_second_connection"),
            "{message}"
        );
        assert!(!message.contains("not imported by authport"), "{message}");
    }
    assert_eq!(sandbox.nango.connection_count(), 6, "no second connection");
    assert_eq!(sandbox.nango.upsert_count(), upserts, "nothing written");

    // Asked for: each owner gets the second connection.
    std::fs::write(
        dir.path().join("second.toml"),
        "[nango]\nallow_second_connection = true\n",
    )
    .unwrap();
    let out = authport(
        dir.path(),
        &migrate("second.jsonl", &["--config", "second.toml"]),
        &env,
    )
    .await;
    let report = read_lines(&dir.path().join("second.jsonl"));
    assert_eq!(out.code, 0, "{report:?}\n{}", out.stderr);
    let imported: Vec<&Value> = report
        .iter()
        .filter(|line| line["status"] == "imported")
        .collect();
    assert_eq!(imported.len(), 6, "{report:?}");
    assert_eq!(sandbox.nango.connection_count(), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nango_skips_a_second_connection_the_end_user_made_and_says_so() {
    let sandbox = sandbox().await;
    let env = sandbox.env();
    let dir = scratch();
    // The end user connected HubSpot themselves (Nango Connect: no authport mark), tagged as
    // Nango recommends; the record would make a second connection under its own id.
    sandbox.nango.precreate_connection(
        "hubspot",
        "their-own-hubspot",
        serde_json::json!({"type": "OAUTH2", "access_token": "theirs"})
            .as_object()
            .unwrap()
            .clone(),
    );
    sandbox.nango.set_tags(
        "hubspot",
        "their-own-hubspot",
        [("end_user_id".to_owned(), "acme-42".to_owned())].into(),
    );
    let record = example_lines()
        .into_iter()
        .find(|line| line.contains("\"acme-42/hubspot\""))
        .unwrap();
    let input = write_lines(dir.path(), "again.jsonl", &[record]);
    let report = dir.path().join("again-report.jsonl");
    let out = authport(
        dir.path(),
        &[
            "import",
            "--provider",
            "nango",
            "--input",
            input.to_str().unwrap(),
            "--state",
            "other.db",
            "--report",
            report.to_str().unwrap(),
        ],
        &env,
    )
    .await;
    let report = read_lines(&report);
    assert_eq!(out.code, 0, "{report:?}\n{}", out.stderr);
    assert_eq!(report[0]["status"], "skipped", "{report:?}");
    let message = report[0]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`their-own-hubspot`")
            && message.contains("without authport's record mark"),
        "{message}"
    );
    assert_eq!(sandbox.nango.connection_count(), 1);
    assert_eq!(sandbox.nango.upsert_count(), 0);
}
