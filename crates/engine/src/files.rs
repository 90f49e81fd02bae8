//! The files a run writes (report, state, worklist, export) and the checks that keep them from
//! clobbering what it reads: outputs are created with mode 0600, never through a symlink, and
//! never on a file the command reads ([`refuse_outputs_over_inputs`], the one check every
//! command calls with all its inputs and outputs; an existing file is compared by device and
//! inode, so another path or a hard link to an input is caught too).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Component, Path, PathBuf};

/// A refusal before anything was sent: the operator's command or files are wrong (exit 2).
/// The message says what to change; it never quotes a secret.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

/// One file a command names: the flag that names it (`--input`, or e.g. "the event store of
/// --state") and its path.
#[derive(Debug, Clone, Copy)]
pub struct NamedFile<'a> {
    pub flag: &'a str,
    pub path: &'a Path,
}

impl<'a> NamedFile<'a> {
    pub fn new(flag: &'a str, path: &'a Path) -> Self {
        Self { flag, path }
    }
}

/// Refuses a command whose outputs would overwrite one of its inputs or each other, before
/// any file is opened for writing. Every command calls it with its full lists: inputs (input,
/// import report, state, the state's event store, config) and outputs (report, output).
/// `-` as an output is stdout and never clashes; `-` as an input should be passed as
/// `input_identity` (stdin's own file). The message names both flags; nothing was changed.
pub fn refuse_outputs_over_inputs(
    inputs: &[NamedFile<'_>],
    outputs: &[NamedFile<'_>],
) -> Result<(), Refusal> {
    let outputs: Vec<&NamedFile<'_>> = outputs
        .iter()
        .filter(|output| output.path != Path::new("-"))
        .collect();
    for (index, output) in outputs.iter().enumerate() {
        if let Some(input) = inputs
            .iter()
            .find(|input| same_file(output.path, input.path))
        {
            return Err(Refusal(format!(
                "{} {} and {} {} are the same file: writing the one would destroy the other; \
                 nothing was changed, give {} another path",
                output.flag,
                output.path.display(),
                input.flag,
                input.path.display(),
                output.flag
            )));
        }
        if let Some(other) = outputs[index + 1..]
            .iter()
            .find(|other| same_file(output.path, other.path))
        {
            return Err(Refusal(format!(
                "{} {} and {} {} are the same file; nothing was changed, give each its own path",
                output.flag,
                output.path.display(),
                other.flag,
                other.path.display()
            )));
        }
    }
    Ok(())
}

/// Whether `a` and `b` name the same file: by device and inode when both exist, else by their
/// normalised absolute paths (a state file not created yet is still the report's path).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (identity(a), identity(b)) {
        (Some(a), Some(b)) => a == b,
        _ => normalised(a) == normalised(b),
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

/// The absolute path with `.` and `..` resolved: through the file system for the deepest
/// existing ancestor (links included), lexically below it.
fn normalised(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut lexical = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                lexical.pop();
            }
            other => lexical.push(other),
        }
    }
    let mut existing = lexical.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(existing) {
            return rest.iter().rev().fold(real, |path, name| path.join(name));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return lexical,
        }
    }
}

/// Refuses an output (`what`: "report", "state file") that is the same file as `input`: the
/// engine's own guard, for callers that name no flags.
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

    /// `refuse_outputs_over_inputs` with one input and one output: `Some(message)` on refusal.
    fn clash(dir: &Path, input: &str, output: &str) -> Option<String> {
        let (input, output) = (dir.join(input), dir.join(output));
        refuse_outputs_over_inputs(
            &[NamedFile::new("--input", &input)],
            &[NamedFile::new("--report", &output)],
        )
        .err()
        .map(|refusal| refusal.0)
    }

    #[test]
    fn an_output_over_an_input_is_refused_by_inode_or_by_normalised_path() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        std::fs::write(dir.join("in.jsonl"), "{}\n").unwrap();
        std::fs::hard_link(dir.join("in.jsonl"), dir.join("linked.jsonl")).unwrap();
        std::fs::create_dir(dir.join("sub")).unwrap();
        let cases: &[(&str, &str, bool)] = &[
            ("in.jsonl", "in.jsonl", true),
            ("in.jsonl", "linked.jsonl", true),
            ("in.jsonl", "./sub/../in.jsonl", true),
            ("in.jsonl", "other.jsonl", false),
            // Neither exists yet (a state the run will create): compared by path.
            ("new.db", "new.db", true),
            ("new.db", "sub/./../new.db", true),
            ("new.db", "sub/new.db", false),
            ("missing/dir/new.db", "missing/dir/../dir/new.db", true),
        ];
        for (input, output, refused) in cases {
            let message = clash(dir, input, output);
            assert_eq!(
                message.is_some(),
                *refused,
                "{input} / {output}: {message:?}"
            );
            if let Some(message) = message {
                assert!(
                    message.contains("--report") && message.contains("--input"),
                    "{message}"
                );
                assert!(message.contains("nothing was changed"), "{message}");
            }
        }
        // stdout is never a clash; two outputs on one file are.
        let input = dir.join("in.jsonl");
        let inputs = [NamedFile::new("--input", &input)];
        refuse_outputs_over_inputs(&inputs, &[NamedFile::new("--report", Path::new("-"))]).unwrap();
        let (a, b) = (dir.join("out"), dir.join("./out"));
        let refusal = refuse_outputs_over_inputs(
            &inputs,
            &[
                NamedFile::new("--report", &a),
                NamedFile::new("--output", &b),
            ],
        )
        .unwrap_err();
        assert!(refusal.0.contains("--report") && refusal.0.contains("--output"));
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
