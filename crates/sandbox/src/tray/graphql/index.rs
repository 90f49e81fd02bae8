//! The served schema's types, read back from its own SDL: what the argument checks need to
//! know about fields, arguments and input objects, without reaching into the engine.

use std::collections::HashMap;

use async_graphql::parser::types::{
    BaseType, Type, TypeDefinition, TypeKind, TypeSystemDefinition,
};

/// An input field or argument: its type and whether it has a default.
pub(super) type InputField = (Type, bool);

/// An output field: its arguments' types and its own type.
pub(super) type FieldDef = (HashMap<String, Type>, Type);

/// The schema's types, as far as argument values need them.
#[derive(Debug, Default)]
pub(super) struct TypeIndex {
    /// Object type → field → argument → type.
    pub fields: HashMap<String, HashMap<String, FieldDef>>,
    /// Input object → its fields in declaration order.
    pub inputs: HashMap<String, Vec<(String, InputField)>>,
}

impl TypeIndex {
    pub(super) fn from_sdl(sdl: &str) -> Self {
        let mut index = TypeIndex::default();
        let Ok(document) = async_graphql::parser::parse_schema(sdl) else {
            return index;
        };
        for definition in document.definitions {
            if let TypeSystemDefinition::Type(ty) = definition {
                index.add(ty.node);
            }
        }
        index
    }

    fn add(&mut self, ty: TypeDefinition) {
        let name = ty.name.node.to_string();
        match ty.kind {
            TypeKind::Object(object) => {
                let fields = object
                    .fields
                    .into_iter()
                    .map(|f| {
                        let args = f
                            .node
                            .arguments
                            .into_iter()
                            .map(|a| (a.node.name.node.to_string(), a.node.ty.node))
                            .collect();
                        (f.node.name.node.to_string(), (args, f.node.ty.node))
                    })
                    .collect();
                self.fields.insert(name, fields);
            }
            TypeKind::InputObject(input) => {
                let fields = input
                    .fields
                    .into_iter()
                    .map(|f| {
                        let has_default = f.node.default_value.is_some();
                        (f.node.name.node.to_string(), (f.node.ty.node, has_default))
                    })
                    .collect();
                self.inputs.insert(name, fields);
            }
            _ => {}
        }
    }
}

pub(super) fn named(ty: &Type) -> &str {
    match &ty.base {
        BaseType::Named(name) => name.as_str(),
        BaseType::List(item) => named(item),
    }
}
