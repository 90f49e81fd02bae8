//! What a new user meets first (issue 21 items 10 and 11): messages that name the right
//! thing, help with examples, completions, man pages, config discovery and `config show`.
//! Every run is the real binary, in a temporary directory as its working directory.

use std::path::Path;

use authport_testkit::Output as Out;

/// Runs `authport ARGS` in `dir` with `env`; no vendor or config variable is inherited.
fn authport_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut command = authport_testkit::clean_command(env!("CARGO_BIN_EXE_authport"));
    command.current_dir(dir).args(args);
    let output = command
        .envs(env.iter().copied())
        .output()
        .expect("run authport");
    Out::from(output)
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

// Item 10: messages that name the wrong thing.

#[test]
fn a_state_file_given_as_the_report_is_called_the_state_file() {
    let dir = tempdir();
    std::fs::write(dir.path().join("run.db"), "").unwrap();
    for command in ["verify", "rollback"] {
        let out = authport_in(
            dir.path(),
            &[
                command, "-p", "tray", "--state", "run.db", "--report", "run.db",
            ],
            &[],
        );
        assert_eq!(out.code, Some(2), "{command}: {}", out.stderr);
        assert!(out.stderr.contains("--state"), "{command}: {}", out.stderr);
        assert!(
            !out.stderr.contains("input file"),
            "{command}: {}",
            out.stderr
        );
    }
}

#[test]
fn a_directory_given_as_the_input_is_called_a_directory() {
    let dir = tempdir();
    std::fs::create_dir(dir.path().join("records")).unwrap();
    for args in [
        &["validate", "--input", "records"][..],
        &["import", "-p", "tray", "--input", "records", "--dry-run"][..],
    ] {
        let out = authport_in(dir.path(), args, &[]);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("is a directory"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("does not exist"),
            "{args:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn a_text_file_given_as_the_state_is_refused_in_a_sentence_with_exit_2() {
    let dir = tempdir();
    let text = "these are my notes, not a database\n".repeat(40);
    std::fs::write(dir.path().join("notes.txt"), &text).unwrap();
    let out = authport_in(
        dir.path(),
        &["verify", "-p", "tray", "--state", "notes.txt"],
        &[],
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("is not an authport state file (not a SQLite database)"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("file is not a database"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(),
        text
    );
}

#[test]
fn the_starting_log_line_says_the_pacing_in_words() {
    let dir = tempdir();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/records.jsonl");
    std::fs::copy(examples, dir.path().join("in.jsonl")).unwrap();
    let out = authport_in(
        dir.path(),
        &[
            "-v",
            "import",
            "-p",
            "tray",
            "--sandbox",
            "--input",
            "in.jsonl",
            "--dry-run",
            "--rate",
            "3.25",
            "--report",
            "plan.jsonl",
        ],
        &[],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("pacing=3.25/s, burst"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("Fixed {"), "{}", out.stderr);
}

// Item 11: help and discovery.

/// Every visible command (and `config show`), from the top-level help.
fn commands() -> Vec<Vec<String>> {
    let help = authport_in(Path::new("."), &["--help"], &[]).stdout;
    let mut commands: Vec<Vec<String>> = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("Options:")
        .next()
        .unwrap()
        .lines()
        // A command's line starts with its name; wrapped description lines are indented more.
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .filter(|name| name != "help" && name.chars().all(|c| c.is_ascii_lowercase()))
        .map(|name| vec![name])
        .collect();
    assert!(commands.len() >= 12, "{help}");
    commands.retain(|command| command[0] != "config");
    commands.push(vec!["config".into(), "show".into()]);
    commands
}

#[test]
fn every_command_help_shows_two_or_three_examples() {
    for command in commands() {
        let mut args: Vec<&str> = command.iter().map(String::as_str).collect();
        args.push("--help");
        let out = authport_in(Path::new("."), &args, &[]);
        assert_eq!(out.code, Some(0), "{command:?}");
        let examples = out.stdout.split("Examples:").nth(1).unwrap_or_default();
        let count = examples
            .lines()
            .filter(|line| line.trim_start().contains("authport "))
            .count();
        assert!(
            (1..=3).contains(&count) && (count >= 2 || command[0] == "webhooks"),
            "{command:?} shows {count} examples:\n{}",
            out.stdout
        );
    }
}

#[test]
fn completions_are_printed_for_each_shell() {
    for (shell, mark) in [
        ("bash", "_authport()"),
        ("zsh", "#compdef authport"),
        ("fish", "complete -c authport"),
    ] {
        let out = authport_in(Path::new("."), &["completions", shell], &[]);
        assert_eq!(out.code, Some(0), "{shell}: {}", out.stderr);
        assert!(out.stdout.contains(mark), "{shell}");
        assert!(out.stdout.contains("rollback"), "{shell}");
    }
    let out = authport_in(Path::new("."), &["completions", "tcsh"], &[]);
    assert_eq!(out.code, Some(2));
}

#[test]
fn man_pages_are_written_for_the_program_and_each_command() {
    let dir = tempdir();
    let out = authport_in(dir.path(), &["man", "--out-dir", "man"], &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let page = std::fs::read_to_string(dir.path().join("man/authport.1")).unwrap();
    assert!(page.contains(".TH authport 1"), "{page}");
    let import = std::fs::read_to_string(dir.path().join("man/authport-import.1")).unwrap();
    assert!(import.contains("\\-\\-state"), "{import}");
    assert!(import.contains("Examples"), "{import}");
}

/// A config whose `[engine]` is refused: which command read it shows in the message.
const BAD_ENGINE: &str = "[engine]\nconcurrency = 0\n";

#[test]
fn commands_read_authport_config_then_the_current_directory() {
    let dir = tempdir();
    std::fs::write(dir.path().join("in.jsonl"), "").unwrap();
    let import = ["import", "-p", "tray", "--input", "in.jsonl", "--dry-run"];
    // ./authport.toml is found.
    std::fs::write(dir.path().join("authport.toml"), BAD_ENGINE).unwrap();
    let out = authport_in(dir.path(), &import, &[]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("authport.toml: [engine] concurrency"),
        "{}",
        out.stderr
    );
    // AUTHPORT_CONFIG wins over it.
    std::fs::write(dir.path().join("prod.toml"), BAD_ENGINE).unwrap();
    let out = authport_in(dir.path(), &import, &[("AUTHPORT_CONFIG", "prod.toml")]);
    assert!(out.stderr.contains("prod.toml: [engine]"), "{}", out.stderr);
    // --config wins over both; a file it names must exist.
    let out = authport_in(
        dir.path(),
        &["config", "show", "--config", "absent.toml"],
        &[("AUTHPORT_CONFIG", "prod.toml")],
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("absent.toml"), "{}", out.stderr);
}

#[test]
fn config_show_prints_the_effective_config_and_never_a_secret() {
    let dir = tempdir();
    let canary = "CANARY-config-show-7f3a";
    std::fs::write(
        dir.path().join("authport.toml"),
        format!(
            "[engine]\nconcurrency = 4\nrate = 12.5\n\n[tray]\nmaster_token = \"{canary}\"\n\
             api_url = \"https://user:{canary}@api.tray.io\"\n\
             graphql_url = \"https://tray.io/graphql/{canary}\"\n\"{canary}\" = 1\n\n\
             [apideck]\napi_key = \"{canary}\"\napp_id = \"app-1\"\n"
        ),
    )
    .unwrap();
    let env = [
        ("TRAY_MASTER_TOKEN", canary),
        ("NANGO_SECRET_KEY", canary),
        ("NANGO_API_URL", "http://127.0.0.1:3003"),
    ];
    let out = authport_in(dir.path(), &["config", "show"], &env);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(!out.stdout.contains("CANARY"), "{}", out.stdout);
    assert!(!out.stderr.contains("CANARY"), "{}", out.stderr);
    for expected in [
        "# config file: authport.toml (the current directory)",
        "[engine]\nconcurrency = 4\nrate = 12.5\n",
        "[tray]\n",
        "master_token = \"<redacted>\"",
        "api_url = \"<redacted>\"",
        "graphql_url = \"https://tray.io/…\"",
        "# 1 key(s) not shown: not a setting name",
        "app_id = \"<redacted>\"",
        "TRAY_MASTER_TOKEN = \"<redacted>\"",
        "NANGO_API_URL = \"http://127.0.0.1:3003\"",
    ] {
        assert!(out.stdout.contains(expected), "{expected}:\n{}", out.stdout);
    }
    // No file: says so, and shows the defaults.
    let empty = tempdir();
    let out = authport_in(empty.path(), &["config", "show"], &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("# no config file"), "{}", out.stdout);
    assert!(
        out.stdout.contains("request_timeout_secs = 30"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_lists_what_each_provider_offers_and_what_to_name() {
    let sandbox = authport_testkit::sandbox().await;
    let env = sandbox.provider_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let dir = tempdir();
    let run = |args: &[&str]| {
        let out = authport_in(dir.path(), args, &env);
        assert_eq!(out.code, Some(0), "{args:?}: {}", out.stderr);
        out.stdout
    };
    let nango = run(&["targets", "-p", "nango"]);
    assert!(
        nango.contains("slack            integration  slack  targets.nango.provider_config_key"),
        "{nango}"
    );
    let apideck = run(&[
        "targets",
        "-p",
        "apideck",
        "--service",
        "hubspot",
        "--format",
        "json",
    ]);
    let line: serde_json::Value = serde_json::from_str(apideck.trim()).unwrap();
    assert_eq!(line["name"], "crm/hubspot", "{apideck}");
    assert_eq!(line["kind"], "connector");
    let tray = run(&["targets", "-p", "tray", "--service", "slack"]);
    assert!(tray.contains("slack            service "), "{tray}");
    assert!(
        tray.contains("service environment  Production  targets.tray.service_environment"),
        "{tray}"
    );
    // An error a record gets names what `targets` lists: the same words.
    let unknown = authport_in(dir.path(), &["targets", "-p", "nope"], &env);
    assert_eq!(unknown.code, Some(2));
    // The scaffold check adds a provider to this list: name the real ones, not the whole list.
    let listed = unknown
        .stderr
        .split_once("registered providers: ")
        .map(|(_, names)| names.to_owned())
        .unwrap_or_default();
    for name in ["apideck", "nango", "tray"] {
        assert!(listed.contains(name), "{}", unknown.stderr);
    }
}
