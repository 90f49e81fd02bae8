//! Contract-test support (feature `contract`): loads Apideck's vault.yml and turns its OpenAPI 3.0.3 schemas into JSON Schema:
//! `nullable: true` becomes a `null` type union, and for request bodies `readOnly` properties
//! are dropped. Also the spec-file lookup and validators every vendor's contract support uses.

use std::path::PathBuf;

use serde_json::{Map, Value, json};

pub const SPEC_FILE: &str = "apideck-vault.yml";

/// Where Apideck's spec file is.
pub fn spec_path() -> PathBuf {
    spec_file_path(SPEC_FILE)
}

/// The whole Apideck spec as JSON.
pub fn load_spec() -> Value {
    load_spec_file(SPEC_FILE)
}

/// Where the spec file `file` (e.g. `nango.yaml`) is: `$AUTHPORT_SPECS_DIR`, else the
/// repository's own copy in `specs/` (with its provenance in `specs/SOURCES.md`), so that a clone
/// alone passes its contract tests.
pub fn spec_file_path(file: &str) -> PathBuf {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut candidates = Vec::new();
    if let Ok(dir) = std::env::var("AUTHPORT_SPECS_DIR") {
        candidates.push(PathBuf::from(dir).join(file));
    }
    candidates.push(workspace.join("specs").join(file));
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!("{file} not found; looked at {candidates:?}; set AUTHPORT_SPECS_DIR")
        })
}

/// The whole spec file `file` as JSON.
pub fn load_spec_file(file: &str) -> Value {
    let text = std::fs::read_to_string(spec_file_path(file)).expect("the spec is readable");
    serde_yaml::from_str::<Value>(&text).expect("the spec is YAML that maps to JSON")
}

/// Which side of the wire a schema checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Request,
    Response,
}

/// One component schema converted, with every other component alongside so `$ref`s resolve.
pub fn component_schema(spec: &Value, name: &str, direction: Direction) -> Value {
    let components = spec["components"]["schemas"].clone();
    assert!(
        components.get(name).is_some(),
        "no schema {name} in the spec"
    );
    json!({
        "$ref": format!("#/components/schemas/{name}"),
        "components": {"schemas": convert(&components, direction)},
    })
}

/// One component schema converted on its own, without `description`/`example`/`x-*` keys
/// (for comparing with a hand-made copy).
pub fn bare_component(spec: &Value, name: &str, direction: Direction) -> Value {
    strip_annotations(&convert(&spec["components"]["schemas"][name], direction))
}

pub fn validator(schema: &Value) -> jsonschema::Validator {
    validator_for(schema, None)
}

/// A validator that checks formats; `draft: None` lets the schema decide.
pub fn validator_for(schema: &Value, draft: Option<jsonschema::Draft>) -> jsonschema::Validator {
    let mut options = jsonschema::options();
    if let Some(draft) = draft {
        options = options.with_draft(draft);
    }
    options
        .should_validate_formats(true)
        .build(schema)
        .expect("the schema compiles")
}

/// Every violation `validator` finds in `instance`, by location (messages with values masked).
pub fn violations(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|error| format!("{}: {}", error.instance_path, error.masked()))
        .collect()
}

/// Converts OpenAPI 3.0 schema keywords to JSON Schema, recursively.
pub fn convert(value: &Value, direction: Direction) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(|v| convert(v, direction)).collect()),
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, inner) in map {
                if key == "example" || key == "examples" {
                    out.insert(key.clone(), inner.clone());
                } else if key == "properties" && direction == Direction::Request {
                    let kept: Map<String, Value> = inner
                        .as_object()
                        .map(|props| {
                            props
                                .iter()
                                .filter(|(_, p)| p.get("readOnly") != Some(&Value::Bool(true)))
                                .map(|(k, p)| (k.clone(), convert(p, direction)))
                                .collect()
                        })
                        .unwrap_or_default();
                    out.insert(key.clone(), Value::Object(kept));
                } else {
                    out.insert(key.clone(), convert(inner, direction));
                }
            }
            if out.remove("nullable") == Some(Value::Bool(true)) {
                match out.remove("type") {
                    Some(Value::String(t)) => {
                        out.insert("type".to_owned(), json!([t, "null"]));
                        if let Some(Value::Array(values)) = out.get_mut("enum") {
                            values.push(Value::Null);
                        }
                    }
                    Some(other) => {
                        out.insert("type".to_owned(), other);
                    }
                    None => {
                        let original = Value::Object(std::mem::take(&mut out));
                        out.insert("anyOf".to_owned(), json!([original, {"type": "null"}]));
                    }
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

fn strip_annotations(value: &Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(strip_annotations).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| {
                    !(k.starts_with("x-")
                        || *k == "description"
                        || *k == "example"
                        || *k == "readOnly")
                })
                .map(|(k, v)| (k.clone(), strip_annotations(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}
