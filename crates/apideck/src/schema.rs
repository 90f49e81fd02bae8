//! The `ConnectionImportData` schema of vault.yml 10.34.0, converted to JSON Schema
//! (`nullable: true` -> a `null` type union; descriptions and examples dropped). A contract test
//! checks this copy against the spec file.

use std::sync::LazyLock;

use serde_json::Value;

/// The converted schema, as text.
pub const CONNECTION_IMPORT_DATA_SCHEMA: &str = include_str!("connection_import_data.schema.json");

static VALIDATOR: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    let schema: Value =
        serde_json::from_str(CONNECTION_IMPORT_DATA_SCHEMA).expect("the embedded schema is JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the embedded schema compiles")
});

/// Every violation of `ConnectionImportData` in `body`, described by location and rule only
/// (the body holds secrets; the validator's own messages quote values).
pub fn import_body_violations(body: &Value) -> Vec<String> {
    VALIDATOR
        .iter_errors(body)
        .map(|error| {
            let location = match error.instance_path.as_str() {
                "" => "body".to_owned(),
                path => path.trim_start_matches('/').replace('/', "."),
            };
            let rule = error
                .schema_path
                .as_str()
                .rsplit('/')
                .next()
                .unwrap_or("schema")
                .to_owned();
            match &error.kind {
                jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                    format!("{location}: keys not allowed: {}", unexpected.join(", "))
                }
                _ => format!("{location}: violates `{rule}`"),
            }
        })
        .collect()
}
