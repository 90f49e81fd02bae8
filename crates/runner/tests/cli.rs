//! The binary's command line as a user meets it. (This test target also makes `cargo test`
//! build the `authport` binary that the workspace's end-to-end tests in `tests/` run.)

fn authport(args: &[&str]) -> std::process::Output {
    authport_testkit::clean_command(env!("CARGO_BIN_EXE_authport"))
        .args(args)
        .output()
        .expect("run authport")
}

#[test]
fn help_lists_every_command() {
    let out = authport(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for command in [
        "providers",
        "validate",
        "import",
        "verify",
        "rollback",
        "sandbox",
    ] {
        assert!(help.contains(command), "{command} missing from:\n{help}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let check = |args: &[&str], expect_in_stderr: &str| {
        let out = authport(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expect_in_stderr), "{args:?}: {stderr}");
    };
    check(&["import", "--input", "x.jsonl"], "--provider");
    check(
        &[
            "import",
            "--provider",
            "tray",
            "--input",
            "x.jsonl",
            "--concurrency",
            "0",
        ],
        "concurrency",
    );
    check(&["verify", "--provider", "tray"], "--state");
    check(&["sandbox", "--listen", "0.0.0.0:1"], "loopback");
    check(&["nonsense"], "nonsense");

    // Config values follow the flags' rules, with the same message and no panic.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.jsonl");
    std::fs::write(&input, "").unwrap();
    for (engine, message) in [
        (
            "deadline_secs = 9223372036854775807",
            "[engine] deadline_secs must be a whole number",
        ),
        (
            "concurrency = 0",
            "[engine] concurrency must be a whole number of records in flight from 1 to 1024",
        ),
        ("rate = nan", "[engine] rate must be requests per second"),
        ("max_attempts = 0", "[engine] max_attempts must be"),
    ] {
        let config = dir.path().join("c.toml");
        std::fs::write(&config, format!("[engine]\n{engine}\n")).unwrap();
        let (config, input) = (config.to_str().unwrap(), input.to_str().unwrap());
        check(
            &[
                "import",
                "--provider",
                "tray",
                "--input",
                input,
                "--config",
                config,
            ],
            message,
        );
    }
    check(
        &[
            "import",
            "--provider",
            "tray",
            "--input",
            "x.jsonl",
            "--concurrency",
            "0",
        ],
        "must be a whole number of records in flight from 1 to 1024",
    );
}

#[test]
fn no_secret_can_be_passed_as_an_argument() {
    let out = authport(&[
        "import",
        "--provider",
        "tray",
        "--input",
        "x",
        "--master-token",
        "t",
    ]);
    assert_eq!(out.status.code(), Some(2));
}
