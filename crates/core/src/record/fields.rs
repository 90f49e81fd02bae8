//! Reading the fields of one JSON object with every problem located to its path.
//!
//! The object is owned and each value is taken out of it as it is read, so the record's
//! strings and maps are moved from the parsed JSON, not copied (the reader parses every record
//! once and needs the tree for nothing else).

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::{Map, Value};

use super::FieldProblem;
use super::names::unknown_fields_message;

pub(super) fn secret_value(
    value: Value,
    path: &str,
    problems: &mut Problems,
) -> Option<SecretString> {
    match value {
        Value::String(text) if text.trim().is_empty() => {
            problems.add(path, "secret is empty");
            None
        }
        Value::String(text) => Some(SecretString::from(text)),
        other => {
            problems.add(
                path,
                format!("expected a string, found {}", type_name(&other)),
            );
            None
        }
    }
}

/// The JSON type of a value, for messages (never the value itself).
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[derive(Default)]
pub(super) struct Problems(pub(super) Vec<FieldProblem>);

impl Problems {
    pub(super) fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldProblem {
            field: field.into(),
            message: message.into(),
        });
    }
}

/// Reads the fields of one JSON object, recording problems with their paths. Each key is read
/// at most once: reading takes its value out (leaving `null`, so the object keeps its keys for
/// [`Self::reject_unknown`]).
pub(super) struct Fields<'p> {
    map: Map<String, Value>,
    /// Borrowed for the objects the format names (`owner`, `auth`): a path is built only for
    /// a message or a nested operator-named object.
    pub(super) path: Cow<'static, str>,
    pub(super) problems: &'p mut Problems,
}

impl<'p> Fields<'p> {
    pub(super) fn new(
        map: Map<String, Value>,
        path: Cow<'static, str>,
        problems: &'p mut Problems,
    ) -> Self {
        Self {
            map,
            path,
            problems,
        }
    }

    pub(super) fn field_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Takes the value of `key` out, treating an explicit `null` as absent.
    fn take(&mut self, key: &str) -> Option<Value> {
        self.map
            .get_mut(key)
            .map(Value::take)
            .filter(|v| !v.is_null())
    }

    fn missing(&mut self, key: &str) {
        let path = self.field_path(key);
        self.problems.add(path, "is required");
    }

    fn wrong_type(&mut self, key: &str, expected: &str, found: &Value) {
        let path = self.field_path(key);
        self.problems.add(
            path,
            format!("expected {expected}, found {}", type_name(found)),
        );
    }

    pub(super) fn required_text(&mut self, key: &str) -> Option<String> {
        match self.take(key) {
            None => {
                self.missing(key);
                None
            }
            Some(Value::String(text)) if text.trim().is_empty() => {
                let path = self.field_path(key);
                self.problems.add(path, "must not be empty");
                None
            }
            Some(Value::String(text)) => self.checked_text(key, text),
            Some(other) => {
                self.wrong_type(key, "a string", &other);
                None
            }
        }
    }

    pub(super) fn optional_text(&mut self, key: &str) -> Option<String> {
        match self.take(key) {
            None => None,
            Some(Value::String(text)) => self.checked_text(key, text),
            Some(other) => {
                self.wrong_type(key, "a string", &other);
                None
            }
        }
    }

    /// The one rule for every non-secret text of the format (ids, names, service, scopes,
    /// ...): no control characters. These texts are printed in logs, plans and reports, and an
    /// escape sequence or a newline there could rewrite the operator's terminal or forge lines.
    fn checked_text(&mut self, key: &str, text: String) -> Option<String> {
        if has_control_characters(&text) {
            let path = self.field_path(key);
            self.problems.add(path, CONTROL_CHARACTERS);
            return None;
        }
        Some(text)
    }

    pub(super) fn required_secret(&mut self, key: &str) -> Option<SecretString> {
        match self.take(key) {
            None => {
                self.missing(key);
                None
            }
            Some(value) => {
                let path = self.field_path(key);
                secret_value(value, &path, self.problems)
            }
        }
    }

    pub(super) fn optional_secret(&mut self, key: &str) -> Option<SecretString> {
        let value = self.take(key)?;
        let path = self.field_path(key);
        secret_value(value, &path, self.problems)
    }

    pub(super) fn required_object(
        &mut self,
        key: &'static str,
    ) -> Option<(Map<String, Value>, Cow<'static, str>)> {
        match self.take(key) {
            None => {
                self.missing(key);
                None
            }
            Some(Value::Object(map)) => {
                let path = if self.path.is_empty() {
                    Cow::Borrowed(key)
                } else {
                    Cow::Owned(self.field_path(key))
                };
                Some((map, path))
            }
            Some(other) => {
                self.wrong_type(key, "an object", &other);
                None
            }
        }
    }

    pub(super) fn optional_object(&mut self, key: &str) -> Option<Map<String, Value>> {
        match self.take(key) {
            None => None,
            Some(Value::Object(map)) => Some(map),
            Some(other) => {
                self.wrong_type(key, "an object", &other);
                None
            }
        }
    }

    pub(super) fn optional_string_list(&mut self, key: &str) -> Vec<String> {
        match self.take(key) {
            None => Vec::new(),
            Some(Value::Array(items)) => {
                let mut list = Vec::with_capacity(items.len());
                for (index, item) in items.into_iter().enumerate() {
                    match item {
                        Value::String(text) if has_control_characters(&text) => {
                            let path = format!("{}[{index}]", self.field_path(key));
                            self.problems.add(path, CONTROL_CHARACTERS);
                        }
                        Value::String(text) => list.push(text),
                        other => {
                            let path = format!("{}[{index}]", self.field_path(key));
                            self.problems.add(
                                path,
                                format!("expected a string, found {}", type_name(&other)),
                            );
                        }
                    }
                }
                list
            }
            Some(other) => {
                self.wrong_type(key, "an array of strings", &other);
                Vec::new()
            }
        }
    }

    /// `Some(None)` when absent, `None` when a problem was recorded.
    pub(super) fn optional_integer(&mut self, key: &str) -> Option<Option<i64>> {
        match self.take(key) {
            None => Some(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(n) => Some(Some(n)),
                None => {
                    let path = self.field_path(key);
                    self.problems
                        .add(path, "expected a whole number of seconds");
                    None
                }
            },
            Some(other) => {
                self.wrong_type(key, "an integer", &other);
                None
            }
        }
    }

    /// `Some(None)` when absent, `None` when a problem was recorded.
    pub(super) fn optional_instant(&mut self, key: &str) -> Option<Option<DateTime<Utc>>> {
        match self.take(key) {
            None => Some(None),
            Some(Value::String(text)) => match DateTime::parse_from_rfc3339(&text) {
                Ok(at) => Some(Some(at.with_timezone(&Utc))),
                Err(_) => {
                    let path = self.field_path(key);
                    self.problems.add(
                        path,
                        "expected an RFC 3339 date-time such as 2026-11-01T10:00:00Z",
                    );
                    None
                }
            },
            Some(other) => {
                self.wrong_type(key, "an RFC 3339 date-time string", &other);
                None
            }
        }
    }

    /// Records one problem for the keys of this object that are not in `known`, without their
    /// names (see the `names` module for why).
    pub(super) fn reject_unknown(&mut self, known: &[&'static str]) {
        self.reject_unknown_auth_fields(known, &[]);
    }

    /// Like [`Self::reject_unknown`] in an `auth` object, where a key of another auth type
    /// (one of `other_types_fields`) is a name of the format, ours, so it is named.
    pub(super) fn reject_unknown_auth_fields(
        &mut self,
        known: &[&'static str],
        other_types_fields: &[&'static str],
    ) {
        let mut unknown = Vec::new();
        for key in self.map.keys().map(String::as_str) {
            if known.contains(&key) {
                continue;
            }
            match other_types_fields.iter().find(|name| **name == key) {
                Some(name) => {
                    let path = self.field_path(name);
                    self.problems.add(
                        path,
                        format!(
                            "belongs to another auth type; expected one of: {}",
                            known.join(", ")
                        ),
                    );
                }
                None => unknown.push(key),
            }
        }
        if !unknown.is_empty() {
            let message = unknown_fields_message(&unknown, known, self.path.is_empty());
            self.problems.add(self.path.clone(), message);
        }
    }
}

pub(super) const CONTROL_CHARACTERS: &str = "must not contain control characters";

/// Whether `text` holds a control character (`char::is_control`, Unicode's Cc), checked over
/// the bytes without decoding: Cc is U+0000-U+001F and U+007F (one byte each) and U+0080-U+009F
/// (0xC2 then 0x80-0x9F), and 0xC2 only ever starts a character in UTF-8.
pub(super) fn has_control_characters(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().any(|(at, &byte)| {
        byte < 0x20
            || byte == 0x7F
            || (byte == 0xC2 && matches!(bytes.get(at + 1), Some(0x80..=0x9F)))
    })
}

#[cfg(test)]
mod tests {
    use super::has_control_characters;

    #[test]
    fn control_characters_are_found_exactly_as_char_is_control_finds_them() {
        for character in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            for text in [
                character.to_string(),
                format!("a{character}"),
                format!("{character}é"),
            ] {
                assert_eq!(
                    has_control_characters(&text),
                    text.chars().any(char::is_control),
                    "U+{:04X}",
                    u32::from(character)
                );
            }
        }
    }
}
