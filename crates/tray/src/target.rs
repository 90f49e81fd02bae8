//! Tray's typed target values and their JSON form, converted in this one place: what a mapped
//! record goes to ([`MappedTarget`], shown in plans and fingerprinted by the engine) and what
//! the state keeps of an imported auth ([`TrayRef`], handed back to `verify` and `remove`).
//! The JSON keys are the state file's format: renaming one orphans earlier runs' records.

use std::collections::BTreeMap;

use authport_core::{MappedRecord, ProviderError, TargetRef};
use authport_kit::payload_of;
use serde_json::{Map, Value, json};

/// The provider name, also the key of `targets.<provider>` in records.
pub const PROVIDER: &str = "tray";

/// Where a mapped record goes (`MappedRecord.target`). No secret.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedTarget {
    /// Tray's service name (the connector's `service.name`).
    pub service: String,
    pub service_version: i64,
    /// The environment's title.
    pub service_environment: String,
    pub service_environment_id: String,
    pub authentication_type: String,
    /// The auth name: it carries the record's tag (authport's mark), the handle for finding
    /// the auth again.
    pub name: String,
    /// The name the record or template asked for, when the mark had to be appended to it: an
    /// auth of the owner with exactly this name is the end user's own (`pre_existing`).
    pub unmarked_name: Option<String>,
    pub external_user_id: String,
    /// The solution step configured for this record, if any. Part of the target so that a
    /// corrected `[tray.solution]` changes the fingerprint and the next run does the step.
    pub solution: Option<SolutionTarget>,
}

/// The solution instance a record's auth goes into.
#[derive(Debug, Clone, PartialEq)]
pub struct SolutionTarget {
    pub solution_id: String,
    /// The auth slot this record fills.
    pub auth_external_id: String,
    /// The record's own config slot values (`targets.tray.solution.config`).
    pub config: BTreeMap<String, Value>,
}

/// What the state keeps of one imported auth. No secret.
#[derive(Debug, Clone, PartialEq)]
pub struct TrayRef {
    pub authentication_id: String,
    /// The Tray end user who owns the auth.
    pub user_id: String,
    /// The record's `owner.id` (Tray's `externalUserId`).
    pub external_user_id: String,
    pub service_environment_id: String,
    pub name: String,
    /// The owner's solution instance, once this record's step created or found it.
    pub solution_instance_id: Option<String>,
    /// The solution whose slot this auth fills: rollback removes the owner's instance first.
    pub solution_id: Option<String>,
    /// The end user's own auth, overwritten with `overwrite_existing`: never renamed with
    /// authport's mark, so no later run can take it for one of ours.
    pub pre_existing: bool,
}

impl MappedTarget {
    /// The printable form (`MappedRecord.target`: plans, reports, the engine's fingerprint).
    pub fn to_map(&self) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert("service".into(), json!(self.service));
        map.insert("service_version".into(), json!(self.service_version));
        map.insert(
            "service_environment".into(),
            json!(self.service_environment),
        );
        map.insert(
            "service_environment_id".into(),
            json!(self.service_environment_id),
        );
        map.insert(
            "authentication_type".into(),
            json!(self.authentication_type),
        );
        map.insert("name".into(), json!(self.name));
        if let Some(unmarked) = &self.unmarked_name {
            map.insert("unmarked_name".into(), json!(unmarked));
        }
        map.insert("external_user_id".into(), json!(self.external_user_id));
        if let Some(solution) = &self.solution {
            map.insert("solution_id".into(), json!(solution.solution_id));
            map.insert("auth_external_id".into(), json!(solution.auth_external_id));
            if !solution.config.is_empty() {
                map.insert("solution_config".into(), json!(solution.config));
            }
        }
        map
    }

    /// What [`crate::map::map_record`] put in the record's typed payload (read back, never
    /// parsed from the printable `target`); a record mapped elsewhere is refused.
    pub fn from_mapped(mapped: &MappedRecord) -> Result<Self, ProviderError> {
        payload_of::<Self>(mapped, PROVIDER).cloned()
    }
}

impl TrayRef {
    pub fn into_target_ref(self) -> TargetRef {
        let mut map = Map::new();
        map.insert("authentication_id".into(), json!(self.authentication_id));
        map.insert("user_id".into(), json!(self.user_id));
        map.insert("external_user_id".into(), json!(self.external_user_id));
        map.insert(
            "service_environment_id".into(),
            json!(self.service_environment_id),
        );
        map.insert("name".into(), json!(self.name));
        if let Some(instance) = self.solution_instance_id {
            map.insert("solution_instance_id".into(), json!(instance));
        }
        if let Some(solution) = self.solution_id {
            map.insert("solution_id".into(), json!(solution));
        }
        if self.pre_existing {
            map.insert("pre_existing".into(), json!(true));
        }
        TargetRef(map)
    }

    pub fn from_target_ref(target: &TargetRef) -> Result<Self, ProviderError> {
        let read = Reader {
            map: &target.0,
            what: "the state's tray target for this record",
        };
        Ok(Self {
            authentication_id: read.required("authentication_id")?,
            user_id: read.required("user_id")?,
            external_user_id: read.required("external_user_id")?,
            service_environment_id: read.required("service_environment_id")?,
            name: read.required("name")?,
            solution_instance_id: read.optional("solution_instance_id")?,
            solution_id: read.optional("solution_id")?,
            pre_existing: match target.0.get("pre_existing") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(flag)) => *flag,
                Some(_) => return Err(read.problem("pre_existing")),
            },
        })
    }
}

/// Reads string keys; messages name the key, never a value.
struct Reader<'a> {
    map: &'a Map<String, Value>,
    what: &'static str,
}

impl Reader<'_> {
    fn required(&self, key: &str) -> Result<String, ProviderError> {
        self.optional(key)?.ok_or_else(|| self.problem(key))
    }

    fn optional(&self, key: &str) -> Result<Option<String>, ProviderError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) if !text.is_empty() => Ok(Some(text.clone())),
            Some(_) => Err(self.problem(key)),
        }
    }

    fn problem(&self, key: &str) -> ProviderError {
        ProviderError::rejected(format!(
            "{} has no valid `{key}` (was it written by another provider or version?)",
            self.what
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tray_ref(instance: Option<&str>) -> TrayRef {
        TrayRef {
            authentication_id: "a-1".into(),
            user_id: "u-1".into(),
            external_user_id: "acme-42".into(),
            service_environment_id: "e-1".into(),
            name: "Slack — Acme (0011)".into(),
            solution_instance_id: instance.map(str::to_owned),
            solution_id: instance.map(|_| "s-1".to_owned()),
            pre_existing: instance.is_some(),
        }
    }

    #[test]
    fn refs_round_trip_with_the_state_format_keys() {
        for instance in [None, Some("i-1")] {
            let original = tray_ref(instance);
            let stored = original.clone().into_target_ref();
            assert_eq!(stored.get_str("authentication_id"), Some("a-1"));
            assert_eq!(stored.get_str("solution_instance_id"), instance);
            assert_eq!(TrayRef::from_target_ref(&stored).unwrap(), original);
        }
    }

    #[test]
    fn incomplete_refs_name_the_missing_key_only() {
        let mut stored = tray_ref(None).into_target_ref();
        stored.0.remove("user_id");
        let error = TrayRef::from_target_ref(&stored).unwrap_err();
        assert_eq!(error.kind().as_str(), "rejected");
        assert!(error.message().contains("`user_id`"), "{error}");
        let mut stored = tray_ref(None).into_target_ref();
        stored.0.insert("name".into(), json!(42));
        let error = TrayRef::from_target_ref(&stored).unwrap_err();
        assert!(
            error.message().contains("`name`") && !error.message().contains("42"),
            "{error}"
        );
    }

    #[test]
    fn mapped_targets_come_back_from_the_payload() {
        for solution in [
            None,
            Some(SolutionTarget {
                solution_id: "s-1".into(),
                auth_external_id: "external_slack_authentication".into(),
                config: BTreeMap::from([("external_channel".into(), json!("#sales"))]),
            }),
        ] {
            let original = MappedTarget {
                service: "slack".into(),
                service_version: 4,
                service_environment: "acme slack oauth".into(),
                service_environment_id: "e-1".into(),
                authentication_type: "oauth2".into(),
                name: "Slack — Acme (0011)".into(),
                unmarked_name: solution.as_ref().map(|_| "Slack — Acme".to_owned()),
                external_user_id: "acme-42".into(),
                solution,
            };
            let mut mapped = MappedRecord {
                target: original.to_map(),
                body: authport_core::SecretJson::new(json!({})),
                notes: Vec::new(),
                payload: authport_kit::Payload::new(original.clone()),
            };
            assert_eq!(MappedTarget::from_mapped(&mapped).unwrap(), original);
            // Read from the payload only: the printable target is never parsed back.
            mapped.payload = authport_kit::Payload::none();
            let error = MappedTarget::from_mapped(&mapped).unwrap_err();
            assert!(matches!(error, ProviderError::Fatal { .. }), "{error}");
        }
    }
}
