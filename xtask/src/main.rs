//! `cargo xtask`: the project's own tasks, in Rust so they run wherever cargo does.
//!
//! - `ci`: formatting, clippy (`-D warnings`), every test, stale or unreferenced insta snapshots,
//!   and the provider scaffold proven in a scratch copy of the workspace;
//! - `new-provider NAME`: scaffolds a provider crate on the kit (config, wire, target, map,
//!   client, importer), registered and linked from the runner, with its mapping snapshot test,
//!   its emulator as a sandbox module on the sandbox's list, and the conformance suite run
//!   against the sandbox;
//! - `scaffold-check`: the scaffold proof on its own;
//! - `bench`: the benchmarks (release build), figures for BENCHMARKS.md;
//! - `man [DIR]`: the man pages (default `target/man`), written by the binary's hidden
//!   `authport man`, so xtask needs neither clap_mangen nor the CLI's definition.

mod bench;
mod scaffold;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(task) = args.first() else {
        print_help();
        bail!("no task given");
    };
    let rest = &args[1..];
    match task.as_str() {
        "ci" => ci(),
        "new-provider" => {
            let [name] = rest else {
                bail!("usage: cargo xtask new-provider NAME");
            };
            let created = scaffold::new_provider(&workspace_root()?, name)?;
            println!(
                "created {} and its emulator crates/sandbox/src/{}/; next: replace the assumed API in wire.rs, client.rs and the emulator with the vendor's, then `cargo test -p authport-{name}` (see ARCHITECTURE.md, \"How to add a provider\")",
                created.display(),
                name.replace('-', "_")
            );
            Ok(())
        }
        "scaffold-check" => scaffold::check(&workspace_root()?),
        "bench" => bench::run(rest),
        "man" => man(rest),
        "help" | "--help" | "-h" => {
            print_help();
            Ok(())
        }
        other => {
            print_help();
            bail!("unknown task `{other}`")
        }
    }
}

fn print_help() {
    eprintln!(
        "cargo xtask TASK\n\n  ci               fmt check, clippy -D warnings, all tests, snapshot check, scaffold check\n  new-provider N   scaffold provider crate crates/N (package authport-N) and its sandbox emulator\n  scaffold-check   prove the scaffold in a scratch copy of the workspace\n  bench            run the benchmarks (release) and print the figures\n  man [DIR]        write the man pages (default target/man)"
    );
}

/// The workspace root: the parent of this crate's manifest directory.
pub fn workspace_root() -> anyhow::Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .context("xtask has no parent directory")
}

/// Runs a command to completion, failing on a non-zero exit.
pub fn run(command: &mut Command) -> anyhow::Result<()> {
    eprintln!("$ {}", describe(command));
    let status = command
        .status()
        .with_context(|| format!("cannot start {}", describe(command)))?;
    if !status.success() {
        bail!("{} failed ({status})", describe(command));
    }
    Ok(())
}

pub fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
}

/// `cargo xtask man [DIR]`: builds the binary and has it write its pages.
fn man(rest: &[String]) -> anyhow::Result<()> {
    let root = workspace_root()?;
    let dir = match rest {
        [] => root.join("target/man"),
        [dir] => PathBuf::from(dir),
        _ => bail!("usage: cargo xtask man [DIR]"),
    };
    run(cargo()
        .current_dir(&root)
        .args(["run", "--quiet", "-p", "authport", "--", "man", "--out-dir"])
        .arg(&dir))?;
    eprintln!("man pages in {}", dir.display());
    Ok(())
}

fn ci() -> anyhow::Result<()> {
    let root = workspace_root()?;
    run(cargo()
        .current_dir(&root)
        .args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().current_dir(&root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    let references = root.join("target").join("insta-references.txt");
    std::fs::create_dir_all(root.join("target"))?;
    let _ = std::fs::remove_file(&references);
    run(cargo()
        .current_dir(&root)
        .args(["test", "--workspace"])
        // Snapshots never update themselves in CI: a mismatch fails the test.
        .env("INSTA_UPDATE", "no")
        .env("INSTA_FORCE_PASS", "0")
        .env("INSTA_SNAPSHOT_REFERENCES_FILE", &references))?;
    check_unreferenced_snapshots(&root, &references)?;
    scaffold::check(&root)?;
    eprintln!("xtask ci: all checks passed");
    Ok(())
}

/// Fails when a `.snap` file exists that no test asserted (a renamed or deleted test left it
/// behind), or when a test left a `.snap.new` (a mismatch).
fn check_unreferenced_snapshots(root: &Path, references: &Path) -> anyhow::Result<()> {
    let referenced: std::collections::BTreeSet<PathBuf> = std::fs::read_to_string(references)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| std::fs::canonicalize(line).ok())
        .collect();
    let mut snapshots = Vec::new();
    collect_files(&root.join("crates"), &mut snapshots)?;
    collect_files(&root.join("tests"), &mut snapshots)?;
    let mut problems = Vec::new();
    for file in snapshots {
        let name = file.to_string_lossy();
        if name.ends_with(".snap.new") || name.ends_with(".pending-snap") {
            problems.push(format!(
                "pending snapshot {name}: review it (cargo insta review) or delete it"
            ));
        } else if name.ends_with(".snap") && !referenced.contains(&std::fs::canonicalize(&file)?) {
            problems.push(format!(
                "unreferenced snapshot {name}: no test asserts it; delete it"
            ));
        }
    }
    if !problems.is_empty() {
        bail!("snapshot check failed:\n  {}", problems.join("\n  "));
    }
    eprintln!("snapshots: {} referenced, none stale", referenced.len());
    Ok(())
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            collect_files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}
