//! The spec's checks on argument values, worded as graphql-js words them: literals and
//! variable positions (validation: "ValuesOfCorrectType", "VariablesInAllowedPosition") and
//! variable values ("CoerceVariableValues"). async-graphql performs the same checks but its
//! messages neither follow the reference wording nor name the refused value. Types come from
//! the served schema's own SDL, so these checks cannot drift from it.

use std::collections::{HashMap, HashSet};

use async_graphql::parser::Positioned;
use async_graphql::parser::types::{
    BaseType, ExecutableDocument, OperationDefinition, Selection, SelectionSet, Type,
};
use async_graphql_value::Value as AstValue;
use serde_json::{Map, Value};

use super::index::{InputField, TypeIndex, named};
use super::messages::{inspect, literal_refusal, print, value_refusal};

/// A refused request: message, 1-based position, and the `extensions.code` Apollo uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refused {
    pub message: String,
    pub line: usize,
    pub column: usize,
    pub code: &'static str,
}

/// "VariablesInAllowedPosition": may a variable of type `var` be used where `loc` is expected?
fn allowed(var: &Type, loc: &Type) -> bool {
    if !loc.nullable && var.nullable {
        return false;
    }
    match (&var.base, &loc.base) {
        (BaseType::Named(a), BaseType::Named(b)) => a == b,
        (BaseType::List(a), BaseType::List(b)) => allowed(a, b),
        _ => false,
    }
}

/// Checks the selected operation's literal arguments and variable positions.
pub(super) fn check_document(
    index: &TypeIndex,
    document: &ExecutableDocument,
    operation: &Positioned<OperationDefinition>,
) -> Vec<Refused> {
    let root = match operation.node.ty {
        async_graphql::parser::types::OperationType::Mutation => "Mutation",
        _ => "Query",
    };
    let mut walker = Walker {
        index,
        document,
        variables: operation
            .node
            .variable_definitions
            .iter()
            .map(|d| {
                let name = d.node.name.node.to_string();
                (
                    name,
                    (d.node.var_type.node.clone(), d.node.default_value.is_some()),
                )
            })
            .collect(),
        seen_fragments: HashSet::new(),
        refused: Vec::new(),
    };
    walker.selection_set(root, &operation.node.selection_set.node);
    walker.refused
}

struct Walker<'a> {
    index: &'a TypeIndex,
    document: &'a ExecutableDocument,
    variables: HashMap<String, InputField>,
    seen_fragments: HashSet<String>,
    refused: Vec<Refused>,
}

impl Walker<'_> {
    fn refuse(&mut self, message: String, pos: async_graphql::Pos) {
        self.refused.push(Refused {
            message,
            line: pos.line,
            column: pos.column,
            code: "GRAPHQL_VALIDATION_FAILED",
        });
    }

    fn selection_set(&mut self, parent: &str, set: &SelectionSet) {
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    // Unknown fields and arguments are the engine's to report.
                    let Some((args, ty)) = self
                        .index
                        .fields
                        .get(parent)
                        .and_then(|fields| fields.get(field.node.name.node.as_str()))
                    else {
                        continue;
                    };
                    for (name, value) in &field.node.arguments {
                        if let Some(arg_ty) = args.get(name.node.as_str()) {
                            self.value(&value.node, arg_ty, value.pos);
                        }
                    }
                    self.selection_set(named(ty), &field.node.selection_set.node);
                }
                Selection::InlineFragment(fragment) => {
                    let on = fragment
                        .node
                        .type_condition
                        .as_ref()
                        .map_or(parent, |c| c.node.on.node.as_str());
                    self.selection_set(on, &fragment.node.selection_set.node);
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.to_string();
                    let Some(fragment) = self.document.fragments.get(name.as_str()) else {
                        continue;
                    };
                    // A fragment is walked once (cycles are the engine's to report).
                    if self.seen_fragments.insert(name) {
                        let on = fragment.node.type_condition.node.on.node.to_string();
                        self.selection_set(&on, &fragment.node.selection_set.node);
                    }
                }
            }
        }
    }

    fn value(&mut self, value: &AstValue, ty: &Type, pos: async_graphql::Pos) {
        match value {
            AstValue::Variable(name) => {
                let Some((declared, has_default)) = self.variables.get(name.as_str()).cloned()
                else {
                    return;
                };
                // A nullable variable with a default may fill a non-null position.
                let effective = Type {
                    base: declared.base.clone(),
                    nullable: declared.nullable && !has_default,
                };
                if !allowed(&effective, ty) {
                    self.refuse(
                        format!(
                            "Variable \"${name}\" of type \"{declared}\" used in position expecting type \"{ty}\"."
                        ),
                        pos,
                    );
                }
            }
            AstValue::Null if !ty.nullable => {
                self.refuse(format!("Expected value of type \"{ty}\", found null."), pos);
            }
            AstValue::Null => {}
            _ => match &ty.base {
                BaseType::List(item) => match value {
                    AstValue::List(items) => {
                        for element in items {
                            self.value(element, item, pos);
                        }
                    }
                    single => self.value(single, item, pos),
                },
                BaseType::Named(type_name) => match self.index.inputs.get(type_name.as_str()) {
                    Some(fields) => self.input_object(type_name, fields, value, pos),
                    None => {
                        if let Some(reason) = literal_refusal(type_name, value) {
                            self.refuse(reason, pos);
                        }
                    }
                },
            },
        }
    }

    fn input_object(
        &mut self,
        type_name: &str,
        fields: &[(String, InputField)],
        value: &AstValue,
        pos: async_graphql::Pos,
    ) {
        let AstValue::Object(given) = value else {
            self.refuse(
                format!(
                    "Expected value of type \"{type_name}\", found {}.",
                    print(value)
                ),
                pos,
            );
            return;
        };
        for key in given.keys() {
            if !fields.iter().any(|(name, _)| name == key.as_str()) {
                self.refuse(
                    format!("Field \"{key}\" is not defined by type \"{type_name}\"."),
                    pos,
                );
            }
        }
        for (name, (ty, has_default)) in fields {
            match given.get(name.as_str()) {
                Some(field_value) => self.value(field_value, ty, pos),
                None if !ty.nullable && !has_default => self.refuse(
                    format!(
                        "Field \"{type_name}.{name}\" of required type \"{ty}\" was not provided."
                    ),
                    pos,
                ),
                None => {}
            }
        }
    }
}

/// Coerces the request's variables against their definitions, as the spec does before
/// executing.
pub(super) fn check_variables(
    index: &TypeIndex,
    operation: &OperationDefinition,
    values: &Map<String, Value>,
) -> Vec<Refused> {
    let mut refused = Vec::new();
    for definition in &operation.variable_definitions {
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
            Some(value) => coerce(index, ty, value, "").err().map(|(bad, at, reason)| {
                let at = if at.is_empty() {
                    String::new()
                } else {
                    format!(" at \"{name}{at}\"")
                };
                format!(
                    "Variable \"${name}\" got invalid value {}{at}; {reason}",
                    inspect(bad)
                )
            }),
        };
        if let Some(message) = message {
            refused.push(Refused {
                message,
                line: definition.pos.line,
                column: definition.pos.column,
                code: "BAD_USER_INPUT",
            });
        }
    }
    refused
}

/// On failure: the refused value, its path inside the variable (`[0].authId`), the reason.
fn coerce<'v>(
    index: &TypeIndex,
    ty: &Type,
    value: &'v Value,
    path: &str,
) -> Result<(), (&'v Value, String, String)> {
    if value.is_null() {
        return if ty.nullable {
            Ok(())
        } else {
            Err((
                value,
                path.to_owned(),
                format!("Expected non-nullable type \"{ty}\" not to be null."),
            ))
        };
    }
    match &ty.base {
        BaseType::List(item) => match value {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .try_for_each(|(i, element)| coerce(index, item, element, &format!("{path}[{i}]"))),
            // A single value is coerced as a list of one.
            single => coerce(index, item, single, path),
        },
        BaseType::Named(type_name) => match index.inputs.get(type_name.as_str()) {
            Some(fields) => {
                let Value::Object(given) = value else {
                    return Err((
                        value,
                        path.to_owned(),
                        format!("Expected type \"{type_name}\" to be an object."),
                    ));
                };
                for (name, (field_ty, has_default)) in fields {
                    match given.get(name) {
                        Some(v) => coerce(index, field_ty, v, &format!("{path}.{name}"))?,
                        None if !field_ty.nullable && !has_default => {
                            return Err((
                                value,
                                path.to_owned(),
                                format!(
                                    "Field \"{name}\" of required type \"{field_ty}\" was not provided."
                                ),
                            ));
                        }
                        None => {}
                    }
                }
                match given
                    .keys()
                    .find(|k| !fields.iter().any(|(name, _)| name == *k))
                {
                    Some(key) => Err((
                        value,
                        path.to_owned(),
                        format!("Field \"{key}\" is not defined by type \"{type_name}\"."),
                    )),
                    None => Ok(()),
                }
            }
            None => match value_refusal(type_name, value) {
                Some(reason) => Err((value, path.to_owned(), reason)),
                None => Ok(()),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;
    use serde_json::json;

    fn variable_errors(query: &str, values: Value) -> Vec<String> {
        let document = parse_query(query).unwrap();
        let (_, operation) = document.operations.iter().next().unwrap();
        let values = values.as_object().unwrap().clone();
        check_variables(index(), &operation.node, &values)
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

    fn index() -> &'static TypeIndex {
        super::super::type_index()
    }

    fn document_errors(query: &str) -> Vec<String> {
        let document = parse_query(query).unwrap();
        let (_, operation) = document.operations.iter().next().unwrap();
        check_document(index(), &document, operation)
            .into_iter()
            .map(|e| e.message)
            .collect()
    }

    #[test]
    fn the_index_knows_the_served_types() {
        let users = &index().fields["Query"]["users"];
        assert_eq!(users.0["first"].to_string(), "Int");
        assert_eq!(users.1.to_string(), "UserConnection!");
        let auth_value: Vec<&str> = index().inputs["AuthValue"]
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(auth_value, ["externalId", "authId"]);
    }

    #[test]
    fn literals_and_variable_positions_are_checked_with_graphql_js_messages() {
        let cases = [
            (
                "query { users(first: 5) { pageInfo { hasNextPage } } }",
                vec![],
            ),
            (
                "query { users(first: \"five\") { pageInfo { hasNextPage } } }",
                vec![r#"Int cannot represent non-integer value: "five""#],
            ),
            (
                "query { users(first: 1.5, criteria: {name: 7}) { pageInfo { hasNextPage } } }",
                vec![
                    "Int cannot represent non-integer value: 1.5",
                    "String cannot represent a non string value: 7",
                ],
            ),
            (
                "query ($n: String) { users(criteria: {name: $n}) { pageInfo { hasNextPage } } }",
                vec![],
            ),
            (
                "query ($n: Int) { users(criteria: {name: $n}) { pageInfo { hasNextPage } } }",
                vec![r#"Variable "$n" of type "Int" used in position expecting type "String"."#],
            ),
            (
                "mutation ($id: ID) { authorize(input: {userId: $id}) { accessToken } }",
                vec![r#"Variable "$id" of type "ID" used in position expecting type "ID!"."#],
            ),
            (
                "mutation ($id: ID = \"u\") { authorize(input: {userId: $id}) { accessToken } }",
                vec![],
            ),
            (
                "mutation { authorize(input: {user: \"u\"}) { accessToken } }",
                vec![
                    r#"Field "user" is not defined by type "AuthorizeInput"."#,
                    r#"Field "AuthorizeInput.userId" of required type "ID!" was not provided."#,
                ],
            ),
            (
                "mutation { authorize(input: {userId: null}) { accessToken } }",
                vec![r#"Expected value of type "ID!", found null."#],
            ),
            (
                "mutation { authorize(input: {userId: true}) { accessToken } }",
                vec!["ID cannot represent a non-string and non-integer value: true"],
            ),
            (
                "mutation { createSolutionInstance(input: {solutionId: \"s\", instanceName: \"n\", authValues: {externalId: \"e\"}}) { clientMutationId } }",
                vec![r#"Field "AuthValue.authId" of required type "String!" was not provided."#],
            ),
            (
                "query { viewer { ...V } } fragment V on Viewer { solutions(first: \"x\") { pageInfo { hasNextPage } } }",
                vec![r#"Int cannot represent non-integer value: "x""#],
            ),
        ];
        for (query, expected) in cases {
            assert_eq!(document_errors(query), expected, "{query}");
        }
    }

    #[test]
    fn input_object_variables_are_coerced_with_graphql_js_messages() {
        let query = "mutation ($values: [AuthValue!]) { createSolutionInstance(input: {solutionId: \"s\", instanceName: \"n\", authValues: $values}) { clientMutationId } }";
        let cases = [
            (
                json!({"values": [{"externalId": "e", "authId": "a"}]}),
                vec![],
            ),
            (
                json!({"values": [{"externalId": "e"}]}),
                vec![
                    r#"Variable "$values" got invalid value { externalId: "e" } at "values[0]"; Field "authId" of required type "String!" was not provided."#,
                ],
            ),
            (
                json!({"values": [{"externalId": "e", "authId": 5}]}),
                vec![
                    r#"Variable "$values" got invalid value 5 at "values[0].authId"; String cannot represent a non string value: 5"#,
                ],
            ),
            (
                json!({"values": [{"externalId": "e", "authId": "a", "slot": 1}]}),
                vec![
                    r#"Variable "$values" got invalid value { authId: "a", externalId: "e", slot: 1 } at "values[0]"; Field "slot" is not defined by type "AuthValue"."#,
                ],
            ),
            (
                json!({"values": "e"}),
                vec![
                    r#"Variable "$values" got invalid value "e"; Expected type "AuthValue" to be an object."#,
                ],
            ),
        ];
        for (values, expected) in cases {
            assert_eq!(variable_errors(query, values.clone()), expected, "{values}");
        }
    }
}
