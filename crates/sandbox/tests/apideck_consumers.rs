//! `GET /vault/consumers` of the Vault emulator over real HTTP: every answer against vault.yml's
//! declared response, cursor paging, `limit` bounds, filters, headers and the request counter.

use std::collections::BTreeSet;

use authport_sandbox::apideck::{SANDBOX_API_KEY, SANDBOX_APP_ID};
use authport_sandbox::spec::{Direction, component_schema, load_spec, validator};
use authport_sandbox::{RunningSandbox, SandboxConfig};
use serde_json::{Map, Value, json};

use crate::common;

const PATH: &str = "/vault/consumers";

async fn start() -> RunningSandbox {
    common::start(SandboxConfig::default()).await
}

/// Status and JSON body of one `GET /vault/consumers{query}`.
async fn get(sandbox: &RunningSandbox, query: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(format!("{}{PATH}{query}", sandbox.base_url()));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

async fn listed(sandbox: &RunningSandbox, query: &str) -> (u16, Value) {
    let bearer = format!("Bearer {SANDBOX_API_KEY}");
    get(
        sandbox,
        query,
        &[
            ("authorization", &bearer),
            ("x-apideck-app-id", SANDBOX_APP_ID),
        ],
    )
    .await
}

/// Asserts that `body` is the schema vault.yml declares for `GET /vault/consumers` answering
/// `status` (or its `default`).
fn assert_declared(spec: &Value, status: u16, body: &Value) {
    let responses = &spec["paths"][PATH]["get"]["responses"];
    let response = responses
        .get(status.to_string())
        .or_else(|| responses.get("default"))
        .expect("a declared response");
    let name = response["$ref"]
        .as_str()
        .expect("a ref")
        .rsplit('/')
        .next()
        .unwrap();
    let reference = spec["components"]["responses"][name]
        .pointer("/content/application~1json/schema/$ref")
        .and_then(Value::as_str)
        .expect("a schema ref");
    let schema = component_schema(
        spec,
        reference.rsplit('/').next().unwrap(),
        Direction::Response,
    );
    let errors: Vec<String> = validator(&schema)
        .iter_errors(body)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "{status}: not {name}: {errors:?}\n{body}"
    );
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
        let (status, body) = listed(&sandbox, &query).await;
        assert_eq!(status, 200, "{body}");
        assert_declared(&spec, status, &body);
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
    let (_, body) = listed(&sandbox, "").await;
    assert_eq!(body["data"].as_array().unwrap().len(), 20);
    let (_, body) = listed(&sandbox, "?limit=200").await;
    assert_eq!(body["data"].as_array().unwrap().len(), 45);
    assert!(body["meta"]["cursors"]["next"].is_null());
    // Filters: a prefix of the id, a substring of it.
    let (_, body) = listed(&sandbox, "?filter%5Bconsumer_id%5D=consumer-4").await;
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
    let (_, body) = listed(&sandbox, "?filter%5Bsearch%5D=r-0").await;
    assert_eq!(body["data"].as_array().unwrap().len(), 10);
    sandbox.stop().await;
}

#[tokio::test]
async fn bad_parameters_headers_and_outages_answer_declared_errors() {
    let spec = load_spec();
    let sandbox = start().await;
    let check = |status: u16, body: &Value, want_status: u16, type_name: &str| {
        assert_eq!(status, want_status, "{body}");
        assert_eq!(body["type_name"], type_name, "{body}");
        assert_declared(&spec, status, body);
    };
    for query in ["?limit=0", "?limit=201", "?limit=ten", "?cursor=not-ours"] {
        let (status, body) = listed(&sandbox, query).await;
        check(status, &body, 400, "RequestValidationError");
    }
    let (status, body) = get(&sandbox, "", &[("x-apideck-app-id", SANDBOX_APP_ID)]).await;
    check(status, &body, 401, "UnauthorizedError");
    let bearer = format!("Bearer {SANDBOX_API_KEY}");
    let (status, body) = get(&sandbox, "", &[("authorization", &bearer)]).await;
    check(status, &body, 400, "RequestHeadersValidationError");
    // No consumer header is needed (the endpoint lists them all).
    let (status, _) = listed(&sandbox, "").await;
    assert_eq!(status, 200);

    sandbox.apideck.set_consumers_listing_broken(true);
    let (status, body) = listed(&sandbox, "").await;
    check(status, &body, 500, "UnexpectedError");
    sandbox.apideck.set_consumers_listing_broken(false);
    assert_eq!(listed(&sandbox, "").await.0, 200);
    assert_eq!(sandbox.apideck.request_count("GET /vault/consumers"), 9);
    sandbox.stop().await;
}
