//! Issue 17 items 2 and 12, end to end: no command writes an output over a file it reads (the
//! input, the import report, the state or its event store, the config), checked before any
//! output is opened: exit 2, both flags named, the file byte for byte as it was. And an export
//! to a redirected stdout leaves no file others can read.

use crate::common;

use std::path::Path;

use common::*;

const CONFIG: &str = "# holds settings an operator keeps private\n[engine]\nconcurrency = 2\n";

/// The run was refused before writing: exit 2, a message naming both flags, and `file` (in
/// `dir`) exactly as it was.
fn assert_refused(out: &Output, flags: [&str; 2], dir: &Path, file: &str, before: &[u8]) {
    assert_eq!(out.code, 2, "{}", out.stderr);
    for flag in flags {
        assert!(out.stderr.contains(flag), "{flag}: {}", out.stderr);
    }
    assert!(out.stderr.contains("same file"), "{}", out.stderr);
    assert_eq!(
        std::fs::read(dir.join(file)).unwrap(),
        before,
        "{file} was changed"
    );
}

/// An import of the example records into the sandbox's Tray: `dir/state.db`, `dir/in.jsonl`,
/// `dir/report.jsonl`.
async fn imported(sandbox: &Sandbox, dir: &Path) {
    std::fs::copy(example("records.jsonl"), dir.join("in.jsonl")).unwrap();
    let run = import_with_state("tray", &sandbox.env(), dir, Path::new("in.jsonl"), &[]).await;
    assert!(dir.join("state.db").is_file(), "{}", run.out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_never_writes_over_what_it_reads() {
    let sandbox = sandbox().await;
    let env = sandbox.env();
    let dir = scratch();
    let dir = dir.path();
    imported(&sandbox, dir).await;
    std::fs::write(dir.join("c.toml"), CONFIG).unwrap();
    let input = std::fs::read(dir.join("in.jsonl")).unwrap();
    let base = ["--provider", "tray", "--state", "state.db"];

    // status: its report on the input (which holds every secret), another path to it, the
    // config; and on the event store beside the state, which does not exist yet.
    for (report_path, flag, file) in [
        ("in.jsonl", "--input", "in.jsonl"),
        ("./sub/../in.jsonl", "--input", "in.jsonl"),
        ("c.toml", "--config", "c.toml"),
    ] {
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let mut args = vec!["status"];
        args.extend(base);
        args.extend([
            "--input",
            "in.jsonl",
            "--config",
            "c.toml",
            "--report",
            report_path,
        ]);
        let out = authport(dir, &args, &env).await;
        let before = if file == "c.toml" {
            CONFIG.as_bytes()
        } else {
            &input
        };
        assert_refused(&out, ["--report", flag], dir, file, before);
    }
    let mut args = vec!["status"];
    args.extend(base);
    args.extend(["--report", "state.db.events"]);
    let out = authport(dir, &args, &env).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("event store"), "{}", out.stderr);
    assert!(!dir.join("state.db.events").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_never_writes_over_what_it_reads() {
    let sandbox = sandbox().await;
    let env = sandbox.env();
    let dir = scratch();
    let dir = dir.path();
    imported(&sandbox, dir).await;
    std::fs::write(dir.join("c.toml"), CONFIG).unwrap();
    let input = std::fs::read(dir.join("in.jsonl")).unwrap();
    let report = std::fs::read(dir.join("report.jsonl")).unwrap();
    let base = ["--provider", "tray", "--state", "state.db"];

    // reconnect: its worklist on the import report, the input, the config.
    for (output, flag, file, before) in [
        (
            "report.jsonl",
            "--import-report",
            "report.jsonl",
            report.as_slice(),
        ),
        ("in.jsonl", "--input", "in.jsonl", input.as_slice()),
        ("c.toml", "--config", "c.toml", CONFIG.as_bytes()),
    ] {
        let mut args = vec!["reconnect"];
        args.extend(base);
        args.extend([
            "--input",
            "in.jsonl",
            "--import-report",
            "report.jsonl",
            "--config",
            "c.toml",
            "--output",
            output,
        ]);
        let out = authport(dir, &args, &env).await;
        assert_refused(&out, ["--output", flag], dir, file, before);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_never_writes_over_its_config_or_state() {
    let sandbox = sandbox().await;
    let env = sandbox.env();
    let dir = scratch();
    let dir = dir.path();
    std::fs::copy(example("records.jsonl"), dir.join("in.jsonl")).unwrap();
    std::fs::write(dir.join("c.toml"), CONFIG).unwrap();
    let import = |report: &'static str, state: &'static str| {
        let env = env.clone();
        async move {
            authport(
                dir,
                &[
                    "import",
                    "--provider",
                    "tray",
                    "--input",
                    "in.jsonl",
                    "--config",
                    "c.toml",
                    "--state",
                    state,
                    "--report",
                    report,
                ],
                &env,
            )
            .await
        }
    };

    // import: the report on the config; on a state file neither exists yet (nothing created).
    let out = import("c.toml", "state.db").await;
    assert_refused(
        &out,
        ["--report", "--config"],
        dir,
        "c.toml",
        CONFIG.as_bytes(),
    );
    assert!(!dir.join("state.db").exists());
    let out = import("new.db", "new.db").await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("--report") && out.stderr.contains("--state"),
        "{}",
        out.stderr
    );
    assert!(!dir.join("new.db").exists(), "nothing may be created");
    let out = import("state.db.events", "state.db").await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(!dir.join("state.db.events").exists());
}

/// A sandbox and a scratch directory holding the config file `c.toml`.
async fn with_config() -> (Sandbox, tempfile::TempDir) {
    let sandbox = sandbox().await;
    let dir = scratch();
    std::fs::write(dir.path().join("c.toml"), CONFIG).unwrap();
    (sandbox, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_never_writes_over_its_config_even_with_force() {
    let (sandbox, dir) = with_config().await;
    let (env, dir) = (sandbox.env(), dir.path());
    // export: never over the config it read, not even with --force.
    let out = authport(
        dir,
        &[
            "export",
            "--provider",
            "tray",
            "--config",
            "c.toml",
            "--output",
            "c.toml",
            "--force",
        ],
        &env,
    )
    .await;
    assert_refused(
        &out,
        ["--output", "--config"],
        dir,
        "c.toml",
        CONFIG.as_bytes(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_never_writes_over_its_config_or_event_store() {
    let (sandbox, dir) = with_config().await;
    let (env, dir) = (sandbox.env(), dir.path());
    // migrate: its report on the config, or on the state's event store.
    for (report, flag) in [
        ("c.toml", "--config"),
        ("s.db.events", "the event store of --state"),
    ] {
        let out = authport(
            dir,
            &[
                "migrate", "--from", "tray", "--to", "nango", "--config", "c.toml", "--state",
                "s.db", "--report", report,
            ],
            &env,
        )
        .await;
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(
            out.stderr.contains("--report") && out.stderr.contains(flag),
            "{}",
            out.stderr
        );
        assert_eq!(
            std::fs::read(dir.join("c.toml")).unwrap(),
            CONFIG.as_bytes()
        );
        assert!(!dir.join("s.db").exists() && !dir.join("s.db.events").exists());
    }
}

/// Item 12: `authport export > file` with the usual umask leaves a 0644 file of secrets; the
/// export makes it 0600 before writing.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_to_a_redirected_stdout_leaves_a_private_file() {
    use std::os::unix::fs::PermissionsExt as _;
    let sandbox = sandbox().await;
    let dir = scratch();
    imported(&sandbox, dir.path()).await;
    let path = dir.path().join("export.jsonl");
    let file = std::fs::File::create(&path).unwrap();
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
        .unwrap();
    let mut command = authport_command();
    let status = command
        .current_dir(dir.path())
        .args(["export", "--provider", "tray"])
        .envs(sandbox.env())
        .stdout(std::process::Stdio::from(file))
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    assert!(!std::fs::read_to_string(&path).unwrap().is_empty());
}
