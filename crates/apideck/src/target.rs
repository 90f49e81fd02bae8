//! Where a record goes: the connector it resolves to (record, then config, then the built-in
//! table), and [`ApideckRef`], the typed connection reference the engine stores for it.

use std::collections::BTreeMap;

use authport_core::{MappingError, ProviderError, TargetRef};
use serde_json::{Map, Value, json};

use crate::config::TargetOverride;
use crate::defaults::built_in_target;

/// The provider name, also the key of `targets.<provider>` in records.
pub const PROVIDER: &str = "apideck";

/// `targets.<provider>`, the field of a record's own target.
const TARGETS_FIELD: &str = "targets.apideck";

/// A record's destination: `(consumer = owner.id, unified_api, service_id)` plus the naming
/// overrides that apply to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedTarget {
    pub unified_api: String,
    pub service_id: String,
    pub overrides: TargetOverride,
}

/// Resolves where a service's records go: the record's `targets.apideck`, else
/// `[apideck.services.<service>]`, else the built-in table; later levels override key by key.
pub fn resolve_target(
    service: &str,
    record_target: Option<&Value>,
    configured: &BTreeMap<String, TargetOverride>,
) -> Result<ResolvedTarget, MappingError> {
    let field = TARGETS_FIELD;
    let mut merged = built_in_target(service).unwrap_or_default();
    if let Some(from_config) = configured.get(service) {
        merged.override_with(from_config);
    }
    if let Some(value) = record_target {
        merged.override_with(&TargetOverride::from_record(value, field)?);
    }
    let (Some(unified_api), Some(service_id)) =
        (merged.unified_api.clone(), merged.service_id.clone())
    else {
        return Err(MappingError::new(
            field,
            format!(
                "no Apideck connector known for service `{service}`; set targets.{PROVIDER}.unified_api and .service_id or [apideck.services.{service}]",
                service = authport_core::record::escaped_name(service)
            ),
        ));
    };
    for (name, value) in [("unified_api", &unified_api), ("service_id", &service_id)] {
        if !is_path_segment(value) {
            return Err(MappingError::new(
                format!("{field}.{name}"),
                "must be a non-empty id of letters, digits, `-`, `_` or `.`",
            ));
        }
    }
    Ok(ResolvedTarget {
        unified_api,
        service_id,
        overrides: merged,
    })
}

/// Safe as one segment of a URL path (unified API and connector ids go into the path).
pub fn is_path_segment(value: &str) -> bool {
    !value.is_empty()
        && value != "."
        && value != ".."
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// One consumer's connection to one connector: the identity of a Vault connection, and what
/// the engine stores (as [`TargetRef`]) to update, verify and remove it later.
///
/// Converted to and from the engine's JSON form only here ([`ApideckRef::to_map`],
/// [`ApideckRef::from_map`]): `MappedRecord.target` is its printable form (the record carries
/// the value itself as its typed payload, never parsed back) and `TargetRef` its stored one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApideckRef {
    /// The record's `owner.id`; sent as `x-apideck-consumer-id`.
    pub consumer_id: String,
    pub unified_api: String,
    pub service_id: String,
    /// Vault's id of the connection, once an import answered with it (informational: Vault
    /// addresses connections by the three ids above).
    pub connection_id: Option<String>,
}

impl ApideckRef {
    /// The JSON object form: `consumer_id`, `unified_api`, `service_id`, and `connection_id`
    /// when known.
    pub fn to_map(&self) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert("consumer_id".to_owned(), json!(self.consumer_id));
        map.insert("unified_api".to_owned(), json!(self.unified_api));
        map.insert("service_id".to_owned(), json!(self.service_id));
        if let Some(id) = &self.connection_id {
            map.insert("connection_id".to_owned(), json!(id));
        }
        map
    }

    /// Reads the JSON object form. Ids that could not have come from [`Self::to_map`] of a
    /// mapped record (missing, not strings, not URL path segments) are refused, naming the key
    /// and never the value.
    pub fn from_map(map: &Map<String, Value>) -> Result<Self, ProviderError> {
        let text = |key: &str| -> Result<String, ProviderError> {
            map.get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| {
                    ProviderError::rejected(format!(
                        "the apideck target reference has no `{key}` string"
                    ))
                })
        };
        let consumer_id = text("consumer_id")?;
        let unified_api = text("unified_api")?;
        let service_id = text("service_id")?;
        for (key, value) in [("unified_api", &unified_api), ("service_id", &service_id)] {
            if !is_path_segment(value) {
                return Err(ProviderError::rejected(format!(
                    "the apideck target reference's `{key}` is not a connector id"
                )));
            }
        }
        let connection_id = match map.get("connection_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) => Some(id.clone()),
            Some(_) => {
                return Err(ProviderError::rejected(
                    "the apideck target reference's `connection_id` is not a string",
                ));
            }
        };
        Ok(Self {
            consumer_id,
            unified_api,
            service_id,
            connection_id,
        })
    }

    /// The stored form of the same connection with Vault's id for it when an answer carried
    /// one: `TargetRef::from(&self.clone().with_connection_id(id))` without the clone.
    pub fn target_with_connection_id(&self, id: Option<String>) -> TargetRef {
        let mut map = self.to_map();
        if let Some(id) = id {
            map.insert("connection_id".to_owned(), Value::String(id));
        }
        TargetRef(map)
    }

    /// The same connection, with Vault's id for it when an answer carried one.
    pub fn with_connection_id(mut self, id: Option<String>) -> Self {
        if id.is_some() {
            self.connection_id = id;
        }
        self
    }
}

impl From<&ApideckRef> for TargetRef {
    fn from(reference: &ApideckRef) -> Self {
        TargetRef(reference.to_map())
    }
}

impl TryFrom<&TargetRef> for ApideckRef {
    type Error = ProviderError;

    fn try_from(target: &TargetRef) -> Result<Self, Self::Error> {
        Self::from_map(&target.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(connection_id: Option<&str>) -> ApideckRef {
        ApideckRef {
            consumer_id: "acme-42".to_owned(),
            unified_api: "crm".to_owned(),
            service_id: "hubspot".to_owned(),
            connection_id: connection_id.map(str::to_owned),
        }
    }

    #[test]
    fn the_targets_field_is_the_providers() {
        assert_eq!(TARGETS_FIELD, format!("targets.{PROVIDER}"));
    }

    #[test]
    fn a_target_of_ids_only_reads_as_serde_reads_it() {
        let general = |value: &Value| -> Result<TargetOverride, authport_core::MappingError> {
            authport_kit::record_settings(
                value,
                TARGETS_FIELD,
                &crate::config::TARGET_OVERRIDE_KEYS,
            )
        };
        for value in [
            json!({"unified_api": "crm", "service_id": "hubspot"}),
            json!({"service_id": "x"}),
            json!({}),
            json!({"unified_api": "crm", "service_id": 5}),
            json!({"unified_api": null}),
            json!({"unified_api": "crm", "long_lived_tokens": true}),
            json!({"unified_api": "crm", "other": "x"}),
            json!("crm"),
        ] {
            assert_eq!(
                TargetOverride::from_record(&value, TARGETS_FIELD),
                general(&value),
                "{value}"
            );
        }
    }

    #[test]
    fn references_round_trip_through_target_ref() {
        for original in [reference(None), reference(Some("crm+hubspot"))] {
            let stored = TargetRef::from(&original);
            assert_eq!(ApideckRef::try_from(&stored), Ok(original));
        }
        assert_eq!(
            TargetRef::from(&reference(None)).0,
            json!({"consumer_id": "acme-42", "unified_api": "crm", "service_id": "hubspot"})
                .as_object()
                .cloned()
                .unwrap()
        );
    }

    #[test]
    fn malformed_references_are_refused_by_key_without_their_values() {
        let check = |value: Value, key: &str| {
            let map = value.as_object().cloned().unwrap();
            let error = ApideckRef::from_map(&map).expect_err("refused");
            assert_eq!(error.kind().as_str(), "rejected");
            assert!(error.message().contains(key), "{error}");
            assert!(!error.message().contains("SECRETISH"), "{error}");
        };
        check(
            json!({"unified_api": "crm", "service_id": "x"}),
            "consumer_id",
        );
        check(
            json!({"consumer_id": "c", "unified_api": 5, "service_id": "x"}),
            "unified_api",
        );
        check(
            json!({"consumer_id": "c", "unified_api": "crm", "service_id": "../SECRETISH"}),
            "service_id",
        );
        check(
            json!({"consumer_id": "c", "unified_api": "crm", "service_id": "x", "connection_id": 7}),
            "connection_id",
        );
    }
}
