//! The Nango emulator against Nango's nango.yaml, as `(method, path template, status, body)`
//! tables driven by the testkit's contract loop: its answers are what the spec declares, it
//! refuses bodies the spec does not allow, and its stateful behaviour (upsert, errors[], 424,
//! the rate window, fault injection) shows in what it answers.

use authport_sandbox::faults::{FaultKind, FaultPlan, FaultRule, Trigger};
use authport_sandbox::nango::spec::{
    component_schema, load_spec, request_schema, response_schema, violations,
};
use authport_sandbox::nango::{NangoOptions, RateLimit, SANDBOX_SECRET_KEY};
use authport_sandbox::{RunningSandbox, SandboxConfig};
use authport_testkit::contract::{self, Answer, Body, Case, Server, Spec};
use serde_json::{Value, json};

use crate::common;

const CANARY_ACCESS: &str = "CANARY-nango-access-5c1e";
const CANARY_REFRESH: &str = "CANARY-nango-refresh-09ab";

const INTEGRATIONS: &str = "/integrations";
const CONNECTIONS: &str = "/connections";
const CONNECTION: &str = "/connections/{connectionId}";

async fn start(options: NangoOptions) -> RunningSandbox {
    common::start(SandboxConfig {
        nango: options,
        ..Default::default()
    })
    .await
}

/// The sandbox as a Nango client sees it: every row sends the secret key.
fn server(sandbox: &RunningSandbox) -> Server {
    Server::new(sandbox.base_url()).header("authorization", format!("Bearer {SANDBOX_SECRET_KEY}"))
}

async fn run(sandbox: &RunningSandbox, cases: &[Case]) -> Vec<Answer> {
    contract::run(&server(sandbox), &NangoSpec(load_spec()), cases).await
}

fn oauth_body(connection_id: &str) -> Value {
    json!({"provider_config_key": "hubspot", "connection_id": connection_id,
           "credentials": {"type": "OAUTH2", "access_token": CANARY_ACCESS,
                           "refresh_token": CANARY_REFRESH, "expires_at": "2030-01-01T00:00:00Z"},
           "connection_config": {"portal_id": "123"}, "metadata": {"plan": "gold"},
           "tags": {"End_User_Id": "acme-42", "end_user_email": "ops@acme.example"}})
}

/// `POST /connections` with `body`, which the spec allows.
fn upsert(body: Value, status: u16) -> Case {
    Case::new("POST", CONNECTIONS, CONNECTIONS, status)
        .send(body)
        .request_valid(true)
}

/// nango.yaml. `ConnectionFull` is checked as the spec describes it except `credentials`: the
/// spec's `OAuth2CredentialsWithRaw` is `allOf` two closed objects (each `additionalProperties:
/// false` without the other's properties), which no object satisfies. OAuth credentials are
/// checked against `OAuth2Credentials` plus an object `raw` instead.
struct NangoSpec(Value);

impl NangoSpec {
    fn declares_connection_full(&self, template: &str, method: &str, status: u16) -> bool {
        self.0["paths"][template][method]["responses"][status.to_string()]
            .pointer("/content/application~1json/schema/$ref")
            .and_then(Value::as_str)
            .is_some_and(|reference| reference.ends_with("/ConnectionFull"))
    }

    fn connection_full_problems(&self, connection: &Value) -> Vec<String> {
        let spec = &self.0;
        let mut without = connection.clone();
        let credentials = without["credentials"].take();
        // `UnauthCredentials` (an empty closed object) stands in for them.
        without["credentials"] = json!({});
        let mut problems = violations(&component_schema(spec, "ConnectionFull"), &without);
        if credentials["type"] == "OAUTH2" {
            let mut plain = credentials.clone();
            let raw = plain.as_object_mut().and_then(|map| map.remove("raw"));
            if !raw.is_some_and(|raw| raw.is_object()) {
                problems.push("OAuth credentials carry no raw object".to_owned());
            }
            problems.extend(violations(
                &component_schema(spec, "OAuth2Credentials"),
                &plain,
            ));
        } else {
            problems.extend(violations(
                &component_schema(spec, "AllAuthCredentials"),
                &credentials,
            ));
        }
        problems
    }
}

impl Spec for NangoSpec {
    fn answer_problems(&self, case: &Case, answer: &Answer) -> Vec<String> {
        let method = case.method.to_ascii_lowercase();
        match case.body {
            Body::Schema("ConnectionFull") => self.connection_full_problems(&answer.body),
            Body::Schema(name) => violations(&component_schema(&self.0, name), &answer.body),
            _ if self.declares_connection_full(case.template, &method, answer.status) => {
                self.connection_full_problems(&answer.body)
            }
            _ => {
                let status = answer.status.to_string();
                let schema = response_schema(&self.0, case.template, &method, &status);
                violations(&schema, &answer.body)
            }
        }
    }

    fn request_problems(&self, case: &Case, body: &Value) -> Vec<String> {
        let schema = request_schema(&self.0, case.template, &case.method.to_ascii_lowercase());
        violations(&schema, body)
    }
}

#[tokio::test]
async fn integrations_answer_the_documented_list() {
    let sandbox = start(NangoOptions::default()).await;
    let answers = run(
        &sandbox,
        &[Case::new("GET", INTEGRATIONS, INTEGRATIONS, 200)],
    )
    .await;
    let providers: Vec<&str> = answers[0].body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["provider"].as_str().unwrap())
        .collect();
    // Every service of examples/records.jsonl has an integration (the quick start).
    for service in [
        "hubspot",
        "salesforce",
        "activecampaign",
        "greenhouse",
        "quickbooks",
        "zendesk",
    ] {
        assert!(providers.contains(&service), "{service}");
    }
}

#[tokio::test]
async fn the_upsert_creates_then_updates_one_connection_and_answers_connection_full() {
    let sandbox = start(NangoOptions::default()).await;
    let body = oauth_body("acme-42-hubspot");
    let mut changed = body.clone();
    changed["credentials"]["access_token"] = json!("CANARY-second-access");
    let one = "/connections/acme-42-hubspot?provider_config_key=hubspot";
    let greenhouse = json!({"provider_config_key": "greenhouse", "connection_id": "c1",
                            "credentials": {"type": "API_KEY", "apiKey": "k"}});
    let zendesk = json!({"provider_config_key": "zendesk", "connection_id": "c1",
                         "credentials": {"type": "BASIC", "username": "u", "password": "p"}});
    let cases = [
        upsert(body, 200).fields(json!({"tags": {"end_user_id": "acme-42"}})),
        upsert(changed, 200),
        Case::new("GET", CONNECTION, one, 200),
        Case::new("GET", CONNECTION, format!("{one}&refresh_token=true"), 200)
            .fields(json!({"credentials": {"refresh_token": CANARY_REFRESH,
                                   "access_token": "CANARY-second-access"}})),
    ];
    let answers = run(&sandbox, &cases).await;
    let (created, updated, read) = (&answers[0], &answers[1], &answers[2]);
    assert!(
        !created.text.contains(CANARY_REFRESH),
        "no refresh token unless asked"
    );
    assert_eq!(
        updated.body["id"], created.body["id"],
        "the same connection"
    );
    assert!(read.body["credentials"].get("refresh_token").is_none());
    assert_eq!(sandbox.nango.connection_count(), 1);
    assert_eq!(sandbox.nango.upsert_count(), 2);
    // The other credential kinds answer ConnectionFull too.
    run(&sandbox, &[upsert(greenhouse, 200), upsert(zendesk, 200)]).await;
}

#[tokio::test]
async fn list_and_delete_answer_the_documented_shapes() {
    let sandbox = start(NangoOptions::default()).await;
    run(
        &sandbox,
        &[upsert(oauth_body("a"), 200), upsert(oauth_body("b"), 200)],
    )
    .await;
    sandbox.nango.add_connection_error("hubspot", "a", "auth");
    let path = "/connections/a?provider_config_key=hubspot";
    let cases = [
        Case::new("GET", CONNECTIONS, CONNECTIONS, 200),
        Case::new("GET", CONNECTIONS, "/connections?connectionId=a", 200)
            .fields(json!({"connections": [{"errors": [{"type": "auth"}]}]})),
        Case::new(
            "GET",
            CONNECTIONS,
            "/connections?tags%5Bend_user_id%5D=nobody",
            200,
        )
        .fields(json!({"connections": []})),
        Case::new("DELETE", CONNECTION, path, 200).fields(json!({"success": true})),
        Case::new("DELETE", CONNECTION, path, 404),
        Case::new("GET", CONNECTION, path, 404),
    ];
    let answers = run(&sandbox, &cases).await;
    let (list, one, deleted) = (&answers[0], &answers[1], &answers[3]);
    assert!(!list.text.contains("CANARY"), "the list has no credentials");
    assert_eq!(list.body["connections"].as_array().unwrap().len(), 2);
    assert_eq!(one.body["connections"].as_array().unwrap().len(), 1);
    assert_eq!(deleted.body, json!({"success": true}));
}

#[tokio::test]
async fn refresh_exhaustion_answers_424_and_errors_show_in_reads() {
    let sandbox = start(NangoOptions::default()).await;
    let path = "/connections/x?provider_config_key=hubspot";
    run(&sandbox, &[upsert(oauth_body("x"), 200)]).await;
    sandbox.nango.add_connection_error("hubspot", "x", "sync");
    let read = run(&sandbox, &[Case::new("GET", CONNECTION, path, 200)]).await;
    assert_eq!(
        read[0].body["errors"],
        json!([{"type": "sync", "log_id": "log1"}])
    );
    sandbox.nango.exhaust_refresh("hubspot", "x");
    let exhausted = run(&sandbox, &[Case::new("GET", CONNECTION, path, 424)]).await;
    assert!(!exhausted[0].text.contains("CANARY"));
}

#[tokio::test]
async fn bodies_the_spec_refuses_are_refused_without_quoting_them() {
    let sandbox = start(NangoOptions::default()).await;
    let refused = |body: Value| {
        Case::new("POST", CONNECTIONS, CONNECTIONS, 400)
            .send(body)
            .request_valid(false)
            .body(Body::Schema("StdError"))
            .fields(json!({"error": {"code": "invalid_body"}}))
    };
    // Valid for the spec, refused by the integration: an unknown key, a credential type the
    // integration's auth mode does not take.
    let refused_by_the_integration = |body: Value, code: &str| {
        Case::new("POST", CONNECTIONS, CONNECTIONS, 400)
            .send(body)
            .request_valid(true)
            .body(Body::Schema("StdError"))
            .fields(json!({"error": {"code": code}}))
    };
    let cases = [
        refused(
            json!({"connection_id": "c", "credentials": {"type": "API_KEY", "apiKey": CANARY_ACCESS}}),
        ),
        refused(
            json!({"provider_config_key": "greenhouse", "credentials": {"type": "API_KEY", "api_key": CANARY_ACCESS}}),
        ),
        refused(
            json!({"provider_config_key": "hubspot", "credentials": {"type": "OAUTH2", "access_token": CANARY_ACCESS, "scopes": "a"}}),
        ),
        refused(
            json!({"provider_config_key": "hubspot", "credentials": {"type": "OAUTH2", "access_token": CANARY_ACCESS, "expires_at": "soon"}}),
        ),
        refused_by_the_integration(
            json!({"provider_config_key": "nope", "credentials": {"type": "API_KEY", "apiKey": "k"}}),
            "unknown_provider_config",
        ),
        refused_by_the_integration(
            json!({"provider_config_key": "hubspot", "credentials": {"type": "API_KEY", "apiKey": "k"}}),
            "invalid_credentials",
        ),
    ];
    for answer in run(&sandbox, &cases).await {
        assert!(!answer.text.contains("CANARY"), "{}", answer.text);
    }
    assert_eq!(sandbox.nango.connection_count(), 0);
}

#[tokio::test]
async fn a_missing_or_wrong_key_is_401() {
    let sandbox = start(NangoOptions::default()).await;
    let cases = [
        Case::new("GET", INTEGRATIONS, INTEGRATIONS, 401).without("authorization"),
        Case::new("GET", INTEGRATIONS, INTEGRATIONS, 401)
            .header("authorization", "Bearer not-the-key"),
    ];
    run(&sandbox, &cases).await;
}

#[tokio::test]
async fn over_the_plan_limit_answers_429_with_retry_after_and_rate_headers() {
    let sandbox = start(NangoOptions {
        rate_limit: Some(RateLimit { per_minute: 3 }),
        ..Default::default()
    })
    .await;
    let header = |answer: &Answer, name: &str| -> i64 {
        answer.headers[name].to_str().unwrap().parse().unwrap()
    };
    let integrations = |status| Case::new("GET", INTEGRATIONS, INTEGRATIONS, status);
    let cases = [
        integrations(200),
        integrations(200),
        integrations(200),
        integrations(429).body(Body::Schema("StdError")),
    ];
    let answers = run(&sandbox, &cases).await;
    let mut resets = Vec::new();
    for (answer, expected_remaining) in answers.iter().zip([2, 1, 0]) {
        assert_eq!(header(answer, "x-ratelimit-limit"), 3);
        assert_eq!(header(answer, "x-ratelimit-remaining"), expected_remaining);
        resets.push(header(answer, "x-ratelimit-reset"));
    }
    let refused = &answers[3];
    assert_eq!(header(refused, "x-ratelimit-remaining"), 0);
    let retry_after = header(refused, "retry-after");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(resets.iter().all(|r| *r == resets[0]), "one fixed window");
    assert!(
        resets[0] > chrono::Utc::now().timestamp() - 1,
        "reset is a Unix time ahead"
    );
    assert_eq!(sandbox.nango.rate_limited_count(), 1);
    // Without a limit (self-hosted), no headers.
    sandbox.nango.set_rate_limit(None);
    let free = run(&sandbox, &[integrations(200)]).await;
    assert!(free[0].headers.get("x-ratelimit-limit").is_none());
}

#[tokio::test]
async fn faults_apply_to_nango_like_the_other_vendors() {
    let sandbox = start(NangoOptions::default()).await;
    sandbox.faults.set(FaultPlan {
        seed: 1,
        rules: vec![FaultRule::new(
            Some("POST"),
            "/connections",
            FaultKind::DropAfterApply,
            Trigger::Nth(vec![1]),
        )],
        latency: None,
    });
    let client = reqwest::Client::new();
    let lost = client
        .post(format!("{}/connections", sandbox.base_url()))
        .bearer_auth(SANDBOX_SECRET_KEY)
        .json(&oauth_body("dropped"))
        .send()
        .await;
    assert!(lost.is_err(), "the answer was dropped");
    assert_eq!(sandbox.nango.connection_count(), 1, "the write was applied");
    // The retry is the same upsert.
    run(&sandbox, &[upsert(oauth_body("dropped"), 200)]).await;
    assert_eq!(
        sandbox.nango.connection_count(),
        1,
        "the retry is the same upsert"
    );
    assert_eq!(sandbox.faults.injected().drop_after, 1);
}
