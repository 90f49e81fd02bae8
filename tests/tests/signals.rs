//! End to end (issue 17, items 7 and 8): a source's huge `Retry-After` is capped, and SIGTERM
//! stops the binary promptly (exit 130) wherever it waits: an export read's wait, or the
//! provider's last step (Tray's instance enables). Every wait below is on an event the binary
//! prints or the sandbox records; the timeouts only turn a hang into a failure.

use crate::common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use authport_sandbox::faults::{FaultKind, FaultPlan, FaultRule, Trigger};
use common::*;
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStderr};

/// Far longer than any of these runs takes when it works; only a hang reaches it.
const SAFETY: Duration = Duration::from_secs(180);

/// What the source asks to wait: a day.
const HUGE_RETRY_AFTER: u64 = 86_400;

/// The binary running in the background, its stderr read line by line.
struct Running {
    child: Child,
    stderr: Lines<BufReader<ChildStderr>>,
    printed: String,
}

impl Running {
    fn spawn(dir: &Path, args: &[&str], env: &[(String, String)]) -> Self {
        let mut command = authport_command();
        command
            .current_dir(dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut child = command.spawn().expect("run authport");
        let stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        Self {
            child,
            stderr,
            printed: String::new(),
        }
    }

    /// Reads stderr until a line contains `needle`.
    async fn wait_for_line(&mut self, needle: &str) {
        let found = tokio::time::timeout(SAFETY, async {
            while let Some(line) = self.stderr.next_line().await.unwrap() {
                self.printed.push_str(&line);
                self.printed.push('\n');
                if line.contains(needle) {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(
            found == Ok(true),
            "never printed `{needle}` ({}): {}",
            if found.is_err() {
                "still running"
            } else {
                "exited"
            },
            self.printed
        );
    }

    /// Sends SIGTERM and waits for the exit: its code and everything printed on stderr.
    async fn terminate(mut self) -> (i32, String) {
        signal(&self.child, "-TERM");
        let ended = tokio::time::timeout(SAFETY, async {
            while let Some(line) = self.stderr.next_line().await.unwrap() {
                self.printed.push_str(&line);
                self.printed.push('\n');
            }
            self.child.wait().await.unwrap()
        })
        .await;
        let status = ended.unwrap_or_else(|_| {
            panic!(
                "SIGTERM did not end the run within {SAFETY:?}: {}",
                self.printed
            )
        });
        (status.code().unwrap_or(-1), self.printed)
    }
}

/// A sandbox whose Tray holds the six example auths, and the third "get full authentication"
/// answered 429 with a Retry-After of a day (the first two records are read).
async fn tray_source_asking_for_a_day() -> Sandbox {
    let sandbox = sandbox().await;
    let seed = scratch();
    let input = write_lines(seed.path(), "in.jsonl", &example_lines());
    let run = import_with_state("tray", &sandbox.env(), seed.path(), &input, &[]).await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    sandbox.set_faults(FaultPlan {
        rules: vec![FaultRule::new(
            Some("GET"),
            "/core/v1/authentications/",
            FaultKind::TooManyRequests {
                retry_after_secs: Some(HUGE_RETRY_AFTER),
            },
            Trigger::Nth(vec![3]),
        )],
        ..FaultPlan::default()
    });
    sandbox
}

const CAPPED: &str = "the longest wait authport honours";

/// `authport export`: the day is capped (the binary says how long it waits instead), SIGTERM
/// during that wait ends the export with 130, and the file holds whole records only.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_caps_a_huge_retry_after_and_a_sigterm_during_the_wait_exits_130() {
    let sandbox = tray_source_asking_for_a_day().await;
    let dir = scratch();
    let mut running = Running::spawn(
        dir.path(),
        &["export", "--provider", "tray", "--output", "export.jsonl"],
        &sandbox.env(),
    );
    running.wait_for_line(CAPPED).await;
    assert_eq!(sandbox.faults.injected().too_many_requests, 1);
    let (code, printed) = running.terminate().await;
    assert_eq!(code, 130, "{printed}");
    assert!(
        printed.contains(&format!("asked to wait {HUGE_RETRY_AFTER}s"))
            && printed.contains("waiting 300s"),
        "{printed}"
    );
    assert!(printed.contains("incomplete"), "{printed}");
    assert_no_canary("interrupted export stderr", &printed);
    let text = std::fs::read_to_string(dir.path().join("export.jsonl")).unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "a cut line: {text}"
    );
    for line in parse_lines(&text) {
        assert!(line["id"].is_string() && line["auth"].is_object());
    }
}

/// `authport migrate`: the same capped wait in the export thread, and SIGTERM during it ends
/// the whole run with 130; the same command then moves everything.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrate_caps_a_huge_retry_after_and_a_sigterm_during_the_wait_exits_130() {
    let sandbox = tray_source_asking_for_a_day().await;
    let dir = scratch();
    let args = [
        "migrate",
        "--from",
        "tray",
        "--to",
        "nango",
        "--state",
        "state.db",
        "--report",
        "report.jsonl",
    ];
    let mut running = Running::spawn(dir.path(), &args, &sandbox.env());
    running.wait_for_line(CAPPED).await;
    let (code, printed) = running.terminate().await;
    assert_eq!(code, 130, "{printed}");
    assert_no_canary("interrupted migrate stderr", &printed);
    let report = read_lines(&dir.path().join("report.jsonl"));
    assert!(report.len() <= 6, "{report:?}");

    sandbox.set_faults(FaultPlan::default());
    let mut again = args.to_vec();
    *again.last_mut().unwrap() = "final.jsonl";
    let out = authport(dir.path(), &again, &sandbox.env()).await;
    let report = read_lines(&dir.path().join("final.jsonl"));
    assert!(out.code == 0 || out.code == 1, "{}", out.stderr);
    assert_eq!(report.len(), 6, "{report:?}");
    assert!(
        report
            .iter()
            .all(|l| l["status"] != "failed" || l["error"]["kind"] == "mapping"),
        "{report:?}"
    );
    assert_no_canary_in_dir(dir.path());
}

/// SIGTERM while the run's last step waits to enable Tray's instances (an hour's wait) ends the
/// run with 130; the enable stays queued in the state, and the next run enables it.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_during_the_tray_enables_exits_130_and_the_next_run_enables() {
    let sandbox = sandbox().await;
    let dir = scratch();
    std::fs::write(
        dir.path().join("authport.toml"),
        tray_solution_config(3_600_000),
    )
    .unwrap();
    let lines = vec![
        tray_solution_line("acme", "mailchimp"),
        tray_solution_line("acme", "slack"),
    ];
    // The input holds the canaries: apart from the directory checked for leaks.
    let inputs = scratch();
    let input = write_lines(inputs.path(), "in.jsonl", &lines);
    let args = [
        "-v",
        "import",
        "--provider",
        "tray",
        "--input",
        input.to_str().unwrap(),
        "--state",
        "state.db",
        "--report",
        "report.jsonl",
        "--config",
        "authport.toml",
    ];
    let mut running = Running::spawn(dir.path(), &args, &sandbox.env());
    running
        .wait_for_line("running the provider's last step")
        .await;
    let (code, printed) = running.terminate().await;
    assert_eq!(code, 130, "{printed}");
    assert_no_canary("interrupted import stderr", &printed);
    let instances = sandbox.tray.instances();
    assert!(
        instances.len() == 1 && !instances[0].enabled,
        "{instances:?}"
    );

    std::fs::write(dir.path().join("authport.toml"), tray_solution_config(0)).unwrap();
    let run = import_with_state(
        "tray",
        &sandbox.env(),
        dir.path(),
        &input,
        &["--config", "authport.toml"],
    )
    .await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    let instances = sandbox.tray.instances();
    assert!(
        instances.len() == 1 && instances[0].enabled,
        "{instances:?}"
    );
    assert_eq!(
        sandbox.tray.call_count("graphql createSolutionInstance"),
        1,
        "no second create"
    );
    assert_no_canary_in_dir(dir.path());
}
