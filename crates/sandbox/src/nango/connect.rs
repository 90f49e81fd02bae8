//! Nango Connect sessions (nango.yaml `/connect/sessions`, `/connect/sessions/reconnect`;
//! nango-api.md §5), and a stand-in for Nango's hosted Connect UI.
//!
//! - `POST /connect/sessions` takes a `ConnectSessionInput` (closed: an unknown property is a
//!   400 `invalid_body`, as Nango's server refuses it); every `allowed_integrations` entry must
//!   be an integration (400 otherwise).
//! - `POST /connect/sessions/reconnect` takes a `ConnectSessionReconnectInput`
//!   (`connection_id` and `integration_id` required); a connection that does not exist is a
//!   400 `invalid_body` ("ConnectionID or IntegrationId does not exists"): the spec declares
//!   only 400 and 401, and Nango's server answers so.
//! - Both answer 201 `{"data": {"token", "connect_link", "expires_at"}}`, the session living
//!   30 minutes (Nango's server: `ttlInMs: 30 * 60 * 1000`); `connect_link` points at this
//!   sandbox's page (Nango's is `https://connect.nango.dev?session_token=...`).
//! - `GET /_sandbox/nango/connect?session_token=...` (not Nango's API) is that page: a small
//!   HTML page "Nango Connect (sandbox)" naming the integration while the session lives, 404
//!   otherwise. [`NangoState::sessions_created`] lets tests count the sessions minted.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::handlers::{answer, std_error};
use super::{ConnectionKey, Inner, NangoState};

/// A session's life (Nango's server: 30 minutes).
pub const TTL_MS: i64 = 30 * 60 * 1000;

/// `ConnectSessionInput`'s properties.
pub const INPUT_KEYS: [&str; 7] = [
    "tags",
    "end_user",
    "organization",
    "allowed_integrations",
    "integrations_config_defaults",
    "overrides",
    "webhook_url_override",
];

/// `ConnectSessionReconnectInput`'s properties.
pub const RECONNECT_KEYS: [&str; 8] = [
    "connection_id",
    "integration_id",
    "tags",
    "end_user",
    "organization",
    "integrations_config_defaults",
    "overrides",
    "webhook_url_override",
];

/// `Tags`: at most 10 keys, string values of at most 255 characters.
const TAGS_MAX: usize = 10;
const TAG_VALUE_MAX: usize = 255;

/// The page's path (not Nango's API).
pub const PAGE_PATH: &str = "/_sandbox/nango/connect";

/// A session the emulator minted. `Debug` leaves the token out: it is a bearer secret.
#[derive(Clone, PartialEq, Eq)]
pub struct CreatedSession {
    pub token: String,
    /// The integrations it allows (the reconnected one for a reconnect; empty: all).
    pub allowed_integrations: Vec<String>,
    /// The connection a reconnect session re-authorises.
    pub reconnect: Option<ConnectionKey>,
    /// The tags it was created with (keys lowercased, as Nango does).
    pub tags: BTreeMap<String, String>,
    pub expires_at_ms: i64,
    /// Times its page was opened.
    pub opened: u32,
}

impl fmt::Debug for CreatedSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedSession")
            .field("allowed_integrations", &self.allowed_integrations)
            .field("reconnect", &self.reconnect)
            .field("tags", &self.tags.keys().collect::<Vec<_>>())
            .field("opened", &self.opened)
            .finish_non_exhaustive()
    }
}

impl NangoState {
    /// Every session minted so far, oldest first.
    pub fn sessions_created(&self) -> Vec<CreatedSession> {
        self.lock().sessions.clone()
    }
}

pub(super) fn routes(state: Arc<NangoState>) -> Router {
    Router::new()
        .route("/connect/sessions", post(create))
        .route("/connect/sessions/reconnect", post(reconnect))
        .route(PAGE_PATH, get(page))
        .with_state(state)
}

/// The problems of a session body against the spec's request schema. Unknown keys are not
/// named (a misplaced secret could be one). Pure.
pub fn session_problems(body: &Value, reconnect: bool) -> Vec<String> {
    let Some(object) = body.as_object() else {
        return vec!["the body must be an object".to_owned()];
    };
    let keys: &[&str] = if reconnect {
        &RECONNECT_KEYS
    } else {
        &INPUT_KEYS
    };
    let mut problems = Vec::new();
    if object.keys().any(|k| !keys.contains(&k.as_str())) {
        problems.push("an unknown property".to_owned());
    }
    if reconnect {
        for key in ["connection_id", "integration_id"] {
            if !object.get(key).is_some_and(Value::is_string) {
                problems.push(format!("{key} is required and must be a string"));
            }
        }
    }
    if let Some(tags) = object.get("tags") {
        match tags.as_object() {
            Some(map) if map.len() > TAGS_MAX => {
                problems.push(format!("tags may have at most {TAGS_MAX} keys"));
            }
            Some(map) => {
                let bad = map
                    .values()
                    .any(|v| v.as_str().is_none_or(|s| s.chars().count() > TAG_VALUE_MAX));
                if bad {
                    problems.push(format!(
                        "tag values must be strings of at most {TAG_VALUE_MAX} characters"
                    ));
                }
            }
            None => problems.push("tags must be an object".to_owned()),
        }
    }
    for key in ["end_user", "organization"] {
        if let Some(value) = object.get(key)
            && !value.get("id").is_some_and(Value::is_string)
        {
            problems.push(format!("{key} must be an object with a string id"));
        }
    }
    if let Some(allowed) = object.get("allowed_integrations") {
        let strings = allowed
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_string));
        if !strings {
            problems.push("allowed_integrations must be an array of strings".to_owned());
        }
    }
    for key in ["integrations_config_defaults", "overrides"] {
        if object.get(key).is_some_and(|v| !v.is_object()) {
            problems.push(format!("{key} must be an object"));
        }
    }
    if object
        .get("webhook_url_override")
        .is_some_and(|v| !v.is_string())
    {
        problems.push("webhook_url_override must be a string".to_owned());
    }
    problems
}

fn invalid_body(message: &str, errors: Option<Vec<Value>>) -> Response {
    std_error(StatusCode::BAD_REQUEST, "invalid_body", message, errors)
}

async fn create(State(state): State<Arc<NangoState>>, headers: HeaderMap, body: Bytes) -> Response {
    mint(&state, &headers, &body, false)
}

async fn reconnect(
    State(state): State<Arc<NangoState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    mint(&state, &headers, &body, true)
}

fn mint(state: &NangoState, headers: &HeaderMap, body: &[u8], reconnect: bool) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned();
    answer(state, headers, |inner| {
        let Ok(body) = serde_json::from_slice::<Value>(body) else {
            return invalid_body("Invalid JSON body", None);
        };
        let problems = session_problems(&body, reconnect);
        if !problems.is_empty() {
            let errors = problems.iter().map(|p| json!({"message": p})).collect();
            return invalid_body("Invalid request body", Some(errors));
        }
        let (allowed, connection) = match scope(inner, &body, reconnect) {
            Ok(scope) => scope,
            Err(response) => return response,
        };
        let tags = body["tags"]
            .as_object()
            .map(|map| {
                map.iter()
                    .map(|(k, v)| (k.to_lowercase(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let now_ms = chrono::Utc::now().timestamp_millis();
        let token = format!(
            "nango_connect_session_{}_{now_ms}",
            inner.sessions.len() + 1
        );
        let expires_at_ms = now_ms + TTL_MS;
        inner.sessions.push(CreatedSession {
            token: token.clone(),
            allowed_integrations: allowed,
            reconnect: connection,
            tags,
            expires_at_ms,
            opened: 0,
        });
        let expires_at = chrono::DateTime::from_timestamp_millis(expires_at_ms)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let data = json!({
            "token": token,
            "connect_link": format!("http://{host}{PAGE_PATH}?session_token={token}"),
            "expires_at": expires_at,
        });
        (StatusCode::CREATED, axum::Json(json!({"data": data}))).into_response()
    })
}

/// The integrations a session allows and the connection it reconnects, or the 400.
#[allow(clippy::result_large_err)]
fn scope(
    inner: &Inner,
    body: &Value,
    reconnect: bool,
) -> Result<(Vec<String>, Option<ConnectionKey>), Response> {
    if reconnect {
        let key = (
            body["integration_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            body["connection_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        if !inner.connections.contains_key(&key) {
            return Err(invalid_body(
                "ConnectionID or IntegrationId does not exists",
                None,
            ));
        }
        return Ok((vec![key.0.clone()], Some(key)));
    }
    let allowed: Vec<String> = body["allowed_integrations"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let unknown: Vec<Value> = allowed
        .iter()
        .enumerate()
        .filter(|(_, key)| !inner.integrations.iter().any(|i| &i.unique_key == *key))
        .map(|(index, _)| {
            json!({"code": "custom", "message": "Integration does not exist",
                   "path": ["allowed_integrations", index]})
        })
        .collect();
    if !unknown.is_empty() {
        return Err(invalid_body("Invalid request body", Some(unknown)));
    }
    Ok((allowed, None))
}

/// Text as HTML. Pure.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The Connect UI stand-in: which integration(s) the session connects, never its token.
async fn page(
    State(state): State<Arc<NangoState>>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let token = query.get("session_token").cloned().unwrap_or_default();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut inner = state.lock();
    let names: BTreeMap<String, String> = inner
        .integrations
        .iter()
        .map(|i| (i.unique_key.clone(), i.display_name.clone()))
        .collect();
    let Some(session) = inner
        .sessions
        .iter_mut()
        .find(|s| s.token == token && s.expires_at_ms > now_ms)
    else {
        let body = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
                    <title>Nango Connect (sandbox)</title></head><body>\
                    <h1>Nango Connect (sandbox)</h1>\
                    <p>This Connect session is unknown or has expired.</p></body></html>";
        return (StatusCode::NOT_FOUND, Html(body)).into_response();
    };
    session.opened += 1;
    let integrations: Vec<String> = session
        .allowed_integrations
        .iter()
        .map(|key| {
            let name = names.get(key).map_or(key.as_str(), String::as_str);
            format!(
                "<li data-integration=\"{}\">{}</li>",
                escape(key),
                escape(name)
            )
        })
        .collect();
    let action = match &session.reconnect {
        Some((_, connection_id)) => format!(
            "<p>Reconnect connection <code>{}</code>.</p>",
            escape(connection_id)
        ),
        None => "<p>Connect a new account.</p>".to_owned(),
    };
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Nango Connect (sandbox)</title></head><body>\
         <h1>Nango Connect (sandbox)</h1>{action}<ul>{}</ul></body></html>",
        integrations.join("")
    );
    (StatusCode::OK, Html(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_checked_against_the_spec_inputs() {
        assert!(session_problems(&json!({}), false).is_empty());
        assert!(
            session_problems(
                &json!({"tags": {"end_user_id": "a"}, "allowed_integrations": ["hubspot"]}),
                false
            )
            .is_empty()
        );
        assert_eq!(
            session_problems(&json!({"CANARY-key": 1}), false),
            vec!["an unknown property"]
        );
        assert_eq!(session_problems(&json!({"tags": {"a": 1}}), false).len(), 1);
        assert_eq!(
            session_problems(&json!({"connection_id": "c"}), true),
            vec!["integration_id is required and must be a string"]
        );
        // `allowed_integrations` is not a reconnect property.
        assert_eq!(
            session_problems(
                &json!({"connection_id": "c", "integration_id": "i", "allowed_integrations": []}),
                true
            ),
            vec!["an unknown property"]
        );
        assert_eq!(escape("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
    }
}
