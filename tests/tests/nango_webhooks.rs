//! End to end, issue 18: `authport webhooks --provider nango` on a state made by an import into
//! the sandbox's Nango. The emulator sends signed auth webhooks (`X-Nango-Hmac-Sha256`); a
//! refresh failure makes `status` say `refresh_failed` for that record, a later success makes it
//! healthy again, a forged delivery gets 401, and no canary secret appears in any output.

use crate::common;
use crate::webhooks::Receiver;

use authport_engine::EventStore;
use authport_sandbox::nango::AuthWebhook;
use authport_sandbox::nango::webhooks::sign;
use common::*;
use serde_json::{Value, json};

fn record(owner: &str) -> String {
    json!({"id": format!("{owner}/hubspot"), "owner": {"id": owner}, "service": "hubspot",
        "auth": {"type": "oauth2", "access_token": canary(&format!("{owner}-access")),
                 "refresh_token": canary(&format!("{owner}-refresh")),
                 "expires_at": "2030-01-01T00:00:00Z"}})
    .to_string()
}

/// `authport status --provider nango --format json`: its exit code and each record's line.
async fn status(dir: &std::path::Path, env: &[(String, String)]) -> (Output, Vec<Value>) {
    let out = authport(
        dir,
        &[
            "status",
            "--provider",
            "nango",
            "--state",
            "state.db",
            "--format",
            "json",
        ],
        env,
    )
    .await;
    let lines = parse_lines(&out.stdout)
        .into_iter()
        .filter(|line| line.get("id").is_some())
        .collect();
    (out, lines)
}

/// The status word of record `id`.
fn word<'a>(lines: &'a [Value], id: &str) -> &'a str {
    lines
        .iter()
        .find(|line| line["id"] == id)
        .and_then(|line| line["status"].as_str())
        .unwrap_or_else(|| panic!("no line for {id}: {lines:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_refresh_failure_shows_in_status_until_a_success_and_forged_ones_are_401() {
    let sandbox = sandbox().await;
    let env = sandbox.provider_env();
    let secret = env
        .iter()
        .find(|(k, _)| k == "NANGO_WEBHOOK_SECRET")
        .map(|(_, v)| v.clone())
        .expect("the sandbox hands out a webhook secret");
    let dir = scratch();
    let inputs = scratch();
    let input = write_lines(inputs.path(), "in.jsonl", &[record("o1"), record("o2")]);
    let run = import_with_state("nango", &env, dir.path(), &input, &[]).await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    let target = |id: &str| {
        let line = run.report.iter().find(|l| l["id"] == id).expect("reported");
        (
            line["target"]["provider_config_key"]
                .as_str()
                .unwrap()
                .to_owned(),
            line["target"]["connection_id"].as_str().unwrap().to_owned(),
        )
    };
    let (key, o1) = target("o1/hubspot");
    let (_, o2) = target("o2/hubspot");

    let receiver = Receiver::start_for("nango", dir.path(), &env, &[]).await;
    let (out, lines) = status(dir.path(), &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(word(&lines, "o1/hubspot"), "healthy");

    // Nango could not refresh o1's token: a signed webhook, stored for o1 only.
    let failed = sandbox
        .nango
        .send_auth_webhook(&receiver.url, &AuthWebhook::refresh(&key, &o1, false))
        .await
        .expect("o1's connection exists");
    assert_eq!((failed.status, failed.attempts), (Some(200), 1));
    let store = EventStore::open(&dir.path().join("state.db")).unwrap();
    let latest = store.latest("nango", "o1/hubspot").unwrap().unwrap();
    assert_eq!(latest.health, Some(authport_core::Health::RefreshFailed));
    assert_eq!(latest.kind, "auth.refresh.failed");
    assert!(store.latest("nango", "o2/hubspot").unwrap().is_none());
    let (out, lines) = status(dir.path(), &env).await;
    assert_eq!(
        out.code, 5,
        "a refresh failure is a problem: {}",
        out.stderr
    );
    assert_eq!(word(&lines, "o1/hubspot"), "refresh_failed", "{lines:?}");
    assert_eq!(word(&lines, "o2/hubspot"), "healthy", "{lines:?}");
    let o1_line = lines.iter().find(|l| l["id"] == "o1/hubspot").unwrap();
    assert_eq!(o1_line["detail"]["last_event"], "auth.refresh.failed");

    // A retried delivery (the same bytes) is one event: no event id, so the body's hash.
    let raw = failed.body.clone();
    let deliver = |body: Vec<u8>, signature: Option<String>| {
        let url = receiver.url.clone();
        async move {
            let mut request = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .body(body);
            if let Some(signature) = signature {
                request = request.header("x-nango-hmac-sha256", signature);
            }
            let answer = request.send().await.expect("the receiver answers");
            let status = answer.status().as_u16();
            (status, answer.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    assert_eq!(
        deliver(raw.clone(), Some(sign(&secret, &raw))).await,
        (200, json!({"status": "duplicate"}))
    );

    // Forged: a wrong key, no signature, the legacy header only, or a changed body.
    let recovered_o2 = serde_json::to_vec(&json!({"type": "auth", "operation": "refresh",
        "success": true, "connectionId": o2, "providerConfigKey": key}))
    .unwrap();
    let forged = [
        (raw.clone(), Some(sign("another-secret", &raw))),
        (raw.clone(), None),
        (recovered_o2.clone(), Some(sign(&secret, &raw))),
    ];
    for (body, signature) in forged {
        let (status, _) = deliver(body, signature).await;
        assert_eq!(status, 401);
    }
    let legacy = reqwest::Client::new()
        .post(&receiver.url)
        .header("content-type", "application/json")
        .header(
            "x-nango-signature",
            authport_sandbox::nango::webhooks::legacy_signature(&secret, &raw),
        )
        .body(raw.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        legacy.status().as_u16(),
        401,
        "the legacy header is not trusted"
    );
    assert_eq!(
        store.stored_count("nango").unwrap(),
        1,
        "nothing forged stored"
    );

    // A later successful refresh: healthy again.
    let recovered = sandbox
        .nango
        .send_auth_webhook(&receiver.url, &AuthWebhook::refresh(&key, &o1, true))
        .await
        .unwrap();
    assert_eq!(recovered.status, Some(200));
    let latest = store.latest("nango", "o1/hubspot").unwrap().unwrap();
    assert_eq!(latest.health, Some(authport_core::Health::Healthy));
    let (out, lines) = status(dir.path(), &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(word(&lines, "o1/hubspot"), "healthy", "{lines:?}");

    drop(store);
    let (code, log) = receiver.stop().await;
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("2 stored, 1 duplicate"), "{log}");
    assert!(log.contains("4 rejected"), "{log}");
    for (what, text) in [
        ("receiver log", log.as_str()),
        ("status output", &out.printed()),
        ("import output", &run.out.printed()),
    ] {
        assert_no_canary(what, text);
        assert!(!text.contains(&secret), "{what} shows the webhook secret");
    }
    assert_no_canary_in_dir(dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nango_receiver_needs_its_webhook_secret_and_says_so() {
    let sandbox = sandbox().await;
    let env = sandbox.provider_env();
    let dir = scratch();
    let inputs = scratch();
    let input = write_lines(inputs.path(), "in.jsonl", &[record("o1")]);
    let run = import_with_state("nango", &env, dir.path(), &input, &[]).await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    let without: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| k != "NANGO_WEBHOOK_SECRET")
        .cloned()
        .collect();
    let out = authport(
        dir.path(),
        &[
            "webhooks",
            "--provider",
            "nango",
            "--listen",
            "127.0.0.1:0",
            "--state",
            "state.db",
        ],
        &without,
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("NANGO_WEBHOOK_SECRET"),
        "{}",
        out.stderr
    );
    assert!(
        !authport_engine::events_path(&dir.path().join("state.db")).exists(),
        "nothing created"
    );

    // A provider without webhooks is refused by name, with the ones that have them.
    let out = authport(
        dir.path(),
        &[
            "webhooks",
            "--provider",
            "tray",
            "--listen",
            "127.0.0.1:0",
            "--state",
            "state.db",
        ],
        &env,
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("apideck") && out.stderr.contains("nango"),
        "{}",
        out.stderr
    );
}
