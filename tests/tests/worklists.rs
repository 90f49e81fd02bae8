//! The reconnect worklist people act on (issue 21 item 5): failures the operator can fix in
//! the configuration (a service with no connector mapping) are rows of kind `config_fix`
//! naming the setting to change, and never get a link; the end user's rows do, and a link
//! covers its row's service only (never a `crm` session for a slack row); with
//! `--import-report` or without it, an end user's reason keeps the field it failed on.

use crate::common;

use common::*;
use serde_json::{Value, json};

/// `u1`'s HubSpot record holds an API key, but the HubSpot connector is OAuth: only the end
/// user can fix that (connect again). `u1`'s Slack has no Apideck connector configured: the
/// operator's to fix. `u2`'s Xero imports.
fn input_lines() -> Vec<String> {
    let owner = |id: &str| json!({"id": id, "name": "Ada", "email": format!("{id}@example.com")});
    vec![
        json!({"id": "u1/hubspot", "owner": owner("u1"), "service": "hubspot",
               "auth": {"type": "api_key", "api_key": canary("worklists-hubspot")},
               "targets": {"apideck": {"unified_api": "crm", "service_id": "hubspot"}}})
        .to_string(),
        json!({"id": "u1/slack", "owner": owner("u1"), "service": "slack",
               "auth": {"type": "oauth2", "access_token": canary("worklists-slack"),
                        "expires_at": "2030-01-01T00:00:00Z"}})
        .to_string(),
        json!({"id": "u2/xero", "owner": owner("u2"), "service": "xero",
               "auth": {"type": "oauth2", "access_token": canary("worklists-xero"),
                        "refresh_token": canary("worklists-xero-refresh"),
                        "expires_at": "2030-01-01T00:00:00Z"},
               "targets": {"apideck": {"unified_api": "accounting", "service_id": "xero"}}})
        .to_string(),
    ]
}

fn row<'a>(rows: &'a [Value], service: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["service"] == service)
        .unwrap_or_else(|| panic!("no {service} row: {rows:?}"))
}

/// The sandbox, the imported state (in `dir`), the input and the import's report.
struct Imported {
    sandbox: Sandbox,
    dir: tempfile::TempDir,
    _inputs: tempfile::TempDir,
    input: String,
    report: String,
}

async fn imported() -> Imported {
    let sandbox = sandbox().await;
    let env = sandbox.provider_env();
    let dir = scratch();
    let inputs = scratch();
    let input = write_lines(inputs.path(), "in.jsonl", &input_lines());
    let run = import_with_state("apideck", &env, dir.path(), &input, &[]).await;
    assert_eq!(run.out.code, 1, "{:?}\n{}", run.report, run.out.stderr);
    let report = dir.path().join("report.jsonl");
    Imported {
        sandbox,
        input: input.to_str().unwrap().to_owned(),
        report: report.to_str().unwrap().to_owned(),
        dir,
        _inputs: inputs,
    }
}

impl Imported {
    /// `authport reconnect --provider apideck --state state.db --input INPUT EXTRA…`.
    async fn reconnect(&self, extra: &[&str]) -> Output {
        let mut args = vec![
            "reconnect",
            "--provider",
            "apideck",
            "--state",
            "state.db",
            "--input",
            &self.input,
        ];
        args.extend_from_slice(extra);
        let out = authport(self.dir.path(), &args, &self.sandbox.provider_env()).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_no_canary("reconnect output", &out.printed());
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_covers_its_rows_service_and_never_a_configuration_fix() {
    let setup = imported().await;
    // --links: the end user's row gets a session for its own unified API; the Slack row gets
    // none (a crm session could not reconnect Slack, and the fix is the operator's).
    let out = setup
        .reconnect(&["--links", "--output", "worklist.jsonl"])
        .await;
    let rows = read_lines(&setup.dir.path().join("worklist.jsonl"));
    let slack = row(&rows, "slack");
    assert!(slack["link"].is_null(), "{slack}");
    assert!(slack["link_minted_at"].is_null(), "{slack}");
    let hubspot = row(&rows, "hubspot");
    let link = hubspot["link"].as_str().expect("a link for the end user");
    let page: Value = reqwest::get(link).await.unwrap().json().await.unwrap();
    assert_eq!(page["consumer_id"], "u1");
    assert_eq!(page["unified_apis"], json!(["crm"]));
    assert!(
        out.stderr.contains("1 of them configuration fixes"),
        "{}",
        out.stderr
    );
    assert_no_canary_in_dir(setup.dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_fixes_name_the_setting_and_reasons_keep_the_field() {
    let setup = imported().await;
    // With the import's report and without it (records are mapped again), the same rows.
    for extra in [vec!["--import-report", setup.report.as_str()], vec![]] {
        let out = setup.reconnect(&extra).await;
        let rows = parse_lines(&out.stdout);
        assert_eq!(rows.len(), 2, "{rows:?}");
        let hubspot = row(&rows, "hubspot");
        let reason = hubspot["reason"].as_str().unwrap();
        assert!(reason.contains("(auth.type)"), "{extra:?}: {reason}");
        assert_eq!(hubspot["kind"], "end_user", "{hubspot}");
        assert!(hubspot["setting"].is_null(), "{hubspot}");
        let slack = row(&rows, "slack");
        assert_eq!(slack["kind"], "config_fix", "{slack}");
        assert!(
            slack["setting"]
                .as_str()
                .unwrap()
                .contains("[apideck.services.slack]"),
            "{slack}"
        );
        assert!(
            slack["reason"]
                .as_str()
                .unwrap()
                .contains("no Apideck connector known"),
            "{slack}"
        );
    }

    // CSV: the kind and the setting are columns of their own.
    let out = setup.reconnect(&["--format", "csv"]).await;
    let mut lines = out.stdout.lines();
    assert!(
        lines.next().unwrap().ends_with(",kind,setting"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("u1,") && l.contains(",config_fix,")),
        "{}",
        out.stdout
    );
}
