//! Everyday operator mistakes the binary refuses before anything is sent (exit 2), and the files
//! it creates (mode 0600). Each run talks to a sandbox on loopback started by the test.

use std::path::{Path, PathBuf};

use authport_sandbox::RunningSandbox;
use authport_testkit::{Output as Out, sandbox};

/// Runs `authport ARGS` in `dir` with `env` (no vendor variable inherited).
fn authport(dir: &Path, args: &[&str], env: &[(String, String)]) -> Out {
    let mut command = authport_testkit::clean_command(env!("CARGO_BIN_EXE_authport"));
    command.current_dir(dir).args(args);
    let output = command
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("run authport");
    Out::from(output)
}

/// The example records, copied into `dir`.
fn input(dir: &Path) -> PathBuf {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/records.jsonl");
    let path = dir.join("input.jsonl");
    std::fs::copy(examples, &path).unwrap();
    path
}

fn env_with(sandbox: &RunningSandbox, name: &str, value: &str) -> Vec<(String, String)> {
    let mut env = sandbox.provider_env();
    for pair in &mut env {
        if pair.0 == name {
            pair.1 = value.to_owned();
        }
    }
    env
}

fn import(dir: &Path, extra: &[&str], env: &[(String, String)]) -> Out {
    let mut args = vec![
        "import",
        "--provider",
        "tray",
        "--input",
        "input.jsonl",
        "--state",
        "state.db",
        "--report",
        "report.jsonl",
        "-q",
    ];
    args.extend_from_slice(extra);
    authport(dir, &args, env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_is_refused_against_another_target_and_rebinds_with_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    input(dir);
    let first = sandbox().await;
    let other = sandbox().await;
    let env = first.provider_env();
    assert_eq!(import(dir, &[], &env).code, Some(0));
    let auths = first.tray.auth_count();
    assert!(auths > 0);

    // Another server: refused before any request reaches it.
    let out = import(dir, &[], &other.provider_env());
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("endpoint differs"), "{}", out.stderr);
    for command in ["verify", "rollback"] {
        let args = [command, "--provider", "tray", "--state", "state.db", "-q"];
        let out = authport(dir, &args, &other.provider_env());
        assert_eq!(out.code, Some(2), "{command}: {}", out.stderr);
        assert!(out.stderr.contains("endpoint differs"), "{}", out.stderr);
    }
    assert_eq!(other.faults.requests_seen(), 0);

    // Another credential on the same server: refused, and the credential is not printed.
    let seen = first.faults.requests_seen();
    let out = import(
        dir,
        &[],
        &env_with(&first, "TRAY_MASTER_TOKEN", "CANARY-other-master"),
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("account differs"), "{}", out.stderr);
    assert!(!out.stderr.contains("CANARY"), "{}", out.stderr);
    assert_eq!(first.faults.requests_seen(), seen);
    assert_eq!(first.tray.auth_count(), auths);

    // The same server by another name: allowed with the flag, then bound to the new name.
    let port = first.base_url().rsplit(':').next().unwrap().to_owned();
    let by_name = format!("http://localhost:{port}");
    let mut renamed = env_with(&first, "TRAY_API_URL", &by_name);
    renamed = renamed
        .into_iter()
        .map(|(k, v)| {
            if k == "TRAY_GRAPHQL_URL" {
                (k, format!("{by_name}/graphql"))
            } else {
                (k, v)
            }
        })
        .collect();
    assert_eq!(import(dir, &[], &renamed).code, Some(2));
    let out = import(dir, &["--allow-target-change"], &renamed);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let report = std::fs::read_to_string(dir.join("report.jsonl")).unwrap();
    assert!(
        report
            .lines()
            .all(|l| l.contains(r#""status":"unchanged""#)),
        "{report}"
    );
    assert_eq!(import(dir, &[], &renamed).code, Some(0));
    assert_eq!(first.tray.auth_count(), auths);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_that_are_the_input_file_are_refused_and_the_input_survives() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let input = input(dir);
    let original = std::fs::read(&input).unwrap();
    std::fs::hard_link(&input, dir.join("linked.jsonl")).unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    let sandbox = sandbox().await;
    let env = sandbox.provider_env();
    let base = [
        "import",
        "--provider",
        "tray",
        "--input",
        "input.jsonl",
        "-q",
    ];
    for extra in [
        ["--report", "input.jsonl"],
        ["--report", "sub/../input.jsonl"],
        ["--report", "linked.jsonl"],
        ["--state", "input.jsonl"],
        ["--state", "linked.jsonl"],
    ] {
        let args: Vec<&str> = base.iter().chain(extra.iter()).copied().collect();
        let out = authport(dir, &args, &env);
        assert_eq!(out.code, Some(2), "{extra:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("same file"),
            "{extra:?}: {}",
            out.stderr
        );
        assert!(std::fs::read(&input).unwrap() == original, "{extra:?}");
    }
    let out = authport(
        dir,
        &[
            "validate",
            "--input",
            "input.jsonl",
            "--report",
            "linked.jsonl",
        ],
        &env,
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(std::fs::read(&input).unwrap() == original);
    assert_eq!(sandbox.faults.requests_seen(), 0);

    // verify and rollback read the state: a report on it is refused, and so is an import's.
    assert_eq!(import(dir, &[], &env).code, Some(0));
    let state = std::fs::read(dir.join("state.db")).unwrap();
    let args = [
        "import",
        "--provider",
        "tray",
        "--input",
        "input.jsonl",
        "--state",
        "state.db",
        "--report",
        "state.db",
    ];
    let out = authport(dir, &args, &env);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("same file"), "{}", out.stderr);
    assert!(std::fs::read(dir.join("state.db")).unwrap() == state);
    for command in ["verify", "rollback"] {
        let args = [
            command,
            "--provider",
            "tray",
            "--state",
            "state.db",
            "--report",
            "state.db",
        ];
        let out = authport(dir, &args, &env);
        assert_eq!(out.code, Some(2), "{command}: {}", out.stderr);
        assert!(
            std::fs::read(dir.join("state.db")).unwrap() == state,
            "{command}"
        );
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_are_private_and_never_written_through_a_symlink() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    input(dir);
    let sandbox = sandbox().await;
    let env = sandbox.provider_env();

    let elsewhere = dir.join("elsewhere.jsonl");
    std::os::unix::fs::symlink(&elsewhere, dir.join("link.jsonl")).unwrap();
    let out = authport(
        dir,
        &[
            "import",
            "--provider",
            "tray",
            "--input",
            "input.jsonl",
            "--report",
            "link.jsonl",
        ],
        &env,
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("symbolic link"), "{}", out.stderr);
    assert!(!elsewhere.exists());
    let out = authport(
        dir,
        &[
            "import",
            "--provider",
            "tray",
            "--input",
            "input.jsonl",
            "--state",
            "link.jsonl",
        ],
        &env,
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(!elsewhere.exists());

    assert_eq!(import(dir, &[], &env).code, Some(0));
    let mode = |name: &str| {
        std::fs::metadata(dir.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("report.jsonl"), 0o600);
    assert_eq!(mode("state.db"), 0o600);
    for side in ["state.db-wal", "state.db-shm"] {
        if dir.join(side).exists() {
            assert_eq!(mode(side), 0o600, "{side}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrelated_sqlite_database_is_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    input(dir);
    {
        let db = rusqlite::Connection::open(dir.join("state.db")).unwrap();
        db.execute_batch(
            "CREATE TABLE invoices (id INTEGER, total REAL); INSERT INTO invoices VALUES (1, 9.5);",
        )
        .unwrap();
    }
    let before = std::fs::read(dir.join("state.db")).unwrap();
    let sandbox = sandbox().await;
    for args in [
        &[
            "import",
            "--provider",
            "tray",
            "--input",
            "input.jsonl",
            "--state",
            "state.db",
        ][..],
        &["verify", "--provider", "tray", "--state", "state.db"][..],
        &["rollback", "--provider", "tray", "--state", "state.db"][..],
    ] {
        let out = authport(dir, args, &sandbox.provider_env());
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("not an authport state file"),
            "{}",
            out.stderr
        );
        assert_eq!(
            std::fs::read(dir.join("state.db")).unwrap(),
            before,
            "{args:?}"
        );
    }
    assert_eq!(sandbox.faults.requests_seen(), 0);
}
