//! Dry runs that predict (issue 21 item 8): `migrate --dry-run` makes the real run's reads,
//! pre-existing checks included, and reports what the real run then does: `skipped`
//! (`pre_existing`) with the same message, `planned` where the real run imports. A skip
//! message says what is known of the object: authport imported it under another record id.

use crate::common;

use std::collections::BTreeMap;

use common::*;
use serde_json::Value;

/// The example records in Tray and, under their own ids, in `target`.
async fn in_tray_and(sandbox: &Sandbox, target: &str) {
    let env = sandbox.env();
    for provider in ["tray", target] {
        let dir = scratch();
        let input = write_lines(dir.path(), "in.jsonl", &example_lines());
        let run = import_with_state(provider, &env, dir.path(), &input, &[]).await;
        let imported = statuses(&run.report)
            .into_iter()
            .filter(|(_, status)| status == "imported")
            .count();
        assert!(
            imported > 0,
            "{provider}: {:?}\n{}",
            run.report,
            run.out.stderr
        );
    }
}

/// id -> (status, error kind, error message).
fn outcomes(report: &[Value]) -> BTreeMap<String, (String, String, String)> {
    report
        .iter()
        .map(|line| {
            let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
            (
                text(&line["id"]),
                (
                    text(&line["status"]),
                    text(&line["error"]["kind"]),
                    text(&line["error"]["message"]),
                ),
            )
        })
        .collect()
}

async fn a_dry_run_predicts_the_skips(target: &str) {
    let sandbox = sandbox().await;
    in_tray_and(&sandbox, target).await;
    let env = sandbox.env();
    let dir = scratch();
    let migrate = |report: &'static str, dry: bool| {
        let mut args = vec![
            "migrate", "--from", "tray", "--to", target, "--state", "moved.db", "--report", report,
        ];
        if dry {
            args.push("--dry-run");
        }
        args
    };

    let dry = authport(dir.path(), &migrate("dry.jsonl", true), &env).await;
    let dry_report = outcomes(&read_lines(&dir.path().join("dry.jsonl")));
    let real = authport(dir.path(), &migrate("real.jsonl", false), &env).await;
    let real_report = outcomes(&read_lines(&dir.path().join("real.jsonl")));
    assert_eq!(dry.code, real.code, "{}\n{}", dry.stderr, real.stderr);

    let skipped = real_report
        .values()
        .filter(|(status, kind, _)| status == "skipped" && kind == "pre_existing")
        .count();
    assert!(skipped > 0, "{target}: {real_report:?}");
    assert_eq!(dry_report.len(), real_report.len());
    for (id, (status, kind, message)) in &real_report {
        let predicted = &dry_report[id];
        let expected_status = match status.as_str() {
            "imported" => "planned",
            other => other,
        };
        assert_eq!(
            (predicted.0.as_str(), &predicted.1, &predicted.2),
            (expected_status, kind, message),
            "{target} {id}: dry {predicted:?}, real {status} {kind} {message}"
        );
        if kind == "pre_existing" {
            // authport made that object for the direct import's record: say so.
            assert!(
                message.contains("imported by authport for record `")
                    && !message.contains("not imported by authport"),
                "{target} {id}: {message}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_migrate_to_apideck_predicts_the_pre_existing_skips_of_the_real_run() {
    a_dry_run_predicts_the_skips("apideck").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_migrate_to_nango_predicts_the_pre_existing_skips_of_the_real_run() {
    a_dry_run_predicts_the_skips("nango").await;
}

/// Tray: the end user's own auth with the name a record asks for (no authport mark) is
/// predicted `skipped` by the dry run, as the real run skips it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_tray_import_predicts_the_skip_of_an_end_users_own_auth() {
    use authport_sandbox::tray::{Owner, StoredAuth};
    use serde_json::json;

    let sandbox = sandbox().await;
    let environment = sandbox
        .tray
        .catalogue()
        .services
        .iter()
        .find(|s| s.name == "greenhouse")
        .expect("greenhouse in the sandbox catalogue")
        .environments[0]
        .id
        .clone();
    let user = sandbox.tray.insert_user("Acme Inc", "acme-42");
    sandbox.tray.insert_auth(StoredAuth {
        id: "0000aaaa-0000-4000-8000-000000000001".to_owned(),
        owner: Owner::User(user.id.clone()),
        name: "Acme Greenhouse".to_owned(),
        service_environment_id: environment,
        credentials: serde_json::Map::from_iter([("api_key".to_owned(), json!("theirs"))]),
        user_data: serde_json::Map::new(),
        scopes: Vec::new(),
        updates: 0,
    });
    let record = json!({
        "id": "acme-42/greenhouse",
        "owner": {"id": "acme-42", "name": "Acme Inc"},
        "service": "greenhouse",
        "auth": {"type": "api_key", "api_key": "ours"},
        "targets": {"tray": {"name": "Acme Greenhouse"}},
    })
    .to_string();
    let dir = scratch();
    let input = write_lines(dir.path(), "in.jsonl", &[record]);
    let env = sandbox.env();
    let dry = import_with_state("tray", &env, dir.path(), &input, &["--dry-run"]).await;
    let dry = outcomes(&dry.report);
    let real = import_with_state("tray", &env, dir.path(), &input, &[]).await;
    let real = outcomes(&real.report);
    assert_eq!(real["acme-42/greenhouse"].0, "skipped", "{real:?}");
    assert_eq!(dry, real);
    assert_eq!(sandbox.tray.auth_count(), 1);
}
