//! Provider settings: the `[nango]` config section, overridden by `NANGO_*` variables.

use std::collections::BTreeMap;
use std::fmt;

use authport_core::{ConfigError, EnvSnapshot, MappingError, SecretString};
use authport_kit::{BindingSettings, Loader, SecretSetting, Url, record_settings};
use serde::Deserialize;
use serde_json::Value;

/// Nango Cloud; `NANGO_API_URL` replaces it (self-hosted: often `http://localhost:3003`).
pub const DEFAULT_API_URL: &str = "https://api.nango.dev";

/// Nango Cloud's hosted Connect UI, the base of a reconnect link (`?session_token=...` is
/// added); `NANGO_CONNECT_URL` replaces it (self-hosted Nango serves its own).
pub const DEFAULT_CONNECT_URL: &str = "https://connect.nango.dev";

/// Nango's free plan: 200 requests per minute, per account (fixed window).
pub const FREE_PLAN_REQUESTS_PER_MINUTE: u32 = 200;

/// A Nango credential type a `custom` record can be sent as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum CustomType {
    #[serde(rename = "API_KEY")]
    ApiKey,
    #[serde(rename = "BASIC")]
    Basic,
    #[serde(rename = "OAUTH2")]
    OAuth2,
}

impl CustomType {
    /// The credential fields of this type a custom field may fill.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            CustomType::ApiKey => &["apiKey"],
            CustomType::Basic => &["username", "password"],
            CustomType::OAuth2 => &["access_token", "refresh_token"],
        }
    }

    pub fn wire_name(self) -> &'static str {
        match self {
            CustomType::ApiKey => "API_KEY",
            CustomType::Basic => "BASIC",
            CustomType::OAuth2 => "OAUTH2",
        }
    }
}

/// How a `custom` record's fields become one of Nango's documented credential objects:
/// `type` and every record field name -> that type's credential field.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomMap {
    #[serde(rename = "type")]
    pub credential_type: CustomType,
    pub fields: BTreeMap<String, String>,
}

/// `[nango.services.<service>]`: which integration a service's records go to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSettings {
    pub provider_config_key: Option<String>,
}

/// `[nango.integrations.<provider_config_key>]`: per-integration rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationSettings {
    /// The field map for `custom` records.
    pub custom: Option<CustomMap>,
}

/// A record's `targets.nango`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordTarget {
    pub provider_config_key: Option<String>,
    pub connection_id: Option<String>,
    pub custom: Option<CustomMap>,
}

/// The keys of `targets.nango`.
pub const RECORD_TARGET_KEYS: [&str; 3] = ["provider_config_key", "connection_id", "custom"];

impl RecordTarget {
    /// Reads a record's `targets.nango`; problems are located and never quote a value or an
    /// unknown key.
    pub fn from_record(value: &Value, field: &str) -> Result<Self, MappingError> {
        record_settings(value, field, &RECORD_TARGET_KEYS)
    }
}

/// The keys of `[nango]`.
pub const SETTINGS: [&str; 10] = [
    "secret_key",
    "api_url",
    "connect_url",
    "provider_config_key",
    "overwrite_existing",
    "allow_second_connection",
    "services",
    "integrations",
    authport_kit::BINDING_KEYS[0],
    authport_kit::BINDING_KEYS[1],
];

/// The parsed provider settings. `Debug` is allow-list: the secret key never shows.
#[derive(Clone)]
pub struct NangoConfig {
    pub secret_key: SecretString,
    /// Checked by the kit's base URL rules (HTTPS or loopback; no userinfo, query, fragment).
    pub api_url: Url,
    /// The hosted Connect UI reconnect links open (same rules as `api_url`).
    pub connect_url: Url,
    /// The integration for every service that names none (after `targets.nango` and
    /// `[nango.services.<service>]`).
    pub provider_config_key: Option<String>,
    /// Upsert over connections that exist and were not imported by this tool.
    pub overwrite_existing: bool,
    /// Create a record's connection even when its owner already has another one in the same
    /// integration (otherwise the record is skipped as `pre_existing`).
    pub allow_second_connection: bool,
    pub services: BTreeMap<String, ServiceSettings>,
    pub integrations: BTreeMap<String, IntegrationSettings>,
    /// `[nango.oauth_clients]` and `[nango.oauth_scopes]`: override what each integration
    /// says of its OAuth client.
    pub binding: BindingSettings,
}

impl fmt::Debug for NangoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NangoConfig")
            .field("api_url", &self.api_base())
            .field("connect_url", &self.connect_url.as_str())
            .field("provider_config_key", &self.provider_config_key)
            .field("overwrite_existing", &self.overwrite_existing)
            .field("allow_second_connection", &self.allow_second_connection)
            .field("services", &self.services.keys().collect::<Vec<_>>())
            .field(
                "integrations",
                &self.integrations.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// The config section minus `secret_key`, `api_url` and `connect_url`, which the kit's loader takes out first
/// (so that no serde message can ever quote the key).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    provider_config_key: Option<String>,
    #[serde(default)]
    overwrite_existing: bool,
    #[serde(default)]
    allow_second_connection: bool,
    #[serde(default)]
    services: BTreeMap<String, ServiceSettings>,
    #[serde(default)]
    integrations: BTreeMap<String, IntegrationSettings>,
    #[serde(default)]
    oauth_clients: BTreeMap<String, String>,
    #[serde(default)]
    oauth_scopes: BTreeMap<String, Vec<String>>,
}

/// `NANGO_SECRET_KEY`, else `[nango] secret_key`.
pub const SECRET_KEY: SecretSetting =
    SecretSetting::new("secret_key", "NANGO_SECRET_KEY", "a secret key");

impl NangoConfig {
    /// Reads the `[nango]` section (`Value::Null` when absent) and the environment, which
    /// wins. No network IO.
    pub fn from_sources(section: &Value, env: &EnvSnapshot) -> Result<Self, ConfigError> {
        let mut loader = Loader::new("nango", section, env)?;
        let secret_key = loader.secret(SECRET_KEY)?;
        let api_url = loader.base_url("api_url", "NANGO_API_URL", DEFAULT_API_URL)?;
        let connect_url =
            loader.base_url("connect_url", "NANGO_CONNECT_URL", DEFAULT_CONNECT_URL)?;
        let raw: RawConfig = loader.finish(&SETTINGS)?;
        for (name, map) in raw
            .integrations
            .iter()
            .filter_map(|(name, settings)| Some((name, settings.custom.as_ref()?)))
        {
            check_custom_map(map).map_err(|problem| {
                ConfigError::new(format!("[nango.integrations.{name}] custom: {problem}"))
            })?;
        }
        Ok(Self {
            secret_key,
            api_url,
            connect_url,
            provider_config_key: raw.provider_config_key.filter(|k| !k.trim().is_empty()),
            overwrite_existing: raw.overwrite_existing,
            allow_second_connection: raw.allow_second_connection,
            services: raw.services,
            integrations: raw.integrations,
            binding: BindingSettings {
                oauth_clients: raw.oauth_clients,
                oauth_scopes: raw.oauth_scopes,
            },
        })
    }

    /// The API URL as paths are appended to it: without a trailing slash.
    pub fn api_base(&self) -> &str {
        self.api_url.as_str().trim_end_matches('/')
    }
}

/// A custom map's targets must be fields of its credential type.
pub fn check_custom_map(map: &CustomMap) -> Result<(), String> {
    let allowed = map.credential_type.fields();
    match map
        .fields
        .values()
        .find(|field| !allowed.contains(&field.as_str()))
    {
        Some(_) => Err(format!(
            "fields must map to {} fields: {}",
            map.credential_type.wire_name(),
            allowed.join(", ")
        )),
        None => Ok(()),
    }
}
