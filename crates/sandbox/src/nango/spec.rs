//! Contract-test support (feature `contract`): loads Nango's `nango.yaml` (OpenAPI 3.1, whose
//! schemas are JSON Schema 2020-12 as they are) and builds validators for its request and
//! response bodies. The file is looked up by `crate::spec::spec_file_path`.

use std::path::PathBuf;

use serde_json::{Value, json};

pub const SPEC_FILE: &str = "nango.yaml";

/// Where Nango's spec file is (see [`crate::spec::spec_file_path`]).
pub fn spec_path() -> PathBuf {
    crate::spec::spec_file_path(SPEC_FILE)
}

/// The whole spec as JSON.
pub fn load_spec() -> Value {
    crate::spec::load_spec_file(SPEC_FILE)
}

/// `schema` with the spec's components alongside, so its `$ref`s resolve.
pub fn with_components(spec: &Value, schema: &Value) -> Value {
    let mut schema = schema.clone();
    if let Value::Object(map) = &mut schema {
        map.insert(
            "components".to_owned(),
            json!({"schemas": spec["components"]["schemas"].clone()}),
        );
    }
    schema
}

/// One component schema, by name.
pub fn component_schema(spec: &Value, name: &str) -> Value {
    assert!(
        spec["components"]["schemas"].get(name).is_some(),
        "no schema {name} in the spec"
    );
    with_components(
        spec,
        &json!({"$ref": format!("#/components/schemas/{name}")}),
    )
}

/// The JSON request body schema of `method path`.
pub fn request_schema(spec: &Value, path: &str, method: &str) -> Value {
    let schema =
        &spec["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
    assert!(!schema.is_null(), "no request body for {method} {path}");
    with_components(spec, schema)
}

/// The JSON response schema of `method path` for `status` (shared responses resolved).
pub fn response_schema(spec: &Value, path: &str, method: &str, status: &str) -> Value {
    let mut response = spec["paths"][path][method]["responses"][status].clone();
    if let Some(reference) = response.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap_or_default();
        response = spec["components"]["responses"][name].clone();
    }
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "no response schema for {method} {path} {status}"
    );
    with_components(spec, schema)
}

pub fn validator(schema: &Value) -> jsonschema::Validator {
    crate::spec::validator_for(schema, Some(jsonschema::Draft::Draft202012))
}

/// Every violation of `schema` in `instance`, by location.
pub fn violations(schema: &Value, instance: &Value) -> Vec<String> {
    crate::spec::violations(&validator(schema), instance)
}
