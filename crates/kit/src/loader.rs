//! The settings loader every provider's `config.rs` uses: its `[section]` and the environment
//! (which wins), read once. Secrets are taken out of the section before anything else reads it,
//! so no serde message can ever quote one; base URL problems name the setting they came from
//! (the variable or `[section] key`), never the URL; unknown keys are counted, never named (a
//! secret pasted as a key must not be echoed, see `authport_core::record::names`).

use authport_core::{ConfigError, EnvSnapshot, SecretString};
use reqwest::Url;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::settings::section_settings;
use crate::url::parse_base_url;

/// A secret setting: an environment variable, else a string key of the section.
#[derive(Debug, Clone, Copy)]
pub struct SecretSetting {
    /// The key in `[section]` (`api_key`).
    pub key: &'static str,
    /// The environment variable, which wins (`APIDECK_API_KEY`).
    pub variable: &'static str,
    /// What it is, with its article, for messages (`an api key`, `a master token`).
    pub what: &'static str,
    /// Applied after trimming, before the checks (Apideck accepts a `Bearer ` prefix).
    pub normalise: fn(&str) -> &str,
}

impl SecretSetting {
    pub const fn new(key: &'static str, variable: &'static str, what: &'static str) -> Self {
        Self {
            key,
            variable,
            what,
            normalise: str::trim,
        }
    }

    /// `normalise` runs on the trimmed text.
    pub const fn normalised(mut self, normalise: fn(&str) -> &str) -> Self {
        self.normalise = normalise;
        self
    }

    /// `what` without its article (`api key`).
    fn noun(&self) -> &'static str {
        self.what
            .split_once(' ')
            .filter(|(article, _)| matches!(*article, "a" | "an"))
            .map_or(self.what, |(_, noun)| noun)
    }
}

/// A provider's config section and environment, while it is being read. `Debug` names the
/// section and counts its keys (values and key names may be secrets).
pub struct Loader<'a> {
    section: &'static str,
    table: Map<String, Value>,
    env: &'a EnvSnapshot,
}

impl std::fmt::Debug for Loader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("section", &self.section)
            .field("keys", &self.table.len())
            .finish_non_exhaustive()
    }
}

impl<'a> Loader<'a> {
    /// `value` is the `[section]` table (`Value::Null` when absent).
    pub fn new(
        section: &'static str,
        value: &Value,
        env: &'a EnvSnapshot,
    ) -> Result<Self, ConfigError> {
        let table = match value {
            Value::Null => Map::new(),
            Value::Object(map) => map.clone(),
            _ => {
                return Err(ConfigError::new(format!(
                    "[{section}] must be a table of settings"
                )));
            }
        };
        Ok(Self {
            section,
            table,
            env,
        })
    }

    pub fn env(&self) -> &EnvSnapshot {
        self.env
    }

    /// The section as it is now (without what was taken), for a provider's own checks.
    pub fn table(&self) -> &Map<String, Value> {
        &self.table
    }

    /// Takes the secret out of the section: the variable, else the key; trimmed, normalised,
    /// refused when missing or empty and when it is not header-safe (printable ASCII without
    /// spaces: it travels in a header). Messages name the setting, never the value.
    pub fn secret(&mut self, setting: SecretSetting) -> Result<SecretString, ConfigError> {
        let section = self.section;
        let from_file = self.take_string(setting.key)?;
        let text = self
            .env
            .get(setting.variable)
            .map(str::to_owned)
            .or(from_file)
            .map(|text| (setting.normalise)(text.trim()).to_owned())
            .filter(|text| !text.is_empty())
            .ok_or_else(|| {
                ConfigError::new(format!(
                    "{section} needs {}: set {} (or {} in [{section}])",
                    setting.what, setting.variable, setting.key
                ))
            })?;
        if !is_token_safe(&text) {
            return Err(ConfigError::new(format!(
                "the {section} {} must be printable ASCII without spaces: it is sent in a header",
                setting.noun()
            )));
        }
        Ok(SecretString::from(text))
    }

    /// Takes a plain text setting out of the section: the variable, else the key.
    pub fn text(&mut self, key: &str, variable: &str) -> Result<Option<String>, ConfigError> {
        let from_file = self.take_string(key)?;
        Ok(self.env.get(variable).map(str::to_owned).or(from_file))
    }

    /// Takes a base URL out of the section: the variable, else the key, else `default`;
    /// checked by [`parse_base_url`], whose messages name where the URL came from (the
    /// variable, or `[section] key`; the variable for the default).
    pub fn base_url(
        &mut self,
        key: &str,
        variable: &str,
        default: &str,
    ) -> Result<Url, ConfigError> {
        let from_file = self.take_string(key)?;
        match (self.env.get(variable), from_file) {
            (Some(text), _) => parse_base_url(variable, text),
            (None, Some(text)) => parse_base_url(&format!("[{}] {key}", self.section), &text),
            (None, None) => parse_base_url(variable, default),
        }
    }

    /// Reads what is left of the section into `T`, whose keys are `allowed` (the taken ones
    /// may be listed too). Problems are located by path; unknown keys are never named.
    pub fn finish<T: DeserializeOwned>(self, allowed: &[&str]) -> Result<T, ConfigError> {
        section_settings(self.section, &Value::Object(self.table), allowed)
    }

    /// Removes `key`; a value that is not a string (nor null) is refused by name.
    fn take_string(&mut self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.table.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(ConfigError::new(format!(
                "[{}] {key} must be a string",
                self.section
            ))),
        }
    }
}

/// Printable ASCII without spaces: a token sent in a header (no CR, LF or control character).
pub fn is_token_safe(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic())
}

/// Non-blank printable ASCII, spaces allowed: a plain value sent in a header (an app id).
pub fn is_header_safe(value: &str) -> bool {
    !value.trim().is_empty() && value.bytes().all(|b| (0x20..0x7f).contains(&b))
}
