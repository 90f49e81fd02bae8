//! Refusals worded like the reference GraphQL implementation (graphql-js 16, on which
//! Tray's Apollo-based server runs), where async-graphql words them differently or does not
//! name the refused value.

use async_graphql_value::Value as AstValue;
use serde_json::Value;

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

/// graphql-js's `inspect`: strings JSON-quoted, objects as `{ key: value }`.
pub(super) fn inspect(value: &Value) -> String {
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

/// graphql-js's `print` of a value node.
pub(super) fn print(value: &AstValue) -> String {
    match value {
        AstValue::Variable(name) => format!("${name}"),
        AstValue::List(items) => format!(
            "[{}]",
            items.iter().map(print).collect::<Vec<_>>().join(", ")
        ),
        AstValue::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{k}: {}", print(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        AstValue::Enum(name) => name.to_string(),
        other => other
            .clone()
            .into_const()
            .and_then(|c| c.into_json().ok())
            .map_or_else(String::new, |v| v.to_string()),
    }
}

/// Why a built-in scalar refuses a literal (graphql-js's `parseLiteral` messages).
pub(super) fn literal_refusal(type_name: &str, value: &AstValue) -> Option<String> {
    let shown = print(value);
    let number = match value {
        AstValue::Number(n) => Some(n),
        _ => None,
    };
    match type_name {
        "Int" => match number.and_then(|n| n.as_i64()) {
            None => Some(format!("Int cannot represent non-integer value: {shown}")),
            Some(n) if i32::try_from(n).is_err() => Some(format!(
                "Int cannot represent non 32-bit signed integer value: {shown}"
            )),
            Some(_) => None,
        },
        "Float" => number
            .is_none()
            .then(|| format!("Float cannot represent non numeric value: {shown}")),
        "String" => (!matches!(value, AstValue::String(_)))
            .then(|| format!("String cannot represent a non string value: {shown}")),
        "Boolean" => (!matches!(value, AstValue::Boolean(_)))
            .then(|| format!("Boolean cannot represent a non boolean value: {shown}")),
        "ID" => {
            let accepted = matches!(value, AstValue::String(_))
                || number.is_some_and(|n| n.as_i64().is_some());
            (!accepted)
                .then(|| format!("ID cannot represent a non-string and non-integer value: {shown}"))
        }
        _ => None,
    }
}

/// Why a built-in scalar refuses a variable value (graphql-js's `parseValue` messages).
pub(super) fn value_refusal(type_name: &str, value: &Value) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
