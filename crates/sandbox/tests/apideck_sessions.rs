//! `POST /vault/sessions` of the Vault emulator over real HTTP, against vault.yml: the request
//! body is a `Session`, the answer a `CreateSessionResponse`; headers are checked like every
//! Vault call; a bad body is refused; the session's page opens for 1 hour, unknown ones 404.

use authport_sandbox::apideck::sessions::{SESSION_KEYS, SETTINGS_KEYS};
use authport_sandbox::apideck::{SANDBOX_API_KEY, SANDBOX_APP_ID};
use authport_sandbox::spec::{Direction, component_schema, load_spec, validator};
use authport_sandbox::{RunningSandbox, SandboxConfig};
use serde_json::{Value, json};

async fn start() -> RunningSandbox {
    authport_sandbox::start(
        SandboxConfig::default(),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("sandbox starts")
}

async fn create(
    sandbox: &RunningSandbox,
    key: &str,
    consumer: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/vault/sessions", sandbox.base_url()))
        .header("authorization", format!("Bearer {key}"))
        .header("x-apideck-app-id", SANDBOX_APP_ID)
        .json(body);
    if let Some(consumer) = consumer {
        request = request.header("x-apideck-consumer-id", consumer);
    }
    let response = request.send().await.expect("answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
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
    assert!(request_schema.is_valid(&body));
    let sandbox = start().await;
    let (status, answer) = create(&sandbox, SANDBOX_API_KEY, Some("c-1"), &body).await;
    assert_eq!(status, 200, "{answer}");
    let errors: Vec<String> = answer_schema
        .iter_errors(&answer)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let uri = answer["data"]["session_uri"].as_str().expect("a uri");
    let token = answer["data"]["session_token"].as_str().expect("a token");
    assert!(uri.ends_with(token));
    let page = reqwest::get(uri).await.expect("answers");
    assert_eq!(page.status().as_u16(), 200);
    let page: Value = page.json().await.expect("json");
    assert_eq!(page["consumer_id"], "c-1");
    assert_eq!(page["unified_apis"], json!(["crm"]));
    assert_eq!(page["redirect_uri"], "https://app.example/back");

    // Two sessions are two tokens.
    let (_, again) = create(&sandbox, SANDBOX_API_KEY, Some("c-1"), &body).await;
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
    let (status, answer) = create(&sandbox, "wrong", Some("c-1"), &body).await;
    assert_eq!(
        (status, answer["type_name"].as_str()),
        (401, Some("UnauthorizedError"))
    );
    let (status, answer) = create(&sandbox, SANDBOX_API_KEY, None, &body).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["detail"], "Missing Header: x-apideck-consumer-id");
    for bad in [
        json!({"CANARY-key": 1}),
        json!({"settings": {"unified_apis": "crm"}}),
        json!({"settings": {"CANARY-setting": "CANARY-value"}}),
        json!({"redirect_uri": 5}),
    ] {
        let (status, answer) = create(&sandbox, SANDBOX_API_KEY, Some("c-1"), &bad).await;
        assert_eq!(status, 422, "{bad}: {answer}");
        assert!(
            !answer.to_string().contains("CANARY"),
            "the refusal quotes no key or value: {answer}"
        );
    }
}
