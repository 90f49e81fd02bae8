//! Settings read from JSON: a provider's config section (`[apideck]`) and a record's
//! `targets.<provider>` object. serde's own messages quote values (`invalid type: string "…"`)
//! and unknown keys, either of which may be a secret put in the wrong place, so every problem
//! here is located by its path alone.

use authport_core::{ConfigError, MappingError};
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::Segment;

/// Why a JSON value is not the expected shape, without its values or unknown keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingsProblem {
    /// The object has a top-level key outside the allowed ones.
    UnknownKey,
    /// The value at this dotted path (empty: the whole value) has the wrong type or value.
    At(String),
    /// The object at this dotted path (empty: the whole value) has a key it does not allow.
    UnknownKeyAt(String),
}

/// Deserializes `value`, keeping only the path of a problem.
pub fn from_json_located<T: DeserializeOwned>(value: &Value) -> Result<T, SettingsProblem> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let mut segments: Vec<&Segment> = error.path().iter().collect();
        // serde's path to an unknown field ends with the field's own name: drop it, so that
        // the path names the object holding it and never the key itself.
        let unknown_key = error.inner().to_string().starts_with("unknown field");
        if unknown_key {
            segments.pop();
        }
        let path = dotted(&segments);
        if unknown_key {
            SettingsProblem::UnknownKeyAt(path)
        } else {
            SettingsProblem::At(path)
        }
    })
}

/// `a.b[0].c`, as serde_path_to_error writes a path; empty for the whole value.
fn dotted(segments: &[&Segment]) -> String {
    let mut path = String::new();
    for segment in segments {
        if !path.is_empty() && !matches!(segment, Segment::Seq { .. }) {
            path.push('.');
        }
        path.push_str(&segment.to_string());
    }
    path
}

/// Deserializes `value`, whose top-level keys (when it is an object) must be among `allowed`.
pub fn settings_from_json<T: DeserializeOwned>(
    value: &Value,
    allowed: &[&str],
) -> Result<T, SettingsProblem> {
    if let Value::Object(map) = value
        && map.keys().any(|key| !allowed.contains(&key.as_str()))
    {
        return Err(SettingsProblem::UnknownKey);
    }
    from_json_located(value)
}

/// Reads a record's settings object at `field` (e.g. `targets.nango`), whose keys are
/// `allowed`. The problem is located by its field path and lists the allowed keys.
pub fn record_settings<T: DeserializeOwned>(
    value: &Value,
    field: &str,
    allowed: &[&str],
) -> Result<T, MappingError> {
    settings_from_json(value, allowed).map_err(|problem| match problem {
        SettingsProblem::UnknownKey => MappingError::new(
            field,
            format!("has a key that is not one of {}", allowed.join(", ")),
        ),
        SettingsProblem::At(path) if path.is_empty() => {
            MappingError::new(field, "must be an object of settings")
        }
        SettingsProblem::UnknownKeyAt(path) => MappingError::new(
            if path.is_empty() {
                field.to_owned()
            } else {
                format!("{field}.{path}")
            },
            "has a key that is not allowed",
        ),
        SettingsProblem::At(path) => {
            MappingError::new(format!("{field}.{path}"), "has the wrong type or value")
        }
    })
}

/// Reads the config section `[section]`, whose keys are `allowed` (`settings` lists them in
/// the message). Secrets are taken out of the section before this is called.
pub fn section_settings<T: DeserializeOwned>(
    section: &str,
    value: &Value,
    allowed: &[&str],
) -> Result<T, ConfigError> {
    settings_from_json(value, allowed).map_err(|problem| match problem {
        SettingsProblem::UnknownKey => ConfigError::new(format!(
            "[{section}] has a key that is not a setting (settings: {})",
            allowed.join(", ")
        )),
        SettingsProblem::At(path) => ConfigError::new(format!(
            "[{section}] {path}: a value of the wrong type, or an unknown key"
        )),
        SettingsProblem::UnknownKeyAt(path) if path.is_empty() => ConfigError::new(format!(
            "invalid [{section}] config: a key that is not a setting"
        )),
        SettingsProblem::UnknownKeyAt(path) => ConfigError::new(format!(
            "invalid [{section}] config: `{path}` has a key that is not a setting"
        )),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        port: Option<u16>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Settings {
        name: Option<String>,
        #[serde(default)]
        inner: BTreeMap<String, Inner>,
    }

    const ALLOWED: [&str; 2] = ["name", "inner"];
    const SECRET: &str = "CANARY-settings-7d1e";

    fn check(value: Value, expect: Result<(), SettingsProblem>) {
        let got = settings_from_json::<Settings>(&value, &ALLOWED).map(|_| ());
        assert_eq!(got, expect, "{value}");
    }

    #[test]
    fn problems_are_located_by_path() {
        check(json!({"name": "a", "inner": {"x": {"port": 1}}}), Ok(()));
        check(json!({}), Ok(()));
        check(json!({SECRET: 1}), Err(SettingsProblem::UnknownKey));
        check(json!({"name": 7}), Err(SettingsProblem::At("name".into())));
        check(
            json!({"inner": {"x": {"port": SECRET}}}),
            Err(SettingsProblem::At("inner.x.port".into())),
        );
        check(json!(SECRET), Err(SettingsProblem::At(String::new())));
        check(
            json!({"inner": {"x": {"port": 1}, "y": true}}),
            Err(SettingsProblem::At("inner.y".into())),
        );
        check(
            json!({"inner": {"x": {SECRET: 1}}}),
            Err(SettingsProblem::UnknownKeyAt("inner.x".into())),
        );
    }

    #[test]
    fn messages_never_quote_a_value_or_an_unknown_key() {
        for value in [
            json!({SECRET: 1}),
            json!({"name": [SECRET]}),
            json!({"inner": {"x": {SECRET: 1}}}),
            json!({"inner": {"x": {"port": SECRET}}}),
            json!(SECRET),
        ] {
            let record = record_settings::<Settings>(&value, "targets.x", &ALLOWED).unwrap_err();
            let config = section_settings::<Settings>("x", &value, &ALLOWED).unwrap_err();
            for text in [record.to_string(), config.to_string()] {
                assert!(!text.contains(SECRET), "{text}");
            }
        }
    }

    #[test]
    fn record_problems_name_the_field_path() {
        let error =
            record_settings::<Settings>(&json!({"name": 1}), "targets.x", &ALLOWED).unwrap_err();
        assert_eq!(error.field, "targets.x.name");
        let error = record_settings::<Settings>(&json!([]), "targets.x", &ALLOWED).unwrap_err();
        assert_eq!(error.field, "targets.x");
        let error =
            record_settings::<Settings>(&json!({"k": 1}), "targets.x", &ALLOWED).unwrap_err();
        assert!(error.to_string().contains("name, inner"), "{error}");
    }
}
