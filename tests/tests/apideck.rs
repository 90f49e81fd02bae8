//! End to end: the `authport` binary importing into the sandbox's Apideck Vault emulator:
//! imports, verify, pre-existing connections, the plan limit, expiries. What the binary sends
//! (requests per record, echoed secrets, refused settings) is in `apideck_requests.rs`.

use crate::common;

use common::*;
use serde_json::{Map, Value, json};

pub(crate) async fn import(
    sandbox: &Sandbox,
    dir: &std::path::Path,
    input: &std::path::Path,
    extra: &[&str],
) -> Run {
    import_with_state("apideck", &sandbox.provider_env(), dir, input, extra).await
}

pub(crate) fn line<'a>(report: &'a [Value], id: &str) -> &'a Value {
    report
        .iter()
        .find(|l| l["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in report: {report:?}"))
}

/// The sandbox's request counters for the pre-existing check's calls.
pub(crate) const CONSUMERS: &str = "GET /vault/consumers";
pub(crate) const CONNECTION_READ: &str = "GET /vault/connections/{unified_api}/{service_id}";
pub(crate) const IMPORT: &str = "POST /vault/connections/{unified_api}/{service_id}/import";

/// A HubSpot (CRM) connection of `consumer` that someone else set up, with their own token:
/// authport must leave it alone.
pub(crate) fn precreate_theirs(apideck: &authport_sandbox::apideck::ApideckState, consumer: &str) {
    let token = Map::from_iter([("access_token".to_owned(), json!("theirs"))]);
    apideck.precreate_connection(consumer, "crm", "hubspot", Map::new(), Some(token));
}

pub(crate) fn count(report: &[Value], status: &str) -> usize {
    report.iter().filter(|l| l["status"] == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_once_then_unchanged_then_updated() {
    let sandbox = sandbox().await;
    let dir = scratch();
    let mut lines = example_lines();
    lines.push(r#"{"id":"bad/json","owner":{"id":"x"}"#.to_owned());
    lines.push(r#"{"id":"bad/connector","owner":{"id":"x"},"service":"nosuch","auth":{"type":"api_key","api_key":"k"},"targets":{"apideck":{"unified_api":"crm","service_id":"nosuch"}}}"#.to_owned());
    lines.push(r#"{"id":"bad/ms","owner":{"id":"x"},"service":"hubspot","auth":{"type":"oauth2","access_token":"t","refresh_token":"r","issued_at":"2026-11-01T10:00:00Z","expires_in":3600000},"targets":{"apideck":{"unified_api":"crm","service_id":"hubspot"}}}"#.to_owned());
    let input = write_lines(dir.path(), "in.jsonl", &lines);

    let first = import(&sandbox, dir.path(), &input, &[]).await;
    assert_eq!(first.out.code, 1, "{}", first.out.stderr);
    assert_eq!(first.report.len(), 9);
    assert_eq!(
        count(&first.report, "imported"),
        6,
        "{:?}",
        statuses(&first.report)
    );
    assert_eq!(
        sandbox.apideck.connection_count(),
        6,
        "each good record exactly once"
    );
    assert!(
        sandbox
            .apideck
            .connection("initech-3", "accounting", "quickbooks")
            .is_some()
    );

    let bad_json = first.report.iter().find(|l| l["line"] == 7).unwrap();
    assert_eq!(bad_json["status"], "failed");
    assert!(
        bad_json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("in.jsonl:7: malformed JSON")
    );
    let bad_connector = line(&first.report, "bad/connector");
    assert_eq!(bad_connector["status"], "failed");
    assert!(
        bad_connector["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nosuch"),
        "{bad_connector}"
    );
    let bad_ms = line(&first.report, "bad/ms");
    assert_eq!(bad_ms["status"], "failed");
    assert!(
        bad_ms["error"]["message"]
            .as_str()
            .unwrap()
            .contains("milliseconds"),
        "{bad_ms}"
    );

    let second = import(&sandbox, dir.path(), &input, &[]).await;
    assert_eq!(
        count(&second.report, "unchanged"),
        6,
        "{:?}",
        statuses(&second.report)
    );
    let imports_after_second = sandbox.apideck.import_count();
    assert_eq!(
        imports_after_second, 6,
        "unchanged records are not sent again"
    );

    lines[1] = lines[1].replace(
        "example-salesforce-access-token",
        "rotated-salesforce-access-token",
    );
    let changed = write_lines(dir.path(), "in2.jsonl", &lines);
    let third = import(&sandbox, dir.path(), &changed, &[]).await;
    assert_eq!(
        line(&third.report, "acme-42/salesforce")["status"],
        "updated"
    );
    assert_eq!(count(&third.report, "unchanged"), 5);
    assert_eq!(sandbox.apideck.connection_count(), 6);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_tells_callable_from_authorized() {
    let sandbox = sandbox().await;
    let dir = scratch();
    std::fs::write(
        dir.path().join("authport.toml"),
        "[apideck]\nallow_incomplete_settings = true\n",
    )
    .unwrap();
    let mut lines = example_lines();
    // QuickBooks without its required realm_id: authorised, but not callable until set.
    lines[4] = lines[4].replace(r#","settings":{"realm_id":"4620816365164357123"}"#, "");
    let input = write_lines(dir.path(), "in.jsonl", &lines);
    let run = import(&sandbox, dir.path(), &input, &["--config", "authport.toml"]).await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);

    let verify = authport(
        dir.path(),
        &[
            "verify",
            "--provider",
            "apideck",
            "--state",
            "state.db",
            "--config",
            "authport.toml",
        ],
        &sandbox.provider_env(),
    )
    .await;
    let lines = parse_lines(&verify.stdout);
    assert_eq!(lines.len(), 6, "{}", verify.stderr);
    let status = |id: &str| {
        lines.iter().find(|l| l["id"] == id).unwrap()["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(status("initech-3/quickbooks"), "authorized");
    assert_eq!(status("globex-7/greenhouse"), "callable");
    assert_eq!(status("initech-3/zendesk"), "callable");
    assert_eq!(
        verify.code, 1,
        "an unusable connection is a problem: {}",
        verify.stderr
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_existing_connections_are_skipped_and_survive_rollback() {
    let sandbox = sandbox().await;
    precreate_theirs(&sandbox.apideck, "acme-42");
    let dir = scratch();
    let input = write_lines(dir.path(), "in.jsonl", &example_lines());
    let run = import(&sandbox, dir.path(), &input, &[]).await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    let hubspot = line(&run.report, "acme-42/hubspot");
    assert_eq!(hubspot["status"], "skipped");
    assert_eq!(hubspot["error"]["kind"], "pre_existing");
    assert_eq!(count(&run.report, "imported"), 5);
    assert_eq!(sandbox.apideck.connection_count(), 6);
    // The consumer list shows acme-42 holding hubspot: that connection alone is read before
    // its import (after one discovery read per connector).
    assert_eq!(sandbox.apideck.request_count(CONSUMERS), 1);
    assert_eq!(sandbox.apideck.request_count(CONNECTION_READ), 6 + 1);

    let rollback = authport(
        dir.path(),
        &["rollback", "--provider", "apideck", "--state", "state.db"],
        &sandbox.provider_env(),
    )
    .await;
    assert_eq!(rollback.code, 0, "{}", rollback.stderr);
    assert_eq!(
        sandbox.apideck.connection_keys(),
        vec![("acme-42".to_owned(), "crm".to_owned(), "hubspot".to_owned())],
        "only the pre-existing connection is left"
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_limit_stops_the_run_and_reports_what_was_not_attempted() {
    let sandbox = sandbox().await;
    sandbox.apideck.set_import_limit(Some(2));
    let dir = scratch();
    let input = write_lines(dir.path(), "in.jsonl", &example_lines());
    let run = import(&sandbox, dir.path(), &input, &["--concurrency", "1"]).await;
    assert_eq!(run.out.code, 3, "{}", run.out.stderr);
    assert!(
        run.out.stderr.to_lowercase().contains("limit"),
        "says why: {}",
        run.out.stderr
    );
    assert_eq!(run.report.len(), 6, "every record is reported");
    assert_eq!(count(&run.report, "imported"), 2);
    let not_attempted = run
        .report
        .iter()
        .filter(|l| l["status"] == "skipped" && l["error"]["kind"] == "not_attempted")
        .count();
    let failed = count(&run.report, "failed");
    assert_eq!(not_attempted + failed, 4, "{:?}", statuses(&run.report));
    assert!(failed <= 1, "at most the record that hit the limit fails");

    // The limit is lifted: the next run finishes the rest and duplicates nothing.
    sandbox.apideck.set_import_limit(None);
    let resumed = import(&sandbox, dir.path(), &input, &[]).await;
    assert_eq!(resumed.out.code, 0, "{}", resumed.out.stderr);
    assert_eq!(count(&resumed.report, "unchanged"), 2);
    assert_eq!(count(&resumed.report, "imported"), 4);
    assert_eq!(sandbox.apideck.connection_count(), 6);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_records_for_one_connection_never_overwrite_each_other() {
    let sandbox = sandbox().await;
    let dir = scratch();
    let mut lines = example_lines();
    // Another source record for the same consumer and connector as line 4 (globex-7, greenhouse).
    lines.push(r#"{"id":"globex-7/greenhouse-again","owner":{"id":"globex-7"},"service":"greenhouse","auth":{"type":"api_key","api_key":"another-key"},"targets":{"apideck":{"unified_api":"ats","service_id":"greenhouse"}}}"#.to_owned());
    let input = write_lines(dir.path(), "in.jsonl", &lines);
    let run = import(&sandbox, dir.path(), &input, &["--concurrency", "1"]).await;
    assert_eq!(run.out.code, 1, "{}", run.out.stderr);
    assert_eq!(
        line(&run.report, "globex-7/greenhouse")["status"],
        "imported"
    );
    let again = line(&run.report, "globex-7/greenhouse-again");
    assert_eq!(again["status"], "failed");
    assert_eq!(again["error"]["kind"], "conflict");
    assert!(
        again["error"]["message"]
            .as_str()
            .unwrap()
            .contains("globex-7/greenhouse"),
        "{again}"
    );
    assert_eq!(
        sandbox.apideck.import_count(),
        6,
        "the second record was never sent"
    );

    // A re-run keeps the same owner for the connection.
    let rerun = import(&sandbox, dir.path(), &input, &["--concurrency", "1"]).await;
    assert_eq!(
        line(&rerun.report, "globex-7/greenhouse")["status"],
        "unchanged"
    );
    assert_eq!(
        line(&rerun.report, "globex-7/greenhouse-again")["error"]["kind"],
        "conflict"
    );
    sandbox.stop().await;
}

/// A token whose source knows only its absolute expiry: the plan states that expiry and names
/// the rule that renders it; Vault receives `issued_at` + `expires_in` summing to it; a re-run
/// compares the same body and reports `unchanged`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absolute_expiry_is_planned_as_such_and_sent_as_issued_at_plus_expires_in() {
    let sandbox = sandbox().await;
    let dir = scratch();
    let expires_at = "2036-11-01T10:00:00Z";
    let access = canary("hubspot-access");
    let refresh = canary("hubspot-refresh");
    let line = json!({"id": "acme-42/hubspot", "owner": {"id": "acme-42"}, "service": "hubspot",
        "auth": {"type": "oauth2", "access_token": access, "refresh_token": refresh,
                 "expires_at": expires_at},
        "targets": {"apideck": {"unified_api": "crm", "service_id": "hubspot"}}});
    // The input holds the canaries: it lives apart from what the runs write.
    let inputs = scratch();
    let input = write_lines(inputs.path(), "in.jsonl", &[line.to_string()]);

    let plan = import(&sandbox, dir.path(), &input, &["--dry-run"]).await;
    assert_eq!(plan.out.code, 0, "{}", plan.out.stderr);
    let planned = &plan.report[0];
    assert_eq!(planned["status"], "planned");
    assert_eq!(planned["plan"]["credentials"]["expires_at"], expires_at);
    assert!(
        planned["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("render_at_send")),
        "the plan names the rule: {planned}"
    );
    assert_eq!(sandbox.apideck.import_count(), 0, "a plan sends nothing");

    let first = import(&sandbox, dir.path(), &input, &[]).await;
    assert_eq!(first.out.code, 0, "{}", first.out.stderr);
    assert_eq!(first.report[0]["status"], "imported");
    let stored = sandbox
        .apideck
        .connection("acme-42", "crm", "hubspot")
        .expect("imported")
        .stored
        .credentials
        .expect("credentials");
    assert_eq!(stored.get("expires_at"), None, "expires_at is never sent");
    let issued_at = unix_seconds(stored["issued_at"].as_str().unwrap());
    let expires_in = stored["expires_in"].as_i64().unwrap();
    assert_eq!(issued_at + expires_in, unix_seconds(expires_at));

    let second = import(&sandbox, dir.path(), &input, &[]).await;
    assert_eq!(second.report[0]["status"], "unchanged");
    assert_eq!(sandbox.apideck.import_count(), 1);
    assert_no_canary(
        "output",
        &format!("{}{}", plan.out.printed(), first.out.printed()),
    );
    assert_no_canary_in_dir(dir.path());
    sandbox.stop().await;
}

/// Seconds since the Unix epoch of an RFC 3339 instant. The testkit's clock is chrono's
/// `DateTime<Utc>`: parsing into its type needs no chrono dependency here.
fn unix_seconds(text: &str) -> i64 {
    fn parse_as<T: std::str::FromStr>(_type_of: &T, text: &str) -> T
    where
        T::Err: std::fmt::Debug,
    {
        text.parse().expect("an RFC 3339 instant")
    }
    parse_as(&authport_testkit::now(), text).timestamp()
}
