//! The Apideck Vault emulator over real HTTP: its requests checks and responses against
//! Apideck's vault.yml, and its stateful behaviour (upsert, consumers, state/health, limits).

use authport_sandbox::apideck::{
    ApideckOptions, IntegrationState, SANDBOX_API_KEY, SANDBOX_APP_ID, import_body_problems,
};
use authport_sandbox::spec::{Direction, component_schema, load_spec, validator};
use authport_sandbox::{RunningSandbox, SandboxConfig};
use chrono::{SecondsFormat, TimeDelta, Utc};
use common::{Answer, call};
use serde_json::{Map, Value, json};

use crate::common;

const CANARY_ACCESS: &str = "CANARY-sandbox-access-2f7c";
const CANARY_REFRESH: &str = "CANARY-sandbox-refresh-81d0";

async fn start(options: ApideckOptions) -> RunningSandbox {
    common::start(SandboxConfig {
        apideck: options,
        ..Default::default()
    })
    .await
}

fn bearer() -> String {
    format!("Bearer {SANDBOX_API_KEY}")
}

/// The headers of a well-formed Vault call for `consumer`.
async fn vault(
    sandbox: &RunningSandbox,
    method: &str,
    path: &str,
    consumer: Option<&str>,
    body: Option<&Value>,
) -> Answer {
    let bearer = bearer();
    let headers = [
        ("authorization", Some(bearer.as_str())),
        ("x-apideck-app-id", Some(SANDBOX_APP_ID)),
        ("x-apideck-consumer-id", consumer),
    ];
    call(sandbox, method, path, &headers, body).await
}

fn fresh_oauth_body() -> Value {
    let issued_at = (Utc::now() - TimeDelta::minutes(5)).to_rfc3339_opts(SecondsFormat::Secs, true);
    json!({"credentials": {"access_token": CANARY_ACCESS, "refresh_token": CANARY_REFRESH,
                           "issued_at": issued_at, "expires_in": 3600},
           "metadata": {"source": "test"}})
}

/// The component schema the spec declares for `method path` answering `status`.
fn response_schema_name(spec: &Value, path: &str, method: &str, status: u16) -> Option<String> {
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

/// Asserts that `answer` is what the spec declares for the operation.
fn assert_matches_spec(spec: &Value, path: &str, method: &str, answer: &Answer) {
    match response_schema_name(spec, path, method, answer.status) {
        Some(name) => {
            let schema = component_schema(spec, &name, Direction::Response);
            let errors: Vec<String> = validator(&schema)
                .iter_errors(&answer.body)
                .map(|e| e.to_string())
                .collect();
            assert!(
                errors.is_empty(),
                "{method} {path} {}: not a {name}: {errors:?}\n{}",
                answer.status,
                answer.text
            );
        }
        None => {
            let declared = spec["paths"][path][method]["responses"].get(answer.status.to_string());
            assert!(
                declared.is_some(),
                "{method} {path}: status {} is not declared",
                answer.status
            );
            assert!(
                answer.text.is_empty(),
                "{method} {path}: {} must have no body",
                answer.status
            );
        }
    }
}

#[test]
fn handwritten_import_validation_agrees_with_the_spec() {
    let spec = load_spec();
    let import = &spec["paths"]["/vault/connections/{unified_api}/{service_id}/import"]["post"];
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

#[tokio::test]
async fn every_response_matches_the_spec() {
    let spec = load_spec();
    // Negative controls: the converted schemas do reject wrong shapes.
    let get_connection = validator(&component_schema(
        &spec,
        "GetConnectionResponse",
        Direction::Response,
    ));
    assert!(
        !get_connection
            .is_valid(&json!({"status_code": 200, "status": "OK", "data": {"state": "sleeping"}}))
    );
    assert!(!get_connection.is_valid(
        &json!({"status_code": 200, "status": "OK", "data": {"created_at": "2026-11-01"}})
    ));
    assert!(!get_connection.is_valid(&json!({"status": "OK", "data": {}})));
    assert!(get_connection.is_valid(
        &json!({"status_code": 200, "status": "OK", "data": {"settings": null, "updated_at": null}})
    ));
    let sandbox = start(ApideckOptions {
        import_limit: Some(3),
        ..Default::default()
    })
    .await;
    let one = "/vault/connections/{unified_api}/{service_id}";
    let import = "/vault/connections/{unified_api}/{service_id}/import";
    let validate = "/vault/connections/{unified_api}/{service_id}/validate";
    let list = "/vault/connections";
    let bearer = bearer();
    let mut seen = Vec::new();
    let mut check = |template: &str, method: &str, answer: Answer, status: u16| {
        assert_eq!(
            answer.status, status,
            "{method} {template}: {}",
            answer.text
        );
        assert_matches_spec(&spec, template, method, &answer);
        seen.push(format!("{method} {template} {status}"));
        answer
    };

    check(
        list,
        "get",
        vault(&sandbox, "GET", "/vault/connections", None, None).await,
        200,
    );
    check(
        list,
        "get",
        vault(
            &sandbox,
            "GET",
            "/vault/connections?api=crm",
            Some("acme-42"),
            None,
        )
        .await,
        200,
    );
    let available = check(
        one,
        "get",
        vault(
            &sandbox,
            "GET",
            "/vault/connections/crm/hubspot",
            Some("acme-42"),
            None,
        )
        .await,
        200,
    );
    assert_eq!(available.body["data"]["state"], json!("available"));
    let imported = check(
        import,
        "post",
        vault(
            &sandbox,
            "POST",
            "/vault/connections/crm/hubspot/import",
            Some("acme-42"),
            Some(&fresh_oauth_body()),
        )
        .await,
        200,
    );
    assert_eq!(imported.body["data"]["state"], json!("callable"));
    let api_key = json!({"settings": {"api_key": "gh-key"}});
    check(
        import,
        "post",
        vault(
            &sandbox,
            "POST",
            "/vault/connections/ats/greenhouse/import",
            Some("acme-42"),
            Some(&api_key),
        )
        .await,
        200,
    );
    check(
        one,
        "get",
        vault(
            &sandbox,
            "GET",
            "/vault/connections/crm/hubspot",
            Some("acme-42"),
            None,
        )
        .await,
        200,
    );
    check(
        list,
        "get",
        vault(&sandbox, "GET", "/vault/connections", Some("acme-42"), None).await,
        200,
    );
    let validated = check(
        validate,
        "post",
        vault(
            &sandbox,
            "POST",
            "/vault/connections/ats/greenhouse/validate",
            Some("acme-42"),
            Some(&json!({})),
        )
        .await,
        200,
    );
    assert_eq!(validated.body["data"]["state"], json!("callable"));

    // Errors, in Apideck's envelope.
    check(
        one,
        "get",
        call(
            &sandbox,
            "GET",
            "/vault/connections/crm/hubspot",
            &[
                ("x-apideck-app-id", Some(SANDBOX_APP_ID)),
                ("x-apideck-consumer-id", Some("a")),
            ],
            None,
        )
        .await,
        401,
    );
    check(
        one,
        "get",
        call(
            &sandbox,
            "GET",
            "/vault/connections/crm/hubspot",
            &[
                ("authorization", Some(bearer.as_str())),
                ("x-apideck-consumer-id", Some("a")),
            ],
            None,
        )
        .await,
        400,
    );
    check(
        one,
        "get",
        vault(
            &sandbox,
            "GET",
            "/vault/connections/crm/hubspot",
            None,
            None,
        )
        .await,
        400,
    );
    check(
        one,
        "get",
        vault(
            &sandbox,
            "GET",
            "/vault/connections/crm/nope",
            Some("a"),
            None,
        )
        .await,
        404,
    );
    check(
        import,
        "post",
        vault(
            &sandbox,
            "POST",
            "/vault/connections/crm/hubspot/import",
            Some("a"),
            Some(&json!({"credentials": {"access_token": null}})),
        )
        .await,
        400,
    );
    check(
        import,
        "post",
        vault(
            &sandbox,
            "POST",
            "/vault/connections/crm/nope/import",
            Some("a"),
            Some(&json!({})),
        )
        .await,
        404,
    );
    check(
        import,
        "post",
        vault(
            &sandbox,
            "POST",
            "/vault/connections/crm/pipedrive/import",
            Some("a"),
            Some(&json!({})),
        )
        .await,
        200,
    );
    check(
        import,
        "post",
        vault(
            &sandbox,
            "POST",
            "/vault/connections/crm/pipedrive/import",
            Some("b"),
            Some(&json!({})),
        )
        .await,
        402,
    );
    check(
        validate,
        "post",
        vault(
            &sandbox,
            "POST",
            "/vault/connections/crm/hubspot/validate",
            Some("nobody"),
            None,
        )
        .await,
        404,
    );

    // Delete: 204 without a body, then the consumer sees the connector as available again.
    check(
        one,
        "delete",
        vault(
            &sandbox,
            "DELETE",
            "/vault/connections/crm/hubspot",
            Some("acme-42"),
            None,
        )
        .await,
        204,
    );
    check(
        one,
        "delete",
        vault(
            &sandbox,
            "DELETE",
            "/vault/connections/crm/hubspot",
            Some("acme-42"),
            None,
        )
        .await,
        404,
    );
    let after = check(
        one,
        "get",
        vault(
            &sandbox,
            "GET",
            "/vault/connections/crm/hubspot",
            Some("acme-42"),
            None,
        )
        .await,
        200,
    );
    assert_eq!(after.body["data"]["state"], json!("available"));
    assert!(seen.len() >= 20);
}

#[tokio::test]
async fn header_checks_answer_401_and_400() {
    let sandbox = start(ApideckOptions::default()).await;
    let good = bearer();
    let check = |authorization: Option<&'static str>,
                 app: Option<&'static str>,
                 consumer: Option<&'static str>,
                 expect: (u16, &'static str, &'static str)| {
        let sandbox = &sandbox;
        let good = good.clone();
        async move {
            let authorization = authorization.map(|a| {
                if a == "GOOD" {
                    good.clone()
                } else {
                    a.to_owned()
                }
            });
            let headers = [
                ("authorization", authorization.as_deref()),
                ("x-apideck-app-id", app),
                ("x-apideck-consumer-id", consumer),
            ];
            let answer = call(
                sandbox,
                "POST",
                "/vault/connections/crm/hubspot/import",
                &headers,
                Some(&json!({})),
            )
            .await;
            let got = (
                answer.status,
                answer.body["type_name"].as_str().unwrap_or(""),
                answer.body["detail"].as_str().unwrap_or(""),
            );
            assert_eq!(got, expect, "{authorization:?} {app:?} {consumer:?}");
        }
    };
    check(
        None,
        Some(SANDBOX_APP_ID),
        Some("c"),
        (401, "UnauthorizedError", "Missing authentication"),
    )
    .await;
    check(
        Some("Bearer wrong"),
        Some(SANDBOX_APP_ID),
        Some("c"),
        (401, "UnauthorizedError", "Invalid API key"),
    )
    .await;
    check(
        Some(SANDBOX_API_KEY),
        Some(SANDBOX_APP_ID),
        Some("c"),
        (401, "UnauthorizedError", "Invalid API key"),
    )
    .await;
    check(
        Some("GOOD"),
        None,
        Some("c"),
        (
            400,
            "RequestHeadersValidationError",
            "Missing Header: x-apideck-app-id",
        ),
    )
    .await;
    check(
        Some("GOOD"),
        Some("other-app"),
        Some("c"),
        (401, "UnauthorizedError", "Unknown application id"),
    )
    .await;
    check(
        Some("GOOD"),
        Some(SANDBOX_APP_ID),
        None,
        (
            400,
            "RequestHeadersValidationError",
            "Missing Header: x-apideck-consumer-id",
        ),
    )
    .await;
    check(Some("GOOD"), Some(SANDBOX_APP_ID), Some("c"), (200, "", "")).await;
    assert_eq!(sandbox.apideck.consumer_ids(), ["c"]);
}

#[tokio::test]
async fn import_upserts_per_consumer_and_never_echoes_credentials() {
    let sandbox = start(ApideckOptions::default()).await;
    for consumer in ["acme-42", "acme-42", "globex-7"] {
        let answer = vault(
            &sandbox,
            "POST",
            "/vault/connections/crm/hubspot/import",
            Some(consumer),
            Some(&fresh_oauth_body()),
        )
        .await;
        assert_eq!(answer.status, 200);
        assert!(
            !answer.text.contains(CANARY_ACCESS) && !answer.text.contains(CANARY_REFRESH),
            "{}",
            answer.text
        );
        let created_at = answer.body["data"]["created_at"]
            .as_f64()
            .expect("created_at");
        assert!(
            created_at > 1.0e12,
            "created_at is in milliseconds: {created_at}"
        );
    }
    assert_eq!(sandbox.apideck.connection_count(), 2);
    assert_eq!(sandbox.apideck.import_count(), 3);
    assert_eq!(sandbox.apideck.consumer_ids(), ["acme-42", "globex-7"]);
    for path in ["/vault/connections/crm/hubspot", "/vault/connections"] {
        let answer = vault(&sandbox, "GET", path, Some("acme-42"), None).await;
        assert!(
            !answer.text.contains(CANARY_ACCESS) && !answer.text.contains(CANARY_REFRESH),
            "{}",
            answer.text
        );
    }
    // What an import omits is kept: a settings-only re-import keeps the tokens.
    let answer = vault(
        &sandbox,
        "POST",
        "/vault/connections/crm/hubspot/import",
        Some("acme-42"),
        Some(&json!({"metadata": {"x": 1}})),
    )
    .await;
    assert_eq!(answer.body["data"]["state"], json!("callable"));
    let stored = sandbox
        .apideck
        .connection("acme-42", "crm", "hubspot")
        .expect("stored");
    assert_eq!(
        stored.stored.credentials.expect("kept")["access_token"],
        json!(CANARY_ACCESS)
    );
    // Reads never create consumers.
    vault(
        &sandbox,
        "GET",
        "/vault/connections/crm/hubspot",
        Some("reader"),
        None,
    )
    .await;
    assert!(
        !sandbox
            .apideck
            .consumer_ids()
            .contains(&"reader".to_owned())
    );
}

#[tokio::test]
async fn state_and_health_follow_what_was_imported() {
    let sandbox = start(ApideckOptions::default()).await;
    let at = |minutes: i64| {
        (Utc::now() + TimeDelta::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Secs, true)
    };
    let cases = [
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
    for (index, (connector, body, expect)) in cases.into_iter().enumerate() {
        let consumer = format!("consumer-{index}");
        let answer = vault(
            &sandbox,
            "POST",
            &format!("/vault/connections/{connector}/import"),
            Some(&consumer),
            Some(&body),
        )
        .await;
        assert_eq!(answer.status, 200, "{connector} {body}: {}", answer.text);
        let got = (
            answer.body["data"]["state"].as_str().unwrap_or(""),
            answer.body["data"]["health"].as_str().unwrap_or(""),
        );
        assert_eq!(got, expect, "{connector} {body}");
        let (unified_api, service_id) = connector.split_once('/').expect("u/s");
        let view = sandbox
            .apideck
            .connection(&consumer, unified_api, service_id)
            .expect("stored");
        assert_eq!((view.state.as_str(), view.health.as_str()), expect);
    }
}

#[tokio::test]
async fn plan_limit_precreated_connections_and_disabled_integrations() {
    let sandbox = start(ApideckOptions::default()).await;
    // Switchable limit: counts imports already made.
    let empty = json!({});
    let import = |consumer: &'static str| {
        vault(
            &sandbox,
            "POST",
            "/vault/connections/crm/hubspot/import",
            Some(consumer),
            Some(&empty),
        )
    };
    assert_eq!(import("a").await.status, 200);
    sandbox.apideck.set_import_limit(Some(1));
    let limited = import("b").await;
    assert_eq!(
        (limited.status, limited.body["type_name"].clone()),
        (402, json!("RequestLimitError"))
    );
    sandbox.apideck.set_import_limit(None);
    assert_eq!(import("b").await.status, 200);

    // A connection the consumer made before authport ran.
    let mut credentials = Map::new();
    credentials.insert("access_token".to_owned(), json!("theirs"));
    let mut settings = Map::new();
    settings.insert("realm_id".to_owned(), json!("9"));
    sandbox.apideck.precreate_connection(
        "pre",
        "accounting",
        "quickbooks",
        settings,
        Some(credentials),
    );
    let answer = vault(
        &sandbox,
        "GET",
        "/vault/connections/accounting/quickbooks",
        Some("pre"),
        None,
    )
    .await;
    assert_eq!(answer.body["data"]["state"], json!("callable"));
    assert!(!answer.text.contains("theirs"));
    assert!(
        sandbox
            .apideck
            .connection("pre", "accounting", "quickbooks")
            .expect("there")
            .stored
            .pre_existing
    );

    // A disabled integration: visible as such, refuses imports.
    sandbox
        .apideck
        .set_integration_state("crm", "pipedrive", IntegrationState::Disabled);
    let answer = vault(
        &sandbox,
        "GET",
        "/vault/connections/crm/pipedrive",
        Some("a"),
        None,
    )
    .await;
    assert_eq!(answer.body["data"]["integration_state"], json!("disabled"));
    let answer = vault(
        &sandbox,
        "POST",
        "/vault/connections/crm/pipedrive/import",
        Some("a"),
        Some(&json!({})),
    )
    .await;
    assert_eq!(
        (answer.status, answer.body["type_name"].clone()),
        (404, json!("IntegrationNotFoundError"))
    );
}

#[tokio::test]
async fn validate_forces_an_oauth_refresh_and_only_checks_fields_otherwise() {
    let sandbox = start(ApideckOptions::default()).await;
    vault(
        &sandbox,
        "POST",
        "/vault/connections/crm/hubspot/import",
        Some("a"),
        Some(&fresh_oauth_body()),
    )
    .await;
    vault(
        &sandbox,
        "POST",
        "/vault/connections/ats/greenhouse/import",
        Some("a"),
        Some(&json!({"settings": {"api_key": "k"}})),
    )
    .await;
    let answer = vault(
        &sandbox,
        "POST",
        "/vault/connections/ats/greenhouse/validate",
        Some("a"),
        None,
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(sandbox.apideck.forced_refresh_count(), 0);
    let answer = vault(
        &sandbox,
        "POST",
        "/vault/connections/crm/hubspot/validate",
        Some("a"),
        Some(&json!({})),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(sandbox.apideck.forced_refresh_count(), 1);
    let credentials = sandbox
        .apideck
        .connection("a", "crm", "hubspot")
        .expect("there")
        .stored
        .credentials
        .expect("tokens");
    assert_ne!(
        credentials["refresh_token"],
        json!(CANARY_REFRESH),
        "the refresh token was rotated"
    );
    let answer = vault(
        &sandbox,
        "POST",
        "/vault/connections/crm/hubspot/validate",
        Some("a"),
        Some(&json!({"access_token": "x"})),
    )
    .await;
    assert_eq!(answer.status, 400);
}
