//! `POST /vault/sessions` of the Vault emulator over real HTTP, against vault.yml: the request
//! body is a `Session`, the answer a `CreateSessionResponse`; headers are checked like every
//! Vault call; a bad body is refused; the session's page opens for 1 hour, unknown ones 404.
//! Each Vault request is a row of the testkit's contract loop.

use authport_sandbox::apideck::sessions::{SESSION_KEYS, SETTINGS_KEYS};
use authport_sandbox::spec::{Direction, component_schema, load_spec, validator};
use authport_sandbox::{RunningSandbox, SandboxConfig};
use authport_testkit::contract::{self, Case};
use serde_json::{Value, json};

use crate::apideck_contract::{Vault, server};
use crate::common;

async fn start() -> RunningSandbox {
    common::start(SandboxConfig::default()).await
}

const SESSIONS: &str = "/vault/sessions";

/// `POST /vault/sessions` with `body` for consumer `c-1`, answering `status` as vault.yml
/// declares.
fn create(body: Value, status: u16) -> Case {
    Case::new("POST", SESSIONS, SESSIONS, status)
        .header("x-apideck-consumer-id", "c-1")
        .send(body)
}

fn keys(schema: &Value) -> Vec<String> {
    let mut keys: Vec<String> = schema["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

#[test]
fn the_emulator_accepts_exactly_the_properties_of_session() {
    let spec = load_spec();
    let session = &spec["components"]["schemas"]["Session"];
    let mut ours: Vec<String> = SESSION_KEYS.iter().map(|k| (*k).to_owned()).collect();
    ours.sort();
    assert_eq!(ours, keys(session));
    let mut ours: Vec<String> = SETTINGS_KEYS.iter().map(|k| (*k).to_owned()).collect();
    ours.sort();
    assert_eq!(ours, keys(&session["properties"]["settings"]));
}

#[tokio::test]
async fn a_session_is_created_for_a_consumer_and_its_page_opens() {
    let spec = load_spec();
    let request_schema = validator(&component_schema(&spec, "Session", Direction::Request));
    let answer_schema = validator(&component_schema(
        &spec,
        "CreateSessionResponse",
        Direction::Response,
    ));
    // Negative controls: the converted schemas refuse wrong shapes.
    assert!(!request_schema.is_valid(&json!({"settings": {"unified_apis": "crm"}})));
    assert!(!answer_schema.is_valid(&json!({"status_code": 200, "status": "OK", "data": {}})));

    let body = json!({"consumer_metadata": {"user_name": "Ada", "email": "ada@example.com"},
                      "redirect_uri": "https://app.example/back",
                      "settings": {"unified_apis": ["crm"], "session_length": "1h"}});
    let sandbox = start().await;
    let answers = contract::run(
        &server(&sandbox),
        &Vault(load_spec()),
        &[
            create(body.clone(), 200).request_valid(true),
            // Two sessions are two tokens.
            create(body, 200),
        ],
    )
    .await;
    let (answer, again) = (&answers[0].body, &answers[1].body);
    let uri = answer["data"]["session_uri"].as_str().expect("a uri");
    let token = answer["data"]["session_token"].as_str().expect("a token");
    assert!(uri.ends_with(token));
    let page = reqwest::get(uri).await.expect("answers");
    assert_eq!(page.status().as_u16(), 200);
    let page: Value = page.json().await.expect("json");
    assert_eq!(page["consumer_id"], "c-1");
    assert_eq!(page["unified_apis"], json!(["crm"]));
    assert_eq!(page["redirect_uri"], "https://app.example/back");

    assert_ne!(
        again["data"]["session_token"],
        answer["data"]["session_token"]
    );
    let unknown = reqwest::get(format!("{}/session/not-a-session", sandbox.base_url()))
        .await
        .expect("answers");
    assert_eq!(unknown.status().as_u16(), 404);
}

#[tokio::test]
async fn bad_requests_are_refused_as_vault_does() {
    let sandbox = start().await;
    let body = json!({"settings": {"unified_apis": ["crm"]}});
    let mut cases = vec![
        create(body.clone(), 401)
            .header("authorization", "Bearer wrong")
            .fields(json!({"type_name": "UnauthorizedError"})),
        create(body, 400)
            .without("x-apideck-consumer-id")
            .fields(json!({"detail": "Missing Header: x-apideck-consumer-id"})),
    ];
    for bad in [
        json!({"CANARY-key": 1}),
        json!({"settings": {"unified_apis": "crm"}}),
        json!({"settings": {"CANARY-setting": "CANARY-value"}}),
        json!({"redirect_uri": 5}),
    ] {
        cases.push(create(bad, 422).request_valid(false));
    }
    let answers = contract::run(&server(&sandbox), &Vault(load_spec()), &cases).await;
    for answer in &answers[2..] {
        assert!(
            !answer.text.contains("CANARY"),
            "the refusal quotes no key or value: {}",
            answer.text
        );
    }
}
