//! Issue 17 item 14, through the binary: a secret pasted into `[engine]` or `[migrate]` as a
//! key name, or as a value of the wrong type, is never echoed; the message names the section,
//! the setting and the kind of value it takes (exit 2, before anything is sent).

use std::path::Path;

fn run(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let output = authport_testkit::clean_command(env!("CARGO_BIN_EXE_authport"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run authport");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn engine_and_migrate_mistakes_are_named_by_setting_and_kind_never_quoted() {
    let canary = authport_testkit::canary("runner-config");
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::write(dir.join("in.jsonl"), "").unwrap();
    let import = [
        "import",
        "--provider",
        "tray",
        "--input",
        "in.jsonl",
        "--config",
        "c.toml",
    ];
    let migrate = [
        "migrate", "--from", "tray", "--to", "nango", "--config", "c.toml",
    ];
    let cases: &[(&[&str], String, &str)] = &[
        (
            &import,
            format!("[engine]\n{canary} = 1\n"),
            "[engine] has a key that is not a setting (settings: concurrency,",
        ),
        (
            &import,
            format!("[engine]\nconcurrency = \"{canary}\"\n"),
            "[engine] concurrency must be a whole number",
        ),
        (
            &migrate,
            format!("[migrate]\n{canary} = 1\n"),
            "[migrate] has a key that is not a setting (settings: services, source_rate)",
        ),
        (
            &migrate,
            format!("[migrate]\nsource_rate = \"{canary}\"\n"),
            "[migrate] source_rate must be a number",
        ),
    ];
    for (args, config, expect) in cases {
        std::fs::write(dir.join("c.toml"), config).unwrap();
        let (code, stderr) = run(dir, args);
        assert_eq!(code, Some(2), "{config}: {stderr}");
        assert!(stderr.contains(expect), "{config}: {stderr}");
        authport_testkit::assert_no_canary(config, &stderr);
    }
}
