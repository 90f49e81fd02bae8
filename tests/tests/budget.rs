//! `--budget-share` against the sandbox's Nango plan limit (issue 22): with a share of 0.3 and
//! a second client spending part of the window with the same key, authport never drives the
//! window's remaining budget below the reserve (`ceil(0.7 × limit)`), meets no 429, and imports
//! every record. The emulator's window is shortened so the run crosses several windows quickly;
//! nothing here waits on a clock or asserts a duration. `migrate --budget-share` keeps the same
//! reserve at its target.

use crate::common;

use authport_sandbox::nango::RateLimit;
use common::*;
use serde_json::Value;

/// Requests per window, and the window's length in seconds (Nango: 200 a minute).
const LIMIT: u32 = 40;
const WINDOW_SECS: u32 = 2;
const RECORDS: usize = 24;
/// What the second client spends before the import starts, inside the reserve's complement.
const OTHER_TRAFFIC: usize = 5;

/// `RECORDS` HubSpot records, one owner each, made from the bundled example.
fn input_lines() -> Vec<String> {
    let example: Value = serde_json::from_str(&example_lines()[0]).expect("an example record");
    (0..RECORDS)
        .map(|index| {
            let mut record = example.clone();
            record["id"] = Value::from(format!("budget-{index}/hubspot"));
            record["owner"]["id"] = Value::from(format!("budget-{index}"));
            // One grant per record: a grant shared by two records is imported once.
            record["auth"]["access_token"] = Value::from(format!("budget-access-{index}"));
            record["auth"]["refresh_token"] = Value::from(format!("budget-refresh-{index}"));
            record.to_string()
        })
        .collect()
}

fn env_value(env: &[(String, String)], name: &str) -> String {
    env.iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.clone())
        .unwrap_or_else(|| panic!("the sandbox sets {name}"))
}

/// The account's live traffic: the same key, a few reads of the window authport starts in.
async fn spend_some_of_the_window(env: &[(String, String)]) {
    let client = reqwest::Client::new();
    let base = env_value(env, "NANGO_API_URL");
    let key = env_value(env, "NANGO_SECRET_KEY");
    for _ in 0..OTHER_TRAFFIC {
        let answer = client
            .get(format!("{}/integrations", base.trim_end_matches('/')))
            .bearer_auth(&key)
            .send()
            .await
            .expect("the sandbox answers");
        assert!(answer.status().is_success(), "{}", answer.status());
    }
}

/// The lowest budget any Nango answer left is at least the reserve of a 0.3 share, and no
/// request was refused.
fn assert_reserve_kept(sandbox: &Sandbox) {
    // ceil((1 - 0.3) × 40) = 28 requests of every window are left to the other traffic.
    let reserve = 28;
    let lowest = sandbox
        .nango
        .min_remaining()
        .expect("requests were counted");
    assert!(
        lowest >= reserve,
        "remaining went down to {lowest}, below the reserve {reserve}"
    );
    assert_eq!(sandbox.nango.rate_limited_count(), 0, "no 429");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_share_keeps_the_reserve_of_every_window_while_another_client_spends() {
    let sandbox = sandbox().await;
    sandbox
        .nango
        .set_rate_limit(Some(RateLimit { per_minute: LIMIT }));
    sandbox.nango.set_rate_window_secs(WINDOW_SECS);
    let env = sandbox.env();

    spend_some_of_the_window(&env).await;
    let dir = scratch();
    let input = write_lines(dir.path(), "in.jsonl", &input_lines());
    let run = import_with_state(
        "nango",
        &env,
        dir.path(),
        &input,
        &["--budget-share", "0.3", "--rate", "0", "--format", "json"],
    )
    .await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    let imported = statuses(&run.report)
        .into_iter()
        .filter(|(_, status)| status == "imported")
        .count();
    assert_eq!(imported, RECORDS, "{:?}\n{}", run.report, run.out.stderr);

    assert_reserve_kept(&sandbox);
    // The run needed more than one window's share: the share bounded it.
    let summary = parse_lines(&run.out.stdout)
        .into_iter()
        .last()
        .expect("a JSON summary");
    assert_eq!(summary["bounded_by"], "share", "{summary}");
    // Progress events, if the run lasted long enough for one, carry the pace and the ETA.
    let events = run.out.stderr.lines().filter_map(|line| {
        serde_json::from_str::<Value>(line)
            .ok()
            .filter(|line| line["type"] == "progress")
    });
    for event in events {
        assert!(event["per_second"].is_number(), "{event}");
        assert!(event["eta_seconds"].is_u64(), "a file's ETA: {event}");
    }
    assert_no_canary("stderr", &run.out.stderr);
}

/// `migrate --budget-share` paces its target as `import` does: the records are put in the
/// sandbox's Tray first (with the binary, before Nango's limit is set), then moved to Nango
/// while the other client spends part of the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrate_with_a_budget_share_keeps_the_targets_reserve() {
    let sandbox = sandbox().await;
    let env = sandbox.env();
    let dir = scratch();
    let input = write_lines(dir.path(), "in.jsonl", &input_lines());
    let seeded = import_with_state("tray", &env, dir.path(), &input, &[]).await;
    assert_eq!(seeded.out.code, 0, "{}", seeded.out.stderr);

    sandbox
        .nango
        .set_rate_limit(Some(RateLimit { per_minute: LIMIT }));
    sandbox.nango.set_rate_window_secs(WINDOW_SECS);
    spend_some_of_the_window(&env).await;
    let out = authport(
        dir.path(),
        &[
            "migrate",
            "--from",
            "tray",
            "--to",
            "nango",
            "--state",
            "migrate.db",
            "--report",
            "migrated.jsonl",
            "--budget-share",
            "0.3",
            "--rate",
            "0",
        ],
        &env,
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report = read_lines(&dir.path().join("migrated.jsonl"));
    let migrated = statuses(&report)
        .into_iter()
        .filter(|(_, status)| status == "imported")
        .count();
    assert_eq!(migrated, RECORDS, "{report:?}\n{}", out.stderr);
    assert_eq!(sandbox.nango.connection_count(), RECORDS);
    assert_reserve_kept(&sandbox);
    assert_no_canary("stderr", &out.stderr);
}

#[tokio::test]
async fn a_budget_share_outside_its_range_is_refused_naming_the_flag() {
    let dir = scratch();
    let input = write_lines(dir.path(), "in.jsonl", &input_lines());
    for share in ["0", "1.5", "nan", "30%"] {
        let out = authport(
            dir.path(),
            &[
                "import",
                "--provider",
                "nango",
                "--input",
                input.to_str().unwrap(),
                "--budget-share",
                share,
            ],
            &[],
        )
        .await;
        assert_eq!(out.code, 2, "{share}: {}", out.stderr);
        assert!(
            out.stderr.contains("--budget-share"),
            "{share}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("above 0 and at most 1"),
            "{}",
            out.stderr
        );
    }
    // migrate reads the flag with the same rule.
    let out = authport(
        dir.path(),
        &[
            "migrate",
            "--from",
            "tray",
            "--to",
            "nango",
            "--budget-share",
            "1.5",
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--budget-share"), "{}", out.stderr);
}
