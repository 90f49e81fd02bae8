//! Contract for the client's own requests: every request the provider sends, recorded by a
//! plain loopback server, is an operation of vault.yml with its required headers, and its body
//! validates against the operation's request schema.

use crate::support;

use std::sync::{Arc, Mutex};

use authport_apideck::ApideckImporter;
use authport_apideck::config::ApideckConfig;
use authport_core::{AuthImporter, DiscoveryKey, PriorImport, TargetRef};
use authport_sandbox::spec::{Direction, component_schema, convert, load_spec, validator};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use support::*;

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Value>,
}

type Log = Arc<Mutex<Vec<Recorded>>>;

/// Answers like a minimal Vault: discovery's consumer gets 404 (to exercise the list fallback),
/// everything else a small valid envelope.
async fn record(
    State(log): State<Log>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    log.lock().expect("log").push(Recorded {
        method: method.as_str().to_lowercase(),
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: (!body.is_empty()).then(|| serde_json::from_slice(&body).expect("json request body")),
    });
    let connection = json!({"id": "crm+hubspot", "service_id": "hubspot", "unified_api": "crm",
                            "auth_type": "oauth2", "state": "callable", "health": "ok", "form_fields": []});
    let ok = |data: Value| {
        (
            StatusCode::OK,
            axum::Json(json!({"status_code": 200, "status": "OK", "data": data})),
        )
            .into_response()
    };
    match (method.as_str(), uri.path()) {
        ("GET", "/vault/connections") => ok(json!([connection])),
        // One page of no consumers: the one listing of the run, at vault.yml's largest page.
        ("GET", "/vault/consumers") if uri.query() == Some("limit=200") => (
            StatusCode::OK,
            axum::Json(json!({"status_code": 200, "status": "OK", "data": [],
                              "meta": {"items_on_page": 0, "cursors": {"next": null}}})),
        )
            .into_response(),
        ("GET", _) if header("x-apideck-consumer-id") == "authport-discovery" => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"status_code": 404, "type_name": "ConnectionNotFoundError"})),
        )
            .into_response(),
        ("GET", _) => ok(json!({"state": "available", "auth_type": "oauth2"})),
        ("DELETE", _) => StatusCode::NO_CONTENT.into_response(),
        _ => ok(connection),
    }
}

/// The spec operation (`paths` template and operation object) a request path and method hit.
fn operation<'a>(spec: &'a Value, method: &str, path: &str) -> (&'a str, &'a Value) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    for (template, item) in spec["paths"].as_object().expect("paths") {
        let pattern: Vec<&str> = template.trim_matches('/').split('/').collect();
        let matches = pattern.len() == segments.len()
            && pattern
                .iter()
                .zip(&segments)
                .all(|(p, s)| p.starts_with('{') || p == s);
        if let (true, Some(operation)) = (matches, item.get(method)) {
            return (template.as_str(), operation);
        }
    }
    panic!("{method} {path} is not an operation of vault.yml");
}

#[tokio::test]
async fn every_request_is_a_spec_operation_with_its_required_headers_and_a_valid_body() {
    let spec = load_spec();
    let log: Log = Arc::default();
    let app = axum::Router::new().fallback(record).with_state(log.clone());
    let vault = serve_vault(app, "CANARY-key-5e").await;
    let context = vault
        .context()
        .config(json!({"validate_after_import": "always"}))
        .build();
    let config = ApideckConfig::from_sources(&context.config, &context.env).expect("config");
    let importer = ApideckImporter::new(config, &context).expect("builds");
    let record = record_for(&connector("crm", "hubspot"), "oauth2");
    // Only an absolute expiry: the mapped body states it, the sent body must not.
    let expires_at_only = authport_testkit::record(&json!({
        "id": "acme-42/hubspot-expires-at", "owner": {"id": "acme-42"}, "service": "hubspot",
        "auth": {"type": "oauth2", "access_token": CANARY_ACCESS, "refresh_token": CANARY_REFRESH,
                 "expires_at": "2036-11-01T12:00:00Z"},
        "targets": {"apideck": {"unified_api": "crm", "service_id": "hubspot"}}}));
    importer
        .discover(&[DiscoveryKey::for_record(&record, "apideck")])
        .await
        .expect("discovers");
    let mapped = importer.map(&record).expect("maps");
    let outcome = importer
        .import(&record, &mapped, None)
        .await
        .expect("imports");
    importer
        .import(
            &record,
            &mapped,
            Some(&PriorImport {
                target: outcome.target.clone(),
            }),
        )
        .await
        .expect("updates");
    importer.verify(&outcome.target).await.expect("verifies");
    importer
        .remove(&TargetRef(outcome.target.0.clone()))
        .await
        .expect("removes");
    let mapped = importer.map(&expires_at_only).expect("maps");
    assert!(mapped.body.expose()["credentials"]["expires_at"].is_string());
    importer
        .import(&expires_at_only, &mapped, None)
        .await
        .expect("imports");

    let recorded = log.lock().expect("log").clone();
    let mut operations: Vec<String> = Vec::new();
    for request in &recorded {
        let (template, operation) = operation(&spec, &request.method, &request.path);
        let operation_id = operation["operationId"].as_str().expect("operationId");
        let has = |name: &str| {
            request
                .headers
                .iter()
                .any(|(k, v)| k == name && !v.is_empty())
        };
        assert!(
            request
                .headers
                .iter()
                .any(|(k, v)| k == "authorization" && v == "Bearer CANARY-key-5e"),
            "{operation_id}: bearer key"
        );
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            let parameter = match parameter.get("$ref").and_then(Value::as_str) {
                Some(reference) => {
                    &spec["components"]["parameters"][reference.rsplit('/').next().expect("name")]
                }
                None => parameter,
            };
            if parameter["in"] == "header" && parameter["required"] == true {
                let name = parameter["name"].as_str().expect("name").to_lowercase();
                assert!(
                    has(&name),
                    "{operation_id} ({template}) lacks required header {name}"
                );
            }
        }
        let body_schema = operation.pointer("/requestBody/content/application~1json/schema");
        match (body_schema, &request.body) {
            (Some(schema), Some(body)) => {
                let schema = match schema.get("$ref").and_then(Value::as_str) {
                    Some(reference) => component_schema(
                        &spec,
                        reference.rsplit('/').next().expect("name"),
                        Direction::Request,
                    ),
                    None => convert(schema, Direction::Request),
                };
                assert!(
                    validator(&schema).is_valid(body),
                    "{operation_id}: body does not match the spec"
                );
            }
            (None, Some(_)) => panic!("{operation_id} takes no body"),
            (Some(_), None) => assert!(
                operation["requestBody"]["required"] != true,
                "{operation_id} needs a body"
            ),
            (None, None) => {}
        }
        operations.push(operation_id.to_owned());
    }
    assert_eq!(
        operations,
        [
            "connectionsOne",
            "connectionsAll",
            // The consumer list shows no consumer: the first import needs no read before it.
            "consumersAll",
            "connectionsImport",
            "validateConnectionState",
            "connectionsImport",
            "validateConnectionState",
            "connectionsOne",
            "connectionsDelete",
            // Another record for a pair this run sent unchecked: read first.
            "connectionsOne",
            "connectionsImport",
            "validateConnectionState",
        ]
    );
    let sent = recorded
        .iter()
        .rev()
        .filter_map(|request| request.body.as_ref())
        .find_map(|body| body.get("credentials"))
        .expect("the last import's credentials");
    assert_eq!(sent.get("expires_at"), None, "expires_at is never sent");
    assert!(sent["issued_at"].is_string() && sent["expires_in"].as_i64() > Some(0));
}
