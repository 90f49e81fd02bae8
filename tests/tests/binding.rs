//! Client binding and scopes (issue 19 item 2), end to end against the Nango sandbox: the
//! integration's OAuth client comes from `GET /integrations/{key}?include=credentials`, whose
//! canary client secret must never appear anywhere; a record issued to another client is never
//! written and `reconnect` lists it; a scope deficit warns, and fails with `--require-scopes`;
//! the JSON summary counts each finding.

use crate::common;

use authport_sandbox::nango::{Integration, SANDBOX_CLIENT_SECRET_CANARY};
use common::*;
use serde_json::{Value, json};

/// The target's Xero integration: its client and the scopes it asks for.
const TARGET_CLIENT: &str = "target-xero-client";

fn xero_integration() -> Integration {
    let mut integration = Integration::new("xero-prod", "xero", "Xero", "OAUTH2");
    integration.client_id = Some(TARGET_CLIENT.to_owned());
    integration.scopes = Some("accounting.transactions,offline_access".to_owned());
    integration
}

/// An OAuth record for Xero, issued to `client_id` with `scopes`.
fn xero(id: &str, client_id: Option<&str>, scopes: &[&str]) -> String {
    let mut auth = json!({"type": "oauth2", "access_token": format!("at-{id}"),
        "refresh_token": format!("rt-{id}"), "scopes": scopes});
    if let Some(client_id) = client_id {
        auth["client_id"] = json!(client_id);
    }
    json!({"id": id, "owner": {"id": format!("owner-{id}")}, "service": "xero", "auth": auth})
        .to_string()
}

fn line<'a>(report: &'a [Value], id: &str) -> &'a Value {
    report
        .iter()
        .find(|l| l["id"] == id)
        .unwrap_or_else(|| panic!("no line for {id}: {report:?}"))
}

fn summary(stdout: &str) -> Value {
    parse_lines(stdout)
        .into_iter()
        .find(|l| l["type"] == "summary")
        .unwrap_or_else(|| panic!("no summary: {stdout}"))
}

/// No byte of anything authport wrote or printed holds the integration's client secret.
fn assert_no_client_secret(dir: &std::path::Path, printed: &str) {
    assert!(!printed.contains(SANDBOX_CLIENT_SECRET_CANARY), "{printed}");
    for entry in walk(dir) {
        let bytes = std::fs::read(&entry).unwrap();
        let found = bytes
            .windows(SANDBOX_CLIENT_SECRET_CANARY.len())
            .any(|w| w == SANDBOX_CLIENT_SECRET_CANARY.as_bytes());
        assert!(!found, "the client secret is in {}", entry.display());
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_mismatch_is_never_written_and_reconnect_lists_it() {
    let sandbox = sandbox().await;
    sandbox.nango.add_integration(xero_integration());
    let env = sandbox.env();
    let dir = scratch();
    let wanted = ["accounting.transactions", "offline_access"];
    let input = write_lines(
        dir.path(),
        "in.jsonl",
        &[
            xero("bound", Some(TARGET_CLIENT), &wanted),
            xero("foreign", Some("tray-own-app"), &wanted),
            xero("anonymous", None, &wanted),
        ],
    );
    let before = sandbox.nango.connection_count();
    let run = import_with_state("nango", &env, dir.path(), &input, &["--format", "json"]).await;
    assert_eq!(run.out.code, 1, "{}", run.out.stderr);

    let foreign = line(&run.report, "foreign");
    assert_eq!(foreign["status"], "failed", "{foreign}");
    assert_eq!(foreign["error"]["kind"], "client_mismatch", "{foreign}");
    let message = foreign["error"]["message"].as_str().unwrap();
    for word in ["xero", "tray-own-app", TARGET_CLIENT] {
        assert!(message.contains(word), "{word}: {message}");
    }
    assert_eq!(line(&run.report, "bound")["status"], "imported");
    let anonymous = line(&run.report, "anonymous");
    assert_eq!(anonymous["status"], "imported", "{anonymous}");
    assert!(
        anonymous["warnings"]
            .to_string()
            .contains("client binding unknown"),
        "{anonymous}"
    );
    // Only the two records the target can (or may) refresh were written.
    assert_eq!(sandbox.nango.connection_count(), before + 2);
    assert!(
        !sandbox
            .nango
            .connection_keys()
            .iter()
            .any(|(_, id)| id == "foreign")
    );

    let counts = &summary(&run.out.stdout)["client_binding"];
    assert_eq!(
        counts,
        &json!({"portable": 1, "client_mismatch": 1, "scope_deficit": 0, "unknown": 1}),
        "{}",
        run.out.stdout
    );

    let report = dir.path().join("report.jsonl");
    for extra in [vec!["--import-report", report.to_str().unwrap()], vec![]] {
        let mut args = vec![
            "reconnect",
            "--provider",
            "nango",
            "--state",
            "state.db",
            "--input",
            input.to_str().unwrap(),
        ];
        args.extend_from_slice(&extra);
        let out = authport(dir.path(), &args, &env).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        let rows = parse_lines(&out.stdout);
        let listed: Vec<&Value> = rows
            .iter()
            .filter(|r| r["record_ids"] == json!(["foreign"]))
            .collect();
        assert_eq!(listed.len(), 1, "{extra:?}: {rows:?}");
        let reason = listed[0]["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("client_mismatch") && reason.contains(TARGET_CLIENT),
            "{reason}"
        );
        assert_eq!(rows.len(), 1, "only the mismatch: {rows:?}");
        assert_no_client_secret(dir.path(), &out.printed());
    }
    assert_no_client_secret(dir.path(), &run.out.printed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_deficit_warns_and_fails_with_require_scopes() {
    let sandbox = sandbox().await;
    sandbox.nango.add_integration(xero_integration());
    let env = sandbox.env();
    let dir = scratch();
    let input = write_lines(
        dir.path(),
        "in.jsonl",
        &[xero("short", Some(TARGET_CLIENT), &["offline_access"])],
    );
    let before = sandbox.nango.connection_count();
    let strict = import_with_state(
        "nango",
        &env,
        dir.path(),
        &input,
        &["--format", "json", "--require-scopes"],
    )
    .await;
    assert_eq!(strict.out.code, 1, "{}", strict.out.stderr);
    let short = line(&strict.report, "short");
    assert_eq!(short["status"], "failed", "{short}");
    let message = short["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("scope_deficit") && message.contains("accounting.transactions"),
        "{message}"
    );
    assert!(!message.contains("offline_access"), "{message}");
    assert_eq!(sandbox.nango.connection_count(), before, "nothing written");
    let counts = &summary(&strict.out.stdout)["client_binding"];
    assert_eq!(counts["scope_deficit"], 1, "{counts}");

    let warned = import_with_state("nango", &env, dir.path(), &input, &["--format", "json"]).await;
    assert_eq!(warned.out.code, 0, "{}", warned.out.stderr);
    let short = line(&warned.report, "short");
    assert_eq!(short["status"], "imported", "{short}");
    let warnings = short["warnings"].to_string();
    assert!(
        warnings.contains("scope_deficit") && warnings.contains("accounting.transactions"),
        "{warnings}"
    );
    assert_eq!(sandbox.nango.connection_count(), before + 1);
    assert_eq!(
        summary(&warned.out.stdout)["client_binding"],
        json!({"portable": 0, "client_mismatch": 0, "scope_deficit": 1, "unknown": 0})
    );
    assert_no_client_secret(dir.path(), &warned.out.printed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_overrides_what_the_integration_says() {
    let sandbox = sandbox().await;
    sandbox.nango.add_integration(xero_integration());
    let env = sandbox.env();
    let dir = scratch();
    // [nango.oauth_clients] overrides what the integration says; [nango.oauth_scopes] too.
    std::fs::write(
        dir.path().join("authport.toml"),
        "[nango.oauth_clients]\nxero = \"tray-own-app\"\n[nango.oauth_scopes]\nxero = []\n",
    )
    .unwrap();
    let input = write_lines(
        dir.path(),
        "in.jsonl",
        &[xero("moved", Some("tray-own-app"), &[])],
    );
    let run = import_with_state(
        "nango",
        &env,
        dir.path(),
        &input,
        &["--config", "authport.toml", "--require-scopes"],
    )
    .await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    let moved = line(&run.report, "moved");
    assert_eq!(moved["status"], "imported", "{moved}");
    let warnings = moved["warnings"].to_string();
    assert!(
        !warnings.contains("client binding unknown") && !warnings.contains("scope_deficit"),
        "{moved}"
    );
    assert_no_client_secret(dir.path(), &run.out.printed());
}
