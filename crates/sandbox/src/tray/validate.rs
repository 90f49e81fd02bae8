//! The emulator's own check of `credentials` / `userData` against an environment's loose
//! schema, written independently of the client's validation so each tests the other.
//! Messages name fields, never values (Tray's real messages may echo values; ours must not,
//! because tests grep every output for canary secrets).

use serde_json::{Map, Value};

/// Problems of `object` (the request's `credentials` or `userData`, named `label`) against
/// `schema`. Empty when valid.
pub fn check_object(label: &str, schema: &Value, object: &Map<String, Value>) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(schema) = schema.as_object() else {
        return problems;
    };
    let properties = schema.get("properties").and_then(Value::as_object);
    let mut required: Vec<String> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if let Some(properties) = properties {
        for (name, property) in properties {
            // Draft-03 marks required fields on the property itself.
            if property.get("required") == Some(&Value::Bool(true)) && !required.contains(name) {
                required.push(name.clone());
            }
        }
    }
    for name in &required {
        if object.get(name).is_none_or(Value::is_null) {
            problems.push(format!("{label}.{name} is required"));
        }
    }
    for (name, value) in object {
        match properties.and_then(|p| p.get(name)) {
            Some(property) => {
                if let Some(expected) = property.get("type")
                    && !type_matches(expected, value)
                {
                    problems.push(format!("{label}.{name} has the wrong type"));
                }
                if let Some(Value::Array(options)) = property.get("enum")
                    && !options.contains(value)
                {
                    problems.push(format!("{label}.{name} is not one of the allowed values"));
                }
            }
            None => {
                if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
                    problems.push(format!("{label}.{name} is not allowed"));
                }
            }
        }
    }
    problems
}

fn type_matches(expected: &Value, value: &Value) -> bool {
    match expected {
        Value::String(name) => single_type_matches(name, value),
        Value::Array(names) => names
            .iter()
            .filter_map(Value::as_str)
            .any(|name| single_type_matches(name, value)),
        // Unknown shapes of `type` are ignored, as a lenient server would.
        _ => true,
    }
}

fn single_type_matches(name: &str, value: &Value) -> bool {
    match name {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "null" => value.is_null(),
        _ => true,
    }
}

/// The value rules of `CreatePublicUserAuthentication.credentials/userData` in Tray's spec:
/// string, integer, boolean, array of objects, or object of objects. No null, no decimals.
pub fn check_value_shapes(label: &str, object: &Map<String, Value>) -> Vec<String> {
    object
        .iter()
        .filter(|(_, value)| !value_shape_allowed(value))
        .map(|(name, _)| format!("{label}.{name} must be a string, integer, boolean, array of objects or object of objects"))
        .collect()
}

fn value_shape_allowed(value: &Value) -> bool {
    match value {
        Value::String(_) | Value::Bool(_) => true,
        Value::Number(n) => n.is_i64() || n.is_u64(),
        Value::Array(items) => items.iter().all(Value::is_object),
        Value::Object(map) => map.values().all(Value::is_object),
        Value::Null => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(schema: Value, object: Value, expect: &[&str]) {
        let problems = check_object("credentials", &schema, object.as_object().unwrap());
        assert_eq!(problems, expect);
    }

    #[test]
    fn loose_schema_dialects() {
        let draft3 = json!({"properties": {"a": {"type": "string", "required": true}}, "additionalProperties": false});
        check(draft3.clone(), json!({"a": "x"}), &[]);
        check(draft3.clone(), json!({}), &["credentials.a is required"]);
        check(
            draft3.clone(),
            json!({"a": 1}),
            &["credentials.a has the wrong type"],
        );
        check(
            draft3,
            json!({"a": "x", "b": "y"}),
            &["credentials.b is not allowed"],
        );
        let draft4 = json!({"properties": {"n": {"type": "integer"}, "t": {"tytpe": "string"}}, "required": ["n", "t"]});
        check(draft4.clone(), json!({"n": 3, "t": 4, "extra": true}), &[]);
        check(
            draft4,
            json!({"n": "3"}),
            &[
                "credentials.t is required",
                "credentials.n has the wrong type",
            ],
        );
        check(json!({}), json!({"anything": "goes"}), &[]);
        check(
            json!({"properties": {"r": {"enum": ["a"]}}}),
            json!({"r": "b"}),
            &["credentials.r is not one of the allowed values"],
        );
    }

    #[test]
    fn value_shapes_follow_the_spec() {
        let object = json!({"s": "x", "i": 1, "b": true, "f": 1.5, "n": null, "a": [{"k": 1}], "bad": ["x"]});
        let mut problems = check_value_shapes("userData", object.as_object().unwrap());
        problems.sort();
        assert_eq!(problems.len(), 3);
        assert!(problems[0].starts_with("userData.bad "));
        assert!(problems[1].starts_with("userData.f "));
        assert!(problems[2].starts_with("userData.n "));
    }
}
