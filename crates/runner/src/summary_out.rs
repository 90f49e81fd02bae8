//! Where a command's summary goes: one rule for every command that prints one (docs/output.md),
//! so `--format json` means the same everywhere and is never silently ignored.
//!
//! - `--format json`: the JSON summary, tagged `"type": "summary"` with its `schema` version
//!   and `command`, is the last line on stdout, after any record lines there. The one exception
//!   is a stdout that carries canonical records another command reads (`export --output -`):
//!   there it goes to stderr, so a pipe into `import` stays records only. The text summary also
//!   goes to stderr for the operator, unless `-q`.
//! - `--format text`: on stdout when stdout carries nothing else, else on stderr unless `-q`
//!   (`status` and `export` keep it on stderr, as they always have).

use std::io::Write as _;

use authport_engine::{Exit, json_summary};
use serde_json::Value;

use crate::cli::Format;

/// A command's summary, in both forms.
#[derive(Debug)]
pub struct Summary {
    /// The subcommand, as typed (`import`, `verify`, ...).
    pub command: &'static str,
    pub human: String,
    /// The command's own fields; the shared ones are added by [`json_summary`].
    pub fields: Value,
    pub exit: Exit,
}

/// What else the command's stdout carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdout {
    /// Nothing: the text summary goes there.
    Free,
    /// Record lines (a report, statuses): the text summary goes to stderr.
    RecordLines,
    /// Canonical records another command reads (`export -o -`): no summary at all on stdout.
    Records,
}

/// Prints `summary` by the rule above and returns its exit code.
pub fn print_summary(
    summary: Summary,
    format: Format,
    stdout: Stdout,
    quiet: bool,
) -> anyhow::Result<Exit> {
    let human = summary.human.trim_end();
    match format {
        Format::Json => {
            let json = json_summary(summary.command, summary.exit, summary.fields).to_string();
            if !quiet {
                eprintln!("{human}");
            }
            if stdout == Stdout::Records {
                eprintln!("{json}");
            } else {
                crate::ignore_broken_pipe(writeln!(std::io::stdout().lock(), "{json}"))?;
            }
        }
        Format::Text if stdout == Stdout::Free => {
            crate::ignore_broken_pipe(writeln!(std::io::stdout().lock(), "{human}"))?;
        }
        Format::Text => {
            if !quiet {
                eprintln!("{human}");
            }
        }
    }
    Ok(summary.exit)
}
