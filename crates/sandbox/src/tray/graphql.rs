//! The GraphQL Embedded API, without a GraphQL engine: the operation is recognised by its
//! root field name and its arguments are read from `variables` (top-level names, or fields of
//! an `input` / `criteria` variable). `Json` inputs are accepted as JSON-encoded strings (as in
//! all of Tray's examples) and as objects. Resolver errors answer HTTP 200 with `errors[]`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use serde_json::{Map, Value, json};

use super::validate::{check_object, check_value_shapes};
use super::{
    Caller, Refusal, StoredAuth, StoredInstance, StoredUser, TrayState, UserToken, bearer,
    random_token, random_uuid,
};

pub(super) fn routes() -> Router<Arc<TrayState>> {
    Router::new().route("/graphql", post(graphql))
}

/// Whether the document is a query or a mutation, and its first root field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Operation {
    pub mutation: bool,
    pub root_field: String,
}

/// Finds the operation type and root field of a GraphQL document: the first identifier after
/// the first `{` outside the variable definitions' parentheses.
pub(crate) fn parse_operation(query: &str) -> Option<Operation> {
    let text: String = query
        .lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let trimmed = text.trim_start();
    let mutation = trimmed.starts_with("mutation");
    if trimmed.starts_with("subscription") {
        return None;
    }
    let mut depth = 0i32;
    let mut start = None;
    for (index, ch) in trimmed.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            '{' if depth == 0 => {
                start = Some(index + 1);
                break;
            }
            _ => {}
        }
    }
    let rest = trimmed[start?..].trim_start();
    let mut name: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    // `alias: field` selects `field`.
    let after = rest[name.len()..].trim_start();
    if let Some(aliased) = after.strip_prefix(':') {
        name = aliased
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
    }
    (!name.is_empty()).then_some(Operation {
        mutation,
        root_field: name,
    })
}

/// A resolver error: HTTP 200 with an `errors[]` entry.
fn graphql_error(field: &str, message: &str, code: &str) -> Response {
    let body = json!({
        "data": null,
        "errors": [{
            "message": message,
            "path": [field],
            "locations": [{"line": 1, "column": 1}],
            "extensions": {"code": code, "time_thrown": Utc::now().to_rfc3339()}
        }]
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn data(field: &str, value: Value) -> Response {
    axum::Json(json!({ "data": { field: value } })).into_response()
}

/// An argument: a field of the `input` or `criteria` variable, else a top-level variable.
fn arg<'a>(variables: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    for wrapper in ["input", "criteria"] {
        if let Some(value) = variables.get(wrapper).and_then(|w| w.get(name))
            && !value.is_null()
        {
            return Some(value);
        }
    }
    variables.get(name).filter(|v| !v.is_null())
}

fn arg_str<'a>(variables: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    arg(variables, name).and_then(Value::as_str)
}

/// A `Json` scalar input: a JSON-encoded string (Tray's examples) or an object.
fn json_arg(
    variables: &Map<String, Value>,
    name: &str,
) -> Result<Option<Map<String, Value>>, String> {
    match arg(variables, name) {
        None => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map.clone())),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Ok(Some(map)),
            _ => Err(format!("Variable \"{name}\" is not a valid Json object")),
        },
        Some(_) => Err(format!("Variable \"{name}\" is not a valid Json object")),
    }
}

async fn graphql(State(state): State<Arc<TrayState>>, headers: HeaderMap, body: Bytes) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(_) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"errors": [{"message": "Body is not valid JSON"}]})),
            )
                .into_response();
        }
    };
    let query = request.get("query").and_then(Value::as_str).unwrap_or("");
    let variables = request
        .get("variables")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let operation = parse_operation(query);
    let field = operation
        .as_ref()
        .map_or("unknown", |op| op.root_field.as_str())
        .to_owned();
    state.count_call(&format!("graphql {field}"));
    let caller = match state.admit(bearer(&headers)) {
        Ok(caller) => caller,
        Err(Refusal::Unauthorized) => {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"message": "Unauthorized"})),
            )
                .into_response();
        }
        Err(Refusal::RateLimited) => {
            let body = json!({"data": null, "errors": [{
                "message": "Rate limit exceeded", "path": [field], "locations": [{"line": 2, "column": 3}],
                "extensions": {"name": "PreconditionError", "time_thrown": Utc::now().to_rfc3339(), "code": "access_not_allowed"}}]});
            return axum::Json(body).into_response();
        }
    };
    let Some(operation) = operation else {
        return graphql_error(
            "unknown",
            "Syntax Error: could not find an operation",
            "GRAPHQL_PARSE_FAILED",
        );
    };
    let master_only = |caller: &Caller| -> Option<Response> {
        (*caller != Caller::Master).then(|| {
            graphql_error(
                &field,
                "You are not authorized to access this resource",
                "access_not_allowed",
            )
        })
    };
    let user_only = |caller: &Caller| -> Option<Response> {
        (*caller == Caller::Master).then(|| {
            graphql_error(
                &field,
                "This operation needs an end user's token",
                "access_not_allowed",
            )
        })
    };
    match (operation.mutation, field.as_str()) {
        (false, "users") => master_only(&caller).unwrap_or_else(|| users(&state, &variables)),
        (true, "createExternalUser") => {
            master_only(&caller).unwrap_or_else(|| create_external_user(&state, &variables))
        }
        (true, "authorize") => {
            master_only(&caller).unwrap_or_else(|| authorize(&state, &variables))
        }
        (false, "viewer") => viewer(&state, &caller, query, &variables),
        (true, "createUserAuthentication") => {
            create_user_authentication(&state, &caller, &variables)
        }
        (true, "removeAuthentication") => remove_authentication(&state, &caller, &variables),
        (true, "createSolutionInstance") => user_only(&caller)
            .unwrap_or_else(|| create_solution_instance(&state, &caller, &variables)),
        (true, "updateSolutionInstance") => user_only(&caller)
            .unwrap_or_else(|| update_solution_instance(&state, &caller, query, &variables)),
        (true, "removeSolutionInstance") => remove_solution_instance(&state, &caller, &variables),
        (mutation, other) => {
            let type_name = if mutation { "Mutation" } else { "Query" };
            graphql_error(
                other,
                &format!("Cannot query field \"{other}\" on type \"{type_name}\"."),
                "GRAPHQL_VALIDATION_FAILED",
            )
        }
    }
}

/// Relay paging over an already filtered list: `first` + `after` (cursor = opaque index).
fn page<T>(items: Vec<T>, variables: &Map<String, Value>, node: impl Fn(&T) -> Value) -> Value {
    let start = arg_str(variables, "after")
        .and_then(|c| c.strip_prefix("cursor:"))
        .and_then(|n| n.parse::<usize>().ok())
        .map_or(0, |n| n + 1);
    let first = arg(variables, "first")
        .and_then(Value::as_u64)
        .map_or(usize::MAX, |n| n as usize);
    let end = start.saturating_add(first).min(items.len());
    let start = start.min(end);
    let edges: Vec<Value> = (start..end)
        .map(|index| json!({"node": node(&items[index]), "cursor": format!("cursor:{index}")}))
        .collect();
    json!({
        "edges": edges,
        "pageInfo": {
            "hasNextPage": end < items.len(),
            "hasPreviousPage": start > 0,
            "startCursor": (start < end).then(|| format!("cursor:{start}")),
            "endCursor": (start < end).then(|| format!("cursor:{}", end - 1)),
        }
    })
}

fn user_node(user: &StoredUser) -> Value {
    json!({"id": user.id, "name": user.name, "externalUserId": user.external_user_id, "isTestUser": user.is_test_user})
}

fn users(state: &TrayState, variables: &Map<String, Value>) -> Response {
    let external = arg_str(variables, "externalUserId");
    let name = arg_str(variables, "name");
    let user_id = arg_str(variables, "userId");
    let matching: Vec<StoredUser> = state
        .lock()
        .users
        .values()
        .filter(|u| external.is_none_or(|e| u.external_user_id == e))
        .filter(|u| name.is_none_or(|n| u.name == n))
        .filter(|u| user_id.is_none_or(|id| u.id == id))
        .cloned()
        .collect();
    data("users", page(matching, variables, user_node))
}

fn create_external_user(state: &TrayState, variables: &Map<String, Value>) -> Response {
    let (Some(name), Some(external)) = (
        arg_str(variables, "name"),
        arg_str(variables, "externalUserId"),
    ) else {
        return graphql_error(
            "createExternalUser",
            "name and externalUserId are required",
            "BAD_USER_INPUT",
        );
    };
    let user = StoredUser {
        id: random_uuid(),
        name: name.to_owned(),
        external_user_id: external.to_owned(),
        is_test_user: arg(variables, "isTestUser")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    };
    let id = user.id.clone();
    state.lock().users.insert(id.clone(), user);
    data(
        "createExternalUser",
        json!({"userId": id, "clientMutationId": null}),
    )
}

fn authorize(state: &TrayState, variables: &Map<String, Value>) -> Response {
    let Some(user_id) = arg_str(variables, "userId") else {
        return graphql_error("authorize", "userId is required", "BAD_USER_INPUT");
    };
    let mut inner = state.lock();
    if !inner.users.contains_key(user_id) {
        return graphql_error("authorize", "User not found", "NOT_FOUND");
    }
    let token = random_token();
    inner.tokens.insert(
        token.clone(),
        UserToken {
            user_id: user_id.to_owned(),
            minted_at: Utc::now(),
            uses: 0,
            expired: false,
        },
    );
    data(
        "authorize",
        json!({"accessToken": token, "clientMutationId": null}),
    )
}

fn auth_node(state: &TrayState, auth: &StoredAuth) -> Value {
    let (service, environment) = state
        .catalogue
        .environment(&auth.service_environment_id)
        .map(|(s, e)| {
            (
                json!({"id": s.id, "name": s.name, "title": s.title, "version": s.version.to_string(), "icon": null}),
                json!({"id": e.id, "title": e.title}),
            )
        })
        .unwrap_or((Value::Null, Value::Null));
    json!({"id": auth.id, "name": auth.name, "customFields": null, "service": service, "serviceEnvironment": environment})
}

fn instance_node(instance: &StoredInstance) -> Value {
    json!({
        "id": instance.id,
        "name": instance.name,
        "enabled": instance.enabled,
        "created": instance.created.to_rfc3339(),
        "solution": {"id": instance.solution_id},
        "authValues": instance.auth_values.iter().map(|(e, a)| json!({"externalId": e, "authId": a})).collect::<Vec<_>>(),
    })
}

/// `viewer`: the fields the query names among `authentications`, `solutions`,
/// `solutionInstances` (no selection-set parsing: each is returned whole).
fn viewer(
    state: &TrayState,
    caller: &Caller,
    query: &str,
    variables: &Map<String, Value>,
) -> Response {
    let owner = caller.owner();
    let mut viewer = Map::new();
    if query.contains("authentications") {
        let auths: Vec<StoredAuth> = state
            .lock()
            .auths
            .values()
            .filter(|a| a.owner == owner)
            .cloned()
            .collect();
        // `viewer.authentications` takes no arguments and has no paging.
        let edges: Vec<Value> = auths
            .iter()
            .map(|a| json!({"node": auth_node(state, a)}))
            .collect();
        viewer.insert(
            "authentications".to_owned(),
            json!({"edges": edges, "pageInfo": {"hasNextPage": false, "hasPreviousPage": false}}),
        );
    }
    if query.contains("solutionInstances") {
        let name = arg_str(variables, "name");
        let solution_id = arg_str(variables, "solutionId");
        let instances: Vec<StoredInstance> = state
            .lock()
            .instances
            .values()
            .filter(|i| i.owner == owner)
            .filter(|i| name.is_none_or(|n| i.name == n))
            .filter(|i| solution_id.is_none_or(|s| i.solution_id == s))
            .cloned()
            .collect();
        viewer.insert(
            "solutionInstances".to_owned(),
            page(instances, variables, instance_node),
        );
    }
    if query.contains("solutions {") || query.contains("solutions(") {
        let solutions = state.catalogue.solutions.clone();
        viewer.insert(
            "solutions".to_owned(),
            page(solutions, variables, |s| {
                json!({
                    "id": s.id, "title": s.title, "description": null, "tags": [], "customFields": [],
                    "authSlots": s.auth_slots.iter().map(|a| json!({"externalId": a.external_id, "title": a.title, "serviceName": a.service_name})).collect::<Vec<_>>(),
                    "configSlots": s.config_slots.iter().map(|c| json!({"externalId": c, "title": c, "defaultValue": "null"})).collect::<Vec<_>>(),
                })
            }),
        );
    }
    data("viewer", Value::Object(viewer))
}

/// The legacy GraphQL import path; `data`/`formData` are `Json` (string or object).
fn create_user_authentication(
    state: &TrayState,
    caller: &Caller,
    variables: &Map<String, Value>,
) -> Response {
    const FIELD: &str = "createUserAuthentication";
    let (Some(name), Some(environment_id)) = (
        arg_str(variables, "name"),
        arg_str(variables, "serviceEnvironmentId"),
    ) else {
        return graphql_error(
            FIELD,
            "name, serviceId and serviceEnvironmentId are required",
            "BAD_USER_INPUT",
        );
    };
    let (credentials, user_data) =
        match (json_arg(variables, "data"), json_arg(variables, "formData")) {
            (Ok(Some(data)), Ok(form)) => (data, form.unwrap_or_default()),
            (Ok(None), _) => return graphql_error(FIELD, "data is required", "BAD_USER_INPUT"),
            (Err(message), _) | (_, Err(message)) => {
                return graphql_error(FIELD, &message, "BAD_USER_INPUT");
            }
        };
    let Some((_, environment)) = state.catalogue.environment(environment_id) else {
        return graphql_error(FIELD, "Service environment not found", "NOT_FOUND");
    };
    let mut problems = check_value_shapes("data", &credentials);
    problems.extend(check_object(
        "data",
        &environment.credentials_schema,
        &credentials,
    ));
    problems.extend(check_object(
        "formData",
        &environment.user_data_schema,
        &user_data,
    ));
    if !problems.is_empty() {
        return graphql_error(
            FIELD,
            &format!("Schema validation errors: [{}]", problems.join(", ")),
            "BAD_USER_INPUT",
        );
    }
    let auth = StoredAuth {
        id: random_uuid(),
        owner: caller.owner(),
        name: name.to_owned(),
        service_environment_id: environment_id.to_owned(),
        credentials,
        user_data,
        scopes: arg(variables, "scopes")
            .and_then(Value::as_array)
            .map(|s| {
                s.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        updates: 0,
    };
    let id = auth.id.clone();
    state.lock().auths.insert(id.clone(), auth);
    data(
        FIELD,
        json!({"authenticationId": id, "clientMutationId": null}),
    )
}

fn remove_authentication(
    state: &TrayState,
    caller: &Caller,
    variables: &Map<String, Value>,
) -> Response {
    const FIELD: &str = "removeAuthentication";
    let id = arg_str(variables, "authenticationId").or_else(|| arg_str(variables, "id"));
    let mut inner = state.lock();
    match id.and_then(|id| inner.auths.get(id)) {
        Some(auth) if caller.can_see(&auth.owner) => {
            let id = auth.id.clone();
            inner.auths.remove(&id);
            data(FIELD, json!({"clientMutationId": null}))
        }
        _ => graphql_error(FIELD, "Authentication not found", "NOT_FOUND"),
    }
}

fn create_solution_instance(
    state: &TrayState,
    caller: &Caller,
    variables: &Map<String, Value>,
) -> Response {
    const FIELD: &str = "createSolutionInstance";
    let (Some(solution_id), Some(instance_name)) = (
        arg_str(variables, "solutionId"),
        arg_str(variables, "instanceName"),
    ) else {
        return graphql_error(
            FIELD,
            "solutionId and instanceName are required",
            "BAD_USER_INPUT",
        );
    };
    let Some(solution) = state.catalogue.solution(solution_id) else {
        return graphql_error(FIELD, "Solution not found", "NOT_FOUND");
    };
    let mut auth_values = Vec::new();
    let owner = caller.owner();
    for value in arg(variables, "authValues")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(external_id), Some(auth_id)) = (
            value.get("externalId").and_then(Value::as_str),
            value.get("authId").and_then(Value::as_str),
        ) else {
            return graphql_error(
                FIELD,
                "authValues entries need externalId and authId",
                "BAD_USER_INPUT",
            );
        };
        // External ids are matched case-sensitively, as Tray documents.
        if !solution
            .auth_slots
            .iter()
            .any(|slot| slot.external_id == external_id)
        {
            return graphql_error(
                FIELD,
                &format!("No auth slot with external id {external_id} in this solution"),
                "BAD_USER_INPUT",
            );
        }
        let owned = state
            .lock()
            .auths
            .get(auth_id)
            .is_some_and(|a| a.owner == owner);
        if !owned {
            return graphql_error(FIELD, "Authentication not found", "NOT_FOUND");
        }
        auth_values.push((external_id.to_owned(), auth_id.to_owned()));
    }
    let instance = StoredInstance {
        id: random_uuid(),
        owner,
        solution_id: solution_id.to_owned(),
        name: instance_name.to_owned(),
        // New instances start disabled.
        enabled: false,
        created: Utc::now(),
        auth_values,
    };
    let node = instance_node(&instance);
    state.lock().instances.insert(instance.id.clone(), instance);
    data(
        FIELD,
        json!({"solutionInstance": node, "clientMutationId": null}),
    )
}

/// An inline boolean argument such as `enabled: true` (Tray's documented enable mutation
/// writes it inline rather than as a variable).
fn inline_bool(query: &str, name: &str) -> Option<bool> {
    let compact: String = query.split_whitespace().collect();
    if compact.contains(&format!("{name}:true")) {
        Some(true)
    } else if compact.contains(&format!("{name}:false")) {
        Some(false)
    } else {
        None
    }
}

fn update_solution_instance(
    state: &TrayState,
    caller: &Caller,
    query: &str,
    variables: &Map<String, Value>,
) -> Response {
    const FIELD: &str = "updateSolutionInstance";
    let id = arg_str(variables, "solutionInstanceId").or_else(|| arg_str(variables, "id"));
    let owner = caller.owner();
    let mut inner = state.lock();
    let Some(instance) = id
        .and_then(|id| inner.instances.get_mut(id))
        .filter(|i| i.owner == owner)
    else {
        return graphql_error(FIELD, "Solution instance not found", "NOT_FOUND");
    };
    if let Some(enabled) = arg(variables, "enabled")
        .and_then(Value::as_bool)
        .or_else(|| inline_bool(query, "enabled"))
    {
        instance.enabled = enabled;
    }
    if let Some(name) = arg_str(variables, "instanceName") {
        instance.name = name.to_owned();
    }
    data(
        FIELD,
        json!({"solutionInstance": instance_node(instance), "clientMutationId": null}),
    )
}

fn remove_solution_instance(
    state: &TrayState,
    caller: &Caller,
    variables: &Map<String, Value>,
) -> Response {
    const FIELD: &str = "removeSolutionInstance";
    let id = arg_str(variables, "solutionInstanceId").or_else(|| arg_str(variables, "id"));
    let mut inner = state.lock();
    match id.and_then(|id| inner.instances.get(id)) {
        Some(instance) if caller.can_see(&instance.owner) => {
            let id = instance.id.clone();
            inner.instances.remove(&id);
            data(FIELD, json!({"clientMutationId": null}))
        }
        _ => graphql_error(FIELD, "Solution instance not found", "NOT_FOUND"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(query: &str, expect: Option<(bool, &str)>) {
        let got = parse_operation(query).map(|op| (op.mutation, op.root_field));
        assert_eq!(got, expect.map(|(m, f)| (m, f.to_owned())), "{query}");
    }

    #[test]
    fn root_fields() {
        check(
            "query { viewer { authentications { edges { node { id } } } } }",
            Some((false, "viewer")),
        );
        check(
            "{ users { edges { node { id } } } }",
            Some((false, "users")),
        );
        check(
            "query ($externalUserId: String, $first: Int) {\n  users(criteria: {externalUserId: $externalUserId}, first: $first) { edges { node { id } } } }",
            Some((false, "users")),
        );
        check(
            "mutation ($userId: ID!) { authorize(input: {userId: $userId}) { accessToken } }",
            Some((true, "authorize")),
        );
        check(
            "mutation Named($x: ID!) {\n # a comment { with braces\n  createExternalUser(input: {}) { userId } }",
            Some((true, "createExternalUser")),
        );
        check(
            "mutation { a: removeAuthentication(input: {}) { clientMutationId } }",
            Some((true, "removeAuthentication")),
        );
        check("subscription { x }", None);
        check("", None);
    }
}
