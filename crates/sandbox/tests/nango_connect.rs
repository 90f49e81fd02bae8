//! The Nango emulator's Connect sessions against nango.yaml (`/connect/sessions`,
//! `/connect/sessions/reconnect`), as rows of the testkit's contract loop: 201 with the
//! declared `ConnectSession`, 400 `StdError` for a body the spec refuses and for a reconnect of
//! a connection that does not exist, 401 without the key; the session's page while it lives.

use authport_sandbox::nango::spec::{load_spec, request_schema, response_schema, violations};
use authport_sandbox::nango::{NangoOptions, SANDBOX_SECRET_KEY};
use authport_sandbox::{RunningSandbox, SandboxConfig};
use authport_testkit::contract::{self, Answer, Case, Server, Spec};
use serde_json::{Value, json};

use crate::common;

const SESSIONS: &str = "/connect/sessions";
const RECONNECT: &str = "/connect/sessions/reconnect";

async fn start() -> RunningSandbox {
    common::start(SandboxConfig {
        nango: NangoOptions::default(),
        ..Default::default()
    })
    .await
}

/// nango.yaml, as the declared request and response schemas of each row's operation.
struct NangoSpec(Value);

impl Spec for NangoSpec {
    fn answer_problems(&self, case: &Case, answer: &Answer) -> Vec<String> {
        let method = case.method.to_ascii_lowercase();
        let schema = response_schema(&self.0, case.template, &method, &answer.status.to_string());
        violations(&schema, &answer.body)
    }

    fn request_problems(&self, case: &Case, body: &Value) -> Vec<String> {
        let schema = request_schema(&self.0, case.template, &case.method.to_ascii_lowercase());
        violations(&schema, body)
    }
}

async fn run(sandbox: &RunningSandbox, cases: &[Case]) -> Vec<Answer> {
    let server = Server::new(sandbox.base_url())
        .header("authorization", format!("Bearer {SANDBOX_SECRET_KEY}"));
    contract::run(&server, &NangoSpec(load_spec()), cases).await
}

fn post(template: &'static str, body: Value, status: u16, valid: bool) -> Case {
    Case::new("POST", template, template, status)
        .send(body)
        .request_valid(valid)
}

#[tokio::test]
async fn sessions_answer_the_declared_connect_session_and_refuse_what_the_spec_refuses() {
    let sandbox = start().await;
    sandbox
        .nango
        .precreate_connection("hubspot", "acme-42-hubspot", Default::default());
    let tags = json!({"end_user_id": "acme-42", "end_user_email": "ops@acme.example"});
    let cases = [
        post(
            SESSIONS,
            json!({"tags": tags, "allowed_integrations": ["hubspot"]}),
            201,
            true,
        )
        .fields(json!({"data": {}})),
        post(
            RECONNECT,
            json!({"connection_id": "acme-42-hubspot", "integration_id": "hubspot"}),
            201,
            true,
        ),
        // Unknown connection: Nango's 400 (the spec declares no 404).
        post(
            RECONNECT,
            json!({"connection_id": "gone", "integration_id": "hubspot"}),
            400,
            true,
        )
        .fields(json!({"error": {"code": "invalid_body"}})),
        // Required ids missing; a property the spec does not have.
        post(
            RECONNECT,
            json!({"connection_id": "acme-42-hubspot"}),
            400,
            false,
        ),
        post(
            SESSIONS,
            json!({"allowed_integrations": "hubspot"}),
            400,
            false,
        ),
        post(SESSIONS, json!({"tags": {"end_user_id": 42}}), 400, false),
        // An integration that does not exist: valid for the spec, refused by Nango.
        post(
            SESSIONS,
            json!({"allowed_integrations": ["nope"]}),
            400,
            true,
        )
        .fields(json!({"error": {"code": "invalid_body"}})),
        post(SESSIONS, json!({}), 401, true).without("authorization"),
    ];
    let answers = run(&sandbox, &cases).await;
    let sessions = sandbox.nango.sessions_created();
    assert_eq!(sessions.len(), 2, "only the 201s minted: {sessions:?}");
    assert_eq!(sessions[0].tags["end_user_id"], "acme-42");
    assert_eq!(sessions[0].reconnect, None);
    assert_eq!(
        sessions[1].reconnect,
        Some(("hubspot".to_owned(), "acme-42-hubspot".to_owned()))
    );
    for (answer, session) in answers.iter().zip(&sessions) {
        assert_eq!(answer.body["data"]["token"], session.token);
        let expires = answer.body["data"]["expires_at"].as_str().unwrap();
        let expires = chrono::DateTime::parse_from_rfc3339(expires).expect("RFC 3339");
        let left = expires.with_timezone(&chrono::Utc) - chrono::Utc::now();
        assert!(left > chrono::Duration::minutes(29) && left <= chrono::Duration::minutes(30));
        // Debug never shows the token.
        assert!(!format!("{session:?}").contains(&session.token));
    }
    // The connect link opens the page, which names the integration; an unknown token: 404.
    let link = answers[0].body["data"]["connect_link"].as_str().unwrap();
    assert!(
        link.contains("/_sandbox/nango/connect?session_token="),
        "{link}"
    );
    let page = reqwest::get(link).await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Nango Connect (sandbox)"), "{html}");
    assert!(html.contains("data-integration=\"hubspot\""), "{html}");
    let unknown = format!(
        "{}/_sandbox/nango/connect?session_token=nope",
        sandbox.base_url()
    );
    assert_eq!(reqwest::get(&unknown).await.unwrap().status(), 404);
    assert_eq!(sandbox.nango.sessions_created()[0].opened, 1);
}
