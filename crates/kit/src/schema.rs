//! A provider's embedded request schema, and violations described by location and rule only:
//! the bodies checked hold secrets, and the validator's own messages quote values.

use std::sync::OnceLock;

use authport_core::MappingError;
pub use jsonschema::Draft;
use serde_json::Value;

/// One violation: where (a dotted path; empty for the whole value) and which schema keyword
/// it breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub location: String,
    pub rule: String,
}

impl Violation {
    pub fn of(error: &jsonschema::ValidationError<'_>) -> Self {
        let location = error
            .instance_path
            .as_str()
            .trim_start_matches('/')
            .replace('/', ".");
        let rule = error
            .schema_path
            .as_str()
            .rsplit('/')
            .next()
            .unwrap_or("schema")
            .to_owned();
        Self { location, rule }
    }
}

/// `body.credentials: violates `type`` (`body` stands for the whole value).
impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let location = if self.location.is_empty() {
            "body"
        } else {
            &self.location
        };
        write!(f, "{location}: violates `{}`", self.rule)
    }
}

/// Every violation of `validator` in `instance`, as `location: violates `rule`` lines.
pub fn violations(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|error| Violation::of(&error).to_string())
        .collect()
}

/// A JSON Schema compiled into the provider at build time (`include_str!`), compiled on first
/// use. Formats are checked. `draft: None` lets the schema's `$schema` decide (Draft 2020-12 by
/// default).
#[derive(Debug)]
pub struct EmbeddedSchema {
    text: &'static str,
    draft: Option<Draft>,
    validator: OnceLock<jsonschema::Validator>,
}

impl EmbeddedSchema {
    pub const fn new(text: &'static str, draft: Option<Draft>) -> Self {
        Self {
            text,
            draft,
            validator: OnceLock::new(),
        }
    }

    /// The schema as text.
    pub fn text(&self) -> &'static str {
        self.text
    }

    /// Every violation in `body`, by location and rule only.
    pub fn violations(&self, body: &Value) -> Vec<String> {
        violations(self.validator(), body)
    }

    /// `body` against the schema, as `map` reports it: one `MappingError` on the field `body`
    /// listing every violation, `what` naming the vendor's schema (e.g. "Nango's upsert request
    /// schema").
    pub fn check_body(&self, body: &Value, what: &str) -> Result<(), MappingError> {
        // The common case asks only whether it is valid, which builds no error per keyword.
        if self.validator().is_valid(body) {
            return Ok(());
        }
        let found = self.violations(body);
        if found.is_empty() {
            return Ok(());
        }
        Err(MappingError::new(
            "body",
            format!("does not match {what}: {}", found.join("; ")),
        ))
    }

    fn validator(&self) -> &jsonschema::Validator {
        self.validator.get_or_init(|| {
            let schema: Value =
                serde_json::from_str(self.text).expect("the embedded schema is JSON");
            let mut options = jsonschema::options();
            if let Some(draft) = self.draft {
                options = options.with_draft(draft);
            }
            options
                .should_validate_formats(true)
                .build(&schema)
                .expect("the embedded schema compiles")
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SCHEMA: &str = r#"{"type": "object", "additionalProperties": false, "required": ["a"],
        "properties": {"a": {"type": "object", "properties": {"n": {"type": "integer"}}}}}"#;
    static EMBEDDED: EmbeddedSchema = EmbeddedSchema::new(SCHEMA, Some(Draft::Draft202012));
    const SECRET: &str = "CANARY-schema-4b2a";

    #[test]
    fn violations_name_location_and_rule_never_values_or_keys() {
        let check = |body: Value, expect: &[&str]| {
            assert_eq!(EMBEDDED.violations(&body), expect, "{body}");
        };
        check(json!({"a": {"n": 1}}), &[]);
        check(json!({"a": {"n": SECRET}}), &["a.n: violates `type`"]);
        check(json!({}), &["body: violates `required`"]);
        check(
            json!({"a": {}, SECRET: SECRET}),
            &["body: violates `additionalProperties`"],
        );
        check(json!(SECRET), &["body: violates `type`"]);
    }

    #[test]
    fn check_body_passes_a_valid_body_and_lists_every_violation_of_another() {
        assert_eq!(EMBEDDED.check_body(&json!({"a": {"n": 1}}), "X"), Ok(()));
        let error = EMBEDDED
            .check_body(&json!({"b": {"n": SECRET}}), "X")
            .unwrap_err();
        assert_eq!(error.field, "body");
        assert_eq!(
            error.message,
            "does not match X: body: violates `additionalProperties`; body: violates `required`"
        );
    }
}
