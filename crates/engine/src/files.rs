//! The files a run writes (report, state) and the checks that keep them from clobbering the
//! input: outputs are created with mode 0600, never through a symlink, and never on the file
//! the run reads from (compared by device and inode, so another path or a hard link to the
//! input is caught too).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// A refusal before anything was sent: the operator's command or files are wrong (exit 2).
/// The message says what to change; it never quotes a secret.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

/// Whether `a` and `b` name the same existing file (same device and inode). A path that does
/// not exist is no file: `false`.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (identity(a), identity(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

#[cfg(unix)]
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn identity(path: &Path) -> Option<std::path::PathBuf> {
    std::fs::canonicalize(path).ok()
}

/// Refuses an output (`what`: "report", "state file") that is the same file as `input`.
pub fn refuse_same_as_input(what: &str, output: &Path, input: &Path) -> Result<(), Refusal> {
    if same_file(output, input) {
        return Err(Refusal(format!(
            "the {what} {} is the input file {} (same file): writing it would destroy the input; choose another path",
            output.display(),
            input.display()
        )));
    }
    Ok(())
}

/// Refuses a path that is a symbolic link: outputs are never created or written through one.
pub fn refuse_symlink(what: &str, path: &Path) -> Result<(), Refusal> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(Refusal(format!(
            "the {what} {} is a symbolic link; authport does not write through links, give the real path",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// Creates or truncates an output file readable by its owner only (0600 when created), refusing
/// to follow a symbolic link at `path`.
pub fn create_private(what: &str, path: &Path) -> anyhow::Result<File> {
    refuse_symlink(what, path)?;
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    restrict(&mut options);
    Ok(options.open(path)?)
}

/// Creates `path` as an empty file with mode 0600 if nothing is there yet (SQLite then opens it
/// as a new database and gives its -wal and -shm files the same mode). Never follows a link.
pub fn precreate_private(what: &str, path: &Path) -> anyhow::Result<()> {
    refuse_symlink(what, path)?;
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    restrict(&mut options);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Opens the existing file at `path` for reading, never through a symbolic link.
pub(crate) fn open_nofollow(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    no_follow(&mut options);
    options.open(path)
}

/// Mode 0600 when created, and never through a symbolic link.
fn restrict(options: &mut OpenOptions) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    no_follow(options);
}

#[cfg(unix)]
fn no_follow(options: &mut OpenOptions) {
    use std::os::unix::fs::OpenOptionsExt as _;
    options.custom_flags(libc::O_NOFOLLOW);
}

#[cfg(not(unix))]
fn no_follow(_options: &mut OpenOptions) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_file_is_found_through_another_path_and_a_hard_link() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jsonl");
        std::fs::write(&input, "{}\n").unwrap();
        let linked = dir.path().join("hard-link.jsonl");
        std::fs::hard_link(&input, &linked).unwrap();
        let dotted = dir.path().join(".").join("in.jsonl");
        let other = dir.path().join("other.jsonl");
        std::fs::write(&other, "{}\n").unwrap();

        assert!(same_file(&input, &linked));
        assert!(same_file(&input, &dotted));
        assert!(!same_file(&input, &other));
        assert!(!same_file(&input, &dir.path().join("missing")));
        let refusal = refuse_same_as_input("report", &linked, &input).unwrap_err();
        assert!(refusal.0.contains("same file"), "{refusal}");
        refuse_same_as_input("report", &other, &input).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn outputs_are_private_and_never_created_through_a_symlink() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("report.jsonl");
        create_private("report", &report).unwrap();
        let mode = std::fs::metadata(&report).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let target = dir.path().join("elsewhere.jsonl");
        let link = dir.path().join("link.jsonl");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let error = create_private("report", &link).unwrap_err();
        assert!(error.downcast_ref::<Refusal>().is_some(), "{error:#}");
        assert!(!target.exists(), "nothing may be created through the link");
        assert!(precreate_private("state file", &link).is_err());
        assert!(!target.exists());
    }
}
