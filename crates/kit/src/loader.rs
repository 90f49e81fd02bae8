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
        let unknown = self
            .table
            .keys()
            .filter(|key| !allowed.contains(&key.as_str()))
            .count();
        if unknown > 0 {
            // Counted, never named: an unknown key may be a secret pasted in the wrong place.
            let keys = match unknown {
                1 => "a key that is not a setting".to_owned(),
                n => format!("{n} keys that are not settings"),
            };
            return Err(ConfigError::new(format!(
                "[{}] has {keys} (settings: {})",
                self.section,
                allowed.join(", ")
            )));
        }
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

#[cfg(test)]
mod tests {
    use authport_core::ExposeSecret;
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    const KEY: SecretSetting = SecretSetting::new("api_key", "X_API_KEY", "an api key");
    const SECRET: &str = "CANARY-loader-41c2";

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Rest {
        #[serde(default)]
        flag: bool,
    }

    /// Reads `[x]` with `env`: the key, the base URL and the rest, or the message.
    fn load(section: Value, env: &[(&str, &str)]) -> Result<(String, Url, bool), String> {
        let env = EnvSnapshot::from_pairs(env.iter().copied());
        let read = || {
            let mut loader = Loader::new("x", &section, &env)?;
            let key = loader.secret(KEY)?;
            let url = loader.base_url("api_url", "X_API_URL", "https://api.x.example")?;
            let rest: Rest = loader.finish(&["api_key", "api_url", "flag"])?;
            Ok::<_, ConfigError>((key.expose_secret().to_owned(), url, rest.flag))
        };
        read().map_err(|error| {
            assert!(!error.message.contains(SECRET), "{}", error.message);
            error.message
        })
    }

    #[test]
    fn the_environment_wins_then_the_section_then_the_default() {
        let section = json!({"api_key": "from-file", "api_url": "https://file.example"});
        let (key, url, _) = load(section.clone(), &[("X_API_KEY", " from-env\n")]).unwrap();
        assert_eq!(
            (key.as_str(), url.as_str()),
            ("from-env", "https://file.example/")
        );
        let (key, url, flag) = load(section, &[("X_API_URL", "http://127.0.0.1:9")]).unwrap();
        assert_eq!(
            (key.as_str(), url.as_str()),
            ("from-file", "http://127.0.0.1:9/")
        );
        assert!(!flag);
        let (_, url, flag) = load(json!({"flag": true}), &[("X_API_KEY", "k")]).unwrap();
        assert_eq!(url.as_str(), "https://api.x.example/");
        assert!(flag);
    }

    #[test]
    fn a_secret_must_be_there_and_header_safe() {
        let missing = "x needs an api key: set X_API_KEY (or api_key in [x])";
        assert_eq!(load(Value::Null, &[]).unwrap_err(), missing);
        assert_eq!(load(json!({"api_key": "  "}), &[]).unwrap_err(), missing);
        for bad in [
            format!("{SECRET} x"),
            format!("{SECRET}\r\nX-Injected: 1"),
            format!("{SECRET}\u{7}"),
            format!("{SECRET}é"),
        ] {
            let message = load(Value::Null, &[("X_API_KEY", &bad)]).unwrap_err();
            assert_eq!(
                message,
                "the x api key must be printable ASCII without spaces: it is sent in a header"
            );
        }
        let message = load(json!({"api_key": 5}), &[]).unwrap_err();
        assert_eq!(message, "[x] api_key must be a string");
        let prefixed = KEY.normalised(|text| text.strip_prefix("Bearer ").unwrap_or(text));
        let env = EnvSnapshot::from_pairs([("X_API_KEY", " Bearer k-1 ")]);
        let mut loader = Loader::new("x", &Value::Null, &env).unwrap();
        assert_eq!(loader.secret(prefixed).unwrap().expose_secret(), "k-1");
    }

    #[test]
    fn a_base_url_problem_names_where_the_url_came_from() {
        let url = format!("https://user:{SECRET}@x.example");
        let message = load(json!({"api_url": url}), &[("X_API_KEY", "k")]).unwrap_err();
        assert!(
            message.starts_with("[x] api_url must not contain"),
            "{message}"
        );
        let message = load(Value::Null, &[("X_API_KEY", "k"), ("X_API_URL", &url)]).unwrap_err();
        assert!(
            message.starts_with("X_API_URL must not contain"),
            "{message}"
        );
        let message = load(
            Value::Null,
            &[("X_API_KEY", "k"), ("X_API_URL", "http://x.example")],
        )
        .unwrap_err();
        assert!(message.contains("must use https"), "{message}");
    }

    #[test]
    fn unknown_keys_are_counted_never_named() {
        let message = load(json!({SECRET: 1}), &[("X_API_KEY", "k")]).unwrap_err();
        assert_eq!(
            message,
            "[x] has a key that is not a setting (settings: api_key, api_url, flag)"
        );
        let message = load(json!({SECRET: 1, "b": 2}), &[("X_API_KEY", "k")]).unwrap_err();
        assert_eq!(
            message,
            "[x] has 2 keys that are not settings (settings: api_key, api_url, flag)"
        );
        let message = load(json!({"flag": SECRET}), &[("X_API_KEY", "k")]).unwrap_err();
        assert!(message.contains("flag"), "{message}");
        let message = load(json!([SECRET]), &[]).unwrap_err();
        assert_eq!(message, "[x] must be a table of settings");
    }

    #[test]
    fn debug_counts_the_keys_only() {
        let env = EnvSnapshot::from_pairs([("X_API_KEY", SECRET)]);
        let loader = Loader::new("x", &json!({SECRET: SECRET}), &env).unwrap();
        let shown = format!("{loader:?}");
        assert!(
            !shown.contains(SECRET) && shown.contains("keys: 1"),
            "{shown}"
        );
    }
}
