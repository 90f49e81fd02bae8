//! Error messages worded like the reference GraphQL implementation (graphql-js 16, which
//! Tray's server runs on), where async-graphql words them differently, and the variable
//! coercion checks of the spec ("CoerceVariableValues") for variables of built-in scalar
//! types, whose graphql-js messages name the value that was refused.

use async_graphql::parser::Positioned;
use async_graphql::parser::types::{BaseType, Type, VariableDefinition};
use serde_json::{Map, Value};

/// Rewords one async-graphql validation message; other messages pass unchanged.
pub(super) fn standard_message(message: &str) -> String {
    let quoted = quoted_parts(message);
    let parts: Vec<&str> = quoted.iter().map(String::as_str).collect();
    if message.starts_with("Unknown field ")
        && let [field, type_name] = parts[..]
    {
        return format!("Cannot query field \"{field}\" on type \"{type_name}\".");
    }
    if message.starts_with("Unknown argument ")
        && message.contains(" on field ")
        && let [argument, field, type_name] = parts[..]
    {
        return format!("Unknown argument \"{argument}\" on field \"{type_name}.{field}\".");
    }
    // async-graphql names the position's type first and the variable's declared type second.
    if message.contains("used in position expecting type")
        && let [variable, position, declared] = parts[..]
    {
        return format!(
            "Variable \"${variable}\" of type \"{declared}\" used in position expecting type \"{position}\"."
        );
    }
    if message.starts_with("Unknown type ")
        && let [type_name] = parts[..]
    {
        return format!("Unknown type \"{type_name}\".");
    }
    if message.starts_with("Variable ") && message.contains(" is not defined") {
        return format!("{message}.");
    }
    if message.starts_with("Variable ")
        && message.contains(" is not used")
        && let Some(variable) = parts.first()
    {
        return match parts.get(1) {
            Some(operation) => {
                format!("Variable \"{variable}\" is never used in operation \"{operation}\".")
            }
            None => format!("Variable \"{variable}\" is never used."),
        };
    }
    if message == "Operation name required in request." {
        return "Must provide operation name if query contains multiple operations.".to_owned();
    }
    if message.starts_with("Unknown operation named ") {
        return format!("{message}.");
    }
    message.to_owned()
}

/// The double-quoted parts of a message, in order.
fn quoted_parts(message: &str) -> Vec<String> {
    message
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// A refused variable: the message and where the variable is defined (1-based line, column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct VariableError {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

/// Coerces the request's variables against their definitions, as the spec does before
/// executing. Only built-in scalars are checked here; input objects and Tray's own scalars
/// are left to the engine.
pub(super) fn check_variables(
    definitions: &[Positioned<VariableDefinition>],
    values: &Map<String, Value>,
) -> Vec<VariableError> {
    let mut errors = Vec::new();
    for definition in definitions {
        let name = definition.node.name.node.as_str();
        let ty = &definition.node.var_type.node;
        let message = match values.get(name) {
            None if !ty.nullable && definition.node.default_value.is_none() => Some(format!(
                "Variable \"${name}\" of required type \"{ty}\" was not provided."
            )),
            None => None,
            Some(Value::Null) if !ty.nullable => Some(format!(
                "Variable \"${name}\" of non-null type \"{ty}\" must not be null."
            )),
            Some(value) => {
                let mut path = Vec::new();
                coerce(ty, value, &mut path).err().map(|(bad, at, reason)| {
                    let at = if at.is_empty() {
                        String::new()
                    } else {
                        format!(" at \"{name}{at}\"")
                    };
                    format!(
                        "Variable \"${name}\" got invalid value {}{at}; {reason}",
                        inspect(bad)
                    )
                })
            }
        };
        if let Some(message) = message {
            errors.push(VariableError {
                message,
                line: definition.pos.line,
                column: definition.pos.column,
            });
        }
    }
    errors
}

/// On failure: the refused value, its path inside the variable (`[0]`), and the reason.
fn coerce<'v>(
    ty: &Type,
    value: &'v Value,
    path: &mut Vec<usize>,
) -> Result<(), (&'v Value, String, String)> {
    let at = |path: &[usize]| path.iter().map(|i| format!("[{i}]")).collect::<String>();
    if value.is_null() {
        return if ty.nullable {
            Ok(())
        } else {
            Err((
                value,
                at(path),
                format!("Expected non-nullable type \"{ty}\" not to be null."),
            ))
        };
    }
    match &ty.base {
        BaseType::List(item) => match value {
            Value::Array(items) => {
                for (index, element) in items.iter().enumerate() {
                    path.push(index);
                    coerce(item, element, path)?;
                    path.pop();
                }
                Ok(())
            }
            // A single value is coerced as a list of one.
            single => coerce(item, single, path),
        },
        BaseType::Named(name) => match scalar_refusal(name.as_str(), value) {
            Some(reason) => Err((value, at(path), reason)),
            None => Ok(()),
        },
    }
}

/// Why a built-in scalar refuses a value (graphql-js's `parseValue` messages).
fn scalar_refusal(type_name: &str, value: &Value) -> Option<String> {
    let shown = inspect(value);
    match type_name {
        "Int" => {
            let integral = value.as_f64().filter(|n| n.fract() == 0.0 && n.is_finite());
            match integral {
                None => Some(format!("Int cannot represent non-integer value: {shown}")),
                Some(n) if n < f64::from(i32::MIN) || n > f64::from(i32::MAX) => Some(format!(
                    "Int cannot represent non 32-bit signed integer value: {shown}"
                )),
                Some(_) => None,
            }
        }
        "Float" => (!value.is_number())
            .then(|| format!("Float cannot represent non numeric value: {shown}")),
        "String" => (!value.is_string())
            .then(|| format!("String cannot represent a non string value: {shown}")),
        "Boolean" => (!value.is_boolean())
            .then(|| format!("Boolean cannot represent a non boolean value: {shown}")),
        "ID" => {
            let accepted = value.is_string() || value.is_i64() || value.is_u64();
            (!accepted).then(|| format!("ID cannot represent value: {shown}"))
        }
        _ => None,
    }
}

/// graphql-js's `inspect`: strings JSON-quoted, objects as `{ key: value }`.
fn inspect(value: &Value) -> String {
    match value {
        Value::Array(items) if items.is_empty() => "[]".to_owned(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(inspect).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) if map.is_empty() => "{}".to_owned(),
        Value::Object(map) => format!(
            "{{ {} }}",
            map.iter()
                .map(|(key, v)| format!("{key}: {}", inspect(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;
    use serde_json::json;

    #[test]
    fn engine_messages_are_reworded_like_graphql_js() {
        let cases = [
            (
                r#"Unknown field "authSlots" on type "Solution"."#,
                r#"Cannot query field "authSlots" on type "Solution"."#,
            ),
            (
                r#"Unknown argument "limit" on field "users" of type "Query"."#,
                r#"Unknown argument "limit" on field "Query.users"."#,
            ),
            (
                r#"Variable "first" of type "Int" used in position expecting type "String""#,
                r#"Variable "$first" of type "String" used in position expecting type "Int"."#,
            ),
            (r#"Unknown type "Foo""#, r#"Unknown type "Foo"."#),
            (
                r#"Variable "$x" is not used by operation "Q""#,
                r#"Variable "$x" is never used in operation "Q"."#,
            ),
            (
                r#"Variable "$x" is not defined"#,
                r#"Variable "$x" is not defined."#,
            ),
            ("Something else", "Something else"),
        ];
        for (engine, standard) in cases {
            assert_eq!(standard_message(engine), standard);
        }
    }

    fn variable_errors(query: &str, values: Value) -> Vec<String> {
        let document = parse_query(query).unwrap();
        let (_, operation) = document.operations.iter().next().unwrap();
        let values = values.as_object().unwrap().clone();
        check_variables(&operation.node.variable_definitions, &values)
            .into_iter()
            .map(|e| e.message)
            .collect()
    }

    #[test]
    fn variables_are_coerced_with_graphql_js_messages() {
        let query = "query ($first: Int, $id: ID!, $flag: Boolean, $names: [String!], $f: Float) { viewer { authentications { edges { node { id } } } } }";
        let cases = [
            (json!({"id": "u1"}), vec![]),
            (
                json!({"id": 7, "first": 5.0, "names": "one", "f": 1}),
                vec![],
            ),
            (
                json!({"id": "u1", "first": "five"}),
                vec![
                    r#"Variable "$first" got invalid value "five"; Int cannot represent non-integer value: "five""#,
                ],
            ),
            (
                json!({"id": "u1", "first": 4_000_000_000_i64}),
                vec![
                    r#"Variable "$first" got invalid value 4000000000; Int cannot represent non 32-bit signed integer value: 4000000000"#,
                ],
            ),
            (
                json!({}),
                vec![r#"Variable "$id" of required type "ID!" was not provided."#],
            ),
            (
                json!({"id": null}),
                vec![r#"Variable "$id" of non-null type "ID!" must not be null."#],
            ),
            (
                json!({"id": {"a": 1}, "flag": "yes"}),
                vec![
                    r#"Variable "$id" got invalid value { a: 1 }; ID cannot represent value: { a: 1 }"#,
                    r#"Variable "$flag" got invalid value "yes"; Boolean cannot represent a non boolean value: "yes""#,
                ],
            ),
            (
                json!({"id": "u1", "names": ["a", 2]}),
                vec![
                    r#"Variable "$names" got invalid value 2 at "names[1]"; String cannot represent a non string value: 2"#,
                ],
            ),
            (
                json!({"id": "u1", "names": ["a", null]}),
                vec![
                    r#"Variable "$names" got invalid value null at "names[1]"; Expected non-nullable type "String!" not to be null."#,
                ],
            ),
            (
                json!({"id": "u1", "f": "1.5"}),
                vec![
                    r#"Variable "$f" got invalid value "1.5"; Float cannot represent non numeric value: "1.5""#,
                ],
            ),
        ];
        for (values, expected) in cases {
            assert_eq!(variable_errors(query, values.clone()), expected, "{values}");
        }
    }
}
