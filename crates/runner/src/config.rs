//! The config file (TOML) and how it combines with the environment.
//!
//! ```toml
//! [engine]              # optional run defaults; flags override them
//! concurrency = 8
//! rate = 20.0           # requests per second
//! max_attempts = 6
//! request_timeout_secs = 30
//!
//! [tray]                # passed as-is to the `tray` provider (see docs/tray.md)
//! [apideck]             # passed as-is to the `apideck` provider (see docs/apideck.md)
//! ```
//!
//! The environment overrides the file (each provider reads its own variables).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use authport_kit::SettingsProblem;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::cli::rules;

/// `[engine]` defaults.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EngineDefaults {
    pub concurrency: Option<u32>,
    pub rate: Option<f64>,
    /// The highest rate `--rate auto` may reach, requests per second (default: the
    /// provider's ceiling).
    pub rate_ceiling: Option<f64>,
    /// The share of the vendor's rate budget a run may spend, 0 < share <= 1 (default 1).
    pub budget_share: Option<f64>,
    pub max_attempts: Option<u32>,
    pub request_timeout_secs: Option<u64>,
    pub deadline_secs: Option<u64>,
    /// fsync the state file on every commit, so even a power loss loses no journal entry.
    pub durable: Option<bool>,
    /// `--allow-shared-grants` for every import and migrate run.
    pub allow_shared_grants: Option<bool>,
}

impl EngineDefaults {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs.unwrap_or(30))
    }

    /// Checks every value with the rules the flags follow (`crate::cli::rules`); the message
    /// names the setting, never its value.
    pub fn validate(&self) -> Result<(), String> {
        fn check<T: Copy>(
            name: &str,
            value: Option<T>,
            rule: fn(T) -> Result<T, String>,
        ) -> Result<(), String> {
            match value.map(rule) {
                Some(Err(message)) => Err(format!("[engine] {name} {message}")),
                _ => Ok(()),
            }
        }
        check("concurrency", self.concurrency, rules::concurrency)?;
        check("rate", self.rate, rules::rate)?;
        check("rate_ceiling", self.rate_ceiling, rules::rate_ceiling)?;
        check("budget_share", self.budget_share, rules::budget_share)?;
        check("max_attempts", self.max_attempts, rules::max_attempts)?;
        check(
            "request_timeout_secs",
            self.request_timeout_secs,
            rules::request_timeout_secs,
        )?;
        check("deadline_secs", self.deadline_secs, rules::deadline_secs)
    }
}

/// The `[engine]` settings and the kind of value each takes, for messages.
const ENGINE_SETTINGS: &[(&str, &str)] = &[
    ("concurrency", "a whole number of records in flight"),
    ("rate", "a number of requests per second"),
    ("rate_ceiling", "a number of requests per second"),
    ("budget_share", "a number above 0, at most 1"),
    ("max_attempts", "a whole number of calls"),
    ("request_timeout_secs", "a whole number of seconds"),
    ("deadline_secs", "a whole number of seconds"),
    ("durable", "true or false"),
    ("allow_shared_grants", "true or false"),
];

/// The `[migrate]` settings (read by `migrate`) and the kind of value each takes.
pub(crate) const MIGRATE_SETTINGS: &[(&str, &str)] = &[
    (
        "services",
        "a table of source service names to service slugs (text)",
    ),
    ("source_rate", "a number of requests per second"),
];

/// Reads the section `[section]` of the file `file` into `T`, whose settings (and the kind of
/// value each takes) are `settings`. serde's messages quote values and unknown key names,
/// either of which may be a secret typed in the wrong place: a problem is located through the
/// kit's settings reader (the one the provider sections use) and named by setting and kind.
pub(crate) fn typed_section<T: DeserializeOwned>(
    file: &str,
    section: &str,
    value: &Value,
    settings: &[(&str, &str)],
) -> anyhow::Result<T> {
    let allowed: Vec<&str> = settings.iter().map(|(name, _)| *name).collect();
    authport_kit::settings_from_json(value, &allowed).map_err(|problem| {
        let not_a_setting = || {
            format!(
                "[{section}] has a key that is not a setting (settings: {})",
                allowed.join(", ")
            )
        };
        let message = match problem {
            SettingsProblem::UnknownKey => not_a_setting(),
            SettingsProblem::At(path) | SettingsProblem::UnknownKeyAt(path) if path.is_empty() => {
                format!("[{section}] must be a table of settings")
            }
            SettingsProblem::At(path) | SettingsProblem::UnknownKeyAt(path) => {
                // Only the setting is named: deeper path segments are the operator's own keys
                // (e.g. a service name), which are not repeated.
                let setting = path.split(['.', '[']).next().unwrap_or_default();
                match settings.iter().find(|(name, _)| *name == setting) {
                    Some((name, kind)) => format!("[{section}] {name} must be {kind}"),
                    None => not_a_setting(),
                }
            }
        };
        anyhow::anyhow!("{file}: {message}")
    })
}

/// The parsed config file. Its `Debug` shows section names only: sections may hold secrets.
#[derive(Default)]
pub struct ConfigFile {
    pub engine: EngineDefaults,
    sections: serde_json::Map<String, Value>,
    /// The file it was read from: commands never write over it.
    path: Option<PathBuf>,
}

impl std::fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigFile")
            .field("engine", &self.engine)
            .field("sections", &self.sections.keys().collect::<Vec<_>>())
            .field("path", &self.path)
            .finish()
    }
}

impl ConfigFile {
    /// Reads and checks a config file. Unknown sections are an error (a typo must not silently
    /// drop settings); provider names come from the registry.
    pub fn load(path: &Path, providers: &[&str]) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let mut config = Self::parse(&text, &path.display().to_string(), providers)?;
        config.path = Some(path.to_path_buf());
        Ok(config)
    }

    /// The file this configuration was read from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn parse(text: &str, name: &str, providers: &[&str]) -> anyhow::Result<Self> {
        // toml's messages quote the offending line, which may hold a secret: keep only the
        // location and the reason.
        let table: toml::Table = toml::from_str(text).map_err(|error| {
            let location = error
                .span()
                .map(|span| line_of(text, span.start))
                .map(|line| format!(":{line}"))
                .unwrap_or_default();
            anyhow::anyhow!("{name}{location}: invalid TOML: {}", error.message())
        })?;
        let mut config = ConfigFile::default();
        for (key, value) in table {
            if key == "engine" {
                // Located through JSON (messages by setting and kind, never a value or an
                // unknown key), then read from TOML itself: JSON has no NaN or infinity, which
                // `validate` must see to refuse.
                let json = serde_json::to_value(&value)
                    .context("config section is not representable as JSON")?;
                typed_section::<EngineDefaults>(name, "engine", &json, ENGINE_SETTINGS)?;
                config.engine = value.try_into().map_err(|_: toml::de::Error| {
                    anyhow::anyhow!("{name}: [engine] has a value of the wrong type")
                })?;
                config
                    .engine
                    .validate()
                    .map_err(|message| anyhow::anyhow!("{name}: {message}"))?;
                continue;
            }
            if !providers.contains(&key.as_str()) {
                bail!(
                    "{name}: unknown section [{key}]; expected [engine] or one of the providers: {}",
                    providers.join(", ")
                );
            }
            let json = serde_json::to_value(&value)
                .context("config section is not representable as JSON")?;
            config.sections.insert(key, json);
        }
        Ok(config)
    }

    /// The sections other than `[engine]`, by name (the providers' and `[migrate]`).
    pub fn sections(&self) -> &serde_json::Map<String, Value> {
        &self.sections
    }

    /// The provider's section as JSON, `Null` when absent.
    pub fn section(&self, provider: &str) -> Value {
        self.sections.get(provider).cloned().unwrap_or(Value::Null)
    }

    /// The one way the runner builds a provider's context: its section of this file, the
    /// environment, `[engine] request_timeout_secs`, and the memo and gate of the command (the
    /// state's memo for a run, one in memory for a command that keeps no state).
    pub fn build_context(
        &self,
        provider: &str,
        env: &authport_core::EnvSnapshot,
        memo: std::sync::Arc<dyn authport_core::Memo>,
        gate: std::sync::Arc<dyn authport_core::RequestGate>,
    ) -> authport_core::BuildContext {
        authport_core::BuildContext {
            config: self.section(provider),
            env: env.clone(),
            memo,
            gate,
            request_timeout: self.engine.request_timeout(),
        }
    }
}

/// The variable that names the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "AUTHPORT_CONFIG";
/// The config file read from the current directory when neither `--config` nor
/// `AUTHPORT_CONFIG` names one (and only if it exists).
pub const DEFAULT_CONFIG_FILE: &str = "authport.toml";

/// Where the config file a command reads came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    Flag,
    Environment,
    CurrentDirectory,
    /// No file: every setting is a default or comes from the environment.
    None,
}

impl ConfigSource {
    /// How a file that was not given on the command line was found, for the log.
    pub fn discovered(self) -> Option<&'static str> {
        match self {
            ConfigSource::Environment => Some("from AUTHPORT_CONFIG"),
            ConfigSource::CurrentDirectory => Some("found in the current directory"),
            ConfigSource::Flag | ConfigSource::None => None,
        }
    }
}

/// The config file to read: `--config`, else `AUTHPORT_CONFIG` (a missing file it names is
/// an error later, as for `--config`), else `./authport.toml` when it exists, else none.
pub fn discover(flag: Option<PathBuf>) -> (Option<PathBuf>, ConfigSource) {
    discover_in(
        flag,
        std::env::var_os(CONFIG_ENV),
        Path::new(DEFAULT_CONFIG_FILE),
    )
}

fn discover_in(
    flag: Option<PathBuf>,
    env: Option<std::ffi::OsString>,
    default: &Path,
) -> (Option<PathBuf>, ConfigSource) {
    if let Some(path) = flag {
        return (Some(path), ConfigSource::Flag);
    }
    // An empty variable is unset, as the providers read theirs.
    if let Some(path) = env.filter(|value| !value.is_empty()) {
        return (Some(PathBuf::from(path)), ConfigSource::Environment);
    }
    if std::fs::symlink_metadata(default).is_ok() {
        return (Some(default.to_path_buf()), ConfigSource::CurrentDirectory);
    }
    (None, ConfigSource::None)
}

fn line_of(text: &str, byte: usize) -> usize {
    text[..byte.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROVIDERS: &[&str] = &["apideck", "tray"];

    #[test]
    fn the_config_file_is_the_flag_then_the_environment_then_the_current_directory() {
        let dir = tempfile::tempdir().unwrap();
        let present = dir.path().join("authport.toml");
        std::fs::write(&present, "").unwrap();
        let absent = dir.path().join("absent.toml");
        let flag = Some(PathBuf::from("flag.toml"));
        let env = Some(std::ffi::OsString::from("env.toml"));
        let check = |flag: &Option<PathBuf>, env: &Option<std::ffi::OsString>, default: &Path| {
            discover_in(flag.clone(), env.clone(), default)
        };
        assert_eq!(
            check(&flag, &env, &present),
            (flag.clone(), ConfigSource::Flag)
        );
        assert_eq!(
            check(&None, &env, &present),
            (Some(PathBuf::from("env.toml")), ConfigSource::Environment)
        );
        assert_eq!(
            check(&None, &Some("".into()), &present),
            (Some(present.clone()), ConfigSource::CurrentDirectory)
        );
        assert_eq!(check(&None, &None, &absent), (None, ConfigSource::None));
    }

    #[test]
    fn sections_and_engine_defaults_are_read() {
        let config = ConfigFile::parse(
            "[engine]\nconcurrency = 4\nrate = 12.5\n\n[tray]\nmaster_token = \"x\"\n",
            "c.toml",
            PROVIDERS,
        )
        .unwrap();
        assert_eq!(config.engine.concurrency, Some(4));
        assert_eq!(config.engine.rate, Some(12.5));
        assert_eq!(
            config.section("tray"),
            serde_json::json!({"master_token": "x"})
        );
        assert_eq!(config.section("apideck"), Value::Null);
        assert!(!format!("{config:?}").contains("master_token = "));
    }

    #[test]
    fn engine_values_follow_the_rules_of_the_flags() {
        let cases: &[(&str, Result<(), &str>)] = &[
            (
                "concurrency = 8\nrate = 0.0\nmax_attempts = 1\ndeadline_secs = 60",
                Ok(()),
            ),
            (
                "rate = 30.5\nrequest_timeout_secs = 3600\ndeadline_secs = 31536000\nbudget_share = 0.3",
                Ok(()),
            ),
            (
                "concurrency = 0",
                Err(
                    "c.toml: [engine] concurrency must be a whole number of records in flight from 1 to 1024",
                ),
            ),
            (
                "concurrency = 4294967295",
                Err(
                    "c.toml: [engine] concurrency must be a whole number of records in flight from 1 to 1024",
                ),
            ),
            (
                "rate = nan",
                Err(
                    "c.toml: [engine] rate must be requests per second, e.g. 30 or 30/s (0 for no limit)",
                ),
            ),
            (
                "rate = inf",
                Err(
                    "c.toml: [engine] rate must be requests per second, e.g. 30 or 30/s (0 for no limit)",
                ),
            ),
            (
                "rate_ceiling = 0.0",
                Err("c.toml: [engine] rate_ceiling must be requests per second above 0, e.g. 50"),
            ),
            (
                "budget_share = 1.5",
                Err(
                    "c.toml: [engine] budget_share must be a share above 0 and at most 1, e.g. 0.3",
                ),
            ),
            (
                "budget_share = 0.0",
                Err(
                    "c.toml: [engine] budget_share must be a share above 0 and at most 1, e.g. 0.3",
                ),
            ),
            (
                "rate = -5.0",
                Err(
                    "c.toml: [engine] rate must be requests per second, e.g. 30 or 30/s (0 for no limit)",
                ),
            ),
            (
                "max_attempts = 0",
                Err(
                    "c.toml: [engine] max_attempts must be a whole number of calls of one kind per record from 1 to 100",
                ),
            ),
            (
                "deadline_secs = 9223372036854775807",
                Err(
                    "c.toml: [engine] deadline_secs must be a whole number of seconds from 1 to 31536000",
                ),
            ),
            (
                "deadline_secs = 0",
                Err(
                    "c.toml: [engine] deadline_secs must be a whole number of seconds from 1 to 31536000",
                ),
            ),
            (
                "request_timeout_secs = 9223372036854775807",
                Err(
                    "c.toml: [engine] request_timeout_secs must be a whole number of seconds from 1 to 3600",
                ),
            ),
            (
                "concurrency = -1",
                Err("c.toml: [engine] concurrency must be a whole number of records in flight"),
            ),
            (
                "durable = \"yes\"",
                Err("c.toml: [engine] durable must be true or false"),
            ),
            (
                "rate = \"fast\"",
                Err("c.toml: [engine] rate must be a number of requests per second"),
            ),
        ];
        for (body, expect) in cases {
            let parsed = ConfigFile::parse(&format!("[engine]\n{body}\n"), "c.toml", PROVIDERS);
            match (parsed, expect) {
                (Ok(_), Ok(())) => {}
                (Err(error), Err(message)) => assert_eq!(&format!("{error:#}"), message, "{body}"),
                (Ok(_), Err(message)) => panic!("{body}: accepted, expected {message}"),
                (Err(error), Ok(())) => panic!("{body}: refused: {error:#}"),
            }
        }
    }

    #[test]
    fn mistakes_are_located_and_never_quote_values() {
        let check = |text: &str, expect: &str| {
            let error = ConfigFile::parse(text, "c.toml", PROVIDERS).unwrap_err();
            assert_eq!(format!("{error:#}"), expect);
        };
        check(
            "[trya]\nx = 1\n",
            "c.toml: unknown section [trya]; expected [engine] or one of the providers: apideck, tray",
        );
        check(
            "[engine]\nconcurency = 4\n",
            "c.toml: [engine] has a key that is not a setting (settings: concurrency, rate, rate_ceiling, budget_share, max_attempts, request_timeout_secs, deadline_secs, durable, allow_shared_grants)",
        );
        let error = ConfigFile::parse(
            "[tray]\nmaster_token = \"SECRET-CANARY\n",
            "c.toml",
            PROVIDERS,
        )
        .unwrap_err();
        let text = format!("{error:#}");
        assert!(text.starts_with("c.toml:2: invalid TOML"), "{text}");
        assert!(!text.contains("SECRET-CANARY"), "{text}");
    }

    /// Issue 17 item 14: a secret pasted as a key name or as a value of the wrong type in
    /// `[engine]` or `[migrate]` is never quoted; the message names the setting and its kind.
    #[test]
    fn engine_and_migrate_mistakes_name_the_setting_and_kind_never_the_text() {
        const CANARY: &str = "CANARY-config-5b1f";
        let names = ["apideck", "tray", "migrate"];
        let cases: &[(&str, &str)] = &[
            (
                "[engine]\nCANARY-config-5b1f = 4\n",
                "c.toml: [engine] has a key that is not a setting (settings: concurrency, rate, rate_ceiling, budget_share, max_attempts, request_timeout_secs, deadline_secs, durable, allow_shared_grants)",
            ),
            (
                "[engine]\nconcurrency = \"CANARY-config-5b1f\"\n",
                "c.toml: [engine] concurrency must be a whole number of records in flight",
            ),
            (
                "[engine]\nrate = [\"CANARY-config-5b1f\"]\n",
                "c.toml: [engine] rate must be a number of requests per second",
            ),
            (
                "[engine]\ndurable = \"CANARY-config-5b1f\"\n",
                "c.toml: [engine] durable must be true or false",
            ),
            (
                "[migrate]\nCANARY-config-5b1f = 1\n",
                "c.toml: [migrate] has a key that is not a setting (settings: services, source_rate)",
            ),
            (
                "[migrate]\nsource_rate = \"CANARY-config-5b1f\"\n",
                "c.toml: [migrate] source_rate must be a number of requests per second",
            ),
            (
                "[migrate.services]\nCANARY-config-5b1f = 7\n",
                "c.toml: [migrate] services must be a table of source service names to service slugs (text)",
            ),
            (
                "[migrate]\nservices = \"CANARY-config-5b1f\"\n",
                "c.toml: [migrate] services must be a table of source service names to service slugs (text)",
            ),
        ];
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)] // Read for its errors only.
        struct Migrate {
            #[serde(default)]
            services: std::collections::BTreeMap<String, String>,
            source_rate: Option<f64>,
        }
        for (text, expect) in cases {
            let error = ConfigFile::parse(text, "c.toml", &names).and_then(|config| {
                typed_section::<Migrate>(
                    "c.toml",
                    "migrate",
                    &config.section("migrate"),
                    MIGRATE_SETTINGS,
                )
                .map(|_| ())
            });
            let message = format!("{:#}", error.expect_err(text));
            assert_eq!(&message, expect, "{text}");
            assert!(!message.contains(CANARY), "{message}");
        }
    }

    /// Issue 17 item 16: what a provider is built from (its config section holds its secrets)
    /// prints setting names only.
    #[test]
    fn debug_of_a_config_and_a_provider_context_never_shows_a_secret() {
        const CANARY: &str = "CANARY-debug-93c2";
        let config = ConfigFile::parse(
            &format!("[engine]\nconcurrency = 2\n[tray]\nmaster_token = \"{CANARY}\"\n"),
            "c.toml",
            PROVIDERS,
        )
        .unwrap();
        let context = config.build_context(
            "tray",
            &authport_core::EnvSnapshot::from_pairs([("TRAY_MASTER_TOKEN", CANARY)]),
            std::sync::Arc::new(authport_core::InMemoryMemo::default()),
            authport_engine::RunGate::new(),
        );
        for text in [
            format!("{config:?}"),
            format!("{context:?}"),
            format!("{context:#?}"),
        ] {
            assert!(!text.contains(CANARY), "{text}");
        }
        assert!(format!("{config:?}").contains("tray"));
    }
}
