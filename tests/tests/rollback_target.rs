//! End to end (issue 17, item 13): `rollback --allow-target-change` against the wrong target.
//! Every object the state lists is absent there, so a rollback that forgot what it found gone
//! would leave the real objects behind with nothing left to remove them.

use crate::common;

use authport_sandbox::SandboxConfig;
use authport_sandbox::tray::TrayOptions;
use common::*;
use serde_json::Value;

/// The six example records imported into `sandbox`'s Tray with `state.db` in `dir`.
async fn imported_into(sandbox: &Sandbox, dir: &std::path::Path) {
    let input = write_lines(dir, "in.jsonl", &example_lines());
    let run = import_with_state("tray", &sandbox.env(), dir, &input, &[]).await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    assert_eq!(sandbox.tray.auth_count(), 6);
}

async fn rollback(dir: &std::path::Path, sandbox: &Sandbox, extra: &[&str]) -> Output {
    let mut args = vec!["rollback", "--provider", "tray", "--state", "state.db"];
    args.extend_from_slice(extra);
    authport(dir, &args, &sandbox.env()).await
}

/// The objects the state lists, as `verify` against `sandbox` reads them.
async fn listed(dir: &std::path::Path, sandbox: &Sandbox) -> Vec<Value> {
    let out = authport(
        dir,
        &["verify", "--provider", "tray", "--state", "state.db"],
        &sandbox.env(),
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    parse_lines(&out.stdout)
}

/// Another Tray account (another master token) refuses the flag: exit 2, with the reason, and
/// the state still lists every object, so the rollback against the right target removes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_against_another_account_is_refused_and_forgets_nothing() {
    let right = sandbox().await;
    let other_account = sandbox_with(SandboxConfig {
        tray: TrayOptions {
            master_token: canary("tray-master-token-of-another-account"),
            ..TrayOptions::default()
        },
        ..SandboxConfig::default()
    })
    .await;
    let dir = scratch();
    imported_into(&right, dir.path()).await;

    let refused = rollback(dir.path(), &other_account, &["--allow-target-change"]).await;
    assert_eq!(refused.code, 2, "{}", refused.printed());
    assert!(
        refused.stderr.contains("another account") && refused.stderr.contains("cannot remove"),
        "{}",
        refused.stderr
    );
    assert_no_canary("refused rollback", &refused.printed());
    assert_eq!(
        other_account.faults.requests_seen(),
        0,
        "nothing sent to the other account"
    );
    assert_eq!(listed(dir.path(), &right).await.len(), 6);

    let removed = rollback(dir.path(), &right, &[]).await;
    assert_eq!(removed.code, 0, "{}", removed.stderr);
    assert_eq!(right.tray.auth_count(), 0, "{}", removed.stdout);
    assert_no_canary_in_dir(dir.path());
}

/// The same account at another endpoint (the flag is allowed): what is absent there is
/// reported `already_gone` but stays in the state, so a rollback at the endpoint that holds the
/// objects still removes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_at_a_moved_endpoint_keeps_the_objects_it_finds_gone() {
    let right = sandbox().await;
    let moved = sandbox().await;
    let dir = scratch();
    imported_into(&right, dir.path()).await;

    let elsewhere = rollback(dir.path(), &moved, &["--allow-target-change"]).await;
    let lines = parse_lines(&elsewhere.stdout);
    assert_eq!(lines.len(), 6, "{}", elsewhere.printed());
    assert!(
        lines.iter().all(|l| l["status"] == "already_gone"),
        "{lines:?}"
    );
    assert_eq!(right.tray.auth_count(), 6);

    let removed = rollback(dir.path(), &right, &["--allow-target-change"]).await;
    assert_eq!(removed.code, 0, "{}", removed.printed());
    let lines = parse_lines(&removed.stdout);
    assert!(
        lines.len() == 6 && lines.iter().all(|l| l["status"] == "removed"),
        "{lines:?}"
    );
    assert_eq!(right.tray.auth_count(), 0);
    assert_no_canary_in_dir(dir.path());
}
