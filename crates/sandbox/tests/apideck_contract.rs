//! The Apideck Vault emulator against Apideck's vault.yml, as `(method, path template, status,
//! body)` tables driven by the testkit's contract loop: every answer is what the spec declares
//! for its status, header checks answer 401/400 in Apideck's envelope, and state/health follow
//! what was imported. Stateful behaviour beyond one request is in `apideck_vault.rs`.

use authport_sandbox::apideck::{
    ApideckOptions, SANDBOX_API_KEY, SANDBOX_APP_ID, import_body_problems,
};
use authport_sandbox::spec::{Direction, component_schema, load_spec, validator};
use authport_sandbox::{RunningSandbox, SandboxConfig};
use authport_testkit::contract::{self, Answer, Body, Case, Server, Spec};
use chrono::{SecondsFormat, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::common;

pub const CANARY_ACCESS: &str = "CANARY-sandbox-access-2f7c";
pub const CANARY_REFRESH: &str = "CANARY-sandbox-refresh-81d0";

pub const ONE: &str = "/vault/connections/{unified_api}/{service_id}";
pub const IMPORT: &str = "/vault/connections/{unified_api}/{service_id}/import";
pub const VALIDATE: &str = "/vault/connections/{unified_api}/{service_id}/validate";
pub const LIST: &str = "/vault/connections";

pub async fn start(options: ApideckOptions) -> RunningSandbox {
    common::start(SandboxConfig {
        apideck: options,
        ..Default::default()
    })
    .await
}

pub fn bearer() -> String {
    format!("Bearer {SANDBOX_API_KEY}")
}

/// The sandbox as a Vault client sees it: every row sends the key and the application id.
pub fn server(sandbox: &RunningSandbox) -> Server {
    Server::new(sandbox.base_url())
        .header("authorization", bearer())
        .header("x-apideck-app-id", SANDBOX_APP_ID)
}

/// A Vault row for `consumer` (`None`: the consumer header left out).
pub fn vault(
    method: &str,
    template: &'static str,
    path: &str,
    consumer: Option<&str>,
    status: u16,
) -> Case {
    let case = Case::new(method, template, path, status);
    match consumer {
        Some(consumer) => case.header("x-apideck-consumer-id", consumer),
        None => case,
    }
}

pub fn fresh_oauth_body() -> Value {
    let issued_at = (Utc::now() - TimeDelta::minutes(5)).to_rfc3339_opts(SecondsFormat::Secs, true);
    json!({"credentials": {"access_token": CANARY_ACCESS, "refresh_token": CANARY_REFRESH,
                           "issued_at": issued_at, "expires_in": 3600},
           "metadata": {"source": "test"}})
}

/// Apideck's vault.yml: an answer is the component its operation declares for the status, or
/// empty when the status is declared without content.
pub struct Vault(pub Value);

impl Vault {
    /// The component schema the spec declares for `method path` answering `status`.
    fn response_schema_name(&self, path: &str, method: &str, status: u16) -> Option<String> {
        let spec = &self.0;
        let responses = &spec["paths"][path][method]["responses"];
        let mut response = responses
            .get(status.to_string())
            .or_else(|| responses.get("default"))?
            .clone();
        if let Some(reference) = response.get("$ref").and_then(Value::as_str) {
            let name = reference.rsplit('/').next().expect("a ref");
            response = spec["components"]["responses"][name].clone();
        }
        let schema = response.pointer("/content/application~1json/schema")?;
        let reference = schema.get("$ref").and_then(Value::as_str)?;
        Some(reference.rsplit('/').next().expect("a ref").to_owned())
    }

    fn problems(&self, name: &str, instance: &Value) -> Vec<String> {
        let schema = component_schema(&self.0, name, Direction::Response);
        validator(&schema)
            .iter_errors(instance)
            .map(|e| format!("not a {name}: {e}"))
            .collect()
    }
}

impl Spec for Vault {
    fn answer_problems(&self, case: &Case, answer: &Answer) -> Vec<String> {
        let method = case.method.to_ascii_lowercase();
        let declared = match &case.body {
            Body::Schema(name) => Some((*name).to_owned()),
            _ => self.response_schema_name(case.template, &method, answer.status),
        };
        match declared {
            Some(name) => self.problems(&name, &answer.body),
            None => {
                let status = answer.status.to_string();
                let responses = &self.0["paths"][case.template][method.as_str()]["responses"];
                let mut problems = Vec::new();
                if responses.get(&status).is_none() {
                    problems.push(format!("status {status} is not declared"));
                }
                if !answer.text.is_empty() {
                    problems.push(format!("{status} must have no body"));
                }
                problems
            }
        }
    }

    fn request_problems(&self, case: &Case, body: &Value) -> Vec<String> {
        let method = case.method.to_ascii_lowercase();
        let name = self.0["paths"][case.template][method.as_str()]
            .pointer("/requestBody/content/application~1json/schema/$ref")
            .and_then(Value::as_str)
            .and_then(|reference| reference.rsplit('/').next())
            .unwrap_or_else(|| panic!("{} {} takes no body", case.method, case.template));
        let schema = component_schema(&self.0, name, Direction::Request);
        validator(&schema)
            .iter_errors(body)
            .map(|e| format!("not a {name}: {e}"))
            .collect()
    }
}

#[test]
fn handwritten_import_validation_agrees_with_the_spec() {
    let spec = load_spec();
    let import = &spec["paths"][IMPORT]["post"];
    let reference = import
        .pointer("/requestBody/content/application~1json/schema/$ref")
        .and_then(Value::as_str)
        .expect("import body is a ref");
    let schema = validator(&component_schema(
        &spec,
        reference.rsplit('/').next().expect("name"),
        Direction::Request,
    ));
    let check = |body: Value| {
        let problems = import_body_problems(&body);
        assert_eq!(
            problems.is_empty(),
            schema.is_valid(&body),
            "disagreement on {body}: {problems:?}"
        );
        assert!(
            !problems.join(" ").contains(CANARY_ACCESS),
            "problems quote a value: {problems:?}"
        );
    };
    for body in [
        json!({}),
        json!({"unknown_top_level": 1}),
        json!({"credentials": {}}),
        json!({"credentials": {"access_token": CANARY_ACCESS}}),
        json!({"credentials": {"access_token": CANARY_ACCESS, "refresh_token": null, "issued_at": null, "expires_in": null}}),
        json!({"credentials": {"access_token": CANARY_ACCESS, "issued_at": "2026-11-01T10:00:00Z", "expires_in": 3600}}),
        json!({"credentials": {"access_token": CANARY_ACCESS, "issued_at": "2026-11-01T10:00:00+02:00"}}),
        json!({"credentials": {"access_token": null}}),
        json!({"credentials": {"access_token": 12}}),
        json!({"credentials": {"access_token": CANARY_ACCESS, "token_type": "Bearer"}}),
        json!({"credentials": {"access_token": CANARY_ACCESS, "expires_at": "2026-11-01T10:00:00Z"}}),
        json!({"credentials": {"expires_in": "3600"}}),
        json!({"credentials": {"expires_in": 3600.5}}),
        json!({"credentials": {"expires_in": -5}}),
        json!({"credentials": {"issued_at": "yesterday"}}),
        json!({"credentials": {"issued_at": 1_700_000_000}}),
        json!({"credentials": {"refresh_token": ["x"]}}),
        json!({"credentials": null}),
        json!({"credentials": CANARY_ACCESS}),
        json!({"settings": null, "metadata": null}),
        json!({"settings": {"api_key": "k", "nested": {"a": [1]}}}),
        json!({"settings": "k"}),
        json!({"metadata": [1]}),
        json!([CANARY_ACCESS]),
        json!(CANARY_ACCESS),
    ] {
        check(body);
    }
}

#[test]
fn the_converted_schemas_reject_wrong_shapes() {
    let spec = load_spec();
    let get_connection = validator(&component_schema(
        &spec,
        "GetConnectionResponse",
        Direction::Response,
    ));
    for (body, valid) in [
        (
            json!({"status_code": 200, "status": "OK", "data": {"state": "sleeping"}}),
            false,
        ),
        (
            json!({"status_code": 200, "status": "OK", "data": {"created_at": "2026-11-01"}}),
            false,
        ),
        (json!({"status": "OK", "data": {}}), false),
        (
            json!({"status_code": 200, "status": "OK", "data": {"settings": null, "updated_at": null}}),
            true,
        ),
    ] {
        assert_eq!(get_connection.is_valid(&body), valid, "{body}");
    }
}

/// Every operation the emulator serves, in the order a session meets them: successes, then
/// errors in Apideck's envelope, then a delete (204 without a body) after which the consumer
/// sees the connector as available again.
fn every_operation() -> Vec<Case> {
    let acme = Some("acme-42");
    let hubspot = "/vault/connections/crm/hubspot";
    vec![
        vault("GET", LIST, LIST, None, 200),
        vault("GET", LIST, "/vault/connections?api=crm", acme, 200),
        vault("GET", ONE, hubspot, acme, 200).fields(json!({"data": {"state": "available"}})),
        vault(
            "POST",
            IMPORT,
            "/vault/connections/crm/hubspot/import",
            acme,
            200,
        )
        .send(fresh_oauth_body())
        .fields(json!({"data": {"state": "callable"}})),
        vault(
            "POST",
            IMPORT,
            "/vault/connections/ats/greenhouse/import",
            acme,
            200,
        )
        .send(json!({"settings": {"api_key": "gh-key"}})),
        vault("GET", ONE, hubspot, acme, 200),
        vault("GET", LIST, LIST, acme, 200),
        vault(
            "POST",
            VALIDATE,
            "/vault/connections/ats/greenhouse/validate",
            acme,
            200,
        )
        .send(json!({}))
        .fields(json!({"data": {"state": "callable"}})),
        // Errors, in Apideck's envelope.
        vault("GET", ONE, hubspot, Some("a"), 401).without("authorization"),
        vault("GET", ONE, hubspot, Some("a"), 400).without("x-apideck-app-id"),
        vault("GET", ONE, hubspot, None, 400),
        vault("GET", ONE, "/vault/connections/crm/nope", Some("a"), 404),
        vault(
            "POST",
            IMPORT,
            "/vault/connections/crm/hubspot/import",
            Some("a"),
            400,
        )
        .send(json!({"credentials": {"access_token": null}})),
        vault(
            "POST",
            IMPORT,
            "/vault/connections/crm/nope/import",
            Some("a"),
            404,
        )
        .send(json!({})),
        vault(
            "POST",
            IMPORT,
            "/vault/connections/crm/pipedrive/import",
            Some("a"),
            200,
        )
        .send(json!({})),
        // Three imports so far: a fourth is over the plan limit of 3.
        vault(
            "POST",
            IMPORT,
            "/vault/connections/crm/pipedrive/import",
            Some("b"),
            402,
        )
        .send(json!({})),
        vault(
            "POST",
            VALIDATE,
            "/vault/connections/crm/hubspot/validate",
            Some("nobody"),
            404,
        ),
        vault("DELETE", ONE, hubspot, acme, 204),
        vault("DELETE", ONE, hubspot, acme, 404),
        vault("GET", ONE, hubspot, acme, 200).fields(json!({"data": {"state": "available"}})),
    ]
}

#[tokio::test]
async fn every_response_matches_the_spec() {
    let sandbox = start(ApideckOptions {
        import_limit: Some(3),
        ..Default::default()
    })
    .await;
    let cases = every_operation();
    assert_eq!(cases.len(), 20);
    contract::run(&server(&sandbox), &Vault(load_spec()), &cases).await;
}

#[tokio::test]
async fn header_checks_answer_401_and_400() {
    let sandbox = start(ApideckOptions::default()).await;
    let path = "/vault/connections/crm/hubspot/import";
    let refused = |status: u16, type_name: &str, detail: &str| {
        Case::new("POST", IMPORT, path, status)
            .send(json!({}))
            .header("x-apideck-consumer-id", "c")
            .fields(json!({"type_name": type_name, "detail": detail}))
    };
    let cases = [
        refused(401, "UnauthorizedError", "Missing authentication").without("authorization"),
        refused(401, "UnauthorizedError", "Invalid API key")
            .header("authorization", "Bearer wrong"),
        refused(401, "UnauthorizedError", "Invalid API key")
            .header("authorization", SANDBOX_API_KEY),
        refused(
            400,
            "RequestHeadersValidationError",
            "Missing Header: x-apideck-app-id",
        )
        .without("x-apideck-app-id"),
        refused(401, "UnauthorizedError", "Unknown application id")
            .header("x-apideck-app-id", "other-app"),
        refused(
            400,
            "RequestHeadersValidationError",
            "Missing Header: x-apideck-consumer-id",
        )
        .without("x-apideck-consumer-id"),
        Case::new("POST", IMPORT, path, 200)
            .send(json!({}))
            .header("x-apideck-consumer-id", "c"),
    ];
    let answers = contract::run(&server(&sandbox), &Vault(load_spec()), &cases).await;
    let accepted = &answers[cases.len() - 1].body;
    assert!(accepted.get("type_name").is_none() && accepted.get("detail").is_none());
    assert_eq!(sandbox.apideck.consumer_ids(), ["c"]);
}

#[tokio::test]
async fn state_and_health_follow_what_was_imported() {
    let sandbox = start(ApideckOptions::default()).await;
    let at = |minutes: i64| {
        (Utc::now() + TimeDelta::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Secs, true)
    };
    let expected = [
        ("crm/hubspot", fresh_oauth_body(), ("callable", "ok")),
        (
            "crm/hubspot",
            json!({"credentials": {"access_token": "a", "refresh_token": "r"}}),
            ("callable", "pending_refresh"),
        ),
        (
            "crm/hubspot",
            json!({"credentials": {"access_token": "a", "issued_at": at(-120), "expires_in": 3600}}),
            ("callable", "pending_refresh"),
        ),
        (
            "crm/hubspot",
            json!({"credentials": {"access_token": "a", "issued_at": at(-1), "expires_in": null}}),
            ("callable", "pending_refresh"),
        ),
        (
            "crm/hubspot",
            json!({"settings": {}}),
            ("added", "needs_auth"),
        ),
        (
            "accounting/quickbooks",
            fresh_oauth_body(),
            ("authorized", "missing_settings"),
        ),
        (
            "accounting/quickbooks",
            json!({"credentials": fresh_oauth_body()["credentials"], "settings": {"realm_id": "123"}}),
            ("callable", "ok"),
        ),
        (
            "ats/greenhouse",
            json!({"settings": {"api_key": "k"}}),
            ("callable", "ok"),
        ),
        (
            "ats/greenhouse",
            json!({"settings": {"api_key": ""}}),
            ("added", "missing_settings"),
        ),
        (
            "crm/activecampaign",
            json!({"settings": {"api_key": "k"}}),
            ("added", "missing_settings"),
        ),
        (
            "crm/activecampaign",
            json!({"settings": {"api_key": "k", "instance_url": "https://x.example"}}),
            ("callable", "ok"),
        ),
        (
            "ticketing/zendesk",
            json!({"settings": {"username": "u@x.example", "password": "p", "subdomain": "x"}}),
            ("callable", "ok"),
        ),
        (
            "ticketing/zendesk",
            json!({"settings": {"username": "u@x.example", "password": "p"}}),
            ("added", "missing_settings"),
        ),
    ];
    let cases: Vec<Case> = expected
        .iter()
        .enumerate()
        .map(|(index, (connector, body, (state, health)))| {
            let path = format!("/vault/connections/{connector}/import");
            vault(
                "POST",
                IMPORT,
                &path,
                Some(&format!("consumer-{index}")),
                200,
            )
            .send(body.clone())
            .fields(json!({"data": {"state": state, "health": health}}))
        })
        .collect();
    contract::run(&server(&sandbox), &Vault(load_spec()), &cases).await;
    // The emulator's own view agrees with what it answered.
    for (index, (connector, _, expect)) in expected.iter().enumerate() {
        let (unified_api, service_id) = connector.split_once('/').expect("u/s");
        let view = sandbox
            .apideck
            .connection(&format!("consumer-{index}"), unified_api, service_id)
            .expect("stored");
        assert_eq!((view.state.as_str(), view.health.as_str()), *expect);
    }
}
