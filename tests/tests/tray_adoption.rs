//! End to end (issue 17 items 1 and 6): the `authport` binary never adopts an end user's own
//! Tray auth that merely shares a record's name, and never creates a second auth when Tray
//! lists an owner's auths only in part.

use crate::common;

use std::path::Path;

use authport_sandbox::faults::{FaultKind, FaultPlan, FaultRule, Trigger};
use authport_sandbox::tray::{Owner, StoredAuth, StoredUser};
use common::*;
use serde_json::{Map, Value, json};

/// The id of the end user's own auth: sorts before any random id, so Tray lists it first.
const OWN_AUTH_ID: &str = "0000aaaa-0000-4000-8000-000000000001";
const OWN_KEY: &str = "end-user-own-greenhouse-key";

fn greenhouse_environment(sandbox: &Sandbox) -> String {
    let service = sandbox
        .tray
        .catalogue()
        .services
        .iter()
        .find(|s| s.name == "greenhouse")
        .expect("greenhouse in the sandbox catalogue");
    service.environments[0].id.clone()
}

/// The end user `acme-42` and a Greenhouse auth they made themselves, named `name`.
fn end_users_own_auth(sandbox: &Sandbox, name: &str) -> StoredUser {
    let user = sandbox.tray.insert_user("Acme Inc", "acme-42");
    let mut credentials = Map::new();
    credentials.insert("api_key".into(), json!(OWN_KEY));
    sandbox.tray.insert_auth(StoredAuth {
        id: OWN_AUTH_ID.to_owned(),
        owner: Owner::User(user.id.clone()),
        name: name.to_owned(),
        service_environment_id: greenhouse_environment(sandbox),
        credentials,
        user_data: Map::new(),
        scopes: Vec::new(),
        updates: 0,
    });
    user
}

/// A Greenhouse record of `acme-42` with an explicit `targets.tray.name`.
fn named_record(id: &str, key: &str, name: &str) -> String {
    json!({
        "id": id,
        "owner": {"id": "acme-42", "name": "Acme Inc"},
        "service": "greenhouse",
        "auth": {"type": "api_key", "api_key": key},
        "targets": {"tray": {"name": name}},
    })
    .to_string()
}

fn greenhouse_record(id: &str, key: &str) -> String {
    json!({
        "id": id,
        "owner": {"id": "acme-42", "name": "Acme Inc"},
        "service": "greenhouse",
        "auth": {"type": "api_key", "api_key": key},
    })
    .to_string()
}

fn own_key_at_tray(sandbox: &Sandbox) -> Option<Value> {
    sandbox
        .tray
        .auth(OWN_AUTH_ID)
        .map(|auth| auth.credentials["api_key"].clone())
}

async fn rollback(sandbox: &Sandbox, dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["rollback", "--provider", "tray", "--state", "state.db"];
    args.extend_from_slice(extra);
    authport(dir, &args, &sandbox.provider_env()).await
}

fn line_of<'a>(report: &'a [Value], id: &str) -> &'a Value {
    report
        .iter()
        .find(|l| l["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in report: {report:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_users_own_same_named_auth_is_skipped_untouched_and_survives_rollback() {
    let sandbox = sandbox().await;
    end_users_own_auth(&sandbox, "Acme Greenhouse");
    let dir = scratch();
    let input = write_lines(
        dir.path(),
        "in.jsonl",
        &[named_record(
            "acme-42/greenhouse",
            "migrated-greenhouse-key",
            "Acme Greenhouse",
        )],
    );
    let run = import_with_state("tray", &sandbox.provider_env(), dir.path(), &input, &[]).await;
    let line = line_of(&run.report, "acme-42/greenhouse");
    assert_eq!(line["status"], "skipped", "{line}\n{}", run.out.stderr);
    assert_eq!(line["error"]["kind"], "pre_existing", "{line}");
    assert!(
        line["error"]["message"]
            .as_str()
            .unwrap()
            .contains("overwrite_existing"),
        "the note says how to replace it: {line}"
    );
    assert_eq!(own_key_at_tray(&sandbox), Some(json!(OWN_KEY)), "untouched");
    assert_eq!(sandbox.tray.auth(OWN_AUTH_ID).unwrap().updates, 0);
    assert_eq!(sandbox.tray.auth_count(), 1, "no second auth beside it");

    let rolled = rollback(&sandbox, dir.path(), &[]).await;
    assert_eq!(rolled.code, 0, "{}", rolled.stderr);
    assert_eq!(
        own_key_at_tray(&sandbox),
        Some(json!(OWN_KEY)),
        "rollback never deletes the end user's own auth"
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_overwrite_existing_the_end_users_auth_is_updated_never_created_and_survives_rollback()
{
    let sandbox = sandbox().await;
    end_users_own_auth(&sandbox, "Acme Greenhouse");
    let dir = scratch();
    std::fs::write(
        dir.path().join("authport.toml"),
        "[tray]\noverwrite_existing = true\n",
    )
    .unwrap();
    let lines = [named_record(
        "acme-42/greenhouse",
        "migrated-greenhouse-key",
        "Acme Greenhouse",
    )];
    let input = write_lines(dir.path(), "in.jsonl", &lines);
    let config = ["--config", "authport.toml"];
    let env = sandbox.provider_env();
    let run = import_with_state("tray", &env, dir.path(), &input, &config).await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    let line = line_of(&run.report, "acme-42/greenhouse");
    assert_eq!(line["status"], "updated", "{line}");
    assert_eq!(
        own_key_at_tray(&sandbox),
        Some(json!("migrated-greenhouse-key"))
    );
    assert_eq!(sandbox.tray.auth_count(), 1);

    // A changed secret updates it again, and its name stays the end user's (no mark of ours).
    let changed = [named_record(
        "acme-42/greenhouse",
        "rotated-greenhouse-key",
        "Acme Greenhouse",
    )];
    let input = write_lines(dir.path(), "in2.jsonl", &changed);
    let again = import_with_state("tray", &env, dir.path(), &input, &config).await;
    assert_eq!(again.out.code, 0, "{}", again.out.stderr);
    assert_eq!(
        line_of(&again.report, "acme-42/greenhouse")["status"],
        "updated"
    );
    let own = sandbox.tray.auth(OWN_AUTH_ID).unwrap();
    assert_eq!(own.credentials["api_key"], "rotated-greenhouse-key");
    assert_eq!(own.name, "Acme Greenhouse");

    let rolled = rollback(&sandbox, dir.path(), &config).await;
    assert_eq!(rolled.code, 0, "{}", rolled.stderr);
    assert!(
        sandbox.tray.auth(OWN_AUTH_ID).is_some(),
        "an overwritten auth is not ours to delete"
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_create_is_reconciled_to_authports_own_auth_never_the_end_users() {
    let sandbox = sandbox().await;
    end_users_own_auth(&sandbox, "Acme Greenhouse");
    // Without the look-up the create is sent; its answer is lost after Tray applied it.
    let dir = lose_the_first_create_without_a_look_up(&sandbox);
    let input = write_lines(
        dir.path(),
        "in.jsonl",
        &[named_record(
            "acme-42/greenhouse",
            "migrated-greenhouse-key",
            "Acme Greenhouse",
        )],
    );
    let config = ["--config", "authport.toml"];
    let run = import_with_state("tray", &sandbox.provider_env(), dir.path(), &input, &config).await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    assert_eq!(sandbox.faults.injected().drop_after, 1, "the fault fired");
    let line = line_of(&run.report, "acme-42/greenhouse");
    assert_eq!(line["status"], "imported", "{line}");
    assert_ne!(
        line["target"]["authentication_id"], OWN_AUTH_ID,
        "the end user's auth was adopted: {line}"
    );
    assert_eq!(sandbox.tray.auth_count(), 2, "ours, once, beside theirs");
    assert_eq!(own_key_at_tray(&sandbox), Some(json!(OWN_KEY)));

    let rolled = rollback(&sandbox, dir.path(), &config).await;
    assert_eq!(rolled.code, 0, "{}", rolled.stderr);
    let remaining = sandbox.tray.auths();
    assert_eq!(remaining.len(), 1, "{remaining:?}");
    assert_eq!(remaining[0].id, OWN_AUTH_ID, "rollback removed ours only");
    assert_eq!(own_key_at_tray(&sandbox), Some(json!(OWN_KEY)));
    sandbox.stop().await;
}

/// Three Greenhouse records of one owner, imported once with every auth listed.
async fn three_auths_of_one_owner(sandbox: &Sandbox, dir: &Path) -> String {
    let lines: Vec<String> = (0..3)
        .map(|n| greenhouse_record(&format!("acme-42/greenhouse-{n}"), &format!("key-{n}")))
        .collect();
    let input = write_lines(dir, "in.jsonl", &lines);
    let input = input.to_str().unwrap().to_owned();
    let first = authport(
        dir,
        &["import", "--provider", "tray", "--input", &input],
        &sandbox.provider_env(),
    )
    .await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(sandbox.tray.auth_count(), 3);
    input
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auth_past_the_first_page_of_an_owners_listing_is_never_created_twice() {
    let sandbox = sandbox().await;
    let dir = scratch();
    let input = three_auths_of_one_owner(&sandbox, dir.path()).await;
    // Tray now answers two auths and `hasNextPage: true`, with no documented way to page.
    sandbox.tray.set_authentications_page_size(Some(2));
    let again = authport(
        dir.path(),
        &["import", "--provider", "tray", "--input", &input],
        &sandbox.provider_env(),
    )
    .await;
    assert_eq!(
        sandbox.tray.auth_count(),
        3,
        "no duplicate: {}",
        again.stdout
    );
    let report = parse_lines(&again.stdout);
    assert_eq!(report.len(), 3, "{}", again.stdout);
    let failed: Vec<&Value> = report.iter().filter(|l| l["status"] == "failed").collect();
    assert_eq!(
        failed.len(),
        1,
        "the record whose auth is unseen: {report:?}"
    );
    let message = failed[0]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("acme-42") && message.contains("incomplete"),
        "names the owner and why: {message}"
    );
    assert!(
        report
            .iter()
            .filter(|l| l["status"] != "failed")
            .all(|l| l["status"] == "imported"
                && l["warnings"].to_string().contains("found at tray")),
        "the listed ones are adopted: {report:?}"
    );
    assert_eq!(again.code, 1, "{}", again.stderr);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_of_an_owner_listed_in_part_is_reported_incomplete() {
    let sandbox = sandbox().await;
    let dir = scratch();
    three_auths_of_one_owner(&sandbox, dir.path()).await;
    sandbox.tray.set_authentications_page_size(Some(2));
    let out = authport(
        dir.path(),
        &["export", "--provider", "tray", "--output", "out.jsonl"],
        &sandbox.provider_env(),
    )
    .await;
    assert_eq!(
        out.code, 1,
        "a partial export is not a success: {}",
        out.stderr
    );
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("acme-42") && l.contains("incomplete")),
        "{}",
        out.stderr
    );
    assert_eq!(read_lines(&dir.path().join("out.jsonl")).len(), 2);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_create_for_an_owner_listed_in_part_is_never_sent_again() {
    let sandbox = sandbox().await;
    // The owner's other auth sorts first, so a one-auth page never shows the new one.
    end_users_own_auth(&sandbox, "Something else");
    sandbox.tray.set_authentications_page_size(Some(1));
    let dir = lose_the_first_create_without_a_look_up(&sandbox);
    let input = write_lines(
        dir.path(),
        "in.jsonl",
        &[greenhouse_record(
            "acme-42/greenhouse",
            "migrated-greenhouse-key",
        )],
    );
    let config = ["--config", "authport.toml"];
    let run = import_with_state("tray", &sandbox.provider_env(), dir.path(), &input, &config).await;
    assert_eq!(sandbox.faults.injected().drop_after, 1, "the fault fired");
    assert_eq!(
        sandbox.tray.auth_count(),
        2,
        "the lost create is not sent again: {:?}",
        run.report
    );
    let line = line_of(&run.report, "acme-42/greenhouse");
    assert_eq!(line["status"], "failed", "{line}");
    assert_eq!(line["error"]["kind"], "outcome_unknown", "{line}");
    assert!(
        line["error"]["message"]
            .as_str()
            .unwrap()
            .contains("incomplete listing"),
        "{line}"
    );
    sandbox.stop().await;
}

/// Tray applies the first create but its answer is lost, and the config sends the create
/// without a look-up first: the next step is the engine's reconcile. Returns the run's folder,
/// holding that `authport.toml`.
fn lose_the_first_create_without_a_look_up(sandbox: &Sandbox) -> tempfile::TempDir {
    sandbox.faults.set(FaultPlan {
        seed: 17,
        rules: vec![FaultRule::new(
            Some("POST"),
            "/core/v1/authentications",
            FaultKind::DropAfterApply,
            Trigger::Nth(vec![1]),
        )],
        latency: None,
    });
    let dir = scratch();
    std::fs::write(
        dir.path().join("authport.toml"),
        "[tray]\nlookup_before_create = false\n",
    )
    .unwrap();
    dir
}
