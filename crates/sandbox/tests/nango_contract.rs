//! The Nango emulator over real HTTP: its answers validated against Nango's nango.yaml, its
//! refusals of bodies the spec does not allow, and its stateful behaviour (upsert, errors[],
//! 424, the rate window, fault injection).

use authport_sandbox::faults::{FaultKind, FaultPlan, FaultRule, Trigger};
use authport_sandbox::nango::spec::{
    component_schema, load_spec, request_schema, response_schema, violations,
};
use authport_sandbox::nango::{NangoOptions, RateLimit, SANDBOX_SECRET_KEY};
use authport_sandbox::{RunningSandbox, SandboxConfig};
use common::Answer;
use serde_json::{Value, json};

use crate::common;

const CANARY_ACCESS: &str = "CANARY-nango-access-5c1e";
const CANARY_REFRESH: &str = "CANARY-nango-refresh-09ab";

async fn start(options: NangoOptions) -> RunningSandbox {
    common::start(SandboxConfig {
        nango: options,
        ..Default::default()
    })
    .await
}

/// A call with `key` (if any) as its bearer token.
async fn call(
    sandbox: &RunningSandbox,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> Answer {
    let bearer = key.map(|key| format!("Bearer {key}"));
    let headers = [("authorization", bearer.as_deref())];
    common::call(sandbox, method, path, &headers, body).await
}

async fn nango(sandbox: &RunningSandbox, method: &str, path: &str, body: Option<&Value>) -> Answer {
    call(sandbox, method, path, Some(SANDBOX_SECRET_KEY), body).await
}

fn oauth_body(connection_id: &str) -> Value {
    json!({"provider_config_key": "hubspot", "connection_id": connection_id,
           "credentials": {"type": "OAUTH2", "access_token": CANARY_ACCESS,
                           "refresh_token": CANARY_REFRESH, "expires_at": "2030-01-01T00:00:00Z"},
           "connection_config": {"portal_id": "123"}, "metadata": {"plan": "gold"},
           "tags": {"End_User_Id": "acme-42", "end_user_email": "ops@acme.example"}})
}

#[track_caller]
fn assert_valid(what: &str, schema: &Value, instance: &Value) {
    let problems = violations(schema, instance);
    assert!(problems.is_empty(), "{what}: {problems:?}");
}

/// `ConnectionFull` as the spec describes it, except `credentials`: the spec's
/// `OAuth2CredentialsWithRaw` is `allOf` two closed objects (each `additionalProperties:
/// false` without the other's properties), which no object satisfies. OAuth credentials are
/// checked against `OAuth2Credentials` plus an object `raw` instead.
fn assert_connection_full(spec: &Value, schema: &Value, connection: &Value) {
    let mut without = connection.clone();
    let credentials = without["credentials"].take();
    // `UnauthCredentials` (an empty closed object) stands in for them.
    without["credentials"] = json!({});
    assert_valid("ConnectionFull", schema, &without);
    if credentials["type"] == "OAUTH2" {
        let mut plain = credentials.clone();
        let raw = plain.as_object_mut().unwrap().remove("raw");
        assert!(
            raw.is_some_and(|raw| raw.is_object()),
            "OAuth credentials carry raw"
        );
        assert_valid(
            "OAuth2Credentials",
            &component_schema(spec, "OAuth2Credentials"),
            &plain,
        );
    } else {
        assert_valid(
            "AllAuthCredentials",
            &component_schema(spec, "AllAuthCredentials"),
            &credentials,
        );
    }
}

#[tokio::test]
async fn integrations_answer_the_documented_list() {
    let spec = load_spec();
    let sandbox = start(NangoOptions::default()).await;
    let answer = nango(&sandbox, "GET", "/integrations", None).await;
    assert_eq!(answer.status, 200);
    assert_valid(
        "GET /integrations",
        &response_schema(&spec, "/integrations", "get", "200"),
        &answer.body,
    );
    let providers: Vec<&str> = answer.body["data"]
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
    let spec = load_spec();
    let full = component_schema(&spec, "ConnectionFull");
    let request = request_schema(&spec, "/connections", "post");
    let sandbox = start(NangoOptions::default()).await;

    let body = oauth_body("acme-42-hubspot");
    assert_valid("our request", &request, &body);
    let created = nango(&sandbox, "POST", "/connections", Some(&body)).await;
    assert_eq!(created.status, 200, "{}", created.text);
    assert_connection_full(&spec, &full, &created.body);
    assert_eq!(
        created.body["tags"]["end_user_id"], "acme-42",
        "keys lowercased"
    );
    assert!(
        !created.text.contains(CANARY_REFRESH),
        "no refresh token unless asked"
    );

    let mut changed = body.clone();
    changed["credentials"]["access_token"] = json!("CANARY-second-access");
    let updated = nango(&sandbox, "POST", "/connections", Some(&changed)).await;
    assert_eq!(updated.status, 200);
    assert_eq!(
        updated.body["id"], created.body["id"],
        "the same connection"
    );
    assert_eq!(sandbox.nango.connection_count(), 1);
    assert_eq!(sandbox.nango.upsert_count(), 2);

    let read = nango(
        &sandbox,
        "GET",
        "/connections/acme-42-hubspot?provider_config_key=hubspot",
        None,
    )
    .await;
    assert_eq!(read.status, 200);
    assert_connection_full(&spec, &full, &read.body);
    assert!(read.body["credentials"].get("refresh_token").is_none());
    let with_refresh = nango(
        &sandbox,
        "GET",
        "/connections/acme-42-hubspot?provider_config_key=hubspot&refresh_token=true",
        None,
    )
    .await;
    assert_eq!(
        with_refresh.body["credentials"]["refresh_token"],
        CANARY_REFRESH
    );
    assert_eq!(
        with_refresh.body["credentials"]["access_token"],
        "CANARY-second-access"
    );
    assert_connection_full(&spec, &full, &with_refresh.body);

    for (kind, credentials) in [
        ("API_KEY", json!({"type": "API_KEY", "apiKey": "k"})),
        (
            "BASIC",
            json!({"type": "BASIC", "username": "u", "password": "p"}),
        ),
    ] {
        let key = if kind == "API_KEY" {
            "greenhouse"
        } else {
            "zendesk"
        };
        let body =
            json!({"provider_config_key": key, "connection_id": "c1", "credentials": credentials});
        assert_valid("our request", &request, &body);
        let answer = nango(&sandbox, "POST", "/connections", Some(&body)).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_connection_full(&spec, &full, &answer.body);
    }
}

#[tokio::test]
async fn list_and_delete_answer_the_documented_shapes() {
    let spec = load_spec();
    let sandbox = start(NangoOptions::default()).await;
    for id in ["a", "b"] {
        let answer = nango(&sandbox, "POST", "/connections", Some(&oauth_body(id))).await;
        assert_eq!(answer.status, 200);
    }
    sandbox.nango.add_connection_error("hubspot", "a", "auth");
    let list = nango(&sandbox, "GET", "/connections", None).await;
    assert_valid(
        "GET /connections",
        &response_schema(&spec, "/connections", "get", "200"),
        &list.body,
    );
    assert!(!list.text.contains("CANARY"), "the list has no credentials");
    assert_eq!(list.body["connections"].as_array().unwrap().len(), 2);
    let one = nango(&sandbox, "GET", "/connections?connectionId=a", None).await;
    assert_eq!(one.body["connections"][0]["errors"][0]["type"], "auth");
    assert_eq!(one.body["connections"].as_array().unwrap().len(), 1);
    let tagged = nango(
        &sandbox,
        "GET",
        "/connections?tags%5Bend_user_id%5D=nobody",
        None,
    )
    .await;
    assert_eq!(tagged.body["connections"], json!([]));

    let path = "/connections/a?provider_config_key=hubspot";
    let deleted = nango(&sandbox, "DELETE", path, None).await;
    assert_eq!(
        (deleted.status, &deleted.body),
        (200, &json!({"success": true}))
    );
    assert_valid(
        "DELETE",
        &response_schema(&spec, "/connections/{connectionId}", "delete", "200"),
        &deleted.body,
    );
    for method in ["DELETE", "GET"] {
        let gone = nango(&sandbox, method, path, None).await;
        assert_eq!(gone.status, 404);
        assert_valid(
            "404",
            &response_schema(&spec, "/connections/{connectionId}", "delete", "404"),
            &gone.body,
        );
    }
}

#[tokio::test]
async fn refresh_exhaustion_answers_424_and_errors_show_in_reads() {
    let spec = load_spec();
    let sandbox = start(NangoOptions::default()).await;
    nango(&sandbox, "POST", "/connections", Some(&oauth_body("x"))).await;
    let path = "/connections/x?provider_config_key=hubspot";
    sandbox.nango.add_connection_error("hubspot", "x", "sync");
    let read = nango(&sandbox, "GET", path, None).await;
    assert_eq!(
        read.body["errors"],
        json!([{"type": "sync", "log_id": "log1"}])
    );
    sandbox.nango.exhaust_refresh("hubspot", "x");
    let exhausted = nango(&sandbox, "GET", path, None).await;
    assert_eq!(exhausted.status, 424);
    assert_valid(
        "424",
        &response_schema(&spec, "/connections/{connectionId}", "get", "424"),
        &exhausted.body,
    );
    assert!(!exhausted.text.contains("CANARY"));
}

#[tokio::test]
async fn bodies_the_spec_refuses_are_refused_without_quoting_them() {
    let spec = load_spec();
    let request = request_schema(&spec, "/connections", "post");
    let std_error = component_schema(&spec, "StdError");
    let sandbox = start(NangoOptions::default()).await;
    let cases = [
        json!({"connection_id": "c", "credentials": {"type": "API_KEY", "apiKey": CANARY_ACCESS}}),
        json!({"provider_config_key": "greenhouse", "credentials": {"type": "API_KEY", "api_key": CANARY_ACCESS}}),
        json!({"provider_config_key": "hubspot", "credentials": {"type": "OAUTH2", "access_token": CANARY_ACCESS, "scopes": "a"}}),
        json!({"provider_config_key": "hubspot", "credentials": {"type": "OAUTH2", "access_token": CANARY_ACCESS, "expires_at": "soon"}}),
    ];
    for body in cases {
        assert!(
            !violations(&request, &body).is_empty(),
            "the spec refuses {body}"
        );
        let answer = nango(&sandbox, "POST", "/connections", Some(&body)).await;
        assert_eq!(answer.status, 400, "{body}");
        assert_eq!(answer.body["error"]["code"], "invalid_body");
        assert_valid("400", &std_error, &answer.body);
        assert!(!answer.text.contains("CANARY"), "{}", answer.text);
    }
    // Valid for the spec, refused by the integration: an unknown key, a credential type the
    // integration's auth mode does not take.
    for (body, code) in [
        (
            json!({"provider_config_key": "nope", "credentials": {"type": "API_KEY", "apiKey": "k"}}),
            "unknown_provider_config",
        ),
        (
            json!({"provider_config_key": "hubspot", "credentials": {"type": "API_KEY", "apiKey": "k"}}),
            "invalid_credentials",
        ),
    ] {
        assert_valid("the spec allows it", &request, &body);
        let answer = nango(&sandbox, "POST", "/connections", Some(&body)).await;
        assert_eq!(
            (answer.status, answer.body["error"]["code"].as_str()),
            (400, Some(code))
        );
        assert_valid("400", &std_error, &answer.body);
    }
    assert_eq!(sandbox.nango.connection_count(), 0);
}

#[tokio::test]
async fn a_missing_or_wrong_key_is_401() {
    let spec = load_spec();
    let sandbox = start(NangoOptions::default()).await;
    for key in [None, Some("not-the-key")] {
        let answer = call(&sandbox, "GET", "/integrations", key, None).await;
        assert_eq!(answer.status, 401);
        assert_valid(
            "401",
            &response_schema(&spec, "/integrations", "get", "401"),
            &answer.body,
        );
    }
}

#[tokio::test]
async fn over_the_plan_limit_answers_429_with_retry_after_and_rate_headers() {
    let spec = load_spec();
    let sandbox = start(NangoOptions {
        rate_limit: Some(RateLimit { per_minute: 3 }),
        ..Default::default()
    })
    .await;
    let header = |answer: &Answer, name: &str| -> i64 {
        answer.headers[name].to_str().unwrap().parse().unwrap()
    };
    let mut resets = Vec::new();
    for expected_remaining in [2, 1, 0] {
        let answer = nango(&sandbox, "GET", "/integrations", None).await;
        assert_eq!(answer.status, 200);
        assert_eq!(header(&answer, "x-ratelimit-limit"), 3);
        assert_eq!(header(&answer, "x-ratelimit-remaining"), expected_remaining);
        resets.push(header(&answer, "x-ratelimit-reset"));
    }
    let refused = nango(&sandbox, "GET", "/integrations", None).await;
    assert_eq!(refused.status, 429);
    assert_eq!(header(&refused, "x-ratelimit-remaining"), 0);
    let retry_after = header(&refused, "retry-after");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(resets.iter().all(|r| *r == resets[0]), "one fixed window");
    assert!(
        resets[0] > chrono::Utc::now().timestamp() - 1,
        "reset is a Unix time ahead"
    );
    assert_valid("429", &component_schema(&spec, "StdError"), &refused.body);
    assert_eq!(sandbox.nango.rate_limited_count(), 1);
    // Without a limit (self-hosted), no headers.
    sandbox.nango.set_rate_limit(None);
    let free = nango(&sandbox, "GET", "/integrations", None).await;
    assert_eq!(free.status, 200);
    assert!(free.headers.get("x-ratelimit-limit").is_none());
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
    let second = nango(
        &sandbox,
        "POST",
        "/connections",
        Some(&oauth_body("dropped")),
    )
    .await;
    assert_eq!(second.status, 200);
    assert_eq!(
        sandbox.nango.connection_count(),
        1,
        "the retry is the same upsert"
    );
    assert_eq!(sandbox.faults.injected().drop_after, 1);
}
