//! The Apideck Vault emulator's stateful behaviour over real HTTP: upsert per consumer without
//! echoing credentials, the plan limit, pre-created connections, disabled integrations, and
//! validate's forced refresh. Each request is a contract row (status and declared body checked
//! by the testkit's loop); what the rows cannot state is asserted on the emulator's state.

use authport_sandbox::RunningSandbox;
use authport_sandbox::apideck::{ApideckOptions, IntegrationState};
use authport_sandbox::spec::load_spec;
use authport_testkit::contract::{self, Answer, Case};
use serde_json::{Map, Value, json};

use crate::apideck_contract::{
    CANARY_ACCESS, CANARY_REFRESH, IMPORT, ONE, VALIDATE, Vault, fresh_oauth_body, server, start,
    vault,
};

/// Runs one row and returns its answer.
async fn one(sandbox: &RunningSandbox, case: Case) -> Answer {
    let mut answers = contract::run(&server(sandbox), &Vault(load_spec()), &[case]).await;
    answers.pop().expect("one answer")
}

fn import(connector: &str, consumer: &str, body: Value, status: u16) -> Case {
    let path = format!("/vault/connections/{connector}/import");
    vault("POST", IMPORT, &path, Some(consumer), status).send(body)
}

fn leaks(answer: &Answer) -> bool {
    answer.text.contains(CANARY_ACCESS) || answer.text.contains(CANARY_REFRESH)
}

#[tokio::test]
async fn import_upserts_per_consumer_and_never_echoes_credentials() {
    let sandbox = start(ApideckOptions::default()).await;
    let cases: Vec<Case> = ["acme-42", "acme-42", "globex-7"]
        .into_iter()
        .map(|consumer| import("crm/hubspot", consumer, fresh_oauth_body(), 200))
        .collect();
    let answers = contract::run(&server(&sandbox), &Vault(load_spec()), &cases).await;
    for answer in &answers {
        assert!(!leaks(answer), "{}", answer.text);
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
    let reads = [
        vault(
            "GET",
            ONE,
            "/vault/connections/crm/hubspot",
            Some("acme-42"),
            200,
        ),
        vault(
            "GET",
            "/vault/connections",
            "/vault/connections",
            Some("acme-42"),
            200,
        ),
    ];
    for answer in contract::run(&server(&sandbox), &Vault(load_spec()), &reads).await {
        assert!(!leaks(&answer), "{}", answer.text);
    }
    // What an import omits is kept: a settings-only re-import keeps the tokens.
    one(
        &sandbox,
        import("crm/hubspot", "acme-42", json!({"metadata": {"x": 1}}), 200)
            .fields(json!({"data": {"state": "callable"}})),
    )
    .await;
    let stored = sandbox
        .apideck
        .connection("acme-42", "crm", "hubspot")
        .expect("stored");
    assert_eq!(
        stored.stored.credentials.expect("kept")["access_token"],
        json!(CANARY_ACCESS)
    );
    // Reads never create consumers.
    one(
        &sandbox,
        vault(
            "GET",
            ONE,
            "/vault/connections/crm/hubspot",
            Some("reader"),
            200,
        ),
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
async fn plan_limit_precreated_connections_and_disabled_integrations() {
    let sandbox = start(ApideckOptions::default()).await;
    // Switchable limit: counts imports already made.
    one(&sandbox, import("crm/hubspot", "a", json!({}), 200)).await;
    sandbox.apideck.set_import_limit(Some(1));
    one(
        &sandbox,
        import("crm/hubspot", "b", json!({}), 402)
            .fields(json!({"type_name": "RequestLimitError"})),
    )
    .await;
    sandbox.apideck.set_import_limit(None);
    one(&sandbox, import("crm/hubspot", "b", json!({}), 200)).await;

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
    let answer = one(
        &sandbox,
        vault(
            "GET",
            ONE,
            "/vault/connections/accounting/quickbooks",
            Some("pre"),
            200,
        )
        .fields(json!({"data": {"state": "callable"}})),
    )
    .await;
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
    let rows = [
        vault(
            "GET",
            ONE,
            "/vault/connections/crm/pipedrive",
            Some("a"),
            200,
        )
        .fields(json!({"data": {"integration_state": "disabled"}})),
        import("crm/pipedrive", "a", json!({}), 404)
            .fields(json!({"type_name": "IntegrationNotFoundError"})),
    ];
    contract::run(&server(&sandbox), &Vault(load_spec()), &rows).await;
}

#[tokio::test]
async fn validate_forces_an_oauth_refresh_and_only_checks_fields_otherwise() {
    let sandbox = start(ApideckOptions::default()).await;
    let validate = |connector: &str| {
        let path = format!("/vault/connections/{connector}/validate");
        vault("POST", VALIDATE, &path, Some("a"), 200)
    };
    let setup = [
        import("crm/hubspot", "a", fresh_oauth_body(), 200),
        import(
            "ats/greenhouse",
            "a",
            json!({"settings": {"api_key": "k"}}),
            200,
        ),
        validate("ats/greenhouse"),
    ];
    contract::run(&server(&sandbox), &Vault(load_spec()), &setup).await;
    assert_eq!(sandbox.apideck.forced_refresh_count(), 0);
    one(&sandbox, validate("crm/hubspot").send(json!({}))).await;
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
    let mut refused = validate("crm/hubspot").send(json!({"access_token": "x"}));
    refused.status = 400;
    one(&sandbox, refused).await;
}
