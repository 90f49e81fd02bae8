//! Provider settings from the `[tray]` config section and the environment (which wins).
//! `Debug` is allow-list: the master token is never shown.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use authport_core::{BuildContext, ConfigError, SecretString};
use authport_kit::{BindingSettings, Loader, SecretSetting, Url};
use serde::Deserialize;
use serde_json::Value;

/// Tray's regions and their hosts (tray-api.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    Us,
    Eu,
    Ap,
}

impl Region {
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        match text.to_ascii_lowercase().as_str() {
            "us" => Ok(Self::Us),
            "eu" => Ok(Self::Eu),
            "ap" => Ok(Self::Ap),
            // The value is not quoted: a misplaced secret must not reach a message.
            _ => Err(ConfigError::new(
                "TRAY_REGION (or [tray] region) is unknown; expected one of: us, eu, ap",
            )),
        }
    }

    pub fn api_base(self) -> &'static str {
        match self {
            Self::Us => "https://api.tray.io",
            Self::Eu => "https://api.eu1.tray.io",
            Self::Ap => "https://api.ap1.tray.io",
        }
    }

    /// Where the auth-only dialog opens (Tray's "Auth-only dialog": `embedded.tray.io`, or the
    /// region's `embedded.eu1` / `embedded.ap1` host).
    pub fn auth_dialog_base(self) -> &'static str {
        match self {
            Self::Us => "https://embedded.tray.io",
            Self::Eu => "https://embedded.eu1.tray.io",
            Self::Ap => "https://embedded.ap1.tray.io",
        }
    }

    pub fn graphql_url(self) -> &'static str {
        match self {
            Self::Us => "https://tray.io/graphql",
            Self::Eu => "https://eu1.tray.io/graphql",
            Self::Ap => "https://ap1.tray.io/graphql",
        }
    }
}

/// Per-service overrides (`[tray.services.<service>]`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceOverride {
    /// Tray's service name when it differs from the record's `service` slug.
    pub service_name: Option<String>,
    /// Pin the integer service version (default: that of the highest connector version).
    pub service_version: Option<i64>,
    /// Environment title or id for this service.
    pub service_environment: Option<String>,
    /// Explicit field rules: record field (`auth.api_key`, `settings.dc`, `auth.fields.x`) ->
    /// target field (`credentials.key`, `userData.region`), or `""` to leave it out.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

/// The optional solution step (`[tray.solution]`): one instance of one solution per owner,
/// with one auth slot per service. See docs/tray.md. `Debug` is allow-list: a config slot's
/// value may be a secret (an API key a workflow needs), so only the slots' names are shown.
#[derive(Clone, PartialEq)]
pub struct SolutionConfig {
    pub solution_id: String,
    /// Auth slot External ID (case-sensitive, as in the solution editor) -> the records'
    /// `service` that fills it. One slot per service.
    pub slots: BTreeMap<String, String>,
    /// Config slot External ID -> default value (owners may override it in their records).
    pub config_values: BTreeMap<String, Value>,
    /// Instance name over owner fields: `{owner}`, `{owner.id}`, `{owner.name}`, `{owner.email}`.
    pub instance_name_template: String,
    /// Create the instance of an owner whose records do not fill every slot, left disabled.
    pub create_incomplete_disabled: bool,
    /// Milliseconds between create and enable. Tray asks for at least 2000: lower values are
    /// for tests against the sandbox only.
    pub enable_delay_ms: u64,
}

impl std::fmt::Debug for SolutionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SolutionConfig")
            .field("solution_id", &self.solution_id)
            .field("slots", &self.slots)
            .field(
                "config_values",
                &self.config_values.keys().collect::<Vec<_>>(),
            )
            .field("instance_name_template", &self.instance_name_template)
            .field(
                "create_incomplete_disabled",
                &self.create_incomplete_disabled,
            )
            .field("enable_delay_ms", &self.enable_delay_ms)
            .finish()
    }
}

/// The default instance name: one instance per owner, named after the owner.
pub const DEFAULT_INSTANCE_NAME_TEMPLATE: &str = "{owner} ({owner.id})";

const INSTANCE_PLACEHOLDERS: &[&str] = &["{owner}", "{owner.id}", "{owner.name}", "{owner.email}"];

/// `[tray.solution]` as written, including the replaced one-slot keys (refused with a
/// migration hint rather than as unknown fields).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSolution {
    solution_id: String,
    #[serde(default)]
    slots: BTreeMap<String, String>,
    #[serde(default)]
    config_values: BTreeMap<String, Value>,
    instance_name_template: Option<String>,
    #[serde(default)]
    create_incomplete_disabled: bool,
    #[serde(default = "default_enable_delay_ms")]
    enable_delay_ms: u64,
    auth_external_id: Option<Value>,
    services: Option<Value>,
}

fn default_enable_delay_ms() -> u64 {
    2000
}

/// The message for the one-slot form of earlier releases. Values are not quoted.
pub const OLD_SOLUTION_FORM: &str = "[tray.solution] auth_external_id and services were replaced by `slots`, one entry per auth slot: \
     write slots = { <auth slot external id> = \"<service>\" } (for example slots = { external_slack_authentication = \"slack\" }); \
     external ids are case-sensitive; see docs/tray.md";

impl SolutionConfig {
    fn from_raw(raw: RawSolution) -> Result<Self, ConfigError> {
        if raw.auth_external_id.is_some() || raw.services.is_some() {
            return Err(ConfigError::new(OLD_SOLUTION_FORM));
        }
        if raw.solution_id.trim().is_empty() {
            return Err(ConfigError::new("[tray.solution] solution_id is empty"));
        }
        if raw.slots.is_empty() {
            return Err(ConfigError::new(
                "[tray.solution] needs `slots`: slots = { <auth slot external id> = \"<service>\", ... }",
            ));
        }
        let mut services: Vec<&str> = Vec::new();
        for (external_id, service) in &raw.slots {
            if external_id.trim().is_empty() || service.trim().is_empty() {
                return Err(ConfigError::new(
                    "[tray.solution] slots: an external id or service is empty",
                ));
            }
            if services.contains(&service.as_str()) {
                return Err(ConfigError::new(
                    "[tray.solution] slots: one service fills two slots; one slot per service",
                ));
            }
            services.push(service);
        }
        let template = raw
            .instance_name_template
            .unwrap_or_else(|| DEFAULT_INSTANCE_NAME_TEMPLATE.to_owned());
        check_instance_template(&template)?;
        Ok(Self {
            solution_id: raw.solution_id,
            slots: raw.slots,
            config_values: raw.config_values,
            instance_name_template: template,
            create_incomplete_disabled: raw.create_incomplete_disabled,
            enable_delay_ms: raw.enable_delay_ms,
        })
    }

    pub fn enable_delay(&self) -> Duration {
        Duration::from_millis(self.enable_delay_ms)
    }

    /// The auth slot a record of `service` fills, if any.
    pub fn slot_for(&self, service: &str) -> Option<&str> {
        self.slots
            .iter()
            .find(|(_, s)| s.as_str() == service)
            .map(|(slot, _)| slot.as_str())
    }
}

/// Only owner placeholders: the name must be the same for every record of the owner.
fn check_instance_template(template: &str) -> Result<(), ConfigError> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let placeholder = &rest[open..open + close + 1];
        if !INSTANCE_PLACEHOLDERS.contains(&placeholder) {
            return Err(ConfigError::new(format!(
                "[tray.solution] instance_name_template: unknown placeholder; expected owner fields only: {}",
                INSTANCE_PLACEHOLDERS.join(", ")
            )));
        }
        rest = &rest[open + close + 1..];
    }
    Ok(())
}

/// The `[tray]` section minus what the kit's loader takes out first (the master token, the
/// region, the URLs and the embedded id).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    default_environment: Option<String>,
    #[serde(default = "yes")]
    create_users: bool,
    #[serde(default)]
    is_test_user: bool,
    #[serde(default)]
    allow_tray_oauth_app: bool,
    #[serde(default = "yes")]
    lookup_before_create: bool,
    #[serde(default)]
    overwrite_existing: bool,
    name_template: Option<String>,
    #[serde(default)]
    services: BTreeMap<String, ServiceOverride>,
    solution: Option<RawSolution>,
    #[serde(default)]
    oauth_clients: BTreeMap<String, String>,
    #[serde(default)]
    oauth_scopes: BTreeMap<String, Vec<String>>,
}

/// The keys of `[tray]`.
pub const SETTINGS: [&str; 17] = [
    "master_token",
    "region",
    "api_url",
    "graphql_url",
    "auth_dialog_url",
    "embedded_id",
    "default_environment",
    "create_users",
    "is_test_user",
    "allow_tray_oauth_app",
    "lookup_before_create",
    "overwrite_existing",
    "name_template",
    "services",
    "solution",
    authport_kit::BINDING_KEYS[0],
    authport_kit::BINDING_KEYS[1],
];

/// `TRAY_MASTER_TOKEN`, else `[tray] master_token`.
pub const MASTER_TOKEN: SecretSetting =
    SecretSetting::new("master_token", "TRAY_MASTER_TOKEN", "a master token");

fn yes() -> bool {
    true
}

/// The default auth name: service title and owner, plus the record's tag (`{hash}`, a short
/// hash of the record id): authport's mark, the only thing that lets it tell its own auth from
/// one the end user made (Tray documents no field of ours to set on a create).
pub const DEFAULT_NAME_TEMPLATE: &str = "{service_title} — {owner} ({hash})";

/// Everything the Tray provider is configured with.
#[derive(Clone)]
pub struct TrayConfig {
    pub master_token: SecretString,
    pub api_base: Url,
    pub graphql_url: Url,
    /// The auth-only dialog's host (a white-labelled domain, or the region's).
    pub auth_dialog_base: Url,
    /// Tray's Embedded ID (`partnerName`), needed for reconnect links (`reconnect --links`).
    pub embedded_id: Option<String>,
    /// Environment chosen when neither the record nor the service override names one.
    pub default_environment: String,
    /// Create missing end users with `createExternalUser` (else the record fails).
    pub create_users: bool,
    pub is_test_user: bool,
    /// Allow OAuth imports into Tray's own "Production" OAuth app environment.
    pub allow_tray_oauth_app: bool,
    /// Before creating an auth, look for the record's own one (by its unique name) among the
    /// owner's auths and adopt it: a re-run without the state file then creates nothing twice.
    /// Costs one listing per owner per run; `false` for operators who trust their state.
    /// Only an auth carrying the record's mark (its tag in the name) is adopted.
    pub lookup_before_create: bool,
    /// Replace the credentials of an auth the end user made themselves that has the name the
    /// record asks for (without authport's mark). Reported `updated`, never `created`, so
    /// rollback leaves it in place. Default `false`: such a record is skipped (`pre_existing`).
    pub overwrite_existing: bool,
    pub name_template: String,
    pub services: BTreeMap<String, ServiceOverride>,
    pub solution: Option<SolutionConfig>,
    /// `[tray.oauth_clients]` and `[tray.oauth_scopes]`: Tray does not expose its clients.
    pub binding: BindingSettings,
}

impl fmt::Debug for TrayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrayConfig")
            .field("api_base", &self.api_base.as_str())
            .field("graphql_url", &self.graphql_url.as_str())
            .field("default_environment", &self.default_environment)
            .field("create_users", &self.create_users)
            .field("lookup_before_create", &self.lookup_before_create)
            .field("overwrite_existing", &self.overwrite_existing)
            .field("services", &self.services.keys().collect::<Vec<_>>())
            .field("solution", &self.solution.as_ref().map(|s| &s.solution_id))
            .finish_non_exhaustive()
    }
}

impl TrayConfig {
    /// Reads the config section, then lets `TRAY_*` environment variables override it.
    pub fn from_context(context: &BuildContext) -> Result<Self, ConfigError> {
        let mut loader = Loader::new("tray", &context.config, &context.env)?;
        let master_token = loader.secret(MASTER_TOKEN)?;
        let region = match loader.text("region", "TRAY_REGION")? {
            Some(text) => Region::parse(&text)?,
            None => Region::Us,
        };
        let api_base = loader.base_url("api_url", "TRAY_API_URL", region.api_base())?;
        let graphql_url =
            loader.base_url("graphql_url", "TRAY_GRAPHQL_URL", region.graphql_url())?;
        let auth_dialog_base = loader.base_url(
            "auth_dialog_url",
            "TRAY_AUTH_DIALOG_URL",
            region.auth_dialog_base(),
        )?;
        let embedded_id = loader.text("embedded_id", "TRAY_EMBEDDED_ID")?;
        let raw: RawConfig = loader.finish(&SETTINGS)?;
        Ok(Self {
            master_token,
            api_base,
            graphql_url,
            auth_dialog_base,
            embedded_id,
            default_environment: raw
                .default_environment
                .unwrap_or_else(|| "Production".to_owned()),
            create_users: raw.create_users,
            is_test_user: raw.is_test_user,
            allow_tray_oauth_app: raw.allow_tray_oauth_app,
            lookup_before_create: raw.lookup_before_create,
            overwrite_existing: raw.overwrite_existing,
            name_template: raw
                .name_template
                .unwrap_or_else(|| DEFAULT_NAME_TEMPLATE.to_owned()),
            services: raw.services,
            solution: raw.solution.map(SolutionConfig::from_raw).transpose()?,
            binding: BindingSettings {
                oauth_clients: raw.oauth_clients,
                oauth_scopes: raw.oauth_scopes,
            },
        })
    }
}
