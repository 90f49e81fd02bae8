//! `cargo xtask new-provider NAME`: a provider crate that builds, registers itself, is linked
//! from the runner and passes a snapshot test; and `scaffold-check`, which proves that in a
//! scratch copy of the workspace so the real tree is never touched.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail, ensure};

use crate::{cargo, run};

/// Creates `crates/NAME` and wires it into the workspace and the runner.
pub fn new_provider(root: &Path, name: &str) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    let crate_dir = root.join("crates").join(name);
    ensure!(
        !crate_dir.exists(),
        "{} already exists",
        crate_dir.display()
    );
    let module = name.replace('-', "_");
    let title = title_case(name);
    let files = [
        ("Cargo.toml", CARGO_TOML),
        ("src/lib.rs", LIB_RS),
        ("src/config.rs", CONFIG_RS),
        ("src/map.rs", MAP_RS),
        ("src/client.rs", CLIENT_RS),
        ("tests/map.rs", TEST_RS),
        ("tests/snapshots/map__api_key_body.snap", SNAPSHOT),
    ];
    for (relative, template) in files {
        let path = crate_dir.join(relative);
        std::fs::create_dir_all(path.parent().context("file without a folder")?)?;
        let text = template
            .replace("{{name}}", name)
            .replace("{{module}}", &module)
            .replace("{{title}}", &title)
            .replace("{{ENV}}", &module.to_ascii_uppercase());
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    wire_into_workspace(root, name, &module)?;
    Ok(crate_dir)
}

/// Generates a provider in a scratch copy of the workspace and builds, lints and tests it
/// together with the runner (whose pinned provider list must now include it).
pub fn check(root: &Path) -> anyhow::Result<()> {
    let scratch = root.join("target").join("scaffold-check");
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)?;
    }
    copy_workspace(root, &scratch)?;
    new_provider(&scratch, "scaffolded")?;
    let target_dir = root.join("target");
    for args in [
        vec![
            "clippy",
            "-p",
            "authport-scaffolded",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        vec![
            "test",
            "-p",
            "authport-scaffolded",
            "-p",
            "authport",
            "--bins",
            "--tests",
        ],
    ] {
        run(cargo()
            .current_dir(&scratch)
            .args(&args)
            .env("CARGO_TARGET_DIR", &target_dir)
            .env("INSTA_UPDATE", "no"))?;
    }
    std::fs::remove_dir_all(&scratch)?;
    // The scratch build shares the target dir (to reuse compiled dependencies) and so left its
    // own `authport` binary, with the scaffolded provider linked, in target/debug: relink ours.
    run(cargo()
        .current_dir(root)
        .args(["build", "-p", "authport", "--bin", "authport"]))?;
    eprintln!(
        "scaffold-check: a new provider builds, registers, is linked and passes its snapshot test"
    );
    Ok(())
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    ensure!(
        valid,
        "provider name `{name}` must be lower-case ASCII letters, digits and dashes, starting with a letter"
    );
    ensure!(
        !["core", "engine", "runner", "sandbox"].contains(&name),
        "`{name}` is a reserved crate name"
    );
    Ok(())
}

fn title_case(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Adds the crate to the workspace members and dependencies, links it from the runner, and adds
/// its name to the runner's pinned provider list.
fn wire_into_workspace(root: &Path, name: &str, module: &str) -> anyhow::Result<()> {
    edit(&root.join("Cargo.toml"), |text| {
        let text = insert_after(text, "members = [\n", &format!("    \"crates/{name}\",\n"))?;
        insert_after(
            &text,
            "[workspace.dependencies]\n",
            &format!("authport-{name} = {{ path = \"crates/{name}\" }}\n"),
        )
    })?;
    edit(&root.join("crates/runner/Cargo.toml"), |text| {
        insert_after(
            text,
            "[dependencies]\n",
            &format!("authport-{name}.workspace = true\n"),
        )
    })?;
    edit(&root.join("crates/runner/src/main.rs"), |text| {
        let text = insert_after(
            text,
            "use authport_tray as _;\n",
            &format!("use authport_{module} as _;\n"),
        )?;
        let marker = "assert_eq!(authport_core::provider_names(), vec![";
        let start = text
            .find(marker)
            .context("pinned provider list not found in runner")?
            + marker.len();
        let end = start
            + text[start..]
                .find("]);")
                .context("pinned provider list not closed")?;
        let mut names: Vec<String> = text[start..end]
            .split(',')
            .map(|n| n.trim().trim_matches('"').to_owned())
            .filter(|n| !n.is_empty())
            .collect();
        names.push(name.to_owned());
        names.sort();
        let list = names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ");
        Ok(format!("{}{list}{}", &text[..start], &text[end..]))
    })
}

fn edit(path: &Path, change: impl FnOnce(&str) -> anyhow::Result<String>) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let changed = change(&text).with_context(|| format!("cannot edit {}", path.display()))?;
    std::fs::write(path, changed).with_context(|| format!("cannot write {}", path.display()))
}

fn insert_after(text: &str, anchor: &str, addition: &str) -> anyhow::Result<String> {
    let at = text
        .find(anchor)
        .with_context(|| format!("`{}` not found", anchor.trim()))?
        + anchor.len();
    Ok(format!("{}{addition}{}", &text[..at], &text[at..]))
}

/// Copies the files git knows (tracked, or untracked and not ignored) into `scratch`.
fn copy_workspace(root: &Path, scratch: &Path) -> anyhow::Result<()> {
    let output = Command::new("git")
        .current_dir(root)
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output()
        .context("cannot run git ls-files")?;
    if !output.status.success() {
        bail!("git ls-files failed");
    }
    for relative in output.stdout.split(|&b| b == 0).filter(|p| !p.is_empty()) {
        let relative = Path::new(std::str::from_utf8(relative)?);
        let from = root.join(relative);
        if !from.is_file() {
            continue; // listed but deleted in the work tree
        }
        let to = scratch.join(relative);
        std::fs::create_dir_all(to.parent().context("file without a folder")?)?;
        std::fs::copy(&from, &to).with_context(|| format!("cannot copy {}", from.display()))?;
    }
    Ok(())
}

const CARGO_TOML: &str = r#"[package]
name = "authport-{{name}}"
description = "authport provider: {{title}}"
version.workspace = true
edition.workspace = true
rust-version.workspace = true
license.workspace = true

[dependencies]
authport-core.workspace = true
async-trait.workspace = true
inventory.workspace = true
serde_json.workspace = true

[dev-dependencies]
chrono.workspace = true
insta.workspace = true

[lints]
workspace = true
"#;

const LIB_RS: &str = r#"//! authport provider for {{title}}: registration and re-exports only.
//!
//! `config.rs` holds the settings, `map.rs` the pure record -> request mapping, `client.rs` the
//! importer (HTTP goes there).

mod client;
pub mod config;
pub mod map;

pub use client::{{title}}Importer;

use authport_core::{AuthImporter, BuildContext, ConfigError, ProviderPlugin};

fn build(context: &BuildContext) -> Result<Box<dyn AuthImporter>, ConfigError> {
    let settings = config::Settings::from_context(context)?;
    Ok(Box::new({{title}}Importer::new(settings)))
}

inventory::submit! {
    ProviderPlugin {
        name: "{{name}}",
        description: "{{title}} (scaffold: mapping only, the client is not written yet)",
        build,
    }
}
"#;

const CONFIG_RS: &str = r#"//! Settings, from the `[{{name}}]` config section and the environment (which wins).

use authport_core::{BuildContext, ConfigError, SecretString};

/// The provider's settings. `Debug` shows whether a key is set, never its value.
pub struct Settings {
    pub api_key: Option<SecretString>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("api_key", &self.api_key.as_ref().map(|_| "[set]"))
            .finish()
    }
}

impl Settings {
    pub fn from_context(context: &BuildContext) -> Result<Self, ConfigError> {
        let from_file = context
            .config
            .get("api_key")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        let api_key = context
            .env
            .get("{{ENV}}_API_KEY")
            .map(str::to_owned)
            .or(from_file)
            .map(SecretString::from);
        Ok(Self { api_key })
    }
}
"#;

const MAP_RS: &str = r#"//! Record -> request body. Pure: no IO, so it is snapshot-tested exhaustively.

use authport_core::{Auth, CredentialRecord, ExposeSecret, MappedRecord, MappingError, SecretJson, redact_json};
use serde_json::{Map, Value, json};

/// Maps one record to the body the vendor's import endpoint takes.
pub fn map_record(record: &CredentialRecord) -> Result<MappedRecord, MappingError> {
    let credentials = match &record.auth {
        Auth::ApiKey { api_key } => json!({"api_key": api_key.expose_secret()}),
        Auth::Basic { username, password } => {
            json!({"username": username.expose_secret(), "password": password.expose_secret()})
        }
        other => {
            return Err(MappingError::new(
                "auth.type",
                format!("{{name}} does not support `{}` credentials yet", other.kind()),
            ));
        }
    };
    let body = json!({
        "name": record.name.clone().unwrap_or_else(|| record.id.clone()),
        "service": record.service,
        "credentials": credentials,
        "settings": record.settings,
    });
    let mut target = Map::new();
    target.insert("owner".to_owned(), Value::String(record.owner.id.clone()));
    target.insert("service".to_owned(), Value::String(record.service.clone()));
    Ok(MappedRecord {
        target,
        redacted_body: redact_json(&body, &record.secret_values()),
        body: SecretJson::new(body),
        notes: Vec::new(),
    })
}
"#;

const CLIENT_RS: &str = r#"//! The importer. Discovery and mapping work; the HTTP calls are still to be written, so every
//! write is refused with a clear message rather than pretending to succeed.

use async_trait::async_trait;
use authport_core::{
    AuthImporter, CredentialRecord, DiscoveryKey, ImportOutcome, MappedRecord, MappingError,
    PriorImport, ProviderError, ProviderLimits, Removal, TargetRef, VerifyReport,
};

use crate::config::Settings;

#[derive(Debug)]
pub struct {{title}}Importer {
    #[allow(dead_code)] // Read by the client once it is written.
    settings: Settings,
}

impl {{title}}Importer {
    pub fn new(settings: Settings) -> Self {
        Self { settings }
    }
}

fn not_written() -> ProviderError {
    ProviderError::fatal("the {{name}} provider's HTTP client is not written yet")
}

#[async_trait]
impl AuthImporter for {{title}}Importer {
    async fn discover(&self, _keys: &[DiscoveryKey]) -> Result<(), ProviderError> {
        Ok(())
    }

    fn map(&self, record: &CredentialRecord) -> Result<MappedRecord, MappingError> {
        crate::map::map_record(record)
    }

    async fn import(
        &self,
        _record: &CredentialRecord,
        _mapped: &MappedRecord,
        _prior: Option<&PriorImport>,
    ) -> Result<ImportOutcome, ProviderError> {
        Err(not_written())
    }

    async fn reconcile(
        &self,
        _record: &CredentialRecord,
        _mapped: &MappedRecord,
    ) -> Result<Option<ImportOutcome>, ProviderError> {
        Err(not_written())
    }

    async fn verify(&self, _target: &TargetRef) -> Result<VerifyReport, ProviderError> {
        Err(not_written())
    }

    async fn remove(&self, _target: &TargetRef) -> Result<Removal, ProviderError> {
        Err(not_written())
    }

    fn limits(&self) -> ProviderLimits {
        ProviderLimits {
            requests_per_second: 10.0,
            burst: 10,
            default_concurrency: 4,
        }
    }
}
"#;

const TEST_RS: &str = r##"//! Snapshot of the mapped body, secrets redacted.

use std::io::Cursor;

use authport_core::input::InputReader;
use chrono::{TimeZone, Utc};

#[test]
fn api_key_body() {
    let line = r#"{"id":"acme/svc","owner":{"id":"acme"},"service":"svc","name":"Acme","auth":{"type":"api_key","api_key":"SECRET-1"},"settings":{"region":"eu"}}"#;
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let record = InputReader::from_reader("fixture", Cursor::new(line.as_bytes().to_vec()), now)
        .next()
        .unwrap()
        .result
        .unwrap();
    let mapped = authport_{{module}}::map::map_record(&record).unwrap();
    assert!(!mapped.redacted_body.to_string().contains("SECRET-1"));
    insta::assert_json_snapshot!(mapped.redacted_body);
}
"##;

const SNAPSHOT: &str = r#"---
source: crates/{{name}}/tests/map.rs
expression: mapped.redacted_body
---
{
  "credentials": {
    "api_key": "[redacted]"
  },
  "name": "Acme",
  "service": "svc",
  "settings": {
    "region": "eu"
  }
}
"#;
