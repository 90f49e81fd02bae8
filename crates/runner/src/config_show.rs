//! `authport config show`: the configuration a command would use, with no secret in it.
//!
//! The runner does not know which settings of a provider are secrets (only the provider
//! does), so values are printed by shape, allow-list: numbers and booleans as they are, URLs
//! as their scheme and host (a path, query or user part may carry a token), every other
//! text as `<redacted>`. Key names are printed only when they look like setting names
//! (`lower_snake_case`): a secret pasted as a key is counted, never shown.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use serde_json::Value;

use crate::cli::ConfigShowArgs;
use crate::config::{self, ConfigFile, ConfigSource};

const REDACTED: &str = "<redacted>";

pub fn show(args: ConfigShowArgs) -> anyhow::Result<authport_engine::Exit> {
    let (path, source) = config::discover(args.config);
    let names = authport_core::provider_names();
    let config = match &path {
        Some(path) => ConfigFile::load(path, &names).map_err(crate::usage)?,
        None => ConfigFile::default(),
    };
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .collect();
    let text = render(path.as_deref(), source, &config, &names, &env);
    crate::ignore_broken_pipe(std::io::stdout().lock().write_all(text.as_bytes()))
        .context("cannot write the configuration")?;
    Ok(authport_engine::Exit::Ok)
}

/// The whole text: where the file came from, `[engine]`, the other sections, then the
/// environment variables that override them (`AUTHPORT_CONFIG` and each provider's
/// `NAME_*`).
pub(crate) fn render(
    path: Option<&Path>,
    source: ConfigSource,
    config: &ConfigFile,
    providers: &[&str],
    env: &[(String, String)],
) -> String {
    let mut out = String::new();
    let origin = match source {
        ConfigSource::Flag => "--config",
        ConfigSource::Environment => "AUTHPORT_CONFIG",
        ConfigSource::CurrentDirectory => "the current directory",
        ConfigSource::None => "",
    };
    match path {
        Some(path) => out.push_str(&format!("# config file: {} ({origin})\n", path.display())),
        None => out.push_str(&format!(
            "# no config file (--config, {} or ./{}): defaults and the environment only\n",
            config::CONFIG_ENV,
            config::DEFAULT_CONFIG_FILE
        )),
    }
    out.push_str("# values: numbers and booleans as set, URLs as scheme and host, other text <redacted>\n\n[engine]\n");
    let engine = &config.engine;
    let mut setting = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            out.push_str(&format!("{name} = {value}\n"));
        }
    };
    setting("concurrency", engine.concurrency.map(|v| v.to_string()));
    setting("rate", engine.rate.map(|v| v.to_string()));
    setting("rate_ceiling", engine.rate_ceiling.map(|v| v.to_string()));
    setting("max_attempts", engine.max_attempts.map(|v| v.to_string()));
    setting(
        "request_timeout_secs",
        Some(engine.request_timeout().as_secs().to_string()),
    );
    setting("deadline_secs", engine.deadline_secs.map(|v| v.to_string()));
    setting("durable", engine.durable.map(|v| v.to_string()));
    setting(
        "allow_shared_grants",
        engine.allow_shared_grants.map(|v| v.to_string()),
    );
    for (name, section) in config.sections() {
        out.push_str(&format!("\n[{name}]\n"));
        if let Value::Object(map) = section {
            let mut hidden = 0;
            for (key, value) in map {
                if is_setting_name(key) {
                    out.push_str(&format!("{key} = {}\n", shown(value)));
                } else {
                    hidden += 1;
                }
            }
            if hidden > 0 {
                out.push_str(&format!(
                    "# {hidden} key(s) not shown: not a setting name\n"
                ));
            }
        }
    }
    let mut overrides: Vec<&(String, String)> = env
        .iter()
        .filter(|(name, value)| {
            !value.is_empty()
                && (name == config::CONFIG_ENV
                    || providers.iter().any(|provider| {
                        name.strip_prefix(&provider.to_uppercase())
                            .is_some_and(|rest| rest.starts_with('_'))
                    }))
        })
        .collect();
    overrides.sort();
    out.push_str("\n# environment (overrides the file)\n");
    if overrides.is_empty() {
        out.push_str("# (none set)\n");
    }
    for (name, value) in overrides {
        let value = if name == config::CONFIG_ENV {
            // A path the operator chose; printed above as the file when it was used.
            format!("{value:?}")
        } else {
            shown(&Value::String(value.clone()))
        };
        out.push_str(&format!("{name} = {value}\n"));
    }
    out
}

/// `lower_snake_case`, at most 40 characters: the shape of every provider's setting name.
fn is_setting_name(key: &str) -> bool {
    let mut chars = key.chars();
    key.len() <= 40
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A value by its shape, never a text that is not a URL.
fn shown(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => match url_origin(text) {
            Some(origin) => format!("{origin:?}"),
            None => format!("{REDACTED:?}"),
        },
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(shown).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            let mut hidden = 0;
            let mut pairs = Vec::new();
            for (key, value) in map {
                if is_setting_name(key) {
                    pairs.push(format!("{key} = {}", shown(value)));
                } else {
                    hidden += 1;
                }
            }
            if hidden > 0 {
                pairs.push(format!("# {hidden} key(s) not shown"));
            }
            format!("{{ {} }}", pairs.join(", "))
        }
    }
}

/// `https://host[:port]` (with `/…` when the URL had more), or `None` when the text is not
/// an http(s) URL or carries a user part.
fn url_origin(text: &str) -> Option<String> {
    let (scheme, rest) = text
        .strip_prefix("https://")
        .map(|rest| ("https", rest))
        .or_else(|| text.strip_prefix("http://").map(|rest| ("http", rest)))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
    if authority.is_empty() || !authority.chars().all(plain) {
        return None;
    }
    let more = if rest[end..].trim_matches('/').is_empty() {
        ""
    } else {
        "/…"
    };
    Some(format!("{scheme}://{authority}{more}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_shown_by_shape_and_text_never() {
        let check = |value: Value, expect: &str| assert_eq!(shown(&value), expect, "{value}");
        check(serde_json::json!(8), "8");
        check(serde_json::json!(true), "true");
        check(serde_json::json!("secret-token"), "\"<redacted>\"");
        check(
            serde_json::json!("https://api.tray.io"),
            "\"https://api.tray.io\"",
        );
        check(
            serde_json::json!("http://127.0.0.1:8787/tray/core"),
            "\"http://127.0.0.1:8787/…\"",
        );
        check(serde_json::json!("https://user:pw@host"), "\"<redacted>\"");
        check(
            serde_json::json!("https://host?key=x"),
            "\"https://host/…\"",
        );
        check(
            serde_json::json!({"crm": "slug", "Pasted-Secret": "x"}),
            "{ crm = \"<redacted>\", # 1 key(s) not shown }",
        );
    }
}
