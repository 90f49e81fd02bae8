//! The solution step's per-owner progress, kept in the state's memo (not in memory), so a run
//! of any size stays flat and a killed run resumes where it was. Pure: keys, entries and the
//! rules over them; the IO is in [`crate::solution`].
//!
//! Entries (namespace [`SOLUTION_MEMO`], keys are JSON arrays so no owner id can collide):
//! - `["slot", solution, owner, external id]` -> [`SlotEntry`]: an imported auth in a slot;
//! - `["instance", solution, owner]` -> [`InstanceEntry`]: the owner's one instance;
//! - `["queue", solution, n]` -> [`QueuedEnable`], with `["queue.head"/"queue.tail", solution]`:
//!   instances created but maybe not enabled yet, drained when a run finishes.

use std::collections::BTreeMap;

use authport_core::CredentialRecord;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::SolutionConfig;

pub const SOLUTION_MEMO: &str = "tray.solution";

pub fn slot_key(solution: &str, owner: &str, slot: &str) -> String {
    json!(["slot", solution, owner, slot]).to_string()
}

pub fn instance_key(solution: &str, owner: &str) -> String {
    json!(["instance", solution, owner]).to_string()
}

pub fn queue_key(solution: &str, n: u64) -> String {
    json!(["queue", solution, n]).to_string()
}

pub fn queue_end_key(solution: &str, end: &str) -> String {
    json!([end, solution]).to_string()
}

/// An auth imported into one of the owner's slots, with that record's config overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotEntry {
    pub auth_id: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, Value>,
}

/// Where the owner's instance is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum InstanceEntry {
    /// A create was sent and its answer may be lost: look it up by name before another.
    Creating {
        name: String,
        complete: bool,
    },
    /// Created (disabled). `complete`: every slot filled, so it is to be enabled.
    Created {
        id: String,
        name: String,
        complete: bool,
    },
    Enabled {
        id: String,
        name: String,
    },
    /// Removed by rollback: as if there were none.
    Removed,
}

impl InstanceEntry {
    pub fn id(&self) -> Option<&str> {
        match self {
            Self::Created { id, .. } | Self::Enabled { id, .. } => Some(id),
            Self::Creating { .. } | Self::Removed => None,
        }
    }

    pub fn name(&self) -> Option<&str> {
        match self {
            Self::Creating { name, .. }
            | Self::Created { name, .. }
            | Self::Enabled { name, .. } => Some(name),
            Self::Removed => None,
        }
    }
}

/// An instance to enable once Tray's wait has passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedEnable {
    pub owner: String,
    pub user_id: String,
    pub instance_id: String,
    /// When it was created (Unix milliseconds), for the wait.
    pub created_ms: u64,
}

/// The instance name from the template and the owner's fields (no record field: the name is
/// the same for every record of the owner).
pub fn instance_name(template: &str, record: &CredentialRecord) -> String {
    let owner = &record.owner;
    let display = owner.name.as_deref().unwrap_or(&owner.id);
    template
        .replace("{owner.id}", &owner.id)
        .replace("{owner.name}", display)
        .replace("{owner.email}", owner.email.as_deref().unwrap_or(""))
        .replace("{owner}", display)
}

/// The owner's slots: which are filled (external id, auth id) and which are missing
/// (external id, service), in the config's (sorted) order.
#[derive(Debug, Default, PartialEq)]
pub struct Coverage {
    pub filled: Vec<(String, SlotEntry)>,
    pub missing: Vec<(String, String)>,
}

pub fn coverage(
    solution: &SolutionConfig,
    mut lookup: impl FnMut(&str) -> Option<SlotEntry>,
) -> Coverage {
    let mut out = Coverage::default();
    for (slot, service) in &solution.slots {
        match lookup(slot) {
            Some(entry) => out.filled.push((slot.clone(), entry)),
            None => out.missing.push((slot.clone(), service.clone())),
        }
    }
    out
}

/// The instance's config values: the defaults, then each filled slot's record overrides.
/// Two records of the owner giving different values for one config slot is an error naming
/// the config slot (values are never quoted).
pub fn config_values(
    solution: &SolutionConfig,
    filled: &[(String, SlotEntry)],
) -> Result<BTreeMap<String, Value>, String> {
    let mut values = solution.config_values.clone();
    let mut overridden: BTreeMap<&str, &Value> = BTreeMap::new();
    for (_, entry) in filled {
        for (key, value) in &entry.config {
            if let Some(earlier) = overridden.get(key.as_str())
                && *earlier != value
            {
                return Err(format!(
                    "the owner's records give different values for config slot `{key}` (targets.tray.solution.config)"
                ));
            }
            overridden.insert(key, value);
            values.insert(key.clone(), value.clone());
        }
    }
    Ok(values)
}

/// `authValues` as Tray takes them.
pub fn auth_values(filled: &[(String, SlotEntry)]) -> Value {
    Value::Array(
        filled
            .iter()
            .map(|(slot, entry)| json!({"externalId": slot, "authId": entry.auth_id}))
            .collect(),
    )
}

/// `configValues` as Tray takes them: each value JSON-encoded into a string (tray-api.md §5.1).
pub fn wire_config_values(values: &BTreeMap<String, Value>) -> Value {
    Value::Array(
        values
            .iter()
            .map(|(key, value)| json!({"externalId": key, "value": value.to_string()}))
            .collect(),
    )
}

/// The report's words for the slots an owner lacks.
pub fn missing_text(missing: &[(String, String)]) -> String {
    missing
        .iter()
        .map(|(slot, service)| format!("slot `{slot}` (service {service})"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solution() -> SolutionConfig {
        SolutionConfig {
            solution_id: "s-1".into(),
            slots: BTreeMap::from([
                (
                    "external_mailchimp_authentication".into(),
                    "mailchimp".into(),
                ),
                ("external_slack_authentication".into(), "slack".into()),
            ]),
            config_values: BTreeMap::from([("external_slack_channel".into(), json!("#general"))]),
            instance_name_template: "{owner} ({owner.id})".into(),
            create_incomplete_disabled: false,
            enable_delay_ms: 2000,
        }
    }

    fn entry(auth: &str, config: &[(&str, Value)]) -> SlotEntry {
        SlotEntry {
            auth_id: auth.into(),
            config: config
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        }
    }

    #[test]
    fn keys_cannot_collide_across_owner_ids() {
        assert_ne!(slot_key("s", "a\",\"b", "c"), slot_key("s", "a", "b\",\"c"));
        assert_ne!(instance_key("s", "a/b"), instance_key("s/a", "b"));
    }

    #[test]
    fn coverage_names_each_missing_slot_and_its_service() {
        let covered = coverage(&solution(), |slot| {
            (slot == "external_mailchimp_authentication").then(|| entry("a-1", &[]))
        });
        assert_eq!(covered.filled.len(), 1);
        assert_eq!(
            covered.missing,
            vec![(
                "external_slack_authentication".to_owned(),
                "slack".to_owned()
            )]
        );
        assert_eq!(
            missing_text(&covered.missing),
            "slot `external_slack_authentication` (service slack)"
        );
    }

    #[test]
    fn owner_overrides_win_over_defaults_and_must_agree() {
        let filled = vec![
            (
                "a".to_owned(),
                entry("1", &[("external_slack_channel", json!("#sales"))]),
            ),
            ("b".to_owned(), entry("2", &[])),
        ];
        let values = config_values(&solution(), &filled).unwrap();
        assert_eq!(values["external_slack_channel"], json!("#sales"));
        let wire = wire_config_values(&values);
        assert_eq!(
            wire,
            json!([{"externalId": "external_slack_channel", "value": "\"#sales\""}])
        );
        let clash = vec![
            (
                "a".to_owned(),
                entry("1", &[("external_slack_channel", json!("#a"))]),
            ),
            (
                "b".to_owned(),
                entry("2", &[("external_slack_channel", json!("#b"))]),
            ),
        ];
        let error = config_values(&solution(), &clash).unwrap_err();
        assert!(
            error.contains("external_slack_channel") && !error.contains("#a"),
            "{error}"
        );
    }

    #[test]
    fn entries_round_trip_in_the_state_format() {
        let created = InstanceEntry::Created {
            id: "i-1".into(),
            name: "Acme (acme-42)".into(),
            complete: true,
        };
        let text = serde_json::to_string(&created).unwrap();
        assert!(text.contains("\"state\":\"created\""), "{text}");
        assert_eq!(
            serde_json::from_str::<InstanceEntry>(&text).unwrap(),
            created
        );
        assert_eq!(created.id(), Some("i-1"));
    }
}
