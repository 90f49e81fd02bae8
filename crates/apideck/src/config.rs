//! Provider settings: the `[apideck]` config section, overridden by `APIDECK_*` variables.

use std::collections::BTreeMap;
use std::fmt;

use authport_core::{ConfigError, EnvSnapshot, MappingError, SecretString};
use authport_kit::{BindingSettings, Loader, SecretSetting, Url, record_settings};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Apideck's only server; `APIDECK_API_URL` replaces it (paths keep `/vault/...`).
pub const DEFAULT_API_URL: &str = "https://unify.apideck.com";

/// The consumer id sent on discovery reads (a `GET` never creates a consumer).
pub const DEFAULT_DISCOVERY_CONSUMER_ID: &str = "authport-discovery";

/// When to call `POST .../validate` after an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidateAfterImport {
    /// Never (default).
    #[default]
    Never,
    /// Only for apiKey/basic/custom connectors: Vault checks the required fields.
    NonOauth,
    /// Also for OAuth connectors, where Vault **forces a token refresh**: that can rotate the
    /// refresh token and break the source system that still uses it.
    Always,
}

/// How the pre-existing check learns whether a connection is already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreExistingCheck {
    /// One listing of the application's consumers per run (`GET /vault/consumers`); only
    /// records whose consumer already holds their service read the connection first (default).
    #[default]
    ConsumerList,
    /// Read every record's connection right before its import (one more request per record;
    /// the narrowest window for a connection someone else creates during the run).
    PerConnection,
}

/// What to do with a record whose `expires_in` looks like milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuspectMilliseconds {
    /// Refuse the record with a mapping error (default).
    #[default]
    Refuse,
    /// The value really is seconds: send it as given.
    AsSeconds,
    /// The value is milliseconds: divide by 1000.
    AsMilliseconds,
}

/// Where a service's records go and how their fields are named. Used for the built-in
/// defaults, for `[apideck.services.<service>]` and for a record's `targets.apideck`; each
/// later level overrides the earlier one key by key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetOverride {
    /// Apideck unified API (`crm`, `accounting`, ...).
    pub unified_api: Option<String>,
    /// Apideck connector id (`salesforce`, `quickbooks`, ...).
    pub service_id: Option<String>,
    /// Canonical secret name (`api_key`, `username`, `password`, or a `custom` field name)
    /// -> the connector's form field id that receives it.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Record setting name -> form field id; `null` drops the setting.
    #[serde(default)]
    pub settings_map: BTreeMap<String, Option<String>>,
    /// Tokens of this service never expire: allow OAuth records with neither expiry nor
    /// refresh token.
    pub long_lived_tokens: Option<bool>,
}

/// The keys of a [`TargetOverride`].
pub const TARGET_OVERRIDE_KEYS: [&str; 5] = [
    "unified_api",
    "service_id",
    "fields",
    "settings_map",
    "long_lived_tokens",
];

/// The keys of `[apideck]`.
pub const SETTINGS: [&str; 13] = [
    "api_key",
    "app_id",
    "api_url",
    "discovery_consumer_id",
    "overwrite_existing",
    "pre_existing_check",
    "validate_after_import",
    "suspect_milliseconds",
    "allow_incomplete_settings",
    "services",
    "redirect_uri",
    authport_kit::BINDING_KEYS[0],
    authport_kit::BINDING_KEYS[1],
];

/// Keys `[apideck]` once had whose job is now `[engine]`'s: refused with a pointer there, so a
/// value that no longer does anything is not silently kept.
pub const ENGINE_KEYS: [&str; 3] = ["requests_per_second", "burst", "concurrency"];

impl TargetOverride {
    /// Reads a record's `targets.apideck`. A problem is located by its field path and never
    /// quotes a value or an unknown key (a secret put in the wrong place must not be echoed).
    pub fn from_record(value: &Value, field: &str) -> Result<Self, MappingError> {
        if let Some(ids_only) = Self::ids_only(value) {
            return Ok(ids_only);
        }
        record_settings(value, field, &TARGET_OVERRIDE_KEYS)
    }

    /// The common `targets.apideck` read without serde: an object holding at most the two
    /// ids, as strings. It is what serde reads from such an object; anything else (and every
    /// problem) goes the general way.
    fn ids_only(value: &Value) -> Option<Self> {
        let mut ids = Self::default();
        for (key, value) in value.as_object()? {
            let Value::String(id) = value else {
                return None;
            };
            match key.as_str() {
                "unified_api" => ids.unified_api = Some(id.clone()),
                "service_id" => ids.service_id = Some(id.clone()),
                _ => return None,
            }
        }
        Some(ids)
    }

    /// `self` overridden by `later`, key by key.
    pub fn merged_with(&self, later: &TargetOverride) -> TargetOverride {
        let mut merged = self.clone();
        merged.override_with(later);
        merged
    }

    /// [`Self::merged_with`] in place.
    pub(crate) fn override_with(&mut self, later: &TargetOverride) {
        if later.unified_api.is_some() {
            self.unified_api.clone_from(&later.unified_api);
        }
        if later.service_id.is_some() {
            self.service_id.clone_from(&later.service_id);
        }
        self.fields.extend(later.fields.clone());
        self.settings_map.extend(later.settings_map.clone());
        if later.long_lived_tokens.is_some() {
            self.long_lived_tokens = later.long_lived_tokens;
        }
    }
}

/// The parsed provider settings. `Debug` is allow-list: the API key never shows.
#[derive(Clone)]
pub struct ApideckConfig {
    /// The Unify API key, without a `Bearer ` prefix (see [`without_bearer_prefix`]).
    pub api_key: SecretString,
    /// Printable ASCII: it travels in the `x-apideck-app-id` header.
    pub app_id: String,
    /// Checked by the kit's base URL rules (HTTPS or loopback; no userinfo, query, fragment).
    pub api_url: Url,
    pub discovery_consumer_id: String,
    /// Import over connections that already hold credentials this tool did not import.
    pub overwrite_existing: bool,
    pub pre_existing_check: PreExistingCheck,
    pub validate_after_import: ValidateAfterImport,
    pub suspect_milliseconds: SuspectMilliseconds,
    /// Import OAuth records even when a required form field (e.g. QuickBooks `realm_id`) is
    /// missing; the connection then stays `authorized` until someone fills it in.
    pub allow_incomplete_settings: bool,
    pub services: BTreeMap<String, TargetOverride>,
    /// Where Vault sends an end user after a reconnect session (`authport reconnect --links`).
    pub redirect_uri: Option<String>,
    /// `[apideck.oauth_clients]` and `[apideck.oauth_scopes]`: Vault does not expose its
    /// clients.
    pub binding: BindingSettings,
}

impl fmt::Debug for ApideckConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApideckConfig")
            .field("app_id", &self.app_id)
            .field("api_url", &self.api_base())
            .field("discovery_consumer_id", &self.discovery_consumer_id)
            .field("overwrite_existing", &self.overwrite_existing)
            .field("pre_existing_check", &self.pre_existing_check)
            .field("validate_after_import", &self.validate_after_import)
            .field("suspect_milliseconds", &self.suspect_milliseconds)
            .field("allow_incomplete_settings", &self.allow_incomplete_settings)
            .field("services", &self.services.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The config section minus `api_key`, `app_id` and `api_url`, which the kit's loader takes
/// out first (so that no serde message can ever quote the key).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    discovery_consumer_id: Option<String>,
    #[serde(default)]
    overwrite_existing: bool,
    #[serde(default)]
    pre_existing_check: PreExistingCheck,
    #[serde(default)]
    validate_after_import: ValidateAfterImport,
    #[serde(default)]
    suspect_milliseconds: SuspectMilliseconds,
    #[serde(default)]
    allow_incomplete_settings: bool,
    #[serde(default)]
    services: BTreeMap<String, TargetOverride>,
    redirect_uri: Option<String>,
    #[serde(default)]
    oauth_clients: BTreeMap<String, String>,
    #[serde(default)]
    oauth_scopes: BTreeMap<String, Vec<String>>,
}

/// `APIDECK_API_KEY`, else `[apideck] api_key`, with or without its `Bearer ` prefix.
pub const API_KEY: SecretSetting = SecretSetting::new("api_key", "APIDECK_API_KEY", "an api key")
    .normalised(without_bearer_prefix);

impl ApideckConfig {
    /// Reads the `[apideck]` section (`Value::Null` when absent) and the environment, which
    /// wins. No network IO.
    pub fn from_sources(section: &Value, env: &EnvSnapshot) -> Result<Self, ConfigError> {
        let mut loader = Loader::new("apideck", section, env)?;
        let api_key = loader.secret(API_KEY)?;
        refuse_engine_keys(loader.table())?;
        refuse_unknown_service_keys(loader.table())?;
        let app_id = loader
            .text("app_id", "APIDECK_APP_ID")?
            .filter(|id| !id.trim().is_empty())
            .ok_or_else(|| {
                ConfigError::new(
                    "apideck needs an application id: set APIDECK_APP_ID (or app_id in [apideck])",
                )
            })?;
        if !is_header_safe(&app_id) {
            return Err(ConfigError::new(
                "the apideck application id must be printable ASCII: it is sent in a header",
            ));
        }
        let api_url = loader.base_url("api_url", "APIDECK_API_URL", DEFAULT_API_URL)?;
        let raw: RawConfig = loader.finish(&SETTINGS)?;
        let discovery_consumer_id = raw
            .discovery_consumer_id
            .unwrap_or_else(|| DEFAULT_DISCOVERY_CONSUMER_ID.to_owned());
        if !is_header_safe(&discovery_consumer_id) {
            return Err(ConfigError::new(
                "[apideck] discovery_consumer_id must be non-empty printable ASCII",
            ));
        }
        Ok(Self {
            api_key,
            app_id,
            api_url,
            discovery_consumer_id,
            overwrite_existing: raw.overwrite_existing,
            pre_existing_check: raw.pre_existing_check,
            validate_after_import: raw.validate_after_import,
            suspect_milliseconds: raw.suspect_milliseconds,
            allow_incomplete_settings: raw.allow_incomplete_settings,
            services: raw.services,
            redirect_uri: raw.redirect_uri,
            binding: BindingSettings {
                oauth_clients: raw.oauth_clients,
                oauth_scopes: raw.oauth_scopes,
            },
        })
    }
}

/// The pace is `[engine]`'s: a key that once set it here is refused with a pointer there.
fn refuse_engine_keys(section: &Map<String, Value>) -> Result<(), ConfigError> {
    match ENGINE_KEYS.iter().find(|key| section.contains_key(**key)) {
        Some(key) => Err(ConfigError::new(format!(
            "[apideck] {key} is no longer read: set the run's pace in [engine] (`rate`, `rate_ceiling`, `concurrency`) or with --rate and --concurrency, and remove it from [apideck]"
        ))),
        None => Ok(()),
    }
}

/// `[apideck.services.<service>]` keys, with the allowed ones listed (the service name is the
/// operator's, shown escaped; the unknown key is not).
fn refuse_unknown_service_keys(section: &Map<String, Value>) -> Result<(), ConfigError> {
    let Some(Value::Object(services)) = section.get("services") else {
        return Ok(());
    };
    for (service, table) in services {
        let unknown = table.as_object().is_some_and(|keys| {
            keys.keys()
                .any(|key| !TARGET_OVERRIDE_KEYS.contains(&key.as_str()))
        });
        if unknown {
            return Err(ConfigError::new(format!(
                "[apideck.services.{}] has a key that is not one of {}",
                authport_core::record::escaped_name(service),
                TARGET_OVERRIDE_KEYS.join(", ")
            )));
        }
    }
    Ok(())
}

impl ApideckConfig {
    /// The API URL as paths are appended to it (`{base}/vault/...`): without a trailing slash.
    pub fn api_base(&self) -> &str {
        self.api_url.as_str().trim_end_matches('/')
    }
}

/// Like Apideck's SDKs, accept a key given with or without its `Bearer ` prefix (any case);
/// the HTTP path adds the prefix itself.
pub fn without_bearer_prefix(key: &str) -> &str {
    let key = key.trim();
    match key.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => key[7..].trim_start(),
        _ => key,
    }
}

/// Printable ASCII only: the value travels in an HTTP header (the kit's rule).
pub use authport_kit::is_header_safe;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_accepted_with_or_without_its_bearer_prefix() {
        for (given, expect) in [
            ("sk_abc", "sk_abc"),
            ("Bearer sk_abc", "sk_abc"),
            ("bearer  sk_abc ", "sk_abc"),
            ("BEARER sk_abc", "sk_abc"),
            (" sk_abc\n", "sk_abc"),
            ("Bearersk_abc", "Bearersk_abc"),
            ("Bearer ", "Bearer"),
            ("bé", "bé"),
        ] {
            assert_eq!(without_bearer_prefix(given), expect, "{given:?}");
        }
    }
}
