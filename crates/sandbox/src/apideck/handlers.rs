//! HTTP handlers of the Vault emulator.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    ApideckState, AuthType, Connector, Inner, IntegrationState, StoredConnection, derive_state,
    now_ms,
};

const CONSUMER_HEADER: &str = "x-apideck-consumer-id";
const APP_HEADER: &str = "x-apideck-app-id";

pub(super) fn routes(state: Arc<ApideckState>) -> Router {
    Router::new()
        .route("/vault/consumers", get(super::consumers::list_consumers))
        .route("/vault/connections", get(list_connections))
        .route(
            "/vault/connections/{unified_api}/{service_id}",
            get(get_connection).delete(delete_connection),
        )
        .route(
            "/vault/connections/{unified_api}/{service_id}/import",
            post(import_connection),
        )
        .route(
            "/vault/connections/{unified_api}/{service_id}/validate",
            post(validate_connection),
        )
        .layer(middleware::from_fn_with_state(state.clone(), count_request))
        .with_state(state.clone())
        .merge(super::sessions::routes(state))
}

/// Counts each request by `METHOD /route/template`, so tests can tell how many calls of each
/// kind a run made.
async fn count_request(
    State(state): State<Arc<ApideckState>>,
    request: Request,
    next: Next,
) -> Response {
    let operation = format!(
        "{} {}",
        request.method(),
        route_template(request.uri().path())
    );
    *state.lock().requests.entry(operation).or_insert(0) += 1;
    next.run(request).await
}

/// The route a Vault path belongs to, with its ids replaced by their names.
fn route_template(path: &str) -> &'static str {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["vault", "consumers"] => "/vault/consumers",
        ["vault", "connections"] => "/vault/connections",
        ["vault", "connections", _, _] => "/vault/connections/{unified_api}/{service_id}",
        ["vault", "connections", _, _, "import"] => {
            "/vault/connections/{unified_api}/{service_id}/import"
        }
        ["vault", "connections", _, _, "validate"] => {
            "/vault/connections/{unified_api}/{service_id}/validate"
        }
        _ => "(other)",
    }
}

/// An error answer, rendered as Apideck's envelope
/// `{status_code, error, type_name, message, detail, ref}`.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    type_name: &'static str,
    message: &'static str,
    detail: Value,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "status_code": self.status.as_u16(),
            "error": self.status.canonical_reason().unwrap_or("Error"),
            "type_name": self.type_name,
            "message": self.message,
            "detail": self.detail,
            "ref": format!("https://developers.apideck.com/errors#{}", self.type_name.to_lowercase()),
        });
        (self.status, axum::Json(body)).into_response()
    }
}

pub(super) fn error(
    status: StatusCode,
    type_name: &'static str,
    message: &'static str,
    detail: Value,
) -> ApiError {
    ApiError {
        status,
        type_name,
        message,
        detail,
    }
}

pub(super) type Answer = Result<Response, ApiError>;

fn ok(data: Value) -> Answer {
    let body = json!({"status_code": 200, "status": "OK", "data": data});
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

pub(super) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Checks the API key and app id, then (when `consumer_required`) the consumer header.
/// Returns the consumer id, if one was sent.
pub(super) fn check_headers(
    state: &ApideckState,
    headers: &HeaderMap,
    consumer_required: bool,
) -> Result<Option<String>, ApiError> {
    let expected = format!("Bearer {}", state.api_key);
    match header(headers, "authorization") {
        None => {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "UnauthorizedError",
                "Unauthorized Request",
                json!("Missing authentication"),
            ));
        }
        Some(value) if value != expected => {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "UnauthorizedError",
                "Unauthorized Request",
                json!("Invalid API key"),
            ));
        }
        Some(_) => {}
    }
    match header(headers, APP_HEADER) {
        None => return Err(missing_header(APP_HEADER)),
        Some(app) if app != state.app_id => {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "UnauthorizedError",
                "Unauthorized Request",
                json!("Unknown application id"),
            ));
        }
        Some(_) => {}
    }
    let consumer = header(headers, CONSUMER_HEADER).map(str::to_owned);
    if consumer_required && consumer.is_none() {
        return Err(missing_header(CONSUMER_HEADER));
    }
    Ok(consumer)
}

fn missing_header(name: &str) -> ApiError {
    error(
        StatusCode::BAD_REQUEST,
        "RequestHeadersValidationError",
        "Invalid Params",
        json!(format!("Missing Header: {name}")),
    )
}

fn connector_not_found(unified_api: &str, service_id: &str) -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        "ConnectorNotFoundError",
        "Unknown Connector",
        json!(format!(
            "no connector {service_id} in unified api {unified_api}"
        )),
    )
}

/// The `Connection` a consumer sees: the catalogue entry merged with what they hold.
fn connection_json(connector: &Connector, stored: Option<&StoredConnection>) -> Value {
    let mut connection = connector.available_connection_json();
    let (state, health) = derive_state(connector, stored, chrono::Utc::now());
    let object = connection
        .as_object_mut()
        .expect("a connection is an object");
    object.insert("state".to_owned(), json!(state));
    if let Some(stored) = stored {
        object.insert("health".to_owned(), json!(health));
        object.insert("enabled".to_owned(), json!(true));
        object.insert(
            "settings".to_owned(),
            Value::Object(stored.settings.clone()),
        );
        object.insert(
            "metadata".to_owned(),
            Value::Object(stored.metadata.clone()),
        );
        object.insert("created_at".to_owned(), json!(stored.created_at_ms));
        object.insert("updated_at".to_owned(), json!(stored.updated_at_ms));
        // Unix ms on `Connection` (0 = none); the retention window follows a failed refresh.
        let failed_at = stored.refresh_failed_at_ms;
        let expire_at = if failed_at > 0 {
            failed_at + super::webhooks::RETENTION_MS
        } else {
            0
        };
        object.insert("credentials_expire_at".to_owned(), json!(expire_at));
        object.insert("last_refresh_failed_at".to_owned(), json!(failed_at));
    }
    connection
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    api: Option<String>,
}

async fn list_connections(
    State(state): State<Arc<ApideckState>>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Answer {
    let consumer = check_headers(&state, &headers, false)?;
    let inner = state.lock();
    let data: Vec<Value> = inner
        .catalogue
        .iter()
        .filter(|c| query.api.as_deref().is_none_or(|api| api == c.unified_api))
        .map(|c| {
            let stored = consumer.as_ref().and_then(|id| {
                inner
                    .connections
                    .get(&(id.clone(), c.unified_api.clone(), c.service_id.clone()))
            });
            connection_json(c, stored)
        })
        .collect();
    ok(Value::Array(data))
}

/// Reads a connection. Never creates a consumer or a connection: an unknown consumer simply sees
/// the connector as `available`.
async fn get_connection(
    State(state): State<Arc<ApideckState>>,
    headers: HeaderMap,
    Path((unified_api, service_id)): Path<(String, String)>,
) -> Answer {
    let consumer = check_headers(&state, &headers, true)?.unwrap_or_default();
    let inner = state.lock();
    let Some(connector) = inner.find_connector(&unified_api, &service_id) else {
        return Err(connector_not_found(&unified_api, &service_id));
    };
    let stored = inner
        .connections
        .get(&(consumer, unified_api.clone(), service_id.clone()));
    if stored.is_none() && inner.missing_connection_answers_404 {
        return Err(connection_not_found());
    }
    ok(connection_json(connector, stored))
}

async fn delete_connection(
    State(state): State<Arc<ApideckState>>,
    headers: HeaderMap,
    Path((unified_api, service_id)): Path<(String, String)>,
) -> Answer {
    let consumer = check_headers(&state, &headers, true)?.unwrap_or_default();
    let mut inner = state.lock();
    if inner.find_connector(&unified_api, &service_id).is_none() {
        return Err(connector_not_found(&unified_api, &service_id));
    }
    match inner
        .connections
        .remove(&(consumer, unified_api, service_id))
    {
        // Deleting a connection never deletes its consumer.
        Some(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        None => Err(connection_not_found()),
    }
}

fn connection_not_found() -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        "ConnectionNotFoundError",
        "Connection Not Found",
        json!("the consumer has no such connection"),
    )
}

/// Checks the connector exists and is enabled for the application.
fn usable_connector<'a>(
    inner: &'a Inner,
    unified_api: &str,
    service_id: &str,
) -> Result<&'a Connector, ApiError> {
    let Some(connector) = inner.find_connector(unified_api, service_id) else {
        return Err(connector_not_found(unified_api, service_id));
    };
    if connector.integration_state == IntegrationState::Disabled {
        return Err(error(
            StatusCode::NOT_FOUND,
            "IntegrationNotFoundError",
            "Integration Not Found",
            json!(format!(
                "integration {unified_api}/{service_id} is not enabled for this application"
            )),
        ));
    }
    Ok(connector)
}

async fn import_connection(
    State(state): State<Arc<ApideckState>>,
    headers: HeaderMap,
    Path((unified_api, service_id)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let consumer = check_headers(&state, &headers, true)?.unwrap_or_default();
    let mut inner = state.lock();
    if let Some(limit) = inner.import_limit
        && inner.imports_accepted >= limit
    {
        return Err(error(
            StatusCode::PAYMENT_REQUIRED,
            "RequestLimitError",
            "Request Limit Reached",
            json!(format!("You have reached your limit of {limit}")),
        ));
    }
    let connector = usable_connector(&inner, &unified_api, &service_id)?.clone();
    // Parse errors never quote the body: it holds secrets.
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "RequestValidationError",
            "Invalid Params",
            json!("request body is not valid JSON"),
        ));
    };
    let problems = super::import_body_problems(&body);
    if !problems.is_empty() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "RequestValidationError",
            "Invalid Params",
            json!(problems.join("; ")),
        ));
    }
    let object_or_none = |key: &str| body.get(key).and_then(Value::as_object).cloned();
    let now = now_ms();
    inner.consumers.insert(consumer.clone());
    inner.imports_accepted += 1;
    let key = (consumer, unified_api, service_id);
    let was = inner
        .connections
        .get(&key)
        .map(|stored| derive_state(&connector, Some(stored), chrono::Utc::now()).0);
    let stored = inner
        .connections
        .entry(key.clone())
        .or_insert_with(|| StoredConnection {
            credentials: None,
            settings: Map::new(),
            metadata: Map::new(),
            created_at_ms: now,
            updated_at_ms: now,
            pre_existing: false,
            refresh_failed_at_ms: 0,
        });
    // Upsert: what the import carries replaces what was there; what it omits is kept.
    if let Some(credentials) = object_or_none("credentials") {
        stored.credentials = Some(credentials);
        // New credentials: no refresh has failed on them yet.
        stored.refresh_failed_at_ms = 0;
    }
    if let Some(settings) = object_or_none("settings") {
        stored.settings = settings;
    }
    if let Some(metadata) = object_or_none("metadata") {
        stored.metadata = metadata;
    }
    stored.updated_at_ms = now;
    let stored = stored.clone();
    state.emit_import(&inner, &key, was);
    ok(connection_json(&connector, Some(&stored)))
}

/// `validateConnectionState`: checks required fields; for OAuth connectors it forces a token
/// refresh, which the sandbox models by issuing new tokens (rotating the refresh token).
async fn validate_connection(
    State(state): State<Arc<ApideckState>>,
    headers: HeaderMap,
    Path((unified_api, service_id)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let consumer = check_headers(&state, &headers, true)?.unwrap_or_default();
    // The optional body is a closed empty object.
    if !body.is_empty() {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(map)) if map.is_empty() => {}
            _ => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "RequestValidationError",
                    "Invalid Params",
                    json!("the validate body must be an empty object"),
                ));
            }
        }
    }
    let mut inner = state.lock();
    let connector = usable_connector(&inner, &unified_api, &service_id)?.clone();
    let key = (consumer, unified_api, service_id);
    let refreshed = connector.auth_type == AuthType::OAuth2;
    let Some(stored) = inner.connections.get_mut(&key) else {
        return Err(connection_not_found());
    };
    if refreshed && let Some(credentials) = stored.credentials.as_mut() {
        let issued_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        credentials.insert(
            "access_token".to_owned(),
            json!(format!("sandbox-refreshed-{}", now_ms())),
        );
        credentials.insert(
            "refresh_token".to_owned(),
            json!(format!("sandbox-rotated-{}", now_ms())),
        );
        credentials.insert("issued_at".to_owned(), json!(issued_at));
        credentials.insert("expires_in".to_owned(), json!(3600));
    }
    let stored = stored.clone();
    if refreshed {
        inner.forced_refreshes += 1;
    }
    let (state_word, _) = derive_state(&connector, Some(&stored), chrono::Utc::now());
    ok(json!({"id": format!("{}+{}", key.1, key.2), "state": state_word}))
}
