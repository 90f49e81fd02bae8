//! `authport migrate` end to end, off the happy path: an unreadable or fatal source object, the
//! refusals (same provider, a source that cannot export), the `[migrate]` section's service
//! renames, a terminated migrate that resumes, and a dry run that writes nothing.

use crate::common;
use crate::migrate::{check_arrived, expected, migrate_args, seeded, statuses_of, tally};

use std::process::Stdio;

use authport_sandbox::faults::{FaultKind, FaultPlan, FaultRule, Trigger};
use common::*;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};

/// A source object the exporter cannot read is one failed report line; the rest arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_source_object_is_reported_and_the_rest_goes_on() {
    let (sandbox, _planted, _in_tray) = seeded().await;
    let broken = sandbox.tray.auths()[0].id.clone();
    sandbox.set_faults(FaultPlan {
        rules: vec![FaultRule::new(
            Some("GET"),
            &format!("/core/v1/authentications/{broken}/full"),
            FaultKind::ErrorBeforeApply,
            Trigger::Burst {
                first: 1,
                count: u64::MAX / 2,
            },
        )],
        ..FaultPlan::default()
    });
    let dir = scratch();
    let out = authport(
        dir.path(),
        &migrate_args("nango", "report.jsonl", &[]),
        &sandbox.env(),
    )
    .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = read_lines(&dir.path().join("report.jsonl"));
    assert_eq!(report.len(), 6, "one line per source object: {report:?}");
    let failed: Vec<&Value> = report
        .iter()
        .filter(|l| l["status"] == "failed" && l["error"]["kind"] != "mapping")
        .collect();
    assert_eq!(failed.len(), 1, "{report:?}");
    assert_eq!(failed[0]["id"], broken.as_str(), "{report:?}");
    assert_eq!(failed[0]["line"], 0, "{report:?}");
    assert!(
        failed[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not exported"),
        "{report:?}"
    );
    let imported = statuses_of(&report)
        .iter()
        .filter(|s| *s == "imported")
        .count();
    let refused = report.len() - imported - 1;
    assert!(
        refused <= 2,
        "only what the exporter leaves custom: {report:?}"
    );
    assert_eq!(sandbox.nango.connection_count(), imported);
    assert_no_canary_in_dir(dir.path());
}

/// A source that refuses the export (bad credentials) stops the run like a fatal target error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_source_error_stops_the_run() {
    let (sandbox, _planted, _in_tray) = seeded().await;
    let mut env = sandbox.env();
    for (name, value) in &mut env {
        if name == "TRAY_MASTER_TOKEN" {
            *value = "not-the-master-token".to_owned();
        }
    }
    let dir = scratch();
    let out = authport(
        dir.path(),
        &migrate_args("apideck", "report.jsonl", &[]),
        &env,
    )
    .await;
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(
        out.printed().contains("the export from tray stopped"),
        "{}",
        out.stderr
    );
    assert_eq!(sandbox.apideck.connection_count(), 0);
}

#[tokio::test]
async fn migrate_refuses_the_same_provider_and_a_source_that_cannot_export() {
    let dir = scratch();
    let out = authport(
        dir.path(),
        &["migrate", "--from", "tray", "--to", "tray"],
        &[],
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("same provider"), "{}", out.stderr);
    let out = authport(
        dir.path(),
        &["migrate", "--from", "apideck", "--to", "nango"],
        &[],
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("cannot export"), "{}", out.stderr);
}

/// `[migrate.services]` renames the source's service to another canonical slug for the run:
/// the target places the record by the new slug (Apideck: HubSpot's auth lands as Pipedrive).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migrate_section_renames_a_service_for_the_target() {
    let (sandbox, planted, _in_tray) = seeded().await;
    let dir = scratch();
    std::fs::write(
        dir.path().join("migrate.toml"),
        "[migrate.services]\nhubspot = \"pipedrive\"\n",
    )
    .unwrap();
    let args = migrate_args(
        "apideck",
        "report.jsonl",
        &["--owner", "acme-42", "--config", "migrate.toml"],
    );
    let out = authport(dir.path(), &args, &sandbox.env()).await;
    let report = read_lines(&dir.path().join("report.jsonl"));
    assert!(out.code == 0 || out.code == 1, "{report:?} {}", out.stderr);
    let keys = sandbox.apideck.connection_keys();
    let pipedrive = (
        "acme-42".to_owned(),
        "crm".to_owned(),
        "pipedrive".to_owned(),
    );
    assert!(keys.contains(&pipedrive), "{keys:?}");
    assert!(
        keys.iter().all(|(_, _, service)| service != "hubspot"),
        "{keys:?}"
    );
    let view = sandbox
        .apideck
        .connection("acme-42", "crm", "pipedrive")
        .unwrap();
    let holds = serde_json::to_string(&view.stored.credentials).unwrap();
    let token = planted
        .iter()
        .find(|p| p.record_id == "acme-42/hubspot" && p.field == "access_token")
        .unwrap();
    assert!(holds.contains(&token.secret));
    assert_no_canary_in_dir(dir.path());
}

/// SIGTERM stops the migrate gracefully (exit 130, nothing unresolved) and the same command
/// resumes it.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_migrate_stops_gracefully_and_resumes() {
    let (sandbox, planted, in_tray) = seeded().await;
    let expect = expected(&sandbox, &planted, &in_tray).await;
    let env = sandbox.env();
    let dir = scratch();
    let mut command = authport_command();
    command
        .current_dir(dir.path())
        .args(migrate_args("nango", "-", &["--concurrency", "1"]))
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = stdout.next_line().await.unwrap();
    assert!(first.is_some());
    signal(&child, "-TERM");
    while stdout.next_line().await.unwrap().is_some() {}
    let status = child.wait().await.unwrap();
    // A run that had already finished every record when the signal came exits 0 or 1.
    let code = status.code().unwrap_or(-1);
    assert!([130, 0, 1].contains(&code), "{code}");
    let out = authport(dir.path(), &migrate_args("nango", "final.jsonl", &[]), &env).await;
    let report = read_lines(&dir.path().join("final.jsonl"));
    let (statuses, refused) = tally(&report);
    assert_eq!(refused, expect.refused, "{report:?} {}", out.stderr);
    assert!(
        statuses.iter().all(|s| s == "imported" || s == "unchanged"),
        "{report:?}"
    );
    assert!(check_arrived(&sandbox, "nango", &planted, &expect.arriving) >= 6 - expect.refused);
    assert_no_canary_in_dir(dir.path());
}

/// `--dry-run` reads the source and maps for the target, writes nothing there, and its plan
/// holds no secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_migrate_plans_and_writes_nothing() {
    let (sandbox, planted, in_tray) = seeded().await;
    let expect = expected(&sandbox, &planted, &in_tray).await;
    let dir = scratch();
    let args = migrate_args("nango", "plan.jsonl", &["--dry-run"]);
    let out = authport(dir.path(), &args, &sandbox.env()).await;
    let report = read_lines(&dir.path().join("plan.jsonl"));
    let code = if expect.refused == 0 { 0 } else { 1 };
    assert_eq!(out.code, code, "{report:?} {}", out.stderr);
    assert_eq!(
        tally(&report),
        (
            vec!["planned".to_owned(); 6 - expect.refused],
            expect.refused
        ),
        "{report:?}"
    );
    assert_eq!(sandbox.nango.connection_count(), 0);
    assert_eq!(sandbox.nango.upsert_count(), 0);
    assert_no_canary_in_dir(dir.path());
}
