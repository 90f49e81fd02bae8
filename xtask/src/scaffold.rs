//! `cargo xtask new-provider NAME`: a provider crate laid out like the real ones and built on the
//! kit (config, wire, target, map, client, importer; the HTTP path honours the run's gate, the
//! timeout and the HTTPS rule by construction), registered, linked from the runner, with a
//! snapshot test of its mapping, an emulator of its API as a module of the sandbox
//! (`crates/sandbox/src/<module>/`, appended to the sandbox's one list of emulators) and the
//! conformance suite run against the shared sandbox like every real provider's.
//! `scaffold-check` proves all of that in a scratch copy of the workspace, so the real tree is
//! never touched.
//!
//! `scaffold-check` also proves the generated crate is built on the kit one layer up: it calls
//! the settings loader, `url_at`, `send_json` (the one rule for an unreadable answer) and the
//! typed payload, and re-implements none of them ([`KIT_CALLS`], [`REIMPLEMENTED`]).
//!
//! The generated files are the templates under `xtask/templates/provider/`, with `{{name}}`
//! (`acme-crm`), `{{module}}` (`acme_crm`), `{{title}}` (`AcmeCrm`) and `{{ENV}}` (`ACME_CRM`)
//! replaced.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail, ensure};

use crate::{cargo, describe, run};

mod workspace;

use workspace::{add_emulator, check_name, edit, title_case, wire_into_workspace};

/// The generated files (paths from the workspace root, rendered too) and their templates.
const TEMPLATES: [(&str, &str); 14] = [
    (
        "crates/{{name}}/Cargo.toml",
        include_str!("../templates/provider/Cargo.toml.tmpl"),
    ),
    (
        "crates/{{name}}/src/lib.rs",
        include_str!("../templates/provider/src/lib.rs.tmpl"),
    ),
    (
        "crates/{{name}}/src/config.rs",
        include_str!("../templates/provider/src/config.rs.tmpl"),
    ),
    (
        "crates/{{name}}/src/wire.rs",
        include_str!("../templates/provider/src/wire.rs.tmpl"),
    ),
    (
        "crates/{{name}}/src/target.rs",
        include_str!("../templates/provider/src/target.rs.tmpl"),
    ),
    (
        "crates/{{name}}/src/map.rs",
        include_str!("../templates/provider/src/map.rs.tmpl"),
    ),
    (
        "crates/{{name}}/src/client.rs",
        include_str!("../templates/provider/src/client.rs.tmpl"),
    ),
    (
        "crates/{{name}}/src/importer.rs",
        include_str!("../templates/provider/src/importer.rs.tmpl"),
    ),
    (
        "crates/{{name}}/tests/conformance.rs",
        include_str!("../templates/provider/tests/conformance.rs.tmpl"),
    ),
    (
        "crates/{{name}}/tests/map.rs",
        include_str!("../templates/provider/tests/map.rs.tmpl"),
    ),
    (
        "crates/{{name}}/tests/suite.rs",
        include_str!("../templates/provider/tests/suite.rs.tmpl"),
    ),
    (
        "crates/{{name}}/tests/snapshots/suite__map__mapping_per_auth_kind.snap",
        include_str!(
            "../templates/provider/tests/snapshots/suite__map__mapping_per_auth_kind.snap.tmpl"
        ),
    ),
    (
        "docs/{{name}}.md",
        include_str!("../templates/provider/docs.md.tmpl"),
    ),
    (
        EMULATOR_MODULE,
        include_str!("../templates/provider/sandbox/mod.rs.tmpl"),
    ),
];

/// The generated emulator: a module of the sandbox crate, named after the provider.
const EMULATOR_MODULE: &str = "crates/sandbox/src/{{module}}/mod.rs";

/// What a generated provider must take from the kit rather than write again: (file under
/// `src/`, the call). `scaffold-check` fails when one is missing.
const KIT_CALLS: [(&str, &str); 8] = [
    ("config.rs", "Loader::new("),
    ("config.rs", ".secret("),
    ("config.rs", ".base_url("),
    ("config.rs", ".finish("),
    ("client.rs", "url_at("),
    ("client.rs", ".send_json("),
    ("map.rs", "Payload::new("),
    ("importer.rs", "payload_of("),
];

/// What a generated provider must not do itself (anywhere under `src/`), and the kit's
/// replacement: `scaffold-check` fails when a template re-implements one.
const REIMPLEMENTED: [(&str, &str); 8] = [
    ("path_segments_mut", "build URLs with authport_kit::url_at"),
    (
        "serde_json::from_slice",
        "read answers with HttpClient::send_json",
    ),
    (".body.json(", "read answers with HttpClient::send_json"),
    (
        "outcome_unknown(",
        "an unreadable answer is the kit's rule (send_json)",
    ),
    (
        "parse_base_url(",
        "take base URLs with the kit's Loader::base_url",
    ),
    (
        "section_settings(",
        "read the section with the kit's Loader::finish",
    ),
    (
        "keys().find(",
        "unknown keys are counted by the kit's Loader, never named",
    ),
    (
        "mapped.target",
        "read the typed payload with authport_kit::payload_of",
    ),
];

/// Checks generated sources (`(file name under src/, text)`) against [`KIT_CALLS`] and
/// [`REIMPLEMENTED`]; the error lists every problem.
fn uses_the_kit(sources: &[(String, String)]) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for (file, call) in KIT_CALLS {
        let found = sources
            .iter()
            .any(|(name, text)| name == file && text.contains(call));
        if !found {
            problems.push(format!("src/{file} does not call the kit's `{call}`"));
        }
    }
    for (name, text) in sources {
        for (pattern, instead) in REIMPLEMENTED {
            // `wire::error_text` reads the vendor's error envelope for the kit: its one parse.
            let error_envelope = name == "wire.rs" && pattern == "serde_json::from_slice";
            if text.contains(pattern) && !error_envelope {
                problems.push(format!("src/{name} has `{pattern}`: {instead}"));
            }
        }
    }
    ensure!(
        problems.is_empty(),
        "the provider template does not use the kit:\n  {}",
        problems.join("\n  ")
    );
    Ok(())
}

/// The generated crate's `src/*.rs`, by file name.
fn generated_sources(crate_dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut sources = Vec::new();
    for entry in std::fs::read_dir(crate_dir.join("src"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs") {
            let name = path
                .file_name()
                .context("a file without a name")?
                .to_string_lossy()
                .into_owned();
            sources.push((name, std::fs::read_to_string(&path)?));
        }
    }
    Ok(sources)
}

/// Creates `crates/NAME`, `docs/NAME.md` and the sandbox's emulator module, and wires the crate
/// into the workspace and the runner and the emulator into the sandbox's list.
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
    let files: Vec<(PathBuf, String)> = TEMPLATES
        .iter()
        .map(|(relative, template)| {
            let path = root.join(render(relative, name, &module, &title));
            (path, render(template, name, &module, &title))
        })
        .collect();
    if let Some((existing, _)) = files.iter().find(|(path, _)| path.exists()) {
        bail!("{} already exists", existing.display());
    }
    for (path, text) in files {
        std::fs::create_dir_all(path.parent().context("file without a folder")?)?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    wire_into_workspace(root, name, &module)?;
    edit(&root.join("crates/sandbox/src/lib.rs"), |text| {
        add_emulator(text, name, &module, &title)
    })?;
    // Line widths depend on the name's length: format the generated code for it (the emulator
    // alone of the sandbox's files: the others are not the scaffold's to reformat).
    run(cargo()
        .current_dir(root)
        .args(["fmt", "-p", &format!("authport-{name}")]))?;
    let emulator = root.join(render(EMULATOR_MODULE, name, &module, &title));
    run(Command::new("rustfmt")
        .current_dir(root)
        .args(["--edition", "2024"])
        .arg(&emulator))?;
    Ok(crate_dir)
}

fn render(template: &str, name: &str, module: &str, title: &str) -> String {
    template
        .replace("{{name}}", name)
        .replace("{{module}}", module)
        .replace("{{title}}", title)
        .replace("{{ENV}}", &module.to_ascii_uppercase())
}

/// Generates a provider in a scratch copy of the workspace, then: every crate of the workspace
/// type-checks (tests included); clippy `-D warnings` on the provider and on the sandbox (with
/// its new emulator module); its tests (config, target, mapping snapshot,
/// conformance against the sandbox), the sandbox's own and the runner's (whose pinned provider
/// list must now include it); and the conformance test once more on its own, to see that it ran
/// and passed (it fails when any request bypasses the run's gate).
pub fn check(root: &Path) -> anyhow::Result<()> {
    let scratch = root.join("target").join("scaffold-check");
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)?;
    }
    copy_workspace(root, &scratch)?;
    let crate_dir = new_provider(&scratch, "scaffolded")?;
    uses_the_kit(&generated_sources(&crate_dir)?)?;
    let target_dir = root.join("target");
    for args in [
        // Every crate still compiles, tests included, with one more emulator in the sandbox
        // (a struct literal or match over the vendors would not): adding a provider touches
        // nothing else.
        vec!["check", "--workspace", "--all-targets"],
        vec![
            "clippy",
            "-p",
            "authport-scaffolded",
            "-p",
            "authport-sandbox",
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
            "authport-sandbox",
            "-p",
            "authport",
            "--bins",
            "--tests",
            // Every failure in one run, not only the first package's.
            "--no-fail-fast",
        ],
    ] {
        run(cargo()
            .current_dir(&scratch)
            .args(&args)
            .env("CARGO_TARGET_DIR", &target_dir)
            .env("INSTA_UPDATE", "no"))?;
    }
    let conformance = output(
        cargo()
            .current_dir(&scratch)
            .args([
                "test",
                "-p",
                "authport-scaffolded",
                "--test",
                "suite",
                "--",
                "--exact",
                "conformance::scaffolded_keeps_the_shared_guarantees",
            ])
            .env("CARGO_TARGET_DIR", &target_dir),
    )?;
    ensure!(
        conformance.contains("test result: ok. 1 passed"),
        "the scaffold's conformance test did not run and pass:\n{conformance}"
    );
    std::fs::remove_dir_all(&scratch)?;
    // The scratch build shares the target dir (to reuse compiled dependencies) and so left its
    // own `authport` binary, with the scaffolded provider linked, in target/debug: relink ours.
    run(cargo()
        .current_dir(root)
        .args(["build", "-p", "authport", "--bin", "authport"]))?;
    eprintln!(
        "scaffold-check: a new provider uses the kit (settings loader, url_at, the answer rule, the typed payload), builds (and so does every other crate), is clippy-clean, registers, is linked, its emulator joins the sandbox's list (the sandbox stays clippy-clean and passes its tests), and it passes its snapshot and conformance tests against the sandbox (every request paced by the run's gate)"
    );
    Ok(())
}

/// Runs a command to completion and returns its stdout; fails on a non-zero exit.
fn output(command: &mut Command) -> anyhow::Result<String> {
    eprintln!("$ {}", describe(command));
    let done = command
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start {}", describe(command)))?;
    let stdout = String::from_utf8_lossy(&done.stdout).into_owned();
    if !done.status.success() {
        bail!("{} failed ({}):\n{stdout}", describe(command), done.status);
    }
    Ok(stdout)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `{{word}}`, what `render` replaces (JSON in the templates may hold `}}`, never this).
    fn has_placeholder(text: &str) -> bool {
        text.split("{{").skip(1).any(|rest| {
            rest.split_once("}}").is_some_and(|(word, _)| {
                !word.is_empty() && word.chars().all(|c| c.is_ascii_alphabetic())
            })
        })
    }

    #[test]
    fn templates_leave_no_placeholder() {
        assert!(has_placeholder("a {{name}} b"));
        assert!(!has_placeholder(r#"json!({"a": {"b": 1}})"#));
        for (relative, template) in TEMPLATES {
            let text = render(template, "acme-crm", "acme_crm", "AcmeCrm");
            assert!(!has_placeholder(&text), "{relative} keeps a placeholder");
        }
    }

    /// The templates as generated, by file name under `src/`.
    fn rendered_sources() -> Vec<(String, String)> {
        TEMPLATES
            .iter()
            .filter_map(|(relative, template)| {
                let name = relative.strip_prefix("crates/{{name}}/src/")?;
                Some((
                    name.to_owned(),
                    render(template, "acme-crm", "acme_crm", "AcmeCrm"),
                ))
            })
            .collect()
    }

    #[test]
    fn the_templates_use_the_kit() {
        uses_the_kit(&rendered_sources()).unwrap();
    }

    #[test]
    fn a_template_that_reimplements_the_kit_is_refused() {
        let mut sources = rendered_sources();
        for (name, text) in &mut sources {
            if name == "config.rs" {
                *text = text.replace("Loader::new(", "Settings::read(");
            }
            if name == "client.rs" {
                text.push_str("// url.path_segments_mut()\n");
            }
        }
        let message = uses_the_kit(&sources).unwrap_err().to_string();
        assert!(message.contains("`Loader::new(`"), "{message}");
        assert!(
            message.contains("src/client.rs has `path_segments_mut`"),
            "{message}"
        );
    }

    #[test]
    fn the_emulator_is_a_sandbox_module_named_after_the_provider() {
        let path = render(EMULATOR_MODULE, "acme-crm", "acme_crm", "AcmeCrm");
        assert_eq!(path, "crates/sandbox/src/acme_crm/mod.rs");
        let module = TEMPLATES
            .iter()
            .find(|(relative, _)| *relative == EMULATOR_MODULE)
            .map(|(_, template)| render(template, "acme-crm", "acme_crm", "AcmeCrm"))
            .unwrap();
        for part in [
            "impl crate::Emulator for AcmeCrmState",
            "const ENV_PREFIX: &'static str = \"ACME_CRM_\";",
            "(\"acme-crm-api-key\", &mut options.api_key)",
            "\"/acme-crm/v1/credentials\"",
        ] {
            assert!(module.contains(part), "{part}");
        }
        // The conformance test writes where the emulator serves.
        let conformance = TEMPLATES
            .iter()
            .find(|(relative, _)| relative.ends_with("tests/conformance.rs"))
            .map(|(_, template)| render(template, "acme-crm", "acme_crm", "AcmeCrm"))
            .unwrap();
        assert!(conformance.contains("WriteRequest::new(\"POST\", \"/acme-crm/v1/credentials\")"));
        assert!(conformance.contains("sandbox.acme_crm.clone()"));
    }
}
