//! The sandbox's Tray catalogue: services, connectors, service environments and solutions,
//! seeded from `fixtures/tray-catalogue.json`.
//!
//! Schemas are deliberately written in the loose dialects Tray publishes (draft-03 `required:
//! true` on properties, draft-04 `required` arrays, `id`/`schema` keys, `advanced`, `format:
//! password`, even the `tytpe` typo from Tray's own NetSuite example), so clients are tested
//! against what the real API returns rather than against tidy JSON Schema. Slack has an older
//! service version still used by an older connector: clients must pick the service version of
//! the highest connector version, not the first match. One solution has two auth slots and a
//! config slot (Tray's "Mailchimp audiences to Slack" kind): an owner needs both auths.
//!
//! The fixture holds no ids: they are derived from names ([`stable_uuid`]): a service from
//! `service:NAME:VERSION`, an environment from `env:NAME:VERSION:TITLE`
//! ([`environment_id`]), a solution from `solution:KEY`. An environment's absent schema is
//! `{}`; its `scopes` names an entry of `scope_sets`.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::{Map, Value};

/// Everything the emulated Tray organisation offers.
#[derive(Debug, Clone)]
pub struct Catalogue {
    pub services: Vec<ServiceDef>,
    pub solutions: Vec<SolutionDef>,
}

/// One service version (Tray keys environments by service name + integer service version).
#[derive(Debug, Clone)]
pub struct ServiceDef {
    pub id: String,
    pub name: String,
    pub title: String,
    pub version: i64,
    /// Connectors (programmatic name, decimal connector version) that use this service version.
    pub connectors: Vec<(String, String)>,
    pub environments: Vec<EnvironmentDef>,
}

/// A service environment as `GET .../environments` lists it.
#[derive(Debug, Clone)]
pub struct EnvironmentDef {
    pub id: String,
    pub title: String,
    pub authentication_type: String,
    pub credentials_schema: Value,
    pub user_data_schema: Value,
    /// `(scope, description)` pairs.
    pub scopes: Vec<(String, String)>,
}

/// A published solution with its auth slots (external ids are case-sensitive).
#[derive(Debug, Clone)]
pub struct SolutionDef {
    pub id: String,
    pub title: String,
    pub auth_slots: Vec<AuthSlotDef>,
    pub config_slots: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSlotDef {
    pub external_id: String,
    pub title: String,
    pub service_name: String,
}

/// A stable, UUID-shaped id derived from a seed (FNV-1a), so catalogue ids are the same in
/// every run and snapshot.
pub fn stable_uuid(seed: &str) -> String {
    fn fnv(seed: &str, salt: u64) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ salt;
        for byte in seed.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash
    }
    let high = fnv(seed, 0);
    let low = fnv(seed, 0x9e37_79b9_7f4a_7c15);
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xfff,
        (low >> 48) & 0xfff,
        low & 0xffff_ffff_ffff
    )
}

/// The id of environment `title` of service `name` in the default catalogue.
pub fn environment_id(service: &str, version: i64, title: &str) -> String {
    stable_uuid(&format!("env:{service}:{version}:{title}"))
}

/// The fixture's shape (see the module docs).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Seed {
    scope_sets: BTreeMap<String, Vec<ScopeSeed>>,
    services: Vec<ServiceSeed>,
    solutions: Vec<SolutionSeed>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopeSeed {
    scope: String,
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceSeed {
    name: String,
    title: String,
    version: i64,
    connectors: Vec<(String, String)>,
    environments: Vec<EnvironmentSeed>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvironmentSeed {
    title: String,
    authentication_type: String,
    #[serde(default = "empty")]
    credentials_schema: Value,
    #[serde(default = "empty")]
    user_data_schema: Value,
    /// A `scope_sets` key.
    #[serde(default)]
    scopes: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SolutionSeed {
    key: String,
    title: String,
    auth_slots: Vec<AuthSlotDef>,
    config_slots: Vec<String>,
}

fn empty() -> Value {
    Value::Object(Map::new())
}

/// The bundled catalogue, parsed once.
static BUNDLED: LazyLock<Catalogue> = LazyLock::new(|| {
    Catalogue::from_json(include_str!("../../fixtures/tray-catalogue.json"))
        .expect("the bundled Tray catalogue fixture is valid")
});

impl Default for Catalogue {
    fn default() -> Self {
        BUNDLED.clone()
    }
}

impl Catalogue {
    /// A catalogue from a fixture of `fixtures/tray-catalogue.json`'s shape.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let seed: Seed = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let scopes = |name: &Option<String>| -> Result<Vec<(String, String)>, String> {
            let Some(name) = name else {
                return Ok(Vec::new());
            };
            let set = seed
                .scope_sets
                .get(name)
                .ok_or_else(|| format!("no scope set `{name}`"))?;
            Ok(set
                .iter()
                .map(|s| (s.scope.clone(), s.description.clone()))
                .collect())
        };
        let mut services = Vec::new();
        for service in &seed.services {
            let mut environments = Vec::new();
            for env in &service.environments {
                environments.push(EnvironmentDef {
                    id: environment_id(&service.name, service.version, &env.title),
                    title: env.title.clone(),
                    authentication_type: env.authentication_type.clone(),
                    credentials_schema: env.credentials_schema.clone(),
                    user_data_schema: env.user_data_schema.clone(),
                    scopes: scopes(&env.scopes)?,
                });
            }
            services.push(ServiceDef {
                id: stable_uuid(&format!("service:{}:{}", service.name, service.version)),
                name: service.name.clone(),
                title: service.title.clone(),
                version: service.version,
                connectors: service.connectors.clone(),
                environments,
            });
        }
        let solutions = seed
            .solutions
            .into_iter()
            .map(|solution| SolutionDef {
                id: stable_uuid(&format!("solution:{}", solution.key)),
                title: solution.title,
                auth_slots: solution.auth_slots,
                config_slots: solution.config_slots,
            })
            .collect();
        Ok(Self {
            services,
            solutions,
        })
    }

    pub fn environment(&self, id: &str) -> Option<(&ServiceDef, &EnvironmentDef)> {
        self.services.iter().find_map(|service| {
            service
                .environments
                .iter()
                .find(|env| env.id == id)
                .map(|env| (service, env))
        })
    }

    pub fn solution(&self, id: &str) -> Option<&SolutionDef> {
        self.solutions.iter().find(|s| s.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_fixture_loads_with_ids_derived_from_names() {
        let catalogue = Catalogue::default();
        assert_eq!(catalogue.services.len(), 12);
        assert_eq!(catalogue.solutions.len(), 3);
        let id = environment_id("greenhouse", 1, "Production");
        let (service, env) = catalogue
            .environment(&id)
            .expect("greenhouse's environment");
        assert_eq!(service.id, stable_uuid("service:greenhouse:1"));
        assert_eq!(env.authentication_type, "token");
        assert!(env.scopes.is_empty());
        let slack = environment_id("slack", 4, "Production");
        let (_, slack) = catalogue.environment(&slack).expect("slack's environment");
        assert_eq!(slack.scopes.len(), 4);
        assert_eq!(slack.credentials_schema, empty());
        assert!(
            catalogue
                .solution(&stable_uuid("solution:acme-hubspot-sync"))
                .is_some()
        );
    }

    #[test]
    fn a_fixture_naming_an_unknown_scope_set_or_field_is_refused() {
        let unknown_set = r#"{"scope_sets": {}, "solutions": [], "services": [{"name": "s",
            "title": "S", "version": 1, "connectors": [], "environments": [{"title": "P",
            "authentication_type": "oauth2", "scopes": "nope"}]}]}"#;
        assert_eq!(
            Catalogue::from_json(unknown_set).err().as_deref(),
            Some("no scope set `nope`")
        );
        let extra = r#"{"scope_sets": {}, "services": [], "solutions": [], "ids": []}"#;
        assert!(Catalogue::from_json(extra).is_err());
    }
}
