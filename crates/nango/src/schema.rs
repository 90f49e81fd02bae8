//! The `POST /connections` request schema of nango.yaml, embedded: the body's top level, the
//! three credential objects authport sends (`OAuth2Credentials`, `BasicApiCredentials`,
//! `ApiKeyCredentials`) and `Tags`, with descriptions dropped. A contract test
//! (`tests/contract.rs`) checks this copy against the spec file.

use std::sync::LazyLock;

use serde_json::Value;

/// The embedded schema, as text.
pub const UPSERT_CONNECTION_SCHEMA: &str = include_str!("upsert_connection.schema.json");

static VALIDATOR: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    let schema: Value =
        serde_json::from_str(UPSERT_CONNECTION_SCHEMA).expect("the embedded schema is JSON");
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .expect("the embedded schema compiles")
});

/// Every violation of the upsert schema in `body`, by location and rule only (the body holds
/// secrets; the validator's own messages quote values).
pub fn upsert_body_violations(body: &Value) -> Vec<String> {
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
            format!("{location}: violates `{rule}`")
        })
        .collect()
}
