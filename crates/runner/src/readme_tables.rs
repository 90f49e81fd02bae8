//! The README's command table and exit-code table, checked against the CLI's definition and
//! [`Exit`]: a command, flag or exit code added or renamed on one side fails here until the
//! other says the same.

use std::collections::BTreeSet;

use authport_engine::Exit;
use clap::CommandFactory;

use crate::cli::Cli;

fn readme() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    std::fs::read_to_string(path).expect("read README.md")
}

/// The code block under `## Commands`, as one entry per command (continuation lines joined).
fn command_table(readme: &str) -> Vec<String> {
    let block = readme
        .split("## Commands\n\n```\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("a code block under ## Commands");
    let mut entries: Vec<String> = Vec::new();
    for line in block.lines() {
        // Comments may mention anything; the syntax is before them.
        let syntax = line.split(" # ").next().unwrap_or_default();
        match entries.last_mut() {
            Some(entry) if line.starts_with(' ') => entry.push_str(syntax),
            _ => entries.push(syntax.to_owned()),
        }
    }
    entries
}

#[test]
fn the_readme_command_table_matches_the_help() {
    let cli = Cli::command();
    let global: Vec<String> = cli
        .get_arguments()
        .filter_map(|arg| arg.get_long().map(str::to_owned))
        .collect();
    let visible: BTreeSet<String> = cli
        .get_subcommands()
        .filter(|command| !command.is_hide_set())
        .map(|command| command.get_name().to_owned())
        .collect();
    let mut listed = BTreeSet::new();
    for entry in command_table(&readme()) {
        let mut words = entry.split_whitespace();
        assert_eq!(words.next(), Some("authport"), "{entry}");
        let name = words.next().expect("a command name");
        let mut command = cli
            .find_subcommand(name)
            .unwrap_or_else(|| panic!("README lists `{name}`, which --help does not"));
        listed.insert(name.to_owned());
        // `authport config show`: the flags are the subcommand's.
        if let Some(sub) = entry
            .split_whitespace()
            .nth(2)
            .and_then(|word| command.find_subcommand(word))
        {
            command = sub;
        }
        let known: Vec<&str> = command
            .get_arguments()
            .filter_map(|arg| arg.get_long())
            .chain(global.iter().map(String::as_str))
            .collect();
        for flag in entry
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter_map(|word| word.strip_prefix("--"))
            .filter(|flag| !flag.is_empty())
        {
            assert!(
                known.contains(&flag),
                "README gives `authport {name}` the flag --{flag}, which its --help does not have"
            );
        }
    }
    assert_eq!(listed, visible, "README's command table against --help");
}

/// Every `Exit`: a new variant does not compile here until it is listed.
fn every_exit() -> Vec<Exit> {
    let all = [
        Exit::Ok,
        Exit::SomeFailed,
        Exit::Usage,
        Exit::Stopped,
        Exit::Io,
        Exit::Interrupted,
        Exit::Unhealthy,
    ];
    for exit in all {
        match exit {
            Exit::Ok
            | Exit::SomeFailed
            | Exit::Usage
            | Exit::Stopped
            | Exit::Io
            | Exit::Interrupted
            | Exit::Unhealthy => {}
        }
    }
    all.to_vec()
}

#[test]
fn the_readme_exit_codes_match_the_exit_enum() {
    let readme = readme();
    let table = readme
        .split("### Exit codes\n")
        .nth(1)
        .expect("an ### Exit codes section");
    let listed: BTreeSet<u8> = table
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .filter_map(|line| line.split('|').nth(1)?.trim().parse().ok())
        .collect();
    let codes: BTreeSet<u8> = every_exit().into_iter().map(Exit::code).collect();
    assert_eq!(
        listed, codes,
        "README's exit codes against authport_engine::Exit"
    );
}

/// Commands every provider supports (as an import target); `export` and `migrate --from`
/// only where the provider registers an exporter.
const EVERY_PROVIDER: &[&str] = &[
    "import",
    "verify",
    "rollback",
    "status",
    "reconnect",
    "migrate",
];

#[test]
fn no_provider_doc_lists_a_working_command_as_not_done() {
    let exporters = authport_core::names_with(|c| c.export);
    for provider in authport_core::provider_names() {
        let path = format!("{}/../../docs/{provider}.md", env!("CARGO_MANIFEST_DIR"));
        let doc = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("read {path}"));
        let Some(section) = doc.split("\n## Not done\n").nth(1) else {
            continue;
        };
        let section = section.split("\n## ").next().unwrap_or_default();
        for line in section.lines() {
            let working = EVERY_PROVIDER
                .iter()
                .copied()
                .chain(exporters.contains(&provider).then_some("export"));
            for command in working {
                assert!(
                    !line.starts_with(&format!("- `{command}`")),
                    "docs/{provider}.md lists `{command}` as not done, and it works: {line}"
                );
            }
        }
    }
}
