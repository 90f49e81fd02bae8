//! Helpers the sandbox's HTTP suites share: starting a sandbox, raw calls (through the
//! testkit's contract client), a GraphQL client for
//! the Tray emulator, and Tray's published spec. The suites use different parts of it.

use authport_sandbox::tray::DEFAULT_MASTER_TOKEN;
use authport_sandbox::{RunningSandbox, SandboxConfig};
use authport_testkit::contract::{Body, Case, Server, Spec};
use serde_json::{Value, json};

/// A sandbox on a free loopback port.
pub async fn start(config: SandboxConfig) -> RunningSandbox {
    authport_sandbox::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("sandbox starts")
}

pub use authport_testkit::contract::Answer;

/// Sends a request with the given headers (`None` value = header left out): one row of the
/// testkit's contract tables, sent alone, for suites that check state rather than the spec.
pub async fn call(
    sandbox: &RunningSandbox,
    method: &str,
    path: &str,
    headers: &[(&str, Option<&str>)],
    body: Option<&Value>,
) -> Answer {
    let mut case = Case::new(method, "", path, 0);
    for (name, value) in headers {
        case = match value {
            Some(value) => case.header(name, *value),
            None => case.without(name),
        };
    }
    if let Some(body) = body {
        case = case.send(body.clone());
    }
    Server::new(sandbox.base_url()).send(&case).await
}

/// The Tray emulator over raw GraphQL and REST.
pub struct Tray {
    pub sandbox: RunningSandbox,
    pub http: reqwest::Client,
}

impl Tray {
    pub async fn start() -> Self {
        Self {
            sandbox: start(SandboxConfig::default()).await,
            http: reqwest::Client::new(),
        }
    }

    /// Sends one GraphQL request. Resolver errors and refusals are HTTP 200 with `errors`,
    /// like successes.
    pub async fn graphql(&self, token: &str, query: &str, variables: Value) -> Value {
        let response = self
            .http
            .post(format!("{}/graphql", self.sandbox.base_url()))
            .header("authorization", format!("Bearer {token}"))
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// A REST `GET`: status and JSON body.
    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.sandbox.base_url()))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// A new end user and their token.
    pub async fn user_token(&self, external_user_id: &str) -> String {
        self.user(external_user_id).await.1
    }

    /// A new end user: their Tray user id and token.
    pub async fn user(&self, external_user_id: &str) -> (String, String) {
        let created = self
            .graphql(
                DEFAULT_MASTER_TOKEN,
                "mutation ($name: String!, $externalUserId: String!) { createExternalUser(input: {name: $name, externalUserId: $externalUserId}) { userId } }",
                json!({"name": external_user_id, "externalUserId": external_user_id}),
            )
            .await;
        let user_id = created["data"]["createExternalUser"]["userId"]
            .as_str()
            .unwrap_or_else(|| panic!("{created}"))
            .to_owned();
        let token = self
            .graphql(
                DEFAULT_MASTER_TOKEN,
                "mutation ($userId: ID!) { authorize(input: {userId: $userId}) { accessToken } }",
                json!({"userId": user_id}),
            )
            .await;
        let token = token["data"]["authorize"]["accessToken"]
            .as_str()
            .unwrap_or_else(|| panic!("{token}"))
            .to_owned();
        (user_id, token)
    }
}

/// Tray's published OpenAPI 3.1 description, without the `description: {$ref: ...md}` objects
/// and external refs it carries from Tray's docs build (see SOURCES.md).
pub fn tray_spec() -> Value {
    let mut spec = authport_sandbox::spec::load_spec_file("tray-platform-api.yaml");
    strip_external_refs(&mut spec);
    spec
}

fn strip_external_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|key, v| {
                let doc_description = key == "description" && v.is_object();
                let external_ref = key == "$ref" && !v.as_str().unwrap_or("#").starts_with('#');
                !doc_description && !external_ref
            });
            map.values_mut().for_each(strip_external_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_external_refs),
        _ => {}
    }
}

/// A validator for the Tray spec's component `schema`.
pub fn tray_validator(spec: &Value, schema: &str) -> jsonschema::Validator {
    let root =
        json!({"$ref": format!("#/components/schemas/{schema}"), "components": spec["components"]});
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&root)
        .expect("schema builds")
}

/// Tray's spec names one component per status; a status declared without one (the delete's
/// 204) has no body.
pub struct TraySpec(pub Value);

impl TraySpec {
    fn problems(&self, name: &str, instance: &Value) -> Vec<String> {
        tray_validator(&self.0, name)
            .iter_errors(instance)
            .map(|e| format!("not a {name}: {e} at {}", e.instance_path))
            .collect()
    }
}

impl Spec for TraySpec {
    fn answer_problems(&self, case: &Case, answer: &Answer) -> Vec<String> {
        let method = case.method.to_ascii_lowercase();
        let declared = &self.0["paths"][case.template][method.as_str()]["responses"]
            [answer.status.to_string()];
        let name = match case.body {
            Body::Schema(name) => Some(name),
            _ => declared
                .pointer("/content/application~1json/schema/$ref")
                .or_else(|| declared.get("$ref"))
                .and_then(Value::as_str)
                .and_then(|reference| reference.rsplit('/').next()),
        };
        match name {
            Some(name) => self.problems(name, &answer.body),
            None if answer.text.is_empty() => Vec::new(),
            None => vec![format!("{} must have no body", answer.status)],
        }
    }

    fn request_problems(&self, case: &Case, body: &Value) -> Vec<String> {
        let method = case.method.to_ascii_lowercase();
        let name = self.0["paths"][case.template][method.as_str()]
            .pointer("/requestBody/content/application~1json/schema/$ref")
            .and_then(Value::as_str)
            .and_then(|reference| reference.rsplit('/').next())
            .unwrap_or_else(|| panic!("{} {} takes no body", case.method, case.template))
            .to_owned();
        self.problems(&name, body)
    }
}

/// A row sent with `token` as the bearer.
pub fn as_user(case: Case, token: &str) -> Case {
    case.header("authorization", format!("Bearer {token}"))
}
