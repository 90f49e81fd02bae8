//! Canary secrets: fake secrets planted in records and credentials, and the one check that
//! they never show in any message, Debug output, report or state file.
//!
//! Every canary contains [`CANARY`], so one search finds any of them (and any echo of one in a
//! JSON string or a URL, where letters are never escaped), whatever the test planted.

use std::path::{Path, PathBuf};

/// The marker every canary contains. Upper case on purpose: no message, path or id of ours
/// contains it, so a hit is always a leak.
pub const CANARY: &str = "CANARY";

/// A canary secret named by `label` (e.g. `canary("hubspot-access")`). Deterministic, so
/// snapshots and failures are reproducible.
pub fn canary(label: &str) -> String {
    format!("{CANARY}-{label}-5ecret")
}

/// Fails when `text` contains a canary. `what` names the text in the failure ("import error",
/// "report line 3", "Debug of the mapped record").
#[track_caller]
pub fn assert_no_canary(what: &str, text: &str) {
    assert!(!text.contains(CANARY), "{what} leaks a secret: {text}");
}

/// Fails when any file under `dir` (recursively: state, journal side files, reports) contains a
/// canary. Keep input files that hold canaries in another directory.
#[track_caller]
pub fn assert_no_canary_in_dir(dir: &Path) {
    assert_no_canary_in_dir_except(dir, |_| false);
}

/// Like [`assert_no_canary_in_dir`], except the files `input` says hold canaries on purpose
/// (the inputs a test wrote beside the state and reports).
#[track_caller]
pub fn assert_no_canary_in_dir_except(dir: &Path, input: impl Fn(&Path) -> bool) {
    for path in files_under(dir).into_iter().filter(|path| !input(path)) {
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let found = bytes
            .windows(CANARY.len())
            .any(|window| window == CANARY.as_bytes());
        assert!(!found, "{} leaks a secret", path.display());
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let entries = std::fs::read_dir(&current)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", current.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canaries_carry_the_marker() {
        assert!(canary("x").contains(CANARY));
        assert_ne!(canary("a"), canary("b"));
    }

    #[test]
    fn clean_text_passes_and_a_leak_fails() {
        assert_no_canary("clean", "tray create authentication: answered 500");
        let leak = std::panic::catch_unwind(|| {
            assert_no_canary("error", &format!("bad token {}", canary("t")))
        });
        assert!(leak.is_err());
    }

    #[test]
    fn files_are_searched_recursively() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("nested")).unwrap();
        std::fs::write(dir.path().join("nested/clean.db"), b"\x00ok\x00").unwrap();
        assert_no_canary_in_dir(dir.path());
        std::fs::write(dir.path().join("nested/leak.jsonl"), canary("k")).unwrap();
        let leak = std::panic::catch_unwind(|| assert_no_canary_in_dir(dir.path()));
        assert!(leak.is_err());
        let input = |path: &Path| path.ends_with("leak.jsonl");
        assert_no_canary_in_dir_except(dir.path(), input);
    }
}
