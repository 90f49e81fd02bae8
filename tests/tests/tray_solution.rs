//! End to end (issue 11): the `authport` binary filling a two-slot Tray solution (Mailchimp +
//! Slack, a channel config slot), one instance per owner.

use crate::common;

use std::path::Path;

use common::*;
use serde_json::Value;

async fn import(sandbox: &Sandbox, dir: &Path, lines: &[String]) -> Run {
    let input = write_lines(dir, "in.jsonl", lines);
    import_with_state(
        "tray",
        &sandbox.provider_env(),
        dir,
        &input,
        &["--config", "authport.toml"],
    )
    .await
}

fn warnings_of(report: &[Value], id: &str) -> String {
    report
        .iter()
        .find(|l| l["id"] == id)
        .map(|l| l["warnings"].to_string())
        .unwrap_or_else(|| panic!("{id} not in the report"))
}

/// The owner's instance: enabled, both slots filled with the owner's own auths.
fn assert_complete(sandbox: &Sandbox, owner: &str) {
    let instances = sandbox.tray.instances();
    let instance = instances
        .iter()
        .find(|i| i.name == format!("{owner} inc sync ({owner})"))
        .unwrap_or_else(|| panic!("no instance for {owner}: {instances:?}"));
    assert!(instance.enabled, "{owner}'s instance is enabled");
    let auths = sandbox.tray.auths_of_external_user(owner);
    let mut expected: Vec<(String, String)> = ["mailchimp", "slack"]
        .iter()
        .map(|service| {
            let auth = auths
                .iter()
                .find(|a| a.name.to_lowercase().contains(service))
                .unwrap_or_else(|| panic!("{owner} has no {service} auth"));
            (
                format!("external_{service}_authentication"),
                auth.id.clone(),
            )
        })
        .collect();
    expected.sort();
    let mut got = instance.auth_values.clone();
    got.sort();
    assert_eq!(got, expected, "{owner}'s slots");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_with_every_slot_get_one_enabled_instance_and_the_others_a_reason() {
    let sandbox = sandbox().await;
    let dir = scratch();
    std::fs::write(dir.path().join("authport.toml"), tray_solution_config(0)).unwrap();
    // Owners' records spread through the file; initech lacks Slack, umbrella Mailchimp.
    let mut lines = vec![
        tray_solution_line("acme", "mailchimp"),
        tray_solution_line("initech", "mailchimp"),
        tray_solution_line("globex", "slack"),
        tray_solution_line("umbrella", "slack"),
        tray_solution_line("acme", "slack"),
        tray_solution_line("globex", "mailchimp"),
    ];
    let run = import(&sandbox, dir.path(), &lines).await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    assert!(
        run.report.iter().all(|l| l["status"] == "imported"),
        "{:?}",
        statuses(&run.report)
    );
    assert_eq!(sandbox.tray.instances().len(), 2);
    assert_complete(&sandbox, "acme");
    assert_complete(&sandbox, "globex");
    let initech = warnings_of(&run.report, "initech/mailchimp");
    assert!(
        initech.contains("no solution instance for owner initech")
            && initech.contains("slot `external_slack_authentication` (service slack)"),
        "{initech}"
    );
    let umbrella = warnings_of(&run.report, "umbrella/slack");
    assert!(
        umbrella.contains("slot `external_mailchimp_authentication` (service mailchimp)"),
        "{umbrella}"
    );
    assert_no_canary("the first run's output", &run.out.printed());

    // A later run with the missing records completes those owners, and no other instance.
    lines.push(tray_solution_line("initech", "slack"));
    lines.push(tray_solution_line("umbrella", "mailchimp"));
    let run = import(&sandbox, dir.path(), &lines).await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    assert_eq!(sandbox.tray.instances().len(), 4);
    for owner in ["acme", "globex", "initech", "umbrella"] {
        assert_complete(&sandbox, owner);
    }
    assert_eq!(sandbox.tray.call_count("graphql createSolutionInstance"), 4);
    let config_values: Vec<_> = sandbox
        .tray
        .instances()
        .iter()
        .map(|i| i.config_values.clone())
        .collect();
    assert!(
        config_values.iter().all(|v| v
            == &vec![(
                "external_slack_channel".to_owned(),
                Some(Value::from("\"#general\""))
            )]),
        "{config_values:?}"
    );

    // Rollback leaves nothing behind: every instance, then every auth.
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
    assert!(sandbox.tray.instances().is_empty());
    assert_eq!(sandbox.tray.auth_count(), 0);
    // The state, the report and the config hold no secret (the input, which does, goes first).
    std::fs::remove_file(dir.path().join("in.jsonl")).unwrap();
    assert_no_canary_in_dir(dir.path());
    sandbox.stop().await;
}

/// The run is killed (SIGKILL) once every owner's instance exists and its enable is waiting:
/// the resumed run enables them and creates no second instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_in_the_solution_step_resumes_without_a_second_instance() {
    let sandbox = sandbox().await;
    let dir = scratch();
    // A wait far longer than the test: the first run cannot get past it.
    std::fs::write(
        dir.path().join("authport.toml"),
        tray_solution_config(3_600_000),
    )
    .unwrap();
    let owners = ["acme", "globex", "initech"];
    let lines: Vec<String> = owners
        .iter()
        .flat_map(|owner| {
            [
                tray_solution_line(owner, "mailchimp"),
                tray_solution_line(owner, "slack"),
            ]
        })
        .collect();
    let input = write_lines(dir.path(), "in.jsonl", &lines);
    let mut command = authport_command();
    command
        .current_dir(dir.path())
        .args([
            "import",
            "--provider",
            "tray",
            "--input",
            input.to_str().unwrap(),
            "--state",
            "state.db",
            "--config",
            "authport.toml",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    command.envs(sandbox.provider_env());
    let mut child = command.spawn().unwrap();
    // An event, not a timer: every owner's instance has been created.
    sandbox.tray.wait_for_instances(owners.len()).await;
    child.kill().await.unwrap();
    assert!(
        sandbox.tray.instances().iter().all(|i| !i.enabled),
        "killed before any enable"
    );

    std::fs::write(dir.path().join("authport.toml"), tray_solution_config(0)).unwrap();
    let run = import(&sandbox, dir.path(), &lines).await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    assert_eq!(sandbox.tray.instances().len(), owners.len());
    for owner in owners {
        assert_complete(&sandbox, owner);
    }
    assert_eq!(
        sandbox.tray.call_count("graphql createSolutionInstance"),
        3,
        "no second create"
    );
    sandbox.stop().await;
}

/// The create is applied but its answer is lost (the connection drops): the engine
/// reconciles, the instance is found by name, and the run ends with one enabled instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_instance_create_answer_is_reconciled_not_duplicated() {
    use authport_sandbox::faults::{FaultKind, FaultPlan, FaultRule, Trigger};
    let sandbox = sandbox().await;
    sandbox.faults.set(FaultPlan {
        seed: 3,
        rules: vec![
            FaultRule::new(
                Some("POST"),
                "/graphql",
                FaultKind::DropAfterApply,
                Trigger::Nth(vec![1]),
            )
            .body_contains("createSolutionInstance"),
        ],
        latency: None,
    });
    let dir = scratch();
    std::fs::write(dir.path().join("authport.toml"), tray_solution_config(0)).unwrap();
    let lines = vec![
        tray_solution_line("acme", "mailchimp"),
        tray_solution_line("acme", "slack"),
    ];
    let run = import(&sandbox, dir.path(), &lines).await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    assert_eq!(sandbox.faults.injected().drop_after, 1);
    assert_eq!(sandbox.tray.instances().len(), 1);
    assert_complete(&sandbox, "acme");
    assert_eq!(sandbox.tray.call_count("graphql createSolutionInstance"), 1);
    sandbox.stop().await;
}

/// An instance that cannot be enabled fails the run (the engine's finish step), stays
/// disabled, and the next run with the same state enables it though every record is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_enable_fails_the_run_and_the_next_run_enables_it() {
    use authport_sandbox::faults::{FaultKind, FaultPlan, FaultRule, Trigger};
    let sandbox = sandbox().await;
    sandbox.faults.set(FaultPlan {
        seed: 4,
        rules: vec![
            FaultRule::new(
                Some("POST"),
                "/graphql",
                FaultKind::ErrorBeforeApply,
                Trigger::Nth(vec![1, 2]),
            )
            .body_contains("enabled: true"),
        ],
        latency: None,
    });
    let dir = scratch();
    std::fs::write(dir.path().join("authport.toml"), tray_solution_config(0)).unwrap();
    let lines = vec![
        tray_solution_line("acme", "mailchimp"),
        tray_solution_line("acme", "slack"),
    ];
    let run = import(&sandbox, dir.path(), &lines).await;
    assert_ne!(run.out.code, 0, "{}", run.out.stderr);
    assert!(
        run.out.stderr.contains("could not be enabled"),
        "{}",
        run.out.stderr
    );
    assert!(!sandbox.tray.instances()[0].enabled);

    let run = import(&sandbox, dir.path(), &lines).await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    assert!(
        run.report.iter().all(|l| l["status"] == "unchanged"),
        "{:?}",
        statuses(&run.report)
    );
    assert_complete(&sandbox, "acme");
    assert_eq!(sandbox.tray.instances().len(), 1);
    sandbox.stop().await;
}
