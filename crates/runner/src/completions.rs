//! `authport completions <shell>` and the hidden `authport man --out-dir DIR` (which
//! `cargo xtask man` runs, so xtask needs neither clap nor the CLI's definition).

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::Cli;

/// Writes the shell's completion script to stdout.
pub fn print(shell: clap_complete::Shell) -> anyhow::Result<authport_engine::Exit> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "authport", &mut script);
    crate::ignore_broken_pipe(std::io::stdout().lock().write_all(&script))?;
    Ok(authport_engine::Exit::Ok)
}

/// Writes `authport.1` and one page per visible command (`authport-import.1`...) into `dir`.
pub fn man(dir: &Path) -> anyhow::Result<authport_engine::Exit> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
    Ok(authport_engine::Exit::Ok)
}
