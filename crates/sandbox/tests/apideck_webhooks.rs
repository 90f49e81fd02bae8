//! The Apideck emulator's Vault webhooks over real HTTP, against the spec's `x-webhooks` and
//! `ConnectionEvent`: which events an import and a failed/recovered refresh send, their headers,
//! their signature, and the connection's health and `last_refresh_failed_at` on reads.

use std::sync::{Arc, Mutex};

use authport_sandbox::apideck::{FailRefresh, SANDBOX_API_KEY, SANDBOX_APP_ID};
use authport_sandbox::spec::{Direction, convert, load_spec, validator};
use authport_sandbox::{RunningSandbox, SandboxConfig};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::common;

const CANARY_REFRESH: &str = "CANARY-webhook-refresh-5e1a";

/// What the test receiver got: headers of interest and the body.
#[derive(Debug, Clone)]
struct Received {
    event_type: String,
    signature: String,
    idempotency_key: String,
    content_type: String,
    body: Vec<u8>,
}

type Inbox = Arc<Mutex<Vec<Received>>>;

/// A plain HTTP endpoint that records deliveries and answers `status` (a stand-in for the
/// operator's receiver; the authport receiver is tested end to end in tests/tests/webhooks.rs).
async fn receiver(status: u16) -> (String, Inbox) {
    let inbox: Inbox = Arc::default();
    async fn take(
        State((inbox, status)): State<(Inbox, u16)>,
        headers: HeaderMap,
        body: Bytes,
    ) -> axum::http::StatusCode {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        inbox.lock().unwrap().push(Received {
            event_type: header("x-apideck-event-type"),
            signature: header("x-apideck-signature"),
            idempotency_key: header("x-apideck-idempotency-key"),
            content_type: header("content-type"),
            body: body.to_vec(),
        });
        axum::http::StatusCode::from_u16(status).unwrap()
    }
    let app = axum::Router::new()
        .route("/", axum::routing::post(take))
        .with_state((inbox.clone(), status));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, inbox)
}

async fn sandbox() -> RunningSandbox {
    common::start(SandboxConfig::default()).await
}

async fn import(sandbox: &RunningSandbox, consumer: &str, service: &str, refresh: &str) {
    let issued_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let body = json!({"credentials": {"access_token": "CANARY-webhook-access", "refresh_token": refresh,
        "issued_at": issued_at, "expires_in": 3600}});
    let answer = reqwest::Client::new()
        .post(format!(
            "{}/vault/connections/crm/{service}/import",
            sandbox.base_url()
        ))
        .bearer_auth(SANDBOX_API_KEY)
        .header("x-apideck-app-id", SANDBOX_APP_ID)
        .header("x-apideck-consumer-id", consumer)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
}

async fn read(sandbox: &RunningSandbox, consumer: &str, service: &str) -> Value {
    reqwest::Client::new()
        .get(format!(
            "{}/vault/connections/crm/{service}",
            sandbox.base_url()
        ))
        .bearer_auth(SANDBOX_API_KEY)
        .header("x-apideck-app-id", SANDBOX_APP_ID)
        .header("x-apideck-consumer-id", consumer)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["data"]
        .clone()
}

/// The request-body schema the spec's `x-webhooks` declares for `event_type`.
fn webhook_schema(spec: &Value, event_type: &str) -> Option<jsonschema::Validator> {
    let operation = spec["x-webhooks"]
        .as_object()?
        .values()
        .map(|hook| &hook["post"])
        .find(|post| post["x-apideck-event-type"] == json!(event_type))?;
    for header in [
        "x-apideck-event-type",
        "x-apideck-signature",
        "x-apideck-idempotency-key",
    ] {
        let declared = operation["parameters"].as_array()?.iter().any(|p| {
            p["name"] == json!(header) && p["in"] == json!("header") && p["required"] == json!(true)
        });
        assert!(declared, "{event_type}: the spec requires header {header}");
    }
    let body = &operation["requestBody"]["content"]["application/json"]["schema"];
    let components = convert(&spec["components"]["schemas"], Direction::Request);
    let mut schema = convert(body, Direction::Request);
    schema["components"] = json!({"schemas": components});
    Some(validator(&schema))
}

/// HMAC-SHA256 under the API key over the body re-serialised with sorted keys (serde_json's
/// map is sorted), computed here independently of the sandbox's signer.
fn expected_signature(body: &[u8]) -> String {
    let value: Value = serde_json::from_slice(body).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(SANDBOX_API_KEY.as_bytes()).unwrap();
    mac.update(&serde_json::to_vec(&value).unwrap());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn imports_and_refreshes_send_signed_events_the_spec_declares() {
    let spec = load_spec();
    let sandbox = sandbox().await;
    let (url, inbox) = receiver(200).await;
    sandbox.apideck.set_webhook_url(Some(url));

    import(&sandbox, "c1", "hubspot", CANARY_REFRESH).await;
    import(&sandbox, "c2", "pipedrive", "other-refresh").await;
    import(&sandbox, "c1", "hubspot", CANARY_REFRESH).await; // an update of an existing one
    sandbox.apideck.webhooks_settled().await;
    // Refreshes fail for one refresh-token value, and for one connection by its ids.
    sandbox
        .apideck
        .fail_refreshes([FailRefresh::RefreshToken(CANARY_REFRESH.to_owned())], true);
    assert_eq!(sandbox.apideck.run_refreshes(), (1, 0));
    assert_eq!(
        sandbox.apideck.run_refreshes(),
        (0, 0),
        "one event per failure"
    );
    sandbox.apideck.webhooks_settled().await;

    let failed = read(&sandbox, "c1", "hubspot").await;
    assert_eq!(failed["health"], json!("pending_refresh"));
    assert!(failed["last_refresh_failed_at"].as_i64().unwrap() > 0);
    assert!(
        failed["credentials_expire_at"].as_i64().unwrap()
            > failed["last_refresh_failed_at"].as_i64().unwrap()
    );
    let healthy = read(&sandbox, "c2", "pipedrive").await;
    assert_eq!(healthy["health"], json!("ok"));
    assert_eq!(healthy["last_refresh_failed_at"], json!(0));

    sandbox.apideck.fail_refreshes(
        [FailRefresh::RefreshToken(CANARY_REFRESH.to_owned())],
        false,
    );
    assert_eq!(sandbox.apideck.run_refreshes(), (0, 1));
    sandbox.apideck.webhooks_settled().await;
    assert_eq!(read(&sandbox, "c1", "hubspot").await["health"], json!("ok"));

    let received = inbox.lock().unwrap().clone();
    let types: Vec<(String, String)> = received
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            let consumer = body["payload"]["entity"]["consumer_id"]
                .as_str()
                .unwrap()
                .to_owned();
            (consumer, r.event_type.clone())
        })
        .collect();
    let expect = |c: &str, e: &str| (c.to_owned(), format!("vault.connection.{e}"));
    assert_eq!(
        types,
        vec![
            expect("c1", "created"),
            expect("c1", "callable"),
            expect("c2", "created"),
            expect("c2", "callable"),
            expect("c1", "updated"),
            expect("c1", "token_refresh.failed"),
            expect("c1", "token_refresh.recovered"),
        ]
    );
    let mut keys = std::collections::BTreeSet::new();
    for delivery in &received {
        let body: Value = serde_json::from_slice(&delivery.body).unwrap();
        let schema = webhook_schema(&spec, &delivery.event_type)
            .unwrap_or_else(|| panic!("no x-webhooks entry for {}", delivery.event_type));
        let errors: Vec<String> = schema.iter_errors(&body).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", delivery.event_type);
        assert_eq!(body["payload"]["event_type"], json!(delivery.event_type));
        assert_eq!(delivery.content_type, "application/json");
        assert_eq!(delivery.signature, expected_signature(&delivery.body));
        assert!(
            keys.insert(delivery.idempotency_key.clone()),
            "keys are unique"
        );
        let text = String::from_utf8_lossy(&delivery.body);
        assert!(!text.contains(CANARY_REFRESH) && !text.contains("CANARY-webhook-access"));
    }
    // The check has teeth: Connection's Unix-ms number where ConsumerConnection wants a string.
    let mut wrong: Value = serde_json::from_slice(&received[5].body).unwrap();
    wrong["payload"]["entity"]["last_refresh_failed_at"] = json!(0);
    let schema = webhook_schema(&spec, "vault.connection.token_refresh.failed").unwrap();
    assert!(!schema.is_valid(&wrong));
    let failure: Value = serde_json::from_slice(&received[5].body).unwrap();
    let entity = &failure["payload"]["entity"];
    assert_eq!(entity["health"], json!("pending_refresh"));
    // ConsumerConnection carries ISO 8601 strings, not the Connection's Unix ms.
    let at = entity["last_refresh_failed_at"].as_str().unwrap();
    chrono::DateTime::parse_from_rfc3339(at).unwrap();
}

#[tokio::test]
async fn a_refused_delivery_is_retried_with_the_same_idempotency_key() {
    let sandbox = sandbox().await;
    let (url, inbox) = receiver(503).await;
    sandbox.apideck.set_webhook_url(Some(url));
    import(&sandbox, "c1", "hubspot", "r1").await;
    sandbox.apideck.webhooks_settled().await;
    let received = inbox.lock().unwrap().clone();
    let created: Vec<&Received> = received
        .iter()
        .filter(|r| r.event_type == "vault.connection.created")
        .collect();
    assert_eq!(
        created.len() as u32,
        authport_sandbox::apideck::webhooks::ATTEMPTS
    );
    let attempts: Vec<Value> = created
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["payload"]["execution_attempt"]
                .clone()
        })
        .collect();
    assert_eq!(attempts, vec![json!(1), json!(2), json!(3)]);
    assert!(
        created
            .iter()
            .all(|r| r.idempotency_key == created[0].idempotency_key)
    );
    let sent = sandbox.apideck.sent_webhooks();
    assert_eq!(sent[0].status, Some(503));
}

#[tokio::test]
async fn the_refresh_controls_answer_over_http() {
    let sandbox = sandbox().await;
    let (url, inbox) = receiver(200).await;
    let client = reqwest::Client::new();
    let control = |path: &str| format!("{}/_sandbox/apideck/{path}", sandbox.base_url());
    let answer = client
        .post(control("webhook-url"))
        .json(&json!({"url": url}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 204);
    import(&sandbox, "c1", "hubspot", "r1").await;
    let answer = client
        .post(control("refresh-failures"))
        .json(&json!({"consumer_id": "c1", "unified_api": "crm", "service_id": "hubspot"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 204);
    let bad = client
        .post(control("refresh-failures"))
        .json(&json!({"consumer_id": "c1", "refresh_token": "r1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let ran: Value = client
        .post(control("refresh"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ran, json!({"failed": 1, "recovered": 0}));
    // The control answers once the events were delivered.
    let last = inbox.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.event_type, "vault.connection.token_refresh.failed");
}
