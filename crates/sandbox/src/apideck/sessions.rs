//! `POST /vault/sessions` (`sessionsCreate`): a Hosted Vault session for one consumer, per
//! vault.yml: the body is a `Session` (closed object, closed `settings`), the answer a
//! `CreateSessionResponse` `{status_code, status, data: {session_uri, session_token}}`, and the
//! session lives 1 hour (TTL 3600). `GET /session/{token}` stands in for Vault's hosted page:
//! 200 with what the session shows while it lives, 404 otherwise, so tests can follow a link.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::ApideckState;
use super::handlers::{Answer, ApiError, check_headers, error, header};

/// vault.yml: "a short lived token that will expire after 1 hour (TTL: 3600)".
const TTL_MS: i64 = 3_600_000;

/// `Session`'s properties in vault.yml (the contract test checks them against the spec).
pub const SESSION_KEYS: [&str; 5] = [
    "consumer_metadata",
    "custom_consumer_settings",
    "redirect_uri",
    "settings",
    "theme",
];
/// `Session.settings`' properties in vault.yml.
pub const SETTINGS_KEYS: [&str; 11] = [
    "unified_apis",
    "hide_resource_settings",
    "sandbox_mode",
    "isolation_mode",
    "session_length",
    "show_logs",
    "show_suggestions",
    "show_sidebar",
    "auto_redirect",
    "hide_guides",
    "allow_actions",
];
const METADATA_KEYS: [&str; 4] = ["account_name", "user_name", "email", "image"];

#[derive(Debug, Clone)]
struct Session {
    consumer_id: String,
    unified_apis: Vec<String>,
    redirect_uri: Option<String>,
    expires_at_ms: i64,
}

#[derive(Debug, Default)]
struct Sessions {
    by_token: Mutex<HashMap<String, Session>>,
    next: Mutex<u64>,
}

type Shared = (Arc<ApideckState>, Arc<Sessions>);

pub(super) fn routes(state: Arc<ApideckState>) -> Router {
    Router::new()
        .route("/vault/sessions", post(create_session))
        .route("/session/{token}", get(open_session))
        .with_state((state, Arc::new(Sessions::default())))
}

fn invalid(detail: &str) -> ApiError {
    error(
        StatusCode::BAD_REQUEST,
        "RequestValidationError",
        "Invalid request",
        json!(detail),
    )
}

/// The problems of a `Session` body against vault.yml (closed objects, typed fields). Pure.
pub fn session_problems(body: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(object) = body.as_object() else {
        return vec!["the body must be an object".to_owned()];
    };
    // Unknown keys are not named: a misplaced secret could be one.
    if object.keys().any(|k| !SESSION_KEYS.contains(&k.as_str())) {
        problems.push("an unknown property".to_owned());
    }
    if let Some(uri) = object.get("redirect_uri").filter(|v| !v.is_string()) {
        let _ = uri;
        problems.push("redirect_uri must be a string".to_owned());
    }
    if let Some(metadata) = object.get("consumer_metadata") {
        match metadata.as_object() {
            Some(map) => {
                for (key, value) in map {
                    if METADATA_KEYS.contains(&key.as_str()) && !value.is_string() {
                        problems.push(format!("consumer_metadata.{key} must be a string"));
                    }
                }
            }
            None => problems.push("consumer_metadata must be an object".to_owned()),
        }
    }
    if let Some(settings) = object.get("settings") {
        match settings.as_object() {
            Some(map) => {
                if map.keys().any(|k| !SETTINGS_KEYS.contains(&k.as_str())) {
                    problems.push("an unknown property in settings".to_owned());
                }
                if let Some(apis) = map.get("unified_apis") {
                    let strings = apis
                        .as_array()
                        .is_some_and(|a| a.iter().all(Value::is_string));
                    if !strings {
                        problems.push("settings.unified_apis must be an array of ids".to_owned());
                    }
                }
                if let Some(length) = map.get("session_length").filter(|v| !v.is_string()) {
                    let _ = length;
                    problems.push("settings.session_length must be a string".to_owned());
                }
            }
            None => problems.push("settings must be an object".to_owned()),
        }
    }
    problems
}

async fn create_session(
    State((state, sessions)): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let consumer = check_headers(&state, &headers, true)?.unwrap_or_default();
    // The body is optional in vault.yml.
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body).map_err(|_| invalid("the body is not valid JSON"))?
    };
    let problems = session_problems(&body);
    if !problems.is_empty() {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "UnprocessableEntityError",
            "Unprocessable Entity",
            json!(problems.join("; ")),
        ));
    }
    let unified_apis = body["settings"]["unified_apis"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let token = {
        let mut next = sessions.next.lock().unwrap_or_else(|e| e.into_inner());
        *next += 1;
        format!("sandbox-session-{}-{}", *next, super::now_ms())
    };
    sessions
        .by_token
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(
            token.clone(),
            Session {
                consumer_id: consumer,
                unified_apis,
                redirect_uri: body["redirect_uri"].as_str().map(str::to_owned),
                expires_at_ms: super::now_ms() + TTL_MS,
            },
        );
    let host = header(&headers, "host").unwrap_or("127.0.0.1");
    let data = json!({
        "session_uri": format!("http://{host}/session/{token}"),
        "session_token": token,
    });
    let answer = json!({"status_code": 200, "status": "OK", "data": data});
    Ok((StatusCode::OK, axum::Json(answer)).into_response())
}

async fn open_session(
    State((_state, sessions)): State<Shared>,
    Path(token): Path<String>,
) -> axum::response::Response {
    let found = sessions
        .by_token
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&token)
        .filter(|s| s.expires_at_ms > super::now_ms())
        .cloned();
    match found {
        Some(session) => axum::Json(json!({
            "consumer_id": session.consumer_id,
            "unified_apis": session.unified_apis,
            "redirect_uri": session.redirect_uri,
        }))
        .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
