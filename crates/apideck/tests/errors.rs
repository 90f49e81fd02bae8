//! Apideck's answers on the kit's HTTP path, against a scripted Vault on loopback: each status
//! is classified by Apideck's rules, and no secret a vendor echoes (the record's or the API
//! key, in any form, at any length) reaches a message or a note.

use crate::support;

use std::sync::{Arc, Mutex};

use authport_apideck::ApideckImporter;
use authport_apideck::client::VaultClient;
use authport_apideck::config::ApideckConfig;
use authport_apideck::target::ApideckRef;
use authport_core::{AuthImporter, DiscoveryKey};
use authport_testkit::Served;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use support::*;

const API_KEY: &str = "CANARY-vault-key-71d";

/// What the scripted Vault answers: `(method, path ending, status, body)`, first match wins;
/// anything else gets a callable OAuth connection.
type Script = Arc<Mutex<Vec<(&'static str, &'static str, u16, String)>>>;

async fn scripted(State(script): State<Script>, method: Method, uri: Uri) -> Response {
    let rules = script.lock().expect("script").clone();
    for (rule_method, ending, status, body) in rules {
        if method.as_str() == rule_method && uri.path().ends_with(ending) {
            let status = StatusCode::from_u16(status).expect("a status");
            return (status, [("content-type", "application/json")], body).into_response();
        }
    }
    let connection = json!({"id": "crm+hubspot", "service_id": "hubspot", "unified_api": "crm",
                            "auth_type": "oauth2", "state": "available", "form_fields": []});
    axum::Json(json!({"status_code": 200, "status": "OK", "data": connection})).into_response()
}

/// Starts the scripted Vault; its context points the provider at it.
async fn vault(script: &Script) -> Served {
    let app = axum::Router::new()
        .fallback(scripted)
        .with_state(script.clone());
    serve_vault(app, API_KEY).await
}

fn envelope(status: u16, type_name: &str, detail: Value) -> String {
    json!({"status_code": status, "error": "x", "type_name": type_name, "message": "m",
           "detail": detail, "ref": "https://developers.apideck.com/errors"})
    .to_string()
}

fn hubspot() -> ApideckRef {
    ApideckRef {
        consumer_id: "acme-42".to_owned(),
        unified_api: "crm".to_owned(),
        service_id: "hubspot".to_owned(),
        connection_id: None,
    }
}

#[derive(Clone, Copy, Debug)]
enum Via {
    Read,
    Import,
    Delete,
}

#[tokio::test]
async fn apideck_answers_are_classified_and_scrubbed() {
    let script: Script = Arc::default();
    let vault = vault(&script).await;
    let context = vault.context().build();
    let config = ApideckConfig::from_sources(&context.config, &context.env).expect("config");
    let client = VaultClient::new(&config, &context).expect("client");
    let body = json!({"credentials": {"access_token": CANARY_ACCESS}});
    let secrets = [CANARY_ACCESS, CANARY_API_KEY];

    let check = |via: Via, status: u16, answer: String, expect: &'static str| {
        let (script, client, body) = (&script, &client, &body);
        async move {
            *script.lock().expect("script") = vec![
                ("GET", "/hubspot", status, answer.clone()),
                ("POST", "/import", status, answer.clone()),
                ("DELETE", "/hubspot", status, answer),
            ];
            let error = match via {
                Via::Read => client.get_connection(&hubspot(), &secrets).await.err(),
                Via::Import => client.import(&hubspot(), body, &secrets).await.err(),
                Via::Delete => client.delete(&hubspot()).await.err(),
            }
            .unwrap_or_else(|| panic!("{via:?} {status}: expected an error"));
            assert_eq!(error.kind().as_str(), expect, "{via:?} {status}: {error}");
            assert_no_canary("classified error", &format!("{error} {error:?}"));
            error
        }
    };

    let rejected = check(
        Via::Import,
        400,
        envelope(
            400,
            "RequestValidationError",
            json!(format!("bad value {CANARY_API_KEY}")),
        ),
        "rejected",
    )
    .await;
    assert!(
        rejected.message().contains("RequestValidationError")
            && rejected.message().contains("[redacted]")
            && rejected.message().contains("developers.apideck.com"),
        "{rejected}"
    );
    let unauthorized = check(
        Via::Read,
        401,
        envelope(401, "UnauthorizedError", json!("Missing authentication")),
        "fatal",
    )
    .await;
    assert!(unauthorized.message().contains("APIDECK_API_KEY"));
    let limit = check(
        Via::Import,
        402,
        envelope(
            402,
            "RequestLimitError",
            json!("You have reached your limit"),
        ),
        "fatal",
    )
    .await;
    assert!(limit.message().contains("plan limit"), "{limit}");
    check(
        Via::Read,
        400,
        envelope(
            400,
            "RequestHeadersValidationError",
            json!("Missing Header: x-apideck-app-id"),
        ),
        "fatal",
    )
    .await;
    check(
        Via::Read,
        400,
        envelope(
            400,
            "RequestHeadersValidationError",
            json!("Missing Header: x-apideck-consumer-id"),
        ),
        "rejected",
    )
    .await;
    check(
        Via::Import,
        404,
        envelope(
            404,
            "ConnectorNotFoundError",
            json!({"missing": [{"x": "required"}]}),
        ),
        "rejected",
    )
    .await;
    let debug = check(
        Via::Import,
        422,
        envelope(
            422,
            "InvalidStateError",
            json!({"reason": "shown", "debug": {"response": "downstream-only"}}),
        ),
        "rejected",
    )
    .await;
    assert!(
        debug.message().contains("shown") && !debug.message().contains("downstream-only"),
        "the debug part is left out: {debug}"
    );
    check(Via::Import, 429, "{}".to_owned(), "rate_limited").await;
    check(Via::Read, 500, "{}".to_owned(), "transient").await;
    check(Via::Import, 503, "{}".to_owned(), "outcome_unknown").await;
    // A delete is an idempotent write: after a 5xx it may have happened (a retry is safe).
    check(Via::Delete, 502, "{}".to_owned(), "outcome_unknown").await;
    check(
        Via::Import,
        502,
        format!("<html>{CANARY_API_KEY}</html>"),
        "outcome_unknown",
    )
    .await;
    // The vendor credential itself.
    check(
        Via::Read,
        400,
        envelope(400, "BadRequestError", json!(format!("key {API_KEY}"))),
        "rejected",
    )
    .await;
    // A secret across the 300-character cut of the whole text (after 270 characters of
    // detail) or of the detail alone (after 290): scrubbed before anything is shortened.
    for padding in [270, 290] {
        let long = check(
            Via::Import,
            400,
            envelope(
                400,
                "BadRequestError",
                json!(format!("{}{CANARY_ACCESS}", "x".repeat(padding))),
            ),
            "rejected",
        )
        .await;
        assert!(long.message().contains('…'), "shortened: {long}");
    }
}

/// Issue 8 item 10: the validate-after-import call scrubbed nothing. Vault's validation answer
/// may quote the credentials it refreshed with; the note on the import must not.
#[tokio::test]
async fn a_secret_echoed_by_the_validation_call_never_reaches_the_note() {
    let script: Script = Arc::default();
    let vault = vault(&script).await;
    let context = vault
        .context()
        .config(json!({"validate_after_import": "always"}))
        .build();
    let echoed = envelope(
        400,
        "ConnectionValidationError",
        json!(format!(
            "refresh failed for refresh_token={CANARY_REFRESH} access_token={}",
            serde_json::to_string(CANARY_ACCESS).expect("json")
        )),
    );
    let imported = json!({"status_code": 200, "status": "OK", "data": {"id": "crm+hubspot",
                          "auth_type": "oauth2", "state": "callable", "health": "ok"}});
    *script.lock().expect("script") = vec![
        ("POST", "/validate", 400, echoed),
        ("POST", "/import", 200, imported.to_string()),
    ];
    let config = ApideckConfig::from_sources(&context.config, &context.env).expect("config");
    let importer = ApideckImporter::new(config, &context).expect("builds");
    let record = record_for(&connector("crm", "hubspot"), "oauth2");
    importer
        .discover(&[DiscoveryKey::for_record(&record, "apideck")])
        .await
        .expect("discovers");
    let mapped = importer.map(&record).expect("maps");
    let outcome = importer
        .import(&record, &mapped, None)
        .await
        .expect("the import itself succeeded");
    let note = outcome.note.clone().unwrap_or_default();
    assert!(
        note.contains("validation failed") && note.contains("ConnectionValidationError"),
        "{note}"
    );
    assert_no_canary("import outcome", &format!("{outcome:?} {note}"));
}
