//! Where a new provider goes: its names (checked, so every generated identifier is valid and
//! clashes with nothing), and the lines that link it in: the workspace's members and
//! dependencies, the runner's, and the sandbox's one list of emulators.

use std::path::Path;

use anyhow::{Context, ensure};

/// The line of `crates/sandbox/src/lib.rs` the scaffold appends the emulator above, in the
/// sandbox's one list of emulators (`emulators! { ... }`).
const EMULATOR_ANCHOR: &str = "    // new-provider: emulators above this line\n";

pub(super) fn check_name(name: &str) -> anyhow::Result<()> {
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
        !["core", "engine", "kit", "runner", "sandbox", "testkit"].contains(&name),
        "`{name}` is a reserved crate name"
    );
    let module = name.replace('-', "_");
    ensure!(
        !SANDBOX_NAMES.contains(&module.as_str()) && !KEYWORDS.contains(&module.as_str()),
        "`{module}` cannot name the emulator's module and field in the sandbox (a Rust keyword, or a name the sandbox already uses)"
    );
    Ok(())
}

/// Names the sandbox uses beside its emulators' (its other modules, the fields of
/// `SandboxConfig`, `RunningSandbox` and its data file), which an emulator module would clash
/// with.
const SANDBOX_NAMES: [&str; 10] = [
    "emulator", "faults", "persist", "spec", "addr", "shutdown", "server", "format", "version",
    "listen",
];

/// Rust's keywords (strict and reserved, 2024 edition): not a module name.
const KEYWORDS: [&str; 51] = [
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut",
    "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true", "type", "unsafe",
    "use", "where", "while", "abstract", "become", "box", "do", "final", "macro", "override",
    "priv", "try", "typeof", "unsized", "virtual", "yield",
];

/// Adds `module::TitleState` to the sandbox's list of emulators, above the anchor line, and
/// `name` to the end of its unit test's pinned [`EMULATOR_NAMES`] (in list order), when the
/// test pins them.
pub(super) fn add_emulator(
    text: &str,
    name: &str,
    module: &str,
    title: &str,
) -> anyhow::Result<String> {
    let at = text.find(EMULATOR_ANCHOR).with_context(|| {
        format!(
            "`{}` not found in the sandbox's list of emulators",
            EMULATOR_ANCHOR.trim()
        )
    })?;
    let text = format!(
        "{}    {module}::{title}State,\n{}",
        &text[..at],
        &text[at..]
    );
    let Some(start) = text.find(EMULATOR_NAMES) else {
        return Ok(text);
    };
    let end = start
        + text[start..]
            .find("]);")
            .context("the pinned emulator names are not closed")?;
    Ok(format!("{}, \"{name}\"{}", &text[..end], &text[end..]))
}

/// How the sandbox's unit test pins the emulator names, in list order.
const EMULATOR_NAMES: &str = "assert_eq!(emulator_names(), [";

pub(super) fn title_case(name: &str) -> String {
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
pub(super) fn wire_into_workspace(root: &Path, name: &str, module: &str) -> anyhow::Result<()> {
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

pub(super) fn edit(
    path: &Path,
    change: impl FnOnce(&str) -> anyhow::Result<String>,
) -> anyhow::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_emulator_is_appended_to_the_sandbox_list() {
        let lib = include_str!("../../../crates/sandbox/src/lib.rs");
        let added = add_emulator(lib, "acme-crm", "acme_crm", "AcmeCrm").unwrap();
        let list = &added[added.find("emulators! {\n").unwrap()..];
        let list = &list[..list.find("}\n").unwrap()];
        assert!(
            list.ends_with(&format!("    acme_crm::AcmeCrmState,\n{EMULATOR_ANCHOR}")),
            "{list}"
        );
        let line = "    acme_crm::AcmeCrmState,\n".len();
        let pinned = if lib.contains(EMULATOR_NAMES) {
            assert!(added.contains(", \"acme-crm\"]);"));
            ", \"acme-crm\"".len()
        } else {
            0
        };
        assert_eq!(added.len(), lib.len() + line + pinned);
        let no_list = add_emulator("emulators! {}", "acme-crm", "acme_crm", "AcmeCrm");
        assert!(no_list.is_err());
    }

    #[test]
    fn names_are_checked() {
        for good in ["acme", "acme-crm", "x2"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "", "Acme", "2x", "acme-", "acme_crm", "kit", "testkit", "a b", "faults", "persist",
            "match", "type",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(title_case("acme-crm"), "AcmeCrm");
    }
}
