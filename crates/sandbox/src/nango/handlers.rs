//! HTTP handlers of the Nango emulator.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::{Inner, NangoState, StoredConnection, Window, now_text, upsert_body_problems};

pub(super) fn routes(state: Arc<NangoState>) -> Router {
    Router::new()
        .route("/integrations", get(list_integrations))
        .route("/integrations/{unique_key}", get(get_integration))
        .route(
            "/connections",
            get(list_connections).post(upsert_connection),
        )
        .route(
            "/connections/{connection_id}",
            get(get_connection).delete(delete_connection),
        )
        .with_state(state)
}

/// A `StdError` answer: `{"error": {"code", "message", "errors"?}}`.
pub(super) fn std_error(
    status: StatusCode,
    code: &str,
    message: &str,
    errors: Option<Vec<Value>>,
) -> Response {
    let mut error = json!({"code": code, "message": message});
    if let Some(errors) = errors {
        error["errors"] = Value::Array(errors);
    }
    (status, axum::Json(json!({"error": error}))).into_response()
}

/// The rate headers of the current window, and whether this request is over the limit.
struct Admission {
    headers: Vec<(&'static str, String)>,
    retry_after: Option<i64>,
}

/// Counts the request against the plan's fixed one-minute window.
fn admit(inner: &mut Inner) -> Admission {
    let Some(limit) = inner.rate_limit else {
        return Admission {
            headers: Vec::new(),
            retry_after: None,
        };
    };
    // A window opens with the first request after the previous one closed and lasts a
    // minute (where Nango aligns its windows is not documented).
    let now = chrono::Utc::now().timestamp();
    if now >= inner.window.start + inner.window_secs {
        inner.window = Window {
            start: now,
            used: 0,
        };
    }
    let reset = inner.window.start + inner.window_secs;
    let over = inner.window.used >= limit.per_minute;
    if !over {
        inner.window.used += 1;
    } else {
        inner.rate_limited += 1;
    }
    let remaining = limit.per_minute - inner.window.used;
    if !over {
        inner.min_remaining = Some(inner.min_remaining.map_or(remaining, |m| m.min(remaining)));
    }
    Admission {
        headers: vec![
            ("x-ratelimit-limit", limit.per_minute.to_string()),
            ("x-ratelimit-remaining", remaining.to_string()),
            ("x-ratelimit-reset", reset.to_string()),
        ],
        retry_after: over.then(|| (reset - now).max(1)),
    }
}

/// Checks the key and the rate, runs `handle` and adds the rate headers to its answer.
pub(super) fn answer(
    state: &NangoState,
    headers: &HeaderMap,
    handle: impl FnOnce(&mut Inner) -> Response,
) -> Response {
    let mut inner = state.lock();
    let admission = admit(&mut inner);
    let mut response = if let Some(seconds) = admission.retry_after {
        let mut response = std_error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_request",
            "Too many requests, please retry later",
            None,
        );
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from(seconds));
        response
    } else if !authorized(state, headers) {
        std_error(
            StatusCode::UNAUTHORIZED,
            "unknown_account",
            "Authentication failed. The provided secret key is invalid.",
            None,
        )
    } else {
        handle(&mut inner)
    };
    for (name, value) in admission.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn authorized(state: &NangoState, headers: &HeaderMap) -> bool {
    let expected = format!("Bearer {}", state.secret_key);
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == expected)
}

async fn list_integrations(State(state): State<Arc<NangoState>>, headers: HeaderMap) -> Response {
    answer(&state, &headers, |inner| {
        let created = "2026-01-01T00:00:00.000Z";
        let data: Vec<Value> = inner
            .integrations
            .iter()
            .map(|i| {
                json!({"unique_key": i.unique_key, "provider": i.provider,
                       "display_name": i.display_name, "created_at": created, "updated_at": created})
            })
            .collect();
        (StatusCode::OK, axum::Json(json!({"data": data}))).into_response()
    })
}

/// `GET /integrations/{uniqueKey}`: `IntegrationFull`; `include=credentials` adds the OAuth
/// client (id, canary secret, scopes) of an `OAUTH2` integration, null otherwise.
async fn get_integration(
    State(state): State<Arc<NangoState>>,
    Path(unique_key): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let with_credentials = query
        .iter()
        .any(|(k, v)| k.starts_with("include") && v.split(',').any(|v| v == "credentials"));
    answer(&state, &headers, |inner| {
        let Some(integration) = inner
            .integrations
            .iter()
            .find(|i| i.unique_key == unique_key)
        else {
            return std_error(
                StatusCode::NOT_FOUND,
                "not_found",
                "Integration does not exist",
                None,
            );
        };
        let created = "2026-01-01T00:00:00.000Z";
        let mut data = json!({"unique_key": integration.unique_key, "provider": integration.provider,
            "display_name": integration.display_name, "created_at": created, "updated_at": created});
        if with_credentials {
            data["credentials"] = match integration.oauth_client_id() {
                Some(client_id) => json!({"type": "OAUTH2", "client_id": client_id,
                    "client_secret": super::SANDBOX_CLIENT_SECRET_CANARY,
                    "scopes": integration.scopes, "webhook_secret": null}),
                None => Value::Null,
            };
        }
        (StatusCode::OK, axum::Json(json!({"data": data}))).into_response()
    })
}

/// `ConnectionFull`, with the credentials as a read returns them.
fn connection_full(
    key: &(String, String),
    stored: &StoredConnection,
    with_refresh_token: bool,
) -> Value {
    let mut credentials = stored.credentials.clone();
    if credentials.get("type").and_then(Value::as_str) == Some("OAUTH2") {
        if !with_refresh_token {
            credentials.remove("refresh_token");
        }
        // `OAuth2CredentialsWithRaw`: the token endpoint's raw answer.
        let mut raw = Map::new();
        if let Some(token) = credentials.get("access_token") {
            raw.insert("access_token".to_owned(), token.clone());
        }
        credentials.insert("raw".to_owned(), Value::Object(raw));
    }
    json!({
        "id": stored.id,
        "connection_id": key.1,
        "provider_config_key": key.0,
        "provider": stored.provider,
        "errors": stored.errors,
        "metadata": stored.metadata,
        "connection_config": stored.connection_config,
        "tags": stored.tags,
        "created_at": stored.created_at,
        "updated_at": stored.updated_at,
        "last_fetched_at": now_text(),
        "credentials": credentials,
    })
}

async fn upsert_connection(
    State(state): State<Arc<NangoState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(&state, &headers, |inner| {
        let Ok(body) = serde_json::from_slice::<Value>(&body) else {
            return std_error(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "Invalid JSON body",
                None,
            );
        };
        let problems = upsert_body_problems(&body);
        if !problems.is_empty() {
            let errors = problems.iter().map(|p| json!({"message": p})).collect();
            return std_error(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "Invalid request body",
                Some(errors),
            );
        }
        let provider_config_key = body["provider_config_key"].as_str().unwrap_or_default();
        let Some(integration) = inner
            .integrations
            .iter()
            .find(|i| i.unique_key == provider_config_key)
        else {
            return std_error(
                StatusCode::BAD_REQUEST,
                "unknown_provider_config",
                "Provider config not found",
                None,
            );
        };
        if body["credentials"]["type"].as_str() != Some(integration.auth_mode.as_str()) {
            return std_error(
                StatusCode::BAD_REQUEST,
                "invalid_credentials",
                "The credentials type does not match the integration's auth mode",
                None,
            );
        }
        let provider = integration.provider.clone();
        let connection_id = match body.get("connection_id").and_then(Value::as_str) {
            Some(id) => id.to_owned(),
            None => format!("conn-{}", inner.next_id),
        };
        let object = |key: &str| body.get(key).and_then(Value::as_object).cloned();
        let tags: BTreeMap<String, String> = object("tags")
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.to_lowercase(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        let credentials = object("credentials").unwrap_or_default();
        let now = now_text();
        let key = (provider_config_key.to_owned(), connection_id);
        let next_id = inner.next_id;
        let stored = inner
            .connections
            .entry(key.clone())
            .or_insert_with(|| StoredConnection {
                id: next_id,
                provider: provider.clone(),
                credentials: Map::new(),
                connection_config: Map::new(),
                metadata: Map::new(),
                tags: BTreeMap::new(),
                errors: Vec::new(),
                refresh_exhausted: false,
                created_at: now.clone(),
                updated_at: now.clone(),
                pre_existing: false,
                upserts: 0,
            });
        // New credentials replace the old ones, and with them the refresh failures.
        stored.credentials = credentials;
        stored.connection_config = object("connection_config").unwrap_or_default();
        stored.metadata = object("metadata").unwrap_or_default();
        stored.tags = tags;
        stored.errors.retain(|e| e["type"] != "auth");
        stored.refresh_exhausted = false;
        stored.updated_at = now;
        stored.upserts += 1;
        let full = connection_full(&key, stored, false);
        if stored.id == next_id {
            inner.next_id += 1;
        }
        inner.upserts_accepted += 1;
        (StatusCode::OK, axum::Json(full)).into_response()
    })
}

fn flag(query: &BTreeMap<String, String>, name: &str) -> bool {
    query.get(name).is_some_and(|v| v == "true")
}

fn missing_key() -> Response {
    std_error(
        StatusCode::BAD_REQUEST,
        "missing_provider_config_key",
        "Missing provider_config_key",
        None,
    )
}

fn not_found() -> Response {
    std_error(
        StatusCode::NOT_FOUND,
        "not_found",
        "Failed to find connection",
        None,
    )
}

async fn get_connection(
    State(state): State<Arc<NangoState>>,
    headers: HeaderMap,
    Path(connection_id): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    answer(&state, &headers, |inner| {
        let Some(provider_config_key) = query.get("provider_config_key") else {
            return missing_key();
        };
        let key = (provider_config_key.clone(), connection_id);
        let Some(stored) = inner.connections.get(&key) else {
            return not_found();
        };
        if stored.refresh_exhausted {
            return std_error(
                StatusCode::FAILED_DEPENDENCY,
                "connection_refresh_exhausted",
                "Connection refresh exhausted",
                None,
            );
        }
        let full = connection_full(&key, stored, flag(&query, "refresh_token"));
        super::rotate::after_read(inner, &key);
        (StatusCode::OK, axum::Json(full)).into_response()
    })
}

async fn list_connections(
    State(state): State<Arc<NangoState>>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    answer(&state, &headers, |inner| {
        // `tags[key]=value` (deepObject): every given tag must match.
        let wanted_tags: Vec<(String, &String)> = query
            .iter()
            .filter_map(|(name, value)| {
                let key = name.strip_prefix("tags[")?.strip_suffix(']')?;
                Some((key.to_lowercase(), value))
            })
            .collect();
        let matches = |key: &(String, String), stored: &StoredConnection| {
            query.get("connectionId").is_none_or(|id| *id == key.1)
                && query
                    .get("search")
                    .is_none_or(|text| key.1.contains(text.as_str()))
                && wanted_tags
                    .iter()
                    .all(|(tag, value)| stored.tags.get(tag) == Some(*value))
        };
        let limit = query
            .get("limit")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(usize::MAX);
        let page = query
            .get("page")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        let connections: Vec<Value> = inner
            .connections
            .iter()
            .filter(|(key, stored)| matches(key, stored))
            .skip(page.saturating_mul(limit.min(usize::MAX / 2)))
            .take(limit)
            .map(|(key, stored)| {
                json!({"id": stored.id, "connection_id": key.1, "provider": stored.provider,
                       "provider_config_key": key.0, "created": stored.created_at,
                       "metadata": stored.metadata, "tags": stored.tags, "errors": stored.errors})
            })
            .collect();
        (
            StatusCode::OK,
            axum::Json(json!({"connections": connections})),
        )
            .into_response()
    })
}

async fn delete_connection(
    State(state): State<Arc<NangoState>>,
    headers: HeaderMap,
    Path(connection_id): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    answer(&state, &headers, |inner| {
        let Some(provider_config_key) = query.get("provider_config_key") else {
            return missing_key();
        };
        match inner
            .connections
            .remove(&(provider_config_key.clone(), connection_id))
        {
            Some(_) => (StatusCode::OK, axum::Json(json!({"success": true}))).into_response(),
            None => not_found(),
        }
    })
}
