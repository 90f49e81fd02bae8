//! `--input -`: the binary imports records piped on stdin (read once), resumes from stdin with
//! the same `--state`, and protects a file redirected to stdin like an input file. Each run
//! talks to a sandbox on loopback started by the test.

use std::io::Write as _;
use std::path::Path;
use std::process::Stdio;

use authport_sandbox::RunningSandbox;
use authport_testkit::{Output as Out, sandbox};

/// Runs `authport ARGS` in `dir` with `stdin` piped in and the sandbox's provider environment
/// (no vendor variable inherited).
fn authport(dir: &Path, args: &[&str], stdin: &str, sandbox: &RunningSandbox) -> Out {
    let mut command = authport_testkit::clean_command(env!("CARGO_BIN_EXE_authport"));
    command.current_dir(dir).args(args);
    let mut child = command
        .envs(sandbox.provider_env())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run authport");
    let mut pipe = child.stdin.take().unwrap();
    let text = stdin.to_owned();
    // Written from another thread: a run that reports on stdout must not block the writer.
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(text.as_bytes());
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Out::from(output)
}

/// The example records, one JSON Lines string.
fn examples() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/records.jsonl");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// `(id, status)` of every report line, sorted by id.
fn statuses(report: &str) -> Vec<(String, String)> {
    let mut lines: Vec<(String, String)> = report
        .lines()
        .map(|line| {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                line["id"].as_str().unwrap().to_owned(),
                line["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    lines.sort();
    lines
}

fn ids(records: &[String]) -> Vec<String> {
    let mut ids: Vec<String> = records
        .iter()
        .map(|r| {
            serde_json::from_str::<serde_json::Value>(r).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_on_stdin_are_imported_and_a_resume_from_stdin_sends_only_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let sandbox = sandbox().await;
    let records = examples();
    assert!(records.len() >= 4, "the examples are the fixture");
    let (first, _) = records.split_at(records.len() / 2);

    // The first half, piped in; the report on stdout (stdout is free when stdin is the input).
    let args = [
        "import",
        "--provider",
        "tray",
        "--input",
        "-",
        "--state",
        "state.db",
        "-q",
    ];
    let out = authport(dir, &args, &(first.join("\n") + "\n"), &sandbox);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let report = statuses(&out.stdout);
    let expected: Vec<(String, String)> = ids(first)
        .into_iter()
        .map(|id| (id, "imported".to_owned()))
        .collect();
    assert_eq!(report, expected);

    // Everything, piped again with the same state: the first half is already there, only the
    // rest is sent; one line per record, in a report file this time.
    let mut args = args.to_vec();
    args.extend(["--report", "report.jsonl"]);
    let out = authport(dir, &args, &records.join("\n"), &sandbox);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let report = statuses(&std::fs::read_to_string(dir.join("report.jsonl")).unwrap());
    let expected: Vec<(String, String)> = ids(&records)
        .into_iter()
        .map(|id| {
            let status = if ids(first).contains(&id) {
                "unchanged"
            } else {
                "imported"
            };
            (id, status.to_owned())
        })
        .collect();
    assert_eq!(report, expected);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_on_the_file_redirected_to_stdin_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let sandbox = sandbox().await;
    let input = dir.join("input.jsonl");
    let text = examples().join("\n") + "\n";
    std::fs::write(&input, &text).unwrap();
    let output = authport_testkit::clean_command(env!("CARGO_BIN_EXE_authport"))
        .current_dir(dir)
        .args([
            "import",
            "--provider",
            "tray",
            "--input",
            "-",
            "--report",
            "input.jsonl",
            "-q",
        ])
        .envs(sandbox.provider_env())
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("same file"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&input).unwrap(),
        text,
        "the input survives"
    );
}
