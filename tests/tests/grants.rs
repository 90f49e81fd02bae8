//! Shared grants through the binary against the sandbox's Nango (issue 19 items 1 and 3): one
//! connection per grant in one input and across runs, `validate` and `--dry-run` name the same
//! records, `--allow-shared-grants` and `[engine] allow_shared_grants` import them all, the
//! rotating records are counted with what to do, and no token appears in any output.

use crate::common;

use common::*;
use serde_json::Value;

/// The example records with canary secrets (the inputs live in their own directory).
fn canary_lines() -> Vec<Value> {
    canary_dataset("grants")
        .0
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// A copy of `record` under another id and owner, same grant.
fn copy_of(record: &Value, id: &str) -> Value {
    let mut copy = record.clone();
    copy["id"] = id.into();
    copy["owner"]["id"] = format!("{id}-owner").into();
    copy
}

fn text(lines: &[Value]) -> Vec<String> {
    lines.iter().map(Value::to_string).collect()
}

/// `(id, kind, message)` of the report's `shared_grant` lines.
fn shared(report: &[Value]) -> Vec<(String, String)> {
    report
        .iter()
        .filter(|line| line["error"]["kind"] == "shared_grant")
        .map(|line| {
            assert_eq!(line["status"], "failed", "{line}");
            (
                line["id"].as_str().unwrap().to_owned(),
                line["error"]["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_nango_connection_per_grant_in_one_input_and_across_runs() {
    let sandbox = sandbox().await;
    let env = sandbox.env();
    let inputs = scratch();
    let dir = scratch();
    let mut lines = canary_lines();
    let hubspot = lines
        .iter()
        .position(|l| l["id"] == "acme-42/hubspot")
        .unwrap();
    let copy = copy_of(&lines[hubspot], "copy/hubspot");
    lines.push(copy);
    let line_of_first = hubspot + 1;
    let input = write_lines(inputs.path(), "in.jsonl", &text(&lines));
    let input_arg = input.to_str().unwrap();

    let validated = authport(
        dir.path(),
        &["validate", "--input", input_arg, "--report", "v.jsonl"],
        &env,
    )
    .await;
    assert_eq!(validated.code, 1, "{}", validated.stderr);
    let planned = authport(
        dir.path(),
        &[
            "import",
            "--provider",
            "nango",
            "--input",
            input_arg,
            "--state",
            "state.db",
            "--report",
            "plan.jsonl",
            "--dry-run",
            "--format",
            "json",
        ],
        &env,
    )
    .await;
    assert_eq!(sandbox.nango.connection_count(), 0);
    let run = import_with_state("nango", &env, dir.path(), &input, &["--format", "json"]).await;
    assert_eq!(run.out.code, 1, "{}", run.out.stderr);
    let expected = format!(
        "{}:{}: auth.refresh_token: the same grant as record `acme-42/hubspot` (line {line_of_first}) of this input; one grant is imported once (two connections refreshing it invalidate each other); only the first is imported. Pass --allow-shared-grants if the provider does not rotate refresh tokens",
        input.display(),
        lines.len()
    );
    let expected = vec![("copy/hubspot".to_owned(), expected)];
    assert_eq!(shared(&run.report), expected);
    assert_eq!(
        shared(&read_lines(&dir.path().join("plan.jsonl"))),
        expected
    );
    assert_eq!(shared(&read_lines(&dir.path().join("v.jsonl"))), expected);
    let imported = statuses(&run.report)
        .iter()
        .filter(|(_, status)| status == "imported")
        .count();
    assert!(imported > 0, "{:?}", run.report);
    let connections = sandbox.nango.connection_count();
    assert_eq!(connections, imported, "one connection per imported grant");

    // The summary counts the records whose service rotates refresh tokens, and says what to do.
    let summary: Value = serde_json::from_str(run.out.stdout.lines().last().unwrap()).unwrap();
    let rotating = summary["rotating_refresh_tokens"].as_u64().unwrap();
    assert!(rotating >= 1, "{summary}");
    let plan: Value = serde_json::from_str(planned.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(plan["rotating_refresh_tokens"].as_u64(), Some(rotating));
    assert!(
        planned
            .stderr
            .contains("stop refreshing them at the source")
            && planned.stderr.contains("migrate --cutover"),
        "{}",
        planned.stderr
    );

    // A later input: another record id with the same grant is refused naming the holder.
    let later = write_lines(
        inputs.path(),
        "later.jsonl",
        &text(&[copy_of(&lines[hubspot], "later/hubspot")]),
    );
    let again = import_with_state("nango", &env, dir.path(), &later, &[]).await;
    assert_eq!(again.out.code, 1, "{}", again.out.stderr);
    let refused = shared(&again.report);
    assert_eq!(refused.len(), 1, "{:?}", again.report);
    assert!(
        refused[0]
            .1
            .contains("record `acme-42/hubspot`, imported by an earlier run with this --state"),
        "{}",
        refused[0].1
    );
    assert_eq!(sandbox.nango.connection_count(), connections);

    for out in [&validated, &planned, &run.out, &again.out] {
        assert_no_canary("output", &out.printed());
    }
    assert_no_canary_in_dir(dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_shared_grants_imports_both_by_flag_or_config() {
    let sandbox = sandbox().await;
    let env = sandbox.env();
    let inputs = scratch();
    let lines = canary_lines();
    let hubspot = lines.iter().find(|l| l["id"] == "acme-42/hubspot").unwrap();
    let both = [hubspot.clone(), copy_of(hubspot, "copy/hubspot")];
    let input = write_lines(inputs.path(), "in.jsonl", &text(&both));

    let flag = scratch();
    let run = import_with_state(
        "nango",
        &env,
        flag.path(),
        &input,
        &["--allow-shared-grants"],
    )
    .await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    let mut imported = statuses(&run.report);
    imported.sort();
    assert_eq!(
        imported,
        vec![
            ("acme-42/hubspot".into(), "imported".into()),
            ("copy/hubspot".into(), "imported".into())
        ]
    );
    assert_eq!(sandbox.nango.connection_count(), 2);

    let config = scratch();
    std::fs::write(
        config.path().join("authport.toml"),
        "[engine]\nallow_shared_grants = true\n",
    )
    .unwrap();
    let checked = authport(
        config.path(),
        &[
            "validate",
            "--input",
            input.to_str().unwrap(),
            "--allow-shared-grants",
            "--report",
            "v.jsonl",
        ],
        &env,
    )
    .await;
    assert_eq!(checked.code, 0, "{}", checked.stderr);
    let shown = authport(config.path(), &["config", "show"], &env).await;
    assert!(
        shown.stdout.contains("allow_shared_grants = true"),
        "{}",
        shown.stdout
    );
    let dry = import_with_state("nango", &env, config.path(), &input, &["--dry-run"]).await;
    assert_eq!(dry.out.code, 0, "{}", dry.out.stderr);
    assert!(shared(&dry.report).is_empty(), "{:?}", dry.report);
    for out in [&run.out, &checked, &shown, &dry.out] {
        assert_no_canary("output", &out.printed());
    }
}
