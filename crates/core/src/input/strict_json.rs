//! One record's JSON parsed into a `serde_json::Value`, refusing an object that repeats a key.
//!
//! serde_json keeps the last of two equal keys, so `{"id": "a", "id": "b"}` would silently
//! become record `b`. This visitor builds the same `Value` in the same single pass and stops at
//! the first repeated key. It never looks at a value to report it: the error carries only the
//! path of keys and indexes down to the repeated key, which the record module then prints by
//! its own rules (format names as they are, free-form names escaped, unknown names withheld).

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};

use crate::record::PathSegment;

/// What went wrong: a syntax error (serde_json's own, which names a position but never the
/// content), or a repeated key at a path.
pub(crate) enum StrictError {
    Syntax(serde_json::Error),
    DuplicateKey {
        /// Outermost first; the last segment is the repeated key.
        path: Vec<PathSegment>,
        /// 1-based line of the repeated key within the parsed text.
        line: usize,
    },
}

/// Parses `text` as one JSON value, refusing repeated keys in any object.
pub(crate) fn parse(text: &str) -> Result<Value, StrictError> {
    let trail = DuplicateTrail::default();
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed = StrictValue(&trail)
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    match (parsed, trail.0.into_inner()) {
        (Ok(value), _) => Ok(value),
        (Err(error), Some(mut reversed)) => {
            reversed.reverse();
            Err(StrictError::DuplicateKey {
                path: reversed,
                line: error.line(),
            })
        }
        (Err(error), None) => Err(StrictError::Syntax(error)),
    }
}

/// The path to a repeated key, innermost first: filled only on the way out of a failed parse,
/// so a good record pays nothing for it.
#[derive(Default)]
struct DuplicateTrail(RefCell<Option<Vec<PathSegment>>>);

impl DuplicateTrail {
    fn start(&self, key: String) {
        *self.0.borrow_mut() = Some(vec![PathSegment::Key(key)]);
    }

    /// Adds the enclosing segment while a duplicate-key error passes through a level.
    fn enclose(&self, segment: PathSegment) {
        if let Some(path) = self.0.borrow_mut().as_mut() {
            path.push(segment);
        }
    }
}

struct StrictValue<'t>(&'t DuplicateTrail);

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        // serde_json never produces NaN or an infinity from JSON text, so this is always `Some`.
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(access.size_hint().unwrap_or(0));
        loop {
            match access.next_element_seed(StrictValue(self.0)) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => return Ok(Value::Array(items)),
                Err(error) => {
                    self.0.enclose(PathSegment::Index(items.len()));
                    return Err(error);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            // One search of the map for both the duplicate check and the insertion.
            let slot = match map.entry(key) {
                Entry::Vacant(slot) => slot,
                Entry::Occupied(taken) => {
                    self.0.start(taken.key().clone());
                    // The text is only a marker: `parse` reports the trail, never this message.
                    return Err(de::Error::custom("duplicate key"));
                }
            };
            match access.next_value_seed(StrictValue(self.0)) {
                Ok(value) => {
                    slot.insert(value);
                }
                Err(error) => {
                    self.0.enclose(PathSegment::Key(slot.key().clone()));
                    return Err(error);
                }
            }
        }
        Ok(Value::Object(map))
    }
}
