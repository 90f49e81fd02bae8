//! [`NangoRef`], the typed connection reference, converted to and from the engine's
//! [`TargetRef`] here and nowhere else.

use authport_core::{ProviderError, TargetRef};
use serde_json::{Map, Value, json};

/// The provider name, also the key of `targets.<provider>` in records.
pub const PROVIDER: &str = "nango";

/// A Nango connection: `(provider_config_key, connection_id)` is its identity in every call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NangoRef {
    pub provider_config_key: String,
    pub connection_id: String,
}

impl NangoRef {
    pub fn to_map(&self) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert(
            "provider_config_key".to_owned(),
            json!(self.provider_config_key),
        );
        map.insert("connection_id".to_owned(), json!(self.connection_id));
        map
    }

    /// Reads the JSON object form; a missing or empty id is refused, naming the key only.
    pub fn from_map(map: &Map<String, Value>) -> Result<Self, ProviderError> {
        let text = |key: &str| -> Result<String, ProviderError> {
            map.get(key)
                .and_then(Value::as_str)
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| {
                    ProviderError::rejected(format!(
                        "the nango target reference has no `{key}` string"
                    ))
                })
        };
        Ok(Self {
            provider_config_key: text("provider_config_key")?,
            connection_id: text("connection_id")?,
        })
    }
}

impl From<&NangoRef> for TargetRef {
    fn from(reference: &NangoRef) -> Self {
        TargetRef(reference.to_map())
    }
}

impl TryFrom<&TargetRef> for NangoRef {
    type Error = ProviderError;

    fn try_from(target: &TargetRef) -> Result<Self, Self::Error> {
        Self::from_map(&target.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_round_trip_and_malformed_ones_are_refused_by_key() {
        let original = NangoRef {
            provider_config_key: "hubspot".to_owned(),
            connection_id: "acme-42-hubspot".to_owned(),
        };
        assert_eq!(
            NangoRef::try_from(&TargetRef::from(&original)),
            Ok(original)
        );
        for (value, key) in [
            (json!({"connection_id": "c"}), "provider_config_key"),
            (
                json!({"provider_config_key": "p", "connection_id": 5}),
                "connection_id",
            ),
            (
                json!({"provider_config_key": "", "connection_id": "c"}),
                "provider_config_key",
            ),
        ] {
            let error = NangoRef::from_map(value.as_object().unwrap()).expect_err("refused");
            assert_eq!(error.kind().as_str(), "rejected");
            assert!(error.message().contains(key), "{error}");
        }
    }
}
