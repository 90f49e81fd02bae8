//! Record fixtures and the files tests read and write.

use std::path::{Path, PathBuf};

use authport_core::CredentialRecord;
use authport_core::record::from_json_located;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// The fixed "now" of fixtures whose expiry is relative (`issued_at` + `expires_in`).
pub const NOW: &str = "2026-11-01T12:00:00Z";

pub fn now() -> DateTime<Utc> {
    NOW.parse().expect("NOW is a valid instant")
}

/// Validates a fixture as the input reader would, at [`NOW`].
#[track_caller]
pub fn record(value: &Value) -> CredentialRecord {
    record_at(value, now())
}

/// Validates a fixture at `now`.
#[track_caller]
pub fn record_at(value: &Value, now: DateTime<Utc>) -> CredentialRecord {
    from_json_located(value, now).unwrap_or_else(|problems| {
        // Record messages never quote values, so they are safe to print.
        let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
        panic!("the fixture is not a valid record: {}", problems.join("; "))
    })
}

/// A scratch directory, removed when dropped.
pub fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().expect("a scratch directory")
}

/// Writes `values` as JSON Lines to `path` and returns it.
pub fn write_jsonl(path: &Path, values: &[Value]) -> PathBuf {
    let text: String = values.iter().map(|value| format!("{value}\n")).collect();
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path.to_owned()
}

/// Writes `lines` (already JSON, or deliberately broken) one per line to `path`.
pub fn write_lines(path: &Path, lines: &[String]) -> PathBuf {
    let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path.to_owned()
}

/// Reads a JSON Lines file (a report), skipping blank lines.
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: a line is not JSON ({e})", path.display()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_round_trip_through_files() {
        let dir = scratch();
        let values = vec![
            serde_json::json!({"id": "a/1", "owner": {"id": "a"}, "service": "greenhouse",
                               "auth": {"type": "api_key", "api_key": "k"}}),
        ];
        let path = write_jsonl(&dir.path().join("in.jsonl"), &values);
        assert_eq!(read_jsonl(&path), values);
        assert_eq!(record(&values[0]).id, "a/1");
    }
}
