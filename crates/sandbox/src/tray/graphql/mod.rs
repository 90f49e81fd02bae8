//! The GraphQL Embedded API (`POST /graphql`), served by a real GraphQL engine
//! (async-graphql) over exactly the documented schema (tray-api.md §5): unknown fields,
//! unknown arguments and wrongly typed arguments are refused before anything runs, with
//! graphql-js's wording (`Cannot query field "authSlots" on type "Solution".`), HTTP 200 and
//! `errors[]`. Bearer checks, the rate limit and the per-operation call counts happen before
//! the engine, as Tray's gateway does: 401 `{"message":"Unauthorized"}`, and the documented
//! rate-limit entry in `errors[]`.

mod coerce;
mod index;
mod messages;
mod mutation;
mod query;
mod types;

use std::sync::{Arc, OnceLock};

use async_graphql::parser::types::{DocumentOperations, OperationDefinition, Selection};
use async_graphql::parser::{Positioned, parse_query};
use async_graphql::{EmptySubscription, Schema, Variables};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use serde_json::{Map, Value, json};

use super::{Refusal, TrayState, bearer};
use coerce::{check_document, check_variables};
use index::TypeIndex;
use messages::standard_message;
use mutation::Mutation;
use query::Query;

type TraySchema = Schema<Query, Mutation, EmptySubscription>;

pub(super) fn routes() -> Router<Arc<TrayState>> {
    Router::new().route("/graphql", post(graphql))
}

/// Built once: the schema holds no state (the store and the caller come with each request).
fn schema() -> &'static TraySchema {
    static SCHEMA: OnceLock<TraySchema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        Schema::build(Query, Mutation, EmptySubscription)
            // graphql-js suggests only on its own wording; the messages are reworded below.
            .disable_suggestions()
            .finish()
    })
}

/// The served schema's types, read back from its own SDL for the argument checks.
fn type_index() -> &'static TypeIndex {
    static INDEX: OnceLock<TypeIndex> = OnceLock::new();
    INDEX.get_or_init(|| TypeIndex::from_sdl(&schema().sdl()))
}

/// The operation a request selects: the one named by `operationName`, else the first.
fn selected_operation<'d>(
    operations: &'d DocumentOperations,
    name: Option<&str>,
) -> Option<&'d Positioned<OperationDefinition>> {
    operations
        .iter()
        .find(|(op_name, _)| name.is_none() || op_name.map(|n| n.as_str()) == name)
        .map(|(_, operation)| operation)
}

/// The first root field's name (not its alias), for call counts and rate-limit paths.
fn root_field(operation: &OperationDefinition) -> Option<String> {
    operation
        .selection_set
        .node
        .items
        .iter()
        .find_map(|item| match &item.node {
            Selection::Field(field) => Some(field.node.name.node.to_string()),
            _ => None,
        })
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// A request-level error (parse, validation, variable coercion): no `data` key at all.
fn request_errors(errors: Vec<Value>) -> Response {
    json_response(StatusCode::OK, json!({ "errors": errors }))
}

fn request_error_entry(message: String, line: usize, column: usize, code: &str) -> Value {
    json!({
        "message": message,
        "locations": [{"line": line, "column": column}],
        "extensions": {"code": code},
    })
}

async fn graphql(State(state): State<Arc<TrayState>>, headers: HeaderMap, body: Bytes) -> Response {
    let request = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(request)) => request,
        Ok(_) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({"errors": [{"message": "POST body must be a JSON object"}]}),
            );
        }
        Err(_) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({"errors": [{"message": "Body is not valid JSON"}]}),
            );
        }
    };
    let query = request.get("query").and_then(Value::as_str).unwrap_or("");
    let operation_name = request.get("operationName").and_then(Value::as_str);
    let variables = match request.get("variables") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({"errors": [{"message": "`variables` must be an object"}]}),
            );
        }
    };
    let document = parse_query(query);
    let operation = document
        .as_ref()
        .ok()
        .and_then(|doc| selected_operation(&doc.operations, operation_name));
    let field = operation
        .and_then(|op| root_field(&op.node))
        .unwrap_or_else(|| "unknown".to_owned());
    state.count_call(&format!("graphql {field}"));
    let caller = match state.admit(bearer(&headers)) {
        Ok(caller) => caller,
        Err(Refusal::Unauthorized) => {
            return json_response(StatusCode::UNAUTHORIZED, json!({"message": "Unauthorized"}));
        }
        Err(Refusal::RateLimited) => {
            let body = json!({"data": null, "errors": [{
                "message": "Rate limit exceeded", "path": [field], "locations": [{"line": 2, "column": 3}],
                "extensions": {"name": "PreconditionError", "time_thrown": Utc::now().to_rfc3339(), "code": "access_not_allowed"}}]});
            return json_response(StatusCode::OK, body);
        }
    };
    if let Err(error) = &document {
        let (line, column) = error
            .positions()
            .next()
            .map_or((1, 1), |pos| (pos.line, pos.column));
        return request_errors(vec![request_error_entry(
            "Syntax Error: the document does not parse.".to_owned(),
            line,
            column,
            "GRAPHQL_PARSE_FAILED",
        )]);
    }
    if let (Ok(document), Some(operation)) = (&document, operation) {
        // Validation first, then variable values, as the spec orders them.
        let mut refused = check_document(type_index(), document, operation);
        if refused.is_empty() {
            refused = check_variables(type_index(), &operation.node, &variables);
        }
        if !refused.is_empty() {
            return request_errors(
                refused
                    .into_iter()
                    .map(|e| request_error_entry(e.message, e.line, e.column, e.code))
                    .collect(),
            );
        }
    }
    let mut gql_request = async_graphql::Request::new(query)
        .variables(Variables::from_json(Value::Object(variables)))
        .data(state.clone())
        .data(caller);
    if let Some(name) = operation_name {
        gql_request = gql_request.operation_name(name);
    }
    let response = schema().execute(gql_request).await;
    let failed_before_running = !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
        && response.data == async_graphql::Value::Null;
    if failed_before_running {
        return request_errors(
            response
                .errors
                .iter()
                .map(|e| {
                    let (line, column) = e.locations.first().map_or((1, 1), |p| (p.line, p.column));
                    request_error_entry(
                        standard_message(&e.message),
                        line,
                        column,
                        "GRAPHQL_VALIDATION_FAILED",
                    )
                })
                .collect(),
        );
    }
    let data = response.data.into_json().unwrap_or(Value::Null);
    let mut body = Map::new();
    body.insert("data".to_owned(), data);
    if !response.errors.is_empty() {
        let errors: Vec<Value> = response
            .errors
            .iter()
            .map(|e| serde_json::to_value(e).unwrap_or(Value::Null))
            .collect();
        body.insert("errors".to_owned(), Value::Array(errors));
    }
    json_response(StatusCode::OK, Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(query: &str, name: Option<&str>) -> Option<String> {
        let document = parse_query(query).ok()?;
        root_field(&selected_operation(&document.operations, name)?.node)
    }

    #[test]
    fn root_fields_are_found_by_name_not_alias() {
        assert_eq!(
            field_of(
                "query { viewer { authentications { edges { node { id } } } } }",
                None
            ),
            Some("viewer".to_owned())
        );
        assert_eq!(
            field_of(
                "mutation { a: removeAuthentication(input: {authenticationId: \"x\"}) { clientMutationId } }",
                None
            ),
            Some("removeAuthentication".to_owned())
        );
        assert_eq!(
            field_of(
                "query A { viewer { authentications { edges { node { id } } } } } mutation B { authorize(input: {userId: \"u\"}) { accessToken } }",
                Some("B")
            ),
            Some("authorize".to_owned())
        );
        assert_eq!(field_of("{ users", None), None);
    }

    #[test]
    fn the_schema_has_no_undocumented_solution_fields() {
        let sdl = schema().sdl();
        let solution = sdl
            .split("type Solution {")
            .nth(1)
            .and_then(|rest| rest.split('}').next())
            .expect("Solution type in the SDL");
        let fields: Vec<&str> = solution
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('"'))
            .map(|l| l.split(':').next().unwrap_or(""))
            .collect();
        assert_eq!(
            fields,
            [
                "id",
                "title",
                "description",
                "tags",
                "customFields",
                "configSlots"
            ]
        );
    }
}
