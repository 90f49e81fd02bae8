//! `GET /vault/consumers` of the Vault emulator over real HTTP: every answer against vault.yml's
//! declared response (each request a row of the testkit's contract loop), cursor paging,
//! `limit` bounds, filters, headers and the request counter.

use std::collections::BTreeSet;

use authport_sandbox::spec::{Direction, component_schema, load_spec, validator};
use authport_sandbox::{RunningSandbox, SandboxConfig};
use authport_testkit::contract::{self, Case};
use serde_json::{Map, Value, json};

use crate::apideck_contract::{Vault, server};
use crate::common;

const PATH: &str = "/vault/consumers";

async fn start() -> RunningSandbox {
    common::start(SandboxConfig::default()).await
}

/// One `GET /vault/consumers{query}` row answering `status` with what vault.yml declares.
fn row(query: &str, status: u16) -> Case {
    Case::new("GET", PATH, format!("{PATH}{query}"), status)
}

/// The body of a `GET /vault/consumers{query}` that answers 200 as vault.yml declares.
async fn listed(sandbox: &RunningSandbox, query: &str) -> Value {
    let mut answers =
        contract::run(&server(sandbox), &Vault(load_spec()), &[row(query, 200)]).await;
    answers.pop().expect("one answer").body
}

#[tokio::test]
async fn pages_cover_every_consumer_once_with_its_services() {
    let spec = load_spec();
    // Negative control: the converted schema rejects a wrong shape.
    let schema = validator(&component_schema(
        &spec,
        "GetConsumersResponse",
        Direction::Response,
    ));
    assert!(
        !schema
            .is_valid(&json!({"status_code": 200, "status": "OK", "data": [{"services": "crm"}]}))
    );
    assert!(!schema.is_valid(
        &json!({"status_code": 200, "status": "OK", "data": [], "meta": {"cursors": {"next": 5}}})
    ));

    let sandbox = start().await;
    let mut expected = BTreeSet::new();
    for n in 0..45 {
        let id = format!("consumer-{n:02}");
        sandbox.apideck.precreate_consumer(&id);
        expected.insert(id);
    }
    let token = Map::from_iter([("access_token".to_owned(), json!("theirs"))]);
    sandbox.apideck.precreate_connection(
        "consumer-07",
        "crm",
        "hubspot",
        Map::new(),
        Some(token.clone()),
    );
    sandbox
        .apideck
        .precreate_connection("consumer-07", "crm", "salesforce", Map::new(), None);
    sandbox.apideck.precreate_connection(
        "consumer-44",
        "accounting",
        "xero",
        Map::new(),
        Some(token),
    );

    let mut seen = BTreeSet::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            None => "?limit=20".to_owned(),
            Some(cursor) => format!("?limit=20&cursor={cursor}"),
        };
        let body = listed(&sandbox, &query).await;
        let data = body["data"].as_array().expect("data");
        assert_eq!(body["meta"]["items_on_page"], data.len());
        assert_eq!(body["meta"]["cursors"]["current"], json!(cursor));
        sizes.push(data.len());
        for item in data {
            let id = item["consumer_id"].as_str().unwrap().to_owned();
            let services: Vec<&str> = item["services"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect();
            let want: &[&str] = match id.as_str() {
                "consumer-07" => &["hubspot", "salesforce"],
                "consumer-44" => &["xero"],
                _ => &[],
            };
            assert_eq!(services, want, "{id}");
            assert!(seen.insert(id), "listed twice");
        }
        match body["meta"]["cursors"]["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => {
                assert!(body["links"]["next"].is_null());
                break;
            }
        }
    }
    assert_eq!(sizes, vec![20, 20, 5]);
    assert_eq!(seen, expected);
    assert_eq!(sandbox.apideck.request_count("GET /vault/consumers"), 3);

    // The default page is 20; the maximum is 200.
    let body = listed(&sandbox, "").await;
    assert_eq!(body["data"].as_array().unwrap().len(), 20);
    let body = listed(&sandbox, "?limit=200").await;
    assert_eq!(body["data"].as_array().unwrap().len(), 45);
    assert!(body["meta"]["cursors"]["next"].is_null());
    // Filters: a prefix of the id, a substring of it.
    let body = listed(&sandbox, "?filter%5Bconsumer_id%5D=consumer-4").await;
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["consumer_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "consumer-40",
            "consumer-41",
            "consumer-42",
            "consumer-43",
            "consumer-44"
        ]
    );
    let body = listed(&sandbox, "?filter%5Bsearch%5D=r-0").await;
    assert_eq!(body["data"].as_array().unwrap().len(), 10);
    sandbox.stop().await;
}

#[tokio::test]
async fn bad_parameters_headers_and_outages_answer_declared_errors() {
    let sandbox = start().await;
    let refused = |query: &str, status: u16, type_name: &str| {
        row(query, status).fields(json!({"type_name": type_name}))
    };
    let mut cases: Vec<Case> = ["?limit=0", "?limit=201", "?limit=ten", "?cursor=not-ours"]
        .into_iter()
        .map(|query| refused(query, 400, "RequestValidationError"))
        .collect();
    cases.extend([
        refused("", 401, "UnauthorizedError").without("authorization"),
        refused("", 400, "RequestHeadersValidationError").without("x-apideck-app-id"),
        // No consumer header is needed (the endpoint lists them all).
        row("", 200),
    ]);
    let spec = Vault(load_spec());
    contract::run(&server(&sandbox), &spec, &cases).await;

    sandbox.apideck.set_consumers_listing_broken(true);
    let outage = [refused("", 500, "UnexpectedError")];
    contract::run(&server(&sandbox), &spec, &outage).await;
    sandbox.apideck.set_consumers_listing_broken(false);
    contract::run(&server(&sandbox), &spec, &[row("", 200)]).await;
    assert_eq!(sandbox.apideck.request_count("GET /vault/consumers"), 9);
    sandbox.stop().await;
}
