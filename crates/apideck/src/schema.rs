//! The `ConnectionImportData` schema of vault.yml 10.34.0, converted to JSON Schema
//! (`nullable: true` -> a `null` type union; descriptions and examples dropped). A contract test
//! checks this copy against the spec file.

use authport_kit::EmbeddedSchema;
use serde_json::Value;

/// The converted schema, as text.
pub const CONNECTION_IMPORT_DATA_SCHEMA: &str = include_str!("connection_import_data.schema.json");

/// The schema declares no `$schema`: the validator's default draft applies.
pub static IMPORT_SCHEMA: EmbeddedSchema = EmbeddedSchema::new(CONNECTION_IMPORT_DATA_SCHEMA, None);

/// Every violation of `ConnectionImportData` in `body`, described by location and rule only
/// (the body holds secrets; the validator's own messages quote values).
pub fn import_body_violations(body: &Value) -> Vec<String> {
    IMPORT_SCHEMA.violations(body)
}
