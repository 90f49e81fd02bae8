//! End to end: `authport webhooks` receiving the sandbox's signed Apideck Vault events while an
//! import runs on the same state, and refusing what is not a genuine, well-formed delivery.

use crate::common;

use std::path::Path;

use authport_core::Health;
use authport_engine::EventStore;
use authport_sandbox::apideck::FailRefresh;
use authport_sandbox::apideck::webhooks::sign;
use common::*;
use serde_json::{Value, json};

const FAILED: &str = "vault.connection.token_refresh.failed";

/// A bad delivery: what, content type, signature, idempotency key, body, expected status.
type Case<'a> = (
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Vec<u8>,
    u16,
);

/// A running `authport webhooks` and the URL it listens on.
pub(crate) use common::Listening as Receiver;

impl Receiver {
    /// Starts the receiver on a free port; returns once it printed its address (it listens).
    pub(crate) async fn start(dir: &Path, env: &[(String, String)]) -> Receiver {
        Receiver::start_with(dir, env, &[]).await
    }

    /// [`Receiver::start`] with more flags.
    pub(crate) async fn start_with(
        dir: &Path,
        env: &[(String, String)],
        extra: &[&str],
    ) -> Receiver {
        Receiver::start_for("apideck", dir, env, extra).await
    }

    /// [`Receiver::start_with`] for `provider`'s webhooks.
    pub(crate) async fn start_for(
        provider: &str,
        dir: &Path,
        env: &[(String, String)],
        extra: &[&str],
    ) -> Receiver {
        let mut args = vec!["-vv", "webhooks", "--provider", provider];
        args.extend_from_slice(extra);
        Listening::spawn(dir, &args, env).await
    }
}

/// POSTs a delivery; `None` leaves a header out. Returns status and body.
async fn post(
    url: &str,
    content_type: Option<&str>,
    signature: Option<&str>,
    key: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(url).body(body);
    for (name, value) in [
        ("content-type", content_type),
        ("x-apideck-signature", signature),
        ("x-apideck-idempotency-key", key),
    ] {
        if let Some(value) = value {
            request = request.header(name, value);
        }
    }
    let answer = request.send().await.expect("the receiver answers");
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

/// An Apideck HubSpot record of `owner` with canary tokens, issued now.
pub(crate) fn record(owner: &str) -> String {
    let issued_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({"id": format!("{owner}/hubspot"), "owner": {"id": owner}, "service": "hubspot",
        "auth": {"type": "oauth2", "access_token": canary(&format!("{owner}-access")),
                 "refresh_token": canary(&format!("{owner}-refresh")),
                 "issued_at": issued_at, "expires_in": 3600},
        "targets": {"apideck": {"unified_api": "crm", "service_id": "hubspot"}}})
    .to_string()
}

/// Now, as Apideck writes `occurred_at`.
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A delivery as Apideck sends it for `owner`'s HubSpot connection, dated now.
fn event(owner: &str, event_type: &str) -> Value {
    json!({"payload": {"event_id": format!("{owner}-{event_type}"), "event_type": event_type,
        "service_id": "apideck-vault", "entity_id": "crm+hubspot", "entity_type": "Connection",
        "execution_attempt": 1, "occurred_at": now(),
        "entity": {"id": "crm+hubspot", "consumer_id": owner, "unified_api": "crm",
            "service_id": "hubspot", "auth_type": "oauth2", "enabled": true, "state": "callable",
            "health": "needs_auth", "last_refresh_failed_at": "2026-11-25T10:00:00.000Z",
            "settings": {"password": canary("settings-in-a-webhook")}}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_events_reach_the_store_once_while_an_import_runs_and_bad_ones_change_nothing() {
    let sandbox = sandbox().await;
    let dir = scratch();
    let inputs = scratch(); // the canaries' input lives outside the checked directory
    let env = sandbox.provider_env();
    let api_key = env
        .iter()
        .find(|(k, _)| k == "APIDECK_API_KEY")
        .map(|(_, v)| v.clone())
        .unwrap();
    let owners = ["o1", "o2", "o3"];
    let input = write_lines(inputs.path(), "in.jsonl", owners.map(record).as_ref());

    // A first import makes the state (the receiver refuses to start without one); the
    // receiver learns o1 from its journal, then runs through the import of the others.
    let first = write_lines(inputs.path(), "first.jsonl", &[record("o1")]);
    let run = import_with_state("apideck", &env, dir.path(), &first, &[]).await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    let receiver = Receiver::start(dir.path(), &env).await;
    sandbox.apideck.set_webhook_url(Some(receiver.url.clone()));
    let run = import_with_state("apideck", &env, dir.path(), &input, &[]).await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    sandbox.apideck.webhooks_settled().await;

    // Refreshes fail for o1 (by refresh-token value) and o3 (by connection).
    sandbox.apideck.fail_refreshes(
        [
            FailRefresh::RefreshToken(canary("o1-refresh")),
            FailRefresh::Connection(("o3".into(), "crm".into(), "hubspot".into())),
        ],
        true,
    );
    assert_eq!(sandbox.apideck.run_refreshes(), (2, 0));
    sandbox.apideck.webhooks_settled().await;
    let sent = sandbox.apideck.sent_webhooks();
    assert_eq!(
        sent.len(),
        6,
        "created+callable per new import (o1 was unchanged), 2 failures: {sent:?}"
    );
    assert!(
        sent.iter()
            .all(|s| s.status == Some(200) && s.attempts == 1),
        "every delivery answered 200 at once, during the import too: {sent:?}"
    );

    let store = EventStore::open(&dir.path().join("state.db")).unwrap();
    for (owner, fails) in [("o1", true), ("o2", false), ("o3", true)] {
        let latest = store
            .latest("apideck", &format!("{owner}/hubspot"))
            .unwrap();
        let failed = latest
            .as_ref()
            .is_some_and(|l| l.kind == FAILED && l.health == Some(Health::RefreshFailed));
        assert_eq!(failed, fails, "{owner}: {latest:?}");
    }
    let stored_before = store.stored_count("apideck").unwrap();
    let unknown_before = store.unknown_count("apideck").unwrap();

    // A replayed delivery is stored once, whatever its (unsigned) idempotency key.
    let body = event("o2", FAILED);
    let signature = sign(&api_key, &body);
    let raw = serde_json::to_vec(&body).unwrap();
    let json_type = Some("application/json");
    let first = post(
        &receiver.url,
        json_type,
        Some(&signature),
        Some("replay-1"),
        raw.clone(),
    )
    .await;
    assert_eq!(first, (200, json!({"status": "stored"})));
    let again = post(
        &receiver.url,
        json_type,
        Some(&signature),
        Some("replay-2"),
        raw.clone(),
    )
    .await;
    assert_eq!(again, (200, json!({"status": "duplicate"})));
    let history = store.connection_events("apideck", "o2/hubspot").unwrap();
    assert_eq!(
        history
            .iter()
            .filter(|e| e.event_id.as_deref() == Some("o2-vault.connection.token_refresh.failed"))
            .count(),
        1
    );
    assert_eq!(store.stored_count("apideck").unwrap(), stored_before + 1);

    // An event about a connection this migration does not own is counted, never stored.
    let stranger = event("stranger", FAILED);
    let stranger_signature = sign(&api_key, &stranger);
    let stranger = serde_json::to_vec(&stranger).unwrap();
    let answer = post(
        &receiver.url,
        json_type,
        Some(&stranger_signature),
        Some("s-1"),
        stranger,
    )
    .await;
    assert_eq!(answer, (200, json!({"status": "ignored"})));
    assert_eq!(store.unknown_count("apideck").unwrap(), unknown_before + 1);
    assert_eq!(store.stored_count("apideck").unwrap(), stored_before + 1);

    // Bad input gets a clear answer and changes nothing.
    let tampered = serde_json::to_vec(&event("o2", "vault.connection.revoked")).unwrap();
    let oversized = {
        let mut big = event("o2", FAILED);
        big["payload"]["entity"]["tag_line"] = json!("x".repeat(1024 * 1024));
        let signature = sign(&api_key, &big);
        (serde_json::to_vec(&big).unwrap(), signature)
    };
    let no_event_id = {
        let mut body = event("o2", FAILED);
        body["payload"].as_object_mut().unwrap().remove("event_id");
        let signature = sign(&api_key, &body);
        (serde_json::to_vec(&body).unwrap(), signature)
    };
    let wrong_key = sign("another-key", &body);
    let malformed = b"{\"payload\": ".to_vec();
    let malformed_signature = raw_signature(&api_key, &malformed);
    let cases: Vec<Case> = vec![
        (
            "tampered body",
            json_type,
            Some(&signature),
            Some("t-1"),
            tampered,
            401,
        ),
        (
            "missing signature",
            json_type,
            None,
            Some("t-2"),
            raw.clone(),
            401,
        ),
        (
            "wrong key",
            json_type,
            Some(&wrong_key),
            Some("t-3"),
            raw.clone(),
            401,
        ),
        (
            "wrong content type",
            Some("text/plain"),
            Some(&signature),
            Some("t-4"),
            raw.clone(),
            400,
        ),
        (
            "malformed json",
            json_type,
            Some(&malformed_signature),
            Some("t-5"),
            malformed,
            400,
        ),
        (
            "oversized",
            json_type,
            Some(&oversized.1),
            Some("t-6"),
            oversized.0.clone(),
            413,
        ),
        (
            "no event id",
            json_type,
            Some(&no_event_id.1),
            Some("t-7"),
            no_event_id.0.clone(),
            400,
        ),
    ];
    for (what, content_type, signature, key, body, status) in cases {
        let (answer, _) = post(&receiver.url, content_type, signature, key, body).await;
        assert_eq!(answer, status, "{what}");
    }
    assert_eq!(store.stored_count("apideck").unwrap(), stored_before + 1);
    assert_eq!(
        store.latest("apideck", "o2/hubspot").unwrap().unwrap().kind,
        FAILED,
        "the tampered `revoked` was not stored"
    );

    let (code, log) = receiver.stop().await;
    assert_eq!(code, 0, "graceful stop on SIGTERM: {log}");
    assert!(log.contains("rejected"), "{log}");
    assert_no_canary("receiver log", &log);
    assert_no_canary("import output", &run.out.printed());
    drop(store);
    assert_no_canary_in_dir(dir.path());
}

/// HMAC-SHA256 of raw bytes, as the receiver's raw-body fallback checks it.
fn raw_signature(key: &str, body: &[u8]) -> String {
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
