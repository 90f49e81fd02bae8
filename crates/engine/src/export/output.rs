//! Where an export's records go: a new private file (0600), never through a symbolic link,
//! never over an existing file without `--force`, never on a terminal; or stdout when it is a
//! pipe or a file (made private first).

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::Context as _;

use crate::error::EngineError;
use crate::files::{Refusal, create_private, refuse_symlink};

/// The path that means stdout.
pub(crate) fn is_stdout(path: &Path) -> bool {
    path == Path::new("-")
}

fn refusal(message: impl Into<String>) -> EngineError {
    Refusal(message.into()).into()
}

/// Opens the destination before anything is read from the provider, so a refused output costs
/// no request. Returns the writer and how to name it to the operator.
pub(crate) fn open_output(
    path: &Path,
    force: bool,
) -> Result<(Box<dyn Write + Send>, String), EngineError> {
    if is_stdout(path) {
        if std::io::stdout().is_terminal() {
            return Err(refusal(
                "refusing to write an export (it holds secrets) to a terminal: give --output FILE or redirect stdout",
            ));
        }
        // `> file` made a file with the shell's umask (often 0644): make it private before a
        // secret is written, or refuse.
        let restricted = restrict_stdout_file().map_err(|error| {
            refusal(format!(
                "stdout is a file others may read and cannot be made private ({}): give --output FILE",
                error.kind()
            ))
        })?;
        if restricted {
            eprintln!("note: stdout is a file others could read: its mode is now 0600");
        }
        return Ok((
            Box::new(std::io::BufWriter::new(std::io::stdout())),
            "stdout".to_owned(),
        ));
    }
    refuse_symlink("export file", path)?;
    if std::fs::symlink_metadata(path).is_ok() && !force {
        return Err(refusal(format!(
            "the export file {} exists; an export holds secrets and replaces nothing without --force",
            path.display()
        )));
    }
    let file = create_private("export file", path)
        .with_context(|| format!("cannot create the export file {}", path.display()))?;
    if file.is_terminal() {
        return Err(refusal(format!(
            "refusing to write an export (it holds secrets) to the terminal {}",
            path.display()
        )));
    }
    // A replaced file keeps its old mode when opened: make it private too.
    restrict_mode(&file)
        .with_context(|| format!("cannot make the export file {} private", path.display()))?;
    Ok((
        Box::new(std::io::BufWriter::new(file)),
        path.display().to_string(),
    ))
}

#[cfg(unix)]
fn restrict_mode(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict_mode(_file: &std::fs::File) -> std::io::Result<()> {
    Ok(())
}

/// When stdout is a regular file that group or others may read, sets its mode to 0600
/// (`true`); a pipe or an already private file is left alone (`false`).
#[cfg(unix)]
fn restrict_stdout_file() -> std::io::Result<bool> {
    use std::os::fd::AsFd as _;
    use std::os::unix::fs::PermissionsExt as _;
    let stdout = std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    let meta = stdout.metadata()?;
    if !meta.is_file() || meta.permissions().mode() & 0o077 == 0 {
        return Ok(false);
    }
    restrict_mode(&stdout)?;
    Ok(true)
}

#[cfg(not(unix))]
fn restrict_stdout_file() -> std::io::Result<bool> {
    Ok(false)
}
