//! Shared helpers for the end-to-end tests: run the built `authport` binary, against an
//! in-process sandbox, in a scratch directory, and read what it wrote.

use std::path::{Path, PathBuf};

use authport_sandbox::tray::stable_uuid;
use serde_json::Value;

// The sandbox with canary credentials and the leak checks, shared with every other test crate.
#[allow(unused_imports)] // Each test binary uses a different subset.
pub use authport_testkit::{
    CANARY, Sandbox, assert_no_canary, assert_no_canary_in_dir, canary, sandbox, sandbox_with,
};

/// The `authport` binary cargo built for this test run (`target/<profile>/authport`).
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/authport
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile dir");
    let binary = profile_dir.join(format!("authport{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.is_file(),
        "{} is missing: run the tests with `cargo test --workspace` (or `cargo build -p authport` first)",
        binary.display()
    );
    binary
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Everything the run printed, for leak checks.
    pub fn printed(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// The built `authport` with a clean copy of the environment: no vendor variable, log filter or
/// authport setting inherited from the machine, so a developer's own account or config never
/// reaches a test run. Killed when dropped. Every test that starts the binary starts it here.
pub fn authport_command() -> tokio::process::Command {
    authport_testkit::clean_async_command(binary())
}

/// Sends `signal` (`-TERM`, `-INT`) to a running child, as an operator's `kill` would.
pub fn signal(child: &tokio::process::Child, signal: &str) {
    let pid = child.id().expect("still running").to_string();
    let sent = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill {signal} {pid}");
}

/// A long-running `authport` command (`webhooks`, `links serve`) listening on a free loopback
/// port, and the address it printed (without a trailing `/`).
pub struct Listening {
    pub child: tokio::process::Child,
    pub url: String,
}

impl Listening {
    /// Starts `authport ARGS --listen 127.0.0.1:0 --state state.db` in `dir`; returns once it
    /// printed its address (it listens by then).
    pub async fn spawn(dir: &Path, args: &[&str], env: &[(String, String)]) -> Listening {
        use tokio::io::AsyncBufReadExt;
        let mut command = authport_command();
        command
            .current_dir(dir)
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--state", "state.db"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        command.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start authport {args:?}: {e}"));
        let mut line = String::new();
        tokio::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .await
            .expect("it prints its address");
        let url = line
            .trim()
            .rsplit(' ')
            .next()
            .filter(|url| url.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .trim_end_matches('/')
            .to_owned();
        Listening { child, url }
    }

    /// Stops it with SIGTERM and returns its exit code and everything it logged.
    pub async fn stop(mut self) -> (i32, String) {
        use tokio::io::AsyncReadExt;
        signal(&self.child, "-TERM");
        let mut stderr = String::new();
        let mut pipe = self.child.stderr.take().expect("stderr");
        pipe.read_to_string(&mut stderr).await.expect("stderr");
        let status = self.child.wait().await.expect("exits");
        (status.code().unwrap_or(-1), stderr)
    }
}

/// Runs `authport ARGS` in `dir` with `env` added to a clean copy of the environment (no
/// vendor variables inherited from the machine).
pub async fn authport(dir: &Path, args: &[&str], env: &[(String, String)]) -> Output {
    let mut command = authport_command();
    command.current_dir(dir).args(args);
    command.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let output = command.output().await.expect("run authport");
    Output {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// One `import` run: what it printed and the report it wrote.
pub struct Run {
    pub out: Output,
    pub report: Vec<Value>,
}

/// `authport import --provider P --input INPUT --state state.db --report report.jsonl EXTRA…`
/// in `dir`, with `env`.
pub async fn import_with_state(
    provider: &str,
    env: &[(String, String)],
    dir: &Path,
    input: &Path,
    extra: &[&str],
) -> Run {
    let report = dir.join("report.jsonl");
    let mut args = vec![
        "import",
        "--provider",
        provider,
        "--input",
        input.to_str().expect("utf-8 path"),
        "--state",
        "state.db",
        "--report",
        report.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    let out = authport(dir, &args, env).await;
    let report = read_lines(&report);
    Run { out, report }
}

/// A scratch directory, removed when dropped.
pub fn scratch() -> tempfile::TempDir {
    authport_testkit::scratch()
}

/// Writes JSON Lines (one JSON text per line) to `dir/name` and returns the path.
pub fn write_lines(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    authport_testkit::write_lines(&dir.join(name), lines)
}

/// Reads stdout text of JSON Lines into values.
pub fn parse_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

/// Reads a JSON Lines file (a report) into values.
pub fn read_lines(path: &Path) -> Vec<Value> {
    authport_testkit::read_jsonl(path)
}

/// `(id, status)` pairs of a report, in order.
pub fn statuses(report: &[Value]) -> Vec<(String, String)> {
    report
        .iter()
        .map(|line| {
            (
                line["id"].as_str().unwrap_or("-").to_owned(),
                line["status"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect()
}

/// The bundled `examples/records.jsonl`, one record per line.
pub fn example_lines() -> Vec<String> {
    std::fs::read_to_string(example("records.jsonl"))
        .expect("read examples/records.jsonl")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The example file shipped in the repository.
pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

/// One planted secret: the record it belongs to and the canonical field it sits in.
pub struct Planted {
    pub record_id: &'static str,
    pub owner: &'static str,
    pub service: &'static str,
    pub field: &'static str,
    pub secret: String,
}

/// The example records with every secret replaced by its own canary (`label` keeps the
/// canaries of one test file apart from another's).
pub fn canary_dataset(label: &str) -> (Vec<String>, Vec<Planted>) {
    let plan: [(&str, &str, &str, &str, &str); 9] = [
        (
            "example-hubspot-access-token",
            "acme-42/hubspot",
            "acme-42",
            "hubspot",
            "access_token",
        ),
        (
            "example-hubspot-refresh-token",
            "acme-42/hubspot",
            "acme-42",
            "hubspot",
            "refresh_token",
        ),
        (
            "example-salesforce-access-token",
            "acme-42/salesforce",
            "acme-42",
            "salesforce",
            "access_token",
        ),
        (
            "example-salesforce-refresh-token",
            "acme-42/salesforce",
            "acme-42",
            "salesforce",
            "refresh_token",
        ),
        (
            "example-activecampaign-key",
            "globex-7/activecampaign",
            "globex-7",
            "activecampaign",
            "api_key",
        ),
        (
            "example-greenhouse-key",
            "globex-7/greenhouse",
            "globex-7",
            "greenhouse",
            "api_key",
        ),
        (
            "example-quickbooks-access-token",
            "initech-3/quickbooks",
            "initech-3",
            "quickbooks",
            "access_token",
        ),
        (
            "example-quickbooks-refresh-token",
            "initech-3/quickbooks",
            "initech-3",
            "quickbooks",
            "refresh_token",
        ),
        (
            "example-zendesk-api-token",
            "initech-3/zendesk",
            "initech-3",
            "zendesk",
            "password",
        ),
    ];
    let mut text = std::fs::read_to_string(example("records.jsonl")).unwrap();
    let mut planted = Vec::new();
    for (example_secret, record_id, owner, service, field) in plan {
        assert!(
            text.contains(example_secret),
            "examples/records.jsonl has no {example_secret}"
        );
        let secret = canary(&format!("{label}{service}-{field}"));
        text = text.replace(example_secret, &secret);
        planted.push(Planted {
            record_id,
            owner,
            service,
            field,
            secret,
        });
    }
    (text.lines().map(str::to_owned).collect(), planted)
}

/// A two-slot Tray solution (slack and mailchimp) whose enables wait `enable_delay_ms` after
/// each create.
pub fn tray_solution_config(enable_delay_ms: u64) -> String {
    format!(
        r##"[tray.services.slack]
service_environment = "acme slack oauth"

[tray.services.mailchimp]
service_environment = "mailchimp acme oauth"

[tray.solution]
solution_id = "{}"
slots = {{ external_mailchimp_authentication = "mailchimp", external_slack_authentication = "slack" }}
config_values = {{ external_slack_channel = "#general" }}
instance_name_template = "{{owner}} sync ({{owner.id}})"
enable_delay_ms = {enable_delay_ms}
"##,
        stable_uuid("solution:acme-mailchimp-to-slack")
    )
}

/// An OAuth record of `owner` for `service` with a canary token, for the Tray solution runs.
pub fn tray_solution_line(owner: &str, service: &str) -> String {
    format!(
        r#"{{"id":"{owner}/{service}","owner":{{"id":"{owner}","name":"{owner} inc"}},"service":"{service}","auth":{{"type":"oauth2","access_token":"{}"}}}}"#,
        canary(&format!("{owner}-{service}"))
    )
}

/// An Apideck OAuth record of `owner` (named `name`) for `service` under `unified_api`, with
/// canary tokens that expire in 2030.
pub fn apideck_oauth_line(
    id: &str,
    owner: &str,
    name: &str,
    service: &str,
    unified_api: &str,
) -> String {
    serde_json::json!({"id": id, "owner": {"id": owner, "name": name, "email": format!("{owner}@example.com")},
           "service": service,
           "auth": {"type": "oauth2", "access_token": canary(&format!("{id}-access")),
                    "refresh_token": canary(&format!("{id}-refresh")),
                    "expires_at": "2030-01-01T00:00:00Z"},
           "targets": {"apideck": {"unified_api": unified_api, "service_id": service}}})
    .to_string()
}
