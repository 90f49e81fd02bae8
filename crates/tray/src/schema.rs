//! Validation of `credentials` / `userData` against an environment's loose schema.
//!
//! Tray's schemas mix draft-03 and draft-04 habits (`required: true` on properties, `id` and
//! `schema` keys, `advanced`, `format: password`, typos such as `tytpe`). We normalise them to
//! Draft 7 (property-level `required` folded into the parent's array, `format` dropped, unknown
//! keywords left for the validator to ignore) and never crash on a schema we do not understand:
//! it degrades to a required-fields check. Messages name fields, never values.

use serde_json::{Map, Value};

/// One of an environment's two schemas, ready to check objects against.
#[derive(Debug)]
pub struct TargetSchema {
    /// Declared property names (sorted).
    pub properties: Vec<String>,
    pub required: Vec<String>,
    /// Whether undeclared keys are refused (`additionalProperties: false`).
    pub closed: bool,
    validator: Option<jsonschema::Validator>,
}

/// A schema violation, located to the target field (`credentials.account`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaProblem {
    pub field: String,
    pub message: String,
}

impl TargetSchema {
    pub fn new(schema: &Value) -> Self {
        let normalised = normalise(schema);
        let properties = normalised
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        let required = normalised
            .get("required")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let closed = normalised.get("additionalProperties") == Some(&Value::Bool(false));
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft7)
            .should_validate_formats(false)
            .build(&normalised)
            .ok();
        Self {
            properties,
            required,
            closed,
            validator,
        }
    }

    /// No declared properties: anything goes (typical of OAuth environments).
    pub fn is_open(&self) -> bool {
        self.properties.is_empty()
    }

    pub fn declares(&self, name: &str) -> bool {
        self.properties.iter().any(|p| p == name)
    }

    /// Problems of `object` (named `label`: `credentials` or `userData`).
    pub fn check(&self, label: &str, object: &Map<String, Value>) -> Vec<SchemaProblem> {
        let instance = Value::Object(object.clone());
        let Some(validator) = &self.validator else {
            return self
                .required
                .iter()
                .filter(|name| !object.contains_key(*name))
                .map(|name| SchemaProblem {
                    field: format!("{label}.{name}"),
                    message: "is required".to_owned(),
                })
                .collect();
        };
        validator
            .iter_errors(&instance)
            .map(|error| describe(label, &error))
            .collect()
    }
}

fn describe(label: &str, error: &jsonschema::ValidationError<'_>) -> SchemaProblem {
    use jsonschema::error::ValidationErrorKind as Kind;
    let violation = authport_kit::Violation::of(error);
    let field = match violation.location.as_str() {
        "" => label.to_owned(),
        location => format!("{label}.{location}"),
    };
    match &error.kind {
        Kind::Required { property } => SchemaProblem {
            field: format!("{label}.{}", property.as_str().unwrap_or("?")),
            message: "is required".to_owned(),
        },
        Kind::AdditionalProperties { unexpected } => SchemaProblem {
            field: format!("{label}.{}", unexpected.join(", ")),
            message: "is not a field of this environment".to_owned(),
        },
        Kind::Type { .. } => SchemaProblem {
            field,
            message: "has the wrong type".to_owned(),
        },
        Kind::Enum { .. } => SchemaProblem {
            field,
            message: "is not one of the allowed values".to_owned(),
        },
        _ => SchemaProblem {
            field,
            message: format!("does not satisfy `{}`", violation.rule),
        },
    }
}

/// Tray's dialects -> Draft 7. Pure; any shape in, an object schema out.
pub fn normalise(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(normalise_node(map)),
        _ => Value::Object(Map::new()),
    }
}

fn normalise_node(node: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    let mut required: Vec<Value> = match node.get("required") {
        Some(Value::Array(names)) => names.iter().filter(|n| n.is_string()).cloned().collect(),
        _ => Vec::new(),
    };
    for (key, value) in node {
        match key.as_str() {
            // Draft-03 / metadata keys that Draft 7 would misread or that assert nothing.
            "id" | "$id" | "schema" | "$schema" | "format" | "required" | "advanced" => {}
            "properties" => {
                let Some(properties) = value.as_object() else {
                    continue;
                };
                let mut normalised = Map::new();
                for (name, property) in properties {
                    let Some(property) = property.as_object() else {
                        continue;
                    };
                    if property.get("required") == Some(&Value::Bool(true))
                        && !required.iter().any(|r| r == name)
                    {
                        required.push(Value::String(name.clone()));
                    }
                    normalised.insert(name.clone(), Value::Object(normalise_node(property)));
                }
                out.insert(key.clone(), Value::Object(normalised));
            }
            "type" => {
                // Keep only type names Draft 7 knows (draft-03 allowed schemas and "any").
                let known = |t: &str| {
                    matches!(
                        t,
                        "string" | "integer" | "number" | "boolean" | "object" | "array" | "null"
                    )
                };
                match value {
                    Value::String(t) if known(t) => {
                        out.insert(key.clone(), value.clone());
                    }
                    Value::Array(types) => {
                        let kept: Vec<Value> = types
                            .iter()
                            .filter(|t| t.as_str().is_some_and(known))
                            .cloned()
                            .collect();
                        if !kept.is_empty() {
                            out.insert(key.clone(), Value::Array(kept));
                        }
                    }
                    _ => {}
                }
            }
            "additionalProperties" => {
                if let Value::Bool(_) = value {
                    out.insert(key.clone(), value.clone());
                } else if let Value::Object(inner) = value {
                    out.insert(key.clone(), Value::Object(normalise_node(inner)));
                }
            }
            "items" => {
                if let Value::Object(inner) = value {
                    out.insert(key.clone(), Value::Object(normalise_node(inner)));
                }
            }
            "enum" => {
                if value.as_array().is_some_and(|v| !v.is_empty()) {
                    out.insert(key.clone(), value.clone());
                }
            }
            // Everything else is carried over; Draft 7 ignores keywords it does not know.
            _ => {
                if !key.starts_with('$') {
                    out.insert(key.clone(), value.clone());
                }
            }
        }
    }
    if !required.is_empty() {
        out.insert("required".to_owned(), Value::Array(required));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(schema: Value, object: Value, expect: &[(&str, &str)]) {
        let schema = TargetSchema::new(&schema);
        let problems = schema.check("credentials", object.as_object().unwrap());
        let got: Vec<(String, String)> =
            problems.into_iter().map(|p| (p.field, p.message)).collect();
        let expect: Vec<(String, String)> = expect
            .iter()
            .map(|(f, m)| ((*f).to_owned(), (*m).to_owned()))
            .collect();
        assert_eq!(got, expect);
    }

    fn netsuite() -> Value {
        json!({"id": "http://jsonschema.net", "type": "object", "schema": "http://json-schema.org/draft-03/schema",
            "properties": {
                "email": {"id": "http://jsonschema.net/key", "type": "string"},
                "password": {"type": "string", "format": "password"},
                "account": {"title": "Account", "tytpe": "string"},
                "role": {"type": "integer"}},
            "additionalProperties": false, "required": ["email", "password", "account", "role"]})
    }

    #[test]
    fn tray_dialects_validate_without_crashing() {
        check(
            netsuite(),
            json!({"email": "a@b", "password": "p", "account": "1", "role": 3}),
            &[],
        );
        check(
            netsuite(),
            json!({"email": "a@b", "password": "p", "role": 3}),
            &[("credentials.account", "is required")],
        );
        check(
            netsuite(),
            json!({"email": "a@b", "password": "p", "account": 7, "role": "3"}),
            &[("credentials.role", "has the wrong type")],
        );
        check(
            netsuite(),
            json!({"email": "a@b", "password": "p", "account": "1", "role": 3, "x": "y"}),
            &[("credentials.x", "is not a field of this environment")],
        );
        let draft3 = json!({"properties": {"email": {"type": "string", "required": true}, "api_token": {"type": "string", "required": false}}, "advanced": []});
        check(
            draft3.clone(),
            json!({"api_token": "t"}),
            &[("credentials.email", "is required")],
        );
        check(draft3, json!({"email": "e"}), &[]);
        check(json!({}), json!({"anything": "goes"}), &[]);
        check(json!("not a schema"), json!({"a": 1}), &[]);
        check(
            json!({"properties": {"a": {"type": "any"}, "b": {"type": {"weird": true}}}}),
            json!({"a": 1, "b": 2}),
            &[],
        );
        check(
            json!({"properties": {"r": {"enum": ["us", "eu"]}}}),
            json!({"r": "mars"}),
            &[("credentials.r", "is not one of the allowed values")],
        );
        check(
            json!({"properties": {"p": {"type": "string", "format": "password"}}}),
            json!({"p": "not-an-email"}),
            &[],
        );
    }

    #[test]
    fn declared_fields_are_listed() {
        let schema = TargetSchema::new(&netsuite());
        assert_eq!(schema.properties, ["account", "email", "password", "role"]);
        assert!(schema.closed && !schema.is_open() && schema.declares("role"));
        assert!(TargetSchema::new(&json!({})).is_open());
    }

    #[test]
    fn messages_never_quote_values() {
        let schema = TargetSchema::new(&netsuite());
        let canary = "CANARY-schema-9f3e";
        let problems = schema.check(
            "credentials",
            json!({"email": 5, "password": 6, "account": "1", "role": canary})
                .as_object()
                .unwrap(),
        );
        assert!(!problems.is_empty());
        assert!(!format!("{problems:?}").contains(canary));
    }
}
