//! End to end, after the import (issue 12): import into the sandbox's Apideck Vault while
//! `authport webhooks` receives its signed deliveries; the sandbox then fails some background
//! refreshes; `status` shows exactly those records as `refresh_failed`; `reconnect` lists exactly
//! them plus the records that can never be imported (a pre-existing connection is left out);
//! `--links` mints Vault sessions the sandbox opens, once unless asked again; no canary secret
//! reaches the worklist, the event store, the state or any output.

use crate::common;

use std::collections::BTreeSet;
use std::process::Stdio;

use authport_sandbox::apideck::FailRefresh;
use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

fn input_lines() -> Vec<String> {
    vec![
        apideck_oauth_line("u1/hubspot", "u1", "Ada", "hubspot", "crm"),
        apideck_oauth_line("u1/pipedrive", "u1", "Ada", "pipedrive", "crm"),
        apideck_oauth_line("u2/xero", "u2", "Bob", "xero", "accounting"),
        apideck_oauth_line("u3/hubspot", "u3", "Cy", "hubspot", "crm"),
        // No such connector: can never be imported (a mapping failure).
        apideck_oauth_line("u4/nosuch", "u4", "Di", "nosuch", "crm"),
        // The consumer already has a connection: skipped, and not on the worklist.
        apideck_oauth_line("u5/hubspot", "u5", "Ed", "hubspot", "crm"),
    ]
}

/// `authport webhooks` as a child process, and the URL it listens on.
async fn receiver(
    dir: &std::path::Path,
    env: &[(String, String)],
) -> (tokio::process::Child, String) {
    let mut child = authport_command()
        .current_dir(dir)
        .args([
            "webhooks",
            "--provider",
            "apideck",
            "--listen",
            "127.0.0.1:0",
            "--state",
            "state.db",
        ])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the receiver");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines
        .next_line()
        .await
        .expect("read")
        .expect("the receiver says where it listens");
    let url = first
        .split("listening on ")
        .nth(1)
        .expect("a listening line")
        .trim()
        .to_owned();
    (child, url)
}

fn ids_with(lines: &[Value], status: &str) -> BTreeSet<String> {
    lines
        .iter()
        .filter(|l| l["status"] == status)
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_refreshes_and_unimportable_records_end_on_the_reconnect_list() {
    let sandbox = sandbox().await;
    let env = sandbox.provider_env();
    let dir = scratch();
    let inputs = scratch(); // the input holds canaries: kept apart from what must not
    let input = write_lines(inputs.path(), "in.jsonl", &input_lines());
    let input = input.to_str().unwrap();
    crate::apideck::precreate_theirs(&sandbox.apideck, "u5");
    std::fs::write(
        dir.path().join("authport.toml"),
        "[apideck]\nredirect_uri = \"https://app.example/after-reconnect\"\n",
    )
    .unwrap();

    // The receiver needs the migration's state: a dry run with no records makes it.
    let empty = write_lines(inputs.path(), "empty.jsonl", &[]);
    let args = [
        "import",
        "--provider",
        "apideck",
        "--input",
        empty.to_str().unwrap(),
    ];
    let made = authport(
        dir.path(),
        &[&args[..], &["--state", "state.db", "--dry-run"]].concat(),
        &env,
    )
    .await;
    assert_eq!(made.code, 0, "{}", made.stderr);
    let (mut webhooks, url) = receiver(dir.path(), &env).await;
    sandbox.apideck.set_webhook_url(Some(url));
    let run = import_with_state(
        "apideck",
        &env,
        dir.path(),
        std::path::Path::new(input),
        &[],
    )
    .await;
    assert_eq!(run.out.code, 1, "{}", run.out.stderr);
    assert_eq!(
        ids_with(&run.report, "imported"),
        set(&["u1/hubspot", "u1/pipedrive", "u2/xero", "u3/hubspot"])
    );
    let kind =
        |id: &str| run.report.iter().find(|l| l["id"] == id).unwrap()["error"]["kind"].clone();
    assert_eq!(kind("u4/nosuch"), "mapping");
    assert_eq!(kind("u5/hubspot"), "pre_existing");

    // Vault's background refresh fails for two imported connections.
    let key = |c: &str, u: &str, s: &str| FailRefresh::Connection((c.into(), u.into(), s.into()));
    sandbox.apideck.fail_refreshes(
        [key("u1", "crm", "hubspot"), key("u2", "accounting", "xero")],
        true,
    );
    assert_eq!(sandbox.apideck.run_refreshes(), (2, 0));
    sandbox.apideck.webhooks_settled().await;
    let failed_events: Vec<_> = sandbox
        .apideck
        .sent_webhooks()
        .into_iter()
        .filter(|w| w.event_type == "vault.connection.token_refresh.failed")
        .collect();
    assert_eq!(failed_events.len(), 2);
    assert!(
        failed_events.iter().all(|w| w.status == Some(200)),
        "{failed_events:?}"
    );

    // status: exactly those two are refresh_failed; exit 5 as not every import is healthy.
    let status = authport(
        dir.path(),
        &[
            "status",
            "--provider",
            "apideck",
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
    assert_eq!(status.code, 5, "{}", status.stderr);
    let lines = parse_lines(&status.stdout);
    let (records, summary) = lines.split_at(lines.len() - 1);
    assert_eq!(
        ids_with(records, "refresh_failed"),
        set(&["u1/hubspot", "u2/xero"])
    );
    assert_eq!(
        ids_with(records, "healthy"),
        set(&["u1/pipedrive", "u3/hubspot"])
    );
    assert_eq!(
        ids_with(records, "not_imported"),
        set(&["u4/nosuch", "u5/hubspot"])
    );
    assert_eq!(summary[0]["exit_code"], 5);
    let failed = records.iter().find(|l| l["id"] == "u1/hubspot").unwrap();
    assert_eq!(
        failed["detail"]["last_event"],
        "vault.connection.token_refresh.failed"
    );

    // reconnect: one row per owner and service; pre_existing left out. With the import's report
    // and without it (records never imported are mapped again) the list is the same.
    let report = dir.path().join("report.jsonl");
    for extra in [vec!["--import-report", report.to_str().unwrap()], vec![]] {
        let mut args = vec![
            "reconnect",
            "--provider",
            "apideck",
            "--state",
            "state.db",
            "--input",
            input,
        ];
        args.extend(extra);
        let out = authport(dir.path(), &args, &env).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        let rows = parse_lines(&out.stdout);
        let listed: BTreeSet<(String, String, String)> = rows
            .iter()
            .map(|r| {
                (
                    r["owner_id"].as_str().unwrap().to_owned(),
                    r["service"].as_str().unwrap().to_owned(),
                    r["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let expected: BTreeSet<(String, String, String)> = [
            ("u1", "hubspot", "refresh_failed"),
            ("u2", "xero", "refresh_failed"),
            ("u4", "nosuch", "not_imported"),
        ]
        .iter()
        .map(|(a, b, c)| ((*a).into(), (*b).into(), (*c).into()))
        .collect();
        assert_eq!(listed, expected, "{}", out.stdout);
        let u2 = rows.iter().find(|r| r["owner_id"] == "u2").unwrap();
        assert_eq!(u2["owner_name"], "Bob");
        assert_eq!(u2["owner_email"], "u2@example.com");
        assert_eq!(u2["record_ids"], json!(["u2/xero"]));
        assert_eq!(u2["vendor"]["unified_api"], "accounting");
        assert_eq!(u2["vendor"]["service_id"], "xero");
        assert_no_canary("reconnect output", &out.printed());
    }

    // --links: Vault sessions the sandbox opens, limited to the unified APIs needed.
    let links_args = [
        "reconnect",
        "--provider",
        "apideck",
        "--config",
        "authport.toml",
        "--state",
        "state.db",
        "--input",
        input,
        "--links",
        "--output",
        "worklist.jsonl",
    ];
    let out = authport(dir.path(), &links_args, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows = read_lines(&dir.path().join("worklist.jsonl"));
    assert_eq!(rows.len(), 3);
    // u4's connector is not enabled: the operator's to fix (kind config_fix), so no link.
    let (fixes, rows): (Vec<Value>, Vec<Value>) =
        rows.into_iter().partition(|r| r["kind"] == "config_fix");
    assert_eq!(fixes.len(), 1, "{fixes:?}");
    assert_eq!(fixes[0]["owner_id"], "u4");
    assert!(fixes[0]["link"].is_null(), "{:?}", fixes[0]);
    for row in &rows {
        let link = row["link"].as_str().expect("a link");
        let page = reqwest::get(link).await.unwrap();
        assert_eq!(page.status().as_u16(), 200, "{link}");
        let page: Value = page.json().await.unwrap();
        assert_eq!(page["consumer_id"], row["owner_id"]);
        assert_eq!(page["unified_apis"], json!([row["vendor"]["unified_api"]]));
        assert_eq!(page["redirect_uri"], "https://app.example/after-reconnect");
        assert!(row["link_note"].as_str().unwrap().contains("1 hour"));
    }
    // A re-run does not mint again; --force-links does.
    let again = authport(dir.path(), &links_args, &env).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    let rows = read_lines(&dir.path().join("worklist.jsonl"));
    assert!(
        rows.iter()
            .filter(|r| r["kind"] == "end_user")
            .all(|r| r["link"].is_null() && r["link_minted_at"].is_string()),
        "{rows:?}"
    );
    assert!(
        again.stderr.contains("links minted 0, minted earlier 2"),
        "{}",
        again.stderr
    );
    let mut forced: Vec<&str> = links_args.to_vec();
    // With trace logs: neither the API key, a record's secret nor a link reaches a log.
    forced.extend(["--force-links", "--format", "csv", "-vvv"]);
    let at = forced.iter().position(|a| *a == "worklist.jsonl").unwrap();
    forced[at] = "worklist.csv";
    let out = authport(dir.path(), &forced, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let csv = std::fs::read_to_string(dir.path().join("worklist.csv")).unwrap();
    let mut csv_lines = csv.lines();
    assert!(
        csv_lines
            .next()
            .unwrap()
            .starts_with("owner_id,owner_name,owner_email,service,")
    );
    assert_eq!(
        csv_lines.filter(|l| l.contains("/session/")).count(),
        2,
        "{csv}"
    );
    assert_no_canary("reconnect trace log", &out.stderr);
    assert!(
        !out.stderr.contains("/session/"),
        "a link in the log: {}",
        out.stderr
    );

    // Nothing written or printed holds a canary: worklists, state, event store, receiver logs.
    webhooks.start_kill().unwrap();
    let mut logs = String::new();
    webhooks
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .await
        .unwrap();
    webhooks.wait().await.unwrap();
    assert_no_canary("webhook receiver log", &logs);
    assert_no_canary("status output", &status.printed());
    assert_no_canary("import output", &run.out.printed());
    assert_no_canary_in_dir(dir.path());
    assert!(dir.path().join("state.db.events").is_file());
}

fn tray_apideck_oauth_line(id: &str, owner: &str, environment: &str) -> String {
    json!({"id": id, "owner": {"id": owner, "name": owner.to_uppercase()},
           "service": "hubspot",
           "auth": {"type": "oauth2", "access_token": canary(&format!("{id}-access")),
                    "refresh_token": canary(&format!("{id}-refresh")),
                    "expires_at": "2030-01-01T00:00:00Z"},
           "targets": {"tray": {"service_environment": environment}}})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tray_lists_records_that_can_never_be_imported_with_single_use_dialog_links() {
    let sandbox = sandbox().await;
    let mut env = sandbox.provider_env();
    env.push(("TRAY_EMBEDDED_ID".into(), "acme".into()));
    env.push(("TRAY_AUTH_DIALOG_URL".into(), sandbox.base_url()));
    let dir = scratch();
    let inputs = scratch();
    let input = write_lines(
        inputs.path(),
        "in.jsonl",
        &[
            tray_apideck_oauth_line("t1/hubspot", "t1", "acme hubspot oauth"),
            // Tray's own OAuth app cannot refresh tokens another app issued: never imported,
            // and the operator's to fix (targets.tray.service_environment).
            tray_apideck_oauth_line("t2/hubspot", "t2", "Production"),
            // An API key for the OAuth environment: the end user must connect again.
            json!({"id": "t3/hubspot", "owner": {"id": "t3", "name": "T3"}, "service": "hubspot",
                   "auth": {"type": "api_key", "api_key": canary("t3/hubspot-key")}})
            .to_string(),
        ],
    );
    let input = input.to_str().unwrap();
    let run = import_with_state("tray", &env, dir.path(), std::path::Path::new(input), &[]).await;
    assert_eq!(run.out.code, 1, "{}", run.out.stderr);
    assert_eq!(ids_with(&run.report, "imported"), set(&["t1/hubspot"]));

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
        ],
        &env,
    )
    .await;
    assert_eq!(
        status.code, 0,
        "every imported record is healthy: {}",
        status.stderr
    );
    assert!(status.stdout.contains("healthy") && status.stdout.contains("t1/hubspot"));
    assert!(status.stdout.contains("not_imported") && status.stdout.contains("t2/hubspot"));

    let args = [
        "reconnect",
        "--provider",
        "tray",
        "--state",
        "state.db",
        "--input",
        input,
        "--links",
    ];
    let out = authport(dir.path(), &args, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows = parse_lines(&out.stdout);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let fix = rows.iter().find(|r| r["owner_id"] == "t2").unwrap();
    assert_eq!(fix["kind"], "config_fix", "{fix}");
    assert!(fix["link"].is_null(), "{fix}");
    assert!(
        fix["setting"]
            .as_str()
            .unwrap()
            .contains("targets.tray.service_environment"),
        "{fix}"
    );
    let row = rows.iter().find(|r| r["owner_id"] == "t3").unwrap();
    assert_eq!(
        (row["kind"].as_str(), row["status"].as_str()),
        (Some("end_user"), Some("not_imported"))
    );
    let service_id = authport_sandbox::tray::stable_uuid("service:hubspot:2");
    let environment = authport_sandbox::tray::environment_id("hubspot", 2, "Production");
    assert_eq!(row["vendor"]["serviceId"], service_id.as_str());
    assert_eq!(row["vendor"]["serviceEnvironmentId"], environment.as_str());
    assert!(row["link_note"].as_str().unwrap().contains("single use"));
    let link = row["link"].as_str().expect("a link");
    assert!(link.starts_with(&format!(
        "{}/external/auth/create/acme?code=",
        sandbox.base_url()
    )));
    assert_eq!(reqwest::get(link).await.unwrap().status().as_u16(), 200);
    assert_eq!(
        reqwest::get(link).await.unwrap().status().as_u16(),
        403,
        "single use"
    );
    assert_eq!(sandbox.tray.auth_codes_minted(), 1);
    // Journaled: a re-run mints nothing new.
    let again = authport(dir.path(), &args, &env).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(sandbox.tray.auth_codes_minted(), 1);
    for printed in [
        &run.out.printed(),
        &status.printed(),
        &out.printed(),
        &again.printed(),
    ] {
        assert_no_canary("tray output", printed);
    }
    assert_no_canary_in_dir(dir.path());
}
