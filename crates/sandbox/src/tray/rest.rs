//! REST `/core/v1`: connectors, service environments and authentications, with Tray's error
//! envelope `{"message", "code"}` (no 422: validation failures are 400).

// Helpers return the ready error `Response` as `Err`, the usual axum handler style; its size
// does not matter at these call rates.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::validate::{check_object, check_value_shapes};
use super::{Caller, Refusal, StoredAuth, TrayState, bearer, random_uuid};

pub(super) fn routes() -> Router<Arc<TrayState>> {
    Router::new()
        .route("/core/v1/connectors", get(list_connectors))
        .route(
            "/core/v1/services/{service_name}/versions/{service_version}/environments",
            get(list_environments),
        )
        .route(
            "/core/v1/authentications",
            axum::routing::post(create_authentication),
        )
        .route(
            "/core/v1/authentications/{id}",
            get(get_authentication)
                .put(update_authentication)
                .delete(delete_authentication),
        )
        .route(
            "/core/v1/authentications/{id}/full",
            get(get_full_authentication),
        )
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "message": message }))).into_response()
}

fn refused(refusal: Refusal) -> Response {
    match refusal {
        // Tray documents no Retry-After header on 429.
        Refusal::RateLimited => error(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded"),
        Refusal::Unauthorized => error(StatusCode::UNAUTHORIZED, "Unauthorized"),
    }
}

fn admit(state: &TrayState, headers: &HeaderMap, operation: &str) -> Result<Caller, Response> {
    state.count_call(operation);
    state.admit(bearer(headers)).map_err(refused)
}

fn parse_object(body: &Bytes) -> Result<Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(error(
            StatusCode::BAD_REQUEST,
            "Request body must be a JSON object",
        )),
        Err(_) => Err(error(
            StatusCode::BAD_REQUEST,
            "Request body is not valid JSON",
        )),
    }
}

async fn list_connectors(State(state): State<Arc<TrayState>>, headers: HeaderMap) -> Response {
    if let Err(response) = admit(&state, &headers, "GET /core/v1/connectors") {
        return response;
    }
    let elements: Vec<Value> = state
        .catalogue
        .services
        .iter()
        .flat_map(|service| {
            service.connectors.iter().map(move |(name, version)| {
                json!({
                    "name": name,
                    "version": version,
                    "title": service.title,
                    "description": format!("{} connector", service.title),
                    "service": {"id": service.id, "name": service.name, "version": service.version},
                })
            })
        })
        .collect();
    axum::Json(json!({ "elements": elements })).into_response()
}

async fn list_environments(
    State(state): State<Arc<TrayState>>,
    headers: HeaderMap,
    Path((service_name, service_version)): Path<(String, String)>,
) -> Response {
    if let Err(response) = admit(&state, &headers, "GET /core/v1/services/environments") {
        return response;
    }
    let Ok(version) = service_version.parse::<i64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "service-version must be the integer service version",
        );
    };
    let Some(service) = state
        .catalogue
        .services
        .iter()
        .find(|s| s.name == service_name && s.version == version)
    else {
        return error(
            StatusCode::NOT_FOUND,
            "Service name or version not found or user does not have access",
        );
    };
    let elements: Vec<Value> = service
        .environments
        .iter()
        .map(|env| {
            json!({
                "id": env.id,
                "title": env.title,
                "authenticationType": env.authentication_type,
                "userDataSchema": env.user_data_schema,
                "credentialsSchema": env.credentials_schema,
                "scopes": env.scopes.iter().map(|(scope, description)| json!({"scope": scope, "description": description})).collect::<Vec<_>>(),
            })
        })
        .collect();
    axum::Json(json!({ "elements": elements })).into_response()
}

/// The parts of a create/update body that both share, checked against the spec and the
/// environment's schemas.
struct AuthFields {
    name: String,
    credentials: Map<String, Value>,
    user_data: Map<String, Value>,
    scopes: Vec<String>,
}

fn read_auth_fields(
    state: &TrayState,
    body: &Map<String, Value>,
    environment_id: &str,
    credentials_required: bool,
) -> Result<AuthFields, Response> {
    let mut problems = Vec::new();
    let name = match body.get("name") {
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        _ => {
            problems.push("name is required and must be a string".to_owned());
            String::new()
        }
    };
    let mut object_field = |key: &str, label: &str, required: bool| match body.get(key) {
        None if !required => Map::new(),
        Some(Value::Object(map)) => {
            problems.extend(check_value_shapes(label, map));
            map.clone()
        }
        _ => {
            problems.push(format!("{label} must be an object"));
            Map::new()
        }
    };
    let credentials = object_field("credentials", "credentials", credentials_required);
    let user_data = object_field("userData", "userData", false);
    let scopes = match body.get("scopes") {
        None => Vec::new(),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            let scopes: Vec<String> = items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            let mut unique = scopes.clone();
            unique.sort();
            unique.dedup();
            if unique.len() != scopes.len() {
                problems.push("scopes must be unique".to_owned());
            }
            scopes
        }
        Some(_) => {
            problems.push("scopes must be an array of strings".to_owned());
            Vec::new()
        }
    };
    let Some((_, environment)) = state.catalogue.environment(environment_id) else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "Service environment not found or user does not have access",
        ));
    };
    problems.extend(check_object(
        "credentials",
        &environment.credentials_schema,
        &credentials,
    ));
    problems.extend(check_object(
        "userData",
        &environment.user_data_schema,
        &user_data,
    ));
    if !environment.scopes.is_empty() {
        for scope in &scopes {
            if !environment.scopes.iter().any(|(known, _)| known == scope) {
                problems.push(format!(
                    "scope {scope} is not offered by this service environment"
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            &format!(
                "Connector input validation failed. Schema validation errors: [{}]",
                problems.join(", ")
            ),
        ));
    }
    Ok(AuthFields {
        name,
        credentials,
        user_data,
        scopes,
    })
}

async fn create_authentication(
    State(state): State<Arc<TrayState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let caller = match admit(&state, &headers, "POST /core/v1/authentications") {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let body = match parse_object(&body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Some(environment_id) = body.get("serviceEnvironmentId").and_then(Value::as_str) else {
        return error(
            StatusCode::BAD_REQUEST,
            "serviceEnvironmentId is required and must be a string",
        );
    };
    let fields = match read_auth_fields(&state, &body, environment_id, false) {
        Ok(fields) => fields,
        Err(response) => return response,
    };
    let auth = StoredAuth {
        id: random_uuid(),
        // The master token creates the auth in the org's own account, as Tray documents.
        owner: caller.owner(),
        name: fields.name,
        service_environment_id: environment_id.to_owned(),
        credentials: fields.credentials,
        user_data: fields.user_data,
        scopes: fields.scopes,
        updates: 0,
    };
    let id = auth.id.clone();
    state.lock().auths.insert(id.clone(), auth);
    // 200, not 201, per the spec.
    axum::Json(json!({ "id": id })).into_response()
}

fn visible_auth(state: &TrayState, caller: &Caller, id: &str) -> Result<StoredAuth, Response> {
    match state.lock().auths.get(id) {
        Some(auth) if caller.can_see(&auth.owner) => Ok(auth.clone()),
        _ => Err(error(
            StatusCode::NOT_FOUND,
            "No auth with matching id has been found or user does not have access",
        )),
    }
}

fn metadata_view(auth: &StoredAuth) -> Value {
    json!({
        "id": auth.id,
        "name": auth.name,
        "serviceEnvironmentId": auth.service_environment_id,
        "scopes": auth.scopes,
    })
}

async fn get_authentication(
    State(state): State<Arc<TrayState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let caller = match admit(&state, &headers, "GET /core/v1/authentications/{id}") {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    match visible_auth(&state, &caller, &id) {
        Ok(auth) => axum::Json(metadata_view(&auth)).into_response(),
        Err(response) => response,
    }
}

async fn get_full_authentication(
    State(state): State<Arc<TrayState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let caller = match admit(&state, &headers, "GET /core/v1/authentications/{id}/full") {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    // Only the owning end user may read secrets back.
    if caller == Caller::Master {
        return error(
            StatusCode::FORBIDDEN,
            "Only the end user who owns the auth can read it",
        );
    }
    match visible_auth(&state, &caller, &id) {
        Ok(auth) => {
            let mut view = metadata_view(&auth);
            view["userData"] = Value::Object(auth.user_data);
            view["credentials"] = Value::Object(auth.credentials);
            state.after_full_read(&id);
            axum::Json(view).into_response()
        }
        Err(response) => response,
    }
}

async fn update_authentication(
    State(state): State<Arc<TrayState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let caller = match admit(&state, &headers, "PUT /core/v1/authentications/{id}") {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let existing = match visible_auth(&state, &caller, &id) {
        Ok(auth) => auth,
        Err(response) => return response,
    };
    let body = match parse_object(&body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    // The environment cannot change; PUT requires `name` and `credentials`.
    let fields = match read_auth_fields(&state, &body, &existing.service_environment_id, true) {
        Ok(fields) => fields,
        Err(response) => return response,
    };
    let mut inner = state.lock();
    let Some(auth) = inner.auths.get_mut(&id) else {
        return error(
            StatusCode::NOT_FOUND,
            "No auth with matching id has been found or user does not have access",
        );
    };
    auth.name = fields.name;
    auth.credentials = fields.credentials;
    auth.user_data = fields.user_data;
    auth.scopes = fields.scopes;
    auth.updates += 1;
    axum::Json(metadata_view(auth)).into_response()
}

async fn delete_authentication(
    State(state): State<Arc<TrayState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let caller = match admit(&state, &headers, "DELETE /core/v1/authentications/{id}") {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    if let Err(response) = visible_auth(&state, &caller, &id) {
        return response;
    }
    state.lock().auths.remove(&id);
    // 204 with an empty body (declared text/html by Tray).
    StatusCode::NO_CONTENT.into_response()
}
