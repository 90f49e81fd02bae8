//! The `POST /connections` request schema of nango.yaml, embedded: the body's top level, the
//! three credential objects authport sends (`OAuth2Credentials`, `BasicApiCredentials`,
//! `ApiKeyCredentials`) and `Tags`, with descriptions dropped. A contract test
//! (`tests/contract.rs`) checks this copy against the spec file.

use authport_kit::EmbeddedSchema;
use authport_kit::schema::Draft;
use serde_json::Value;

/// The embedded schema, as text.
pub const UPSERT_CONNECTION_SCHEMA: &str = include_str!("upsert_connection.schema.json");

pub static UPSERT_SCHEMA: EmbeddedSchema =
    EmbeddedSchema::new(UPSERT_CONNECTION_SCHEMA, Some(Draft::Draft202012));

/// Every violation of the upsert schema in `body`, by location and rule only (the body holds
/// secrets; the validator's own messages quote values).
pub fn upsert_body_violations(body: &Value) -> Vec<String> {
    UPSERT_SCHEMA.violations(body)
}
