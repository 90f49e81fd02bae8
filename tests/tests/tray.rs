//! End to end: the `authport` binary importing into the sandbox's Tray emulator.

use crate::common;

use authport_sandbox::SandboxConfig;
use authport_sandbox::faults::{FaultKind, FaultPlan, FaultRule, Trigger};
use authport_sandbox::tray::TrayOptions;
use common::*;
use serde_json::Value;

/// The testkit's sandbox (canary credentials) with these Tray options.
async fn tray_sandbox(tray: TrayOptions) -> Sandbox {
    sandbox_with(SandboxConfig {
        tray,
        ..SandboxConfig::default()
    })
    .await
}

/// The six good example records plus three bad ones: a malformed line, a service Tray does not
/// have, and an OAuth record with no custom OAuth environment.
fn mixed_lines() -> Vec<String> {
    let mut lines = example_lines();
    lines.push(r#"{"id":"bad/json","owner":{"id":"x"}"#.to_owned());
    lines.push(r#"{"id":"bad/service","owner":{"id":"x"},"service":"nosuchservice","auth":{"type":"api_key","api_key":"k"}}"#.to_owned());
    lines.push(r#"{"id":"bad/oauth-env","owner":{"id":"x"},"service":"hubspot","auth":{"type":"oauth2","access_token":"t","refresh_token":"r"}}"#.to_owned());
    lines
}

async fn import(sandbox: &Sandbox, dir: &std::path::Path, input: &str, extra: &[&str]) -> Run {
    import_with_state(
        "tray",
        &sandbox.provider_env(),
        dir,
        std::path::Path::new(input),
        extra,
    )
    .await
}

fn status_of<'a>(report: &'a [Value], id: &str) -> &'a str {
    report
        .iter()
        .find(|l| l["id"] == id)
        .and_then(|l| l["status"].as_str())
        .unwrap_or_else(|| panic!("{id} not in report: {report:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_once_then_unchanged_then_updated() {
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    let dir = scratch();
    let input = write_lines(dir.path(), "in.jsonl", &mixed_lines());
    let input = input.to_str().unwrap();

    let first = import(&sandbox, dir.path(), input, &[]).await;
    assert_eq!(
        first.out.code, 1,
        "bad records make the run exit 1: {}",
        first.out.stderr
    );
    assert_eq!(first.report.len(), 9, "one line per input record");
    for id in [
        "acme-42/hubspot",
        "acme-42/salesforce",
        "globex-7/activecampaign",
        "globex-7/greenhouse",
        "initech-3/quickbooks",
        "initech-3/zendesk",
    ] {
        assert_eq!(status_of(&first.report, id), "imported", "{id}");
    }
    assert_eq!(
        sandbox.tray.auth_count(),
        6,
        "each good record exactly once"
    );
    assert_eq!(
        sandbox.tray.auths_of_external_user("acme-42").len(),
        2,
        "owned by the end user"
    );
    assert_eq!(sandbox.tray.auths_of_external_user("globex-7").len(), 2);
    assert_eq!(sandbox.tray.auths_of_external_user("initech-3").len(), 2);

    // Each bad record fails with a located reason.
    let by_line = |line: u64| {
        first
            .report
            .iter()
            .find(|l| l["line"] == line)
            .unwrap_or_else(|| panic!("line {line} missing"))
    };
    let bad_json = by_line(7);
    assert_eq!(bad_json["status"], "failed");
    assert_eq!(bad_json["line"], 7);
    assert!(
        bad_json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("in.jsonl:7: malformed JSON"),
        "{bad_json}"
    );
    let bad_service = by_line(8);
    assert_eq!(
        (bad_service["id"].as_str(), bad_service["status"].as_str()),
        (Some("bad/service"), Some("failed"))
    );
    assert!(
        bad_service["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nosuchservice"),
        "{bad_service}"
    );
    let bad_env = by_line(9);
    assert_eq!(bad_env["status"], "failed");
    assert!(
        bad_env["error"]["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("oauth"),
        "{bad_env}"
    );

    // Second run: nothing changed, nothing sent.
    let second = import(&sandbox, dir.path(), input, &[]).await;
    assert_eq!(second.out.code, 1);
    let unchanged = second
        .report
        .iter()
        .filter(|l| l["status"] == "unchanged")
        .count();
    assert_eq!(unchanged, 6, "{:?}", statuses(&second.report));
    assert_eq!(sandbox.tray.auth_count(), 6);

    // A changed secret: that record is updated in place (PUT), the others unchanged.
    let mut changed = mixed_lines();
    changed[3] = changed[3].replace("example-greenhouse-key", "rotated-greenhouse-key");
    let input2 = write_lines(dir.path(), "in2.jsonl", &changed);
    let third = import(&sandbox, dir.path(), input2.to_str().unwrap(), &[]).await;
    assert_eq!(status_of(&third.report, "globex-7/greenhouse"), "updated");
    assert_eq!(
        third
            .report
            .iter()
            .filter(|l| l["status"] == "unchanged")
            .count(),
        5
    );
    assert_eq!(sandbox.tray.auth_count(), 6, "an update creates nothing");
    let updated: Vec<_> = sandbox
        .tray
        .auths()
        .into_iter()
        .filter(|a| a.updates > 0)
        .collect();
    assert_eq!(updated.len(), 1);

    // Verify reads back every imported auth.
    let verify = authport(
        dir.path(),
        &["verify", "--provider", "tray", "--state", "state.db"],
        &sandbox.provider_env(),
    )
    .await;
    assert_eq!(verify.code, 0, "{}", verify.stderr);
    let lines = parse_lines(&verify.stdout);
    assert_eq!(lines.len(), 6);
    assert!(lines.iter().all(|l| l["healthy"] == true), "{lines:?}");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ambiguous_create_is_reconciled_not_duplicated() {
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    // The sandbox applies the 1st and 4th creates, then drops the connection / answers 500.
    sandbox.faults.set(FaultPlan {
        seed: 7,
        rules: vec![
            FaultRule::new(
                Some("POST"),
                "/core/v1/authentications",
                FaultKind::DropAfterApply,
                Trigger::Nth(vec![1]),
            ),
            FaultRule::new(
                Some("POST"),
                "/core/v1/authentications",
                FaultKind::ErrorAfterApply,
                Trigger::Nth(vec![4]),
            ),
        ],
        latency: None,
    });
    let dir = scratch();
    let input = write_lines(dir.path(), "in.jsonl", &example_lines());
    let run = import(&sandbox, dir.path(), input.to_str().unwrap(), &[]).await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    let injected = sandbox.faults.injected();
    assert_eq!(
        (injected.drop_after, injected.error_after),
        (1, 1),
        "both faults fired"
    );
    assert!(
        run.report.iter().all(|l| l["status"] == "imported"),
        "{:?}",
        statuses(&run.report)
    );
    assert_eq!(
        sandbox.tray.auth_count(),
        6,
        "no duplicate after ambiguous creates"
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_user_tokens_are_minted_again() {
    // Every user token stops working after two uses, as if two days had passed mid-run.
    let sandbox = tray_sandbox(TrayOptions {
        user_token_max_uses: Some(2),
        ..TrayOptions::default()
    })
    .await;
    let dir = scratch();
    let mut lines = example_lines();
    // More records per owner than a token survives.
    for n in 0..4 {
        lines.push(format!(
            r#"{{"id":"acme-42/greenhouse-{n}","owner":{{"id":"acme-42","name":"Acme Inc"}},"service":"greenhouse","auth":{{"type":"api_key","api_key":"k-{n}"}}}}"#
        ));
    }
    let input = write_lines(dir.path(), "in.jsonl", &lines);
    let run = import(
        &sandbox,
        dir.path(),
        input.to_str().unwrap(),
        &["--concurrency", "1"],
    )
    .await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    assert_eq!(
        run.report
            .iter()
            .filter(|l| l["status"] == "imported")
            .count(),
        10
    );
    assert_eq!(sandbox.tray.auth_count(), 10);
    assert!(
        sandbox.tray.minted_token_count() > 3,
        "tokens were re-minted: {} minted for 3 users",
        sandbox.tray.minted_token_count()
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn solution_instances_are_created_enabled_and_rolled_back_with_the_auths() {
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    let solution = sandbox
        .tray
        .catalogue()
        .solutions
        .iter()
        .find(|s| s.title == "Acme HubSpot Sync")
        .unwrap()
        .clone();
    // A pre-existing auth of another end user: rollback must leave it alone.
    let dir = scratch();
    let config = format!(
        "[tray.solution]\nsolution_id = \"{}\"\nslots = {{ External_HubSpot_Authentication = \"hubspot\" }}\nenable_delay_ms = 0\n",
        solution.id
    );
    std::fs::write(dir.path().join("authport.toml"), config).unwrap();
    let input = write_lines(dir.path(), "in.jsonl", &example_lines());
    let run = import(
        &sandbox,
        dir.path(),
        input.to_str().unwrap(),
        &["--config", "authport.toml"],
    )
    .await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    let instances = sandbox.tray.instances();
    assert_eq!(
        instances.len(),
        1,
        "one instance for the one hubspot record"
    );
    assert!(instances[0].enabled, "the instance was enabled");
    let hubspot_auth = sandbox
        .tray
        .auths_of_external_user("acme-42")
        .into_iter()
        .find(|a| a.name.contains("HubSpot"))
        .unwrap();
    assert_eq!(
        instances[0].auth_values,
        vec![(
            "External_HubSpot_Authentication".to_owned(),
            hubspot_auth.id.clone()
        )]
    );

    let before_rollback = sandbox.tray.auth_count();
    assert_eq!(before_rollback, 6);
    let rollback = authport(
        dir.path(),
        &[
            "rollback",
            "--provider",
            "tray",
            "--state",
            "state.db",
            "--config",
            "authport.toml",
        ],
        &sandbox.provider_env(),
    )
    .await;
    assert_eq!(rollback.code, 0, "{}", rollback.stderr);
    assert_eq!(
        sandbox.tray.auth_count(),
        0,
        "rollback removed every auth the run created"
    );
    assert!(sandbox.tray.instances().is_empty(), "and the instance");
    sandbox.stop().await;
}

/// Issue 8 item 16: Tray documents no way to read a solution's auth slots, so a wrong-case
/// slot external id is found when `createSolutionInstance` fails. That failure is explained
/// once, never stops the run (no exit 3) and never undoes the auths already imported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_case_solution_slot_is_explained_once_and_every_auth_is_imported() {
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    let solution_id = sandbox
        .tray
        .catalogue()
        .solutions
        .iter()
        .find(|s| s.title == "Acme HubSpot Sync")
        .unwrap()
        .id
        .clone();
    let dir = scratch();
    let config = format!(
        "[tray.solution]\nsolution_id = \"{solution_id}\"\nslots = {{ external_hubspot_authentication = \"hubspot\" }}\nenable_delay_ms = 0\n"
    );
    std::fs::write(dir.path().join("authport.toml"), config).unwrap();
    // One instance per owner: three more owners with a HubSpot record each.
    let mut lines = example_lines();
    for owner in ["o1", "o2", "o3"] {
        lines.push(format!(
            r#"{{"id":"{owner}/hubspot","owner":{{"id":"{owner}"}},"service":"hubspot","auth":{{"type":"oauth2","access_token":"t-{owner}"}},"targets":{{"tray":{{"service_environment":"acme hubspot oauth"}}}}}}"#
        ));
    }
    let input = write_lines(dir.path(), "in.jsonl", &lines);
    let run = import(
        &sandbox,
        dir.path(),
        input.to_str().unwrap(),
        &["--config", "authport.toml"],
    )
    .await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    assert!(
        run.report.iter().all(|l| l["status"] == "imported"),
        "{:?}",
        statuses(&run.report)
    );
    assert_eq!(sandbox.tray.auth_count(), 9, "every auth is imported");
    assert!(sandbox.tray.instances().is_empty());
    assert_eq!(
        sandbox.tray.call_count("graphql createSolutionInstance"),
        1,
        "the refused step is not asked again for every owner"
    );
    let warnings: Vec<String> = run
        .report
        .iter()
        .map(|l| l["warnings"].to_string())
        .collect();
    let explained: Vec<&String> = warnings
        .iter()
        .filter(|w| w.contains("case-sensitive"))
        .collect();
    assert_eq!(explained.len(), 1, "explained once: {warnings:?}");
    assert!(explained[0].contains("external_hubspot_authentication"));
    let referring = warnings
        .iter()
        .filter(|w| w.contains("its report line has the reason"))
        .count();
    assert_eq!(referring, 3, "{warnings:?}");
    assert!(
        run.out.stderr.contains("external_hubspot_authentication"),
        "the operator sees it: {}",
        run.out.stderr
    );
    sandbox.stop().await;
}

/// Issue 8 item 1: a re-run without `--state` (or with a new state path) finds each record's
/// auth at Tray by its unique name and adopts it instead of creating a second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_the_same_file_twice_without_state_leaves_one_auth_per_record() {
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    let dir = scratch();
    let input = write_lines(dir.path(), "in.jsonl", &example_lines());
    let input = input.to_str().unwrap();
    let args = ["import", "--provider", "tray", "--input", input];
    let first = authport(dir.path(), &args, &sandbox.provider_env()).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(sandbox.tray.auth_count(), 6);
    let second = authport(dir.path(), &args, &sandbox.provider_env()).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(
        sandbox.tray.auth_count(),
        6,
        "exactly one auth per record after two runs"
    );
    let mut names: Vec<String> = sandbox.tray.auths().into_iter().map(|a| a.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 6, "one auth of each record's name");
    let report = parse_lines(&second.stdout);
    assert_eq!(report.len(), 6, "{}", second.stdout);
    assert!(
        report
            .iter()
            .all(|l| l["warnings"].to_string().contains("found at tray")),
        "{report:?}"
    );
    // A new state file is the same as none.
    let third = import(&sandbox, dir.path(), input, &[]).await;
    assert_eq!(third.out.code, 0, "{}", third.out.stderr);
    assert_eq!(sandbox.tray.auth_count(), 6);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_leaves_pre_existing_auths_alone_and_dry_run_writes_nothing() {
    let sandbox = tray_sandbox(TrayOptions::default()).await;
    let dir = scratch();
    let input = write_lines(dir.path(), "in.jsonl", &example_lines());
    let input = input.to_str().unwrap();

    let plan = authport(
        dir.path(),
        &[
            "import",
            "--provider",
            "tray",
            "--input",
            input,
            "--dry-run",
        ],
        &sandbox.provider_env(),
    )
    .await;
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let planned = parse_lines(&plan.stdout);
    assert_eq!(planned.len(), 6);
    assert!(
        planned
            .iter()
            .all(|l| l["status"] == "planned" && l["plan"].is_object()),
        "{planned:?}"
    );
    assert!(plan.stdout.contains("[redacted]"));
    assert_eq!(sandbox.tray.auth_count(), 0, "a dry run writes nothing");
    assert!(sandbox.tray.users().is_empty(), "not even users");

    // One record imported by someone else before us.
    let first = import(&sandbox, dir.path(), input, &[]).await;
    assert_eq!(first.out.code, 0, "{}", first.out.stderr);
    let someone_else = sandbox.tray.insert_user("Other", "other-1");
    let mut foreign = sandbox.tray.auths()[0].clone();
    foreign.id = "0000aaaa-0000-4000-8000-000000000001".to_owned();
    foreign.owner = authport_sandbox::tray::Owner::User(someone_else.id.clone());
    foreign.name = "not ours".to_owned();
    sandbox.tray.insert_auth(foreign);
    assert_eq!(sandbox.tray.auth_count(), 7);

    let rollback = authport(
        dir.path(),
        &["rollback", "--provider", "tray", "--state", "state.db"],
        &sandbox.provider_env(),
    )
    .await;
    assert_eq!(rollback.code, 0, "{}", rollback.stderr);
    let remaining = sandbox.tray.auths();
    assert_eq!(remaining.len(), 1);
    assert_eq!(remaining[0].name, "not ours");
    // Rollback again: everything is already gone, nothing else is touched.
    let again = authport(
        dir.path(),
        &["rollback", "--provider", "tray", "--state", "state.db"],
        &sandbox.provider_env(),
    )
    .await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(sandbox.tray.auth_count(), 1);
    sandbox.stop().await;
}
