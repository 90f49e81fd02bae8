//! Canary secrets planted in records, and the sandbox's canary credentials, never appear in any
//! output: stdout, stderr (at -vvv and RUST_LOG=trace), reports, state files, for every command
//! and both providers.

use crate::common;

use common::*;

/// Each example secret and the canary that replaces it.
fn replacements() -> Vec<(&'static str, String)> {
    vec![
        ("example-hubspot-access-token", canary("hubspot-access")),
        ("example-hubspot-refresh-token", canary("hubspot-refresh")),
        (
            "example-salesforce-access-token",
            canary("salesforce-access"),
        ),
        ("example-activecampaign-key", canary("activecampaign-key")),
        ("example-greenhouse-key", canary("greenhouse-key")),
        (
            "example-quickbooks-access-token",
            canary("quickbooks-access"),
        ),
        ("it@initech.example", canary("zendesk-user@initech.example")),
        ("example-zendesk-api-token", canary("zendesk-password")),
    ]
}

/// The example records with every secret replaced by a canary, plus bad records that put
/// canaries where they do not belong.
fn records() -> Vec<String> {
    let mut replaced = std::fs::read_to_string(example("records.jsonl")).unwrap();
    for (secret, canary) in replacements() {
        // Not vacuous: a renamed example secret would otherwise go unchecked.
        assert!(
            replaced.contains(secret),
            "examples/records.jsonl has no {secret}"
        );
        replaced = replaced.replace(secret, &canary);
    }
    let mut lines: Vec<String> = replaced.lines().map(str::to_owned).collect();
    lines.push(format!(
        r#"{{"id":"bad/1","owner":{{"id":"o"}},"service":"greenhouse","auth":{{"type":"api_key","api_key":["{}"]}}}}"#,
        canary("greenhouse-key")
    ));
    lines.push(format!(
        r#"{{"id":"bad/2","owner":{{"id":"o"}},"service":"hubspot","auth":{{"type":"oauth2","access_token":"{}","issued_at":"2026-11-01T00:00:00Z","expires_in":"{}"}}}}"#,
        canary("hubspot-access"),
        canary("hubspot-refresh")
    ));
    lines.push(format!(
        r#"{{"id":"bad/3","owner":{{"id":"o"}},"service":"nosuchservice","auth":{{"type":"api_key","api_key":"{}"}}}}"#,
        canary("activecampaign-key")
    ));
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_command_leaks_a_secret() {
    for provider in ["tray", "apideck"] {
        let sandbox = sandbox().await;
        let mut env = sandbox.env();
        // The vendor credentials the runs send are canaries too, so every check below covers them.
        for name in ["TRAY_MASTER_TOKEN", "APIDECK_API_KEY"] {
            let value = sandbox.env_snapshot().get(name).map(str::to_owned);
            assert!(value.is_some_and(|v| v.contains(CANARY)), "{name}");
        }
        env.push(("RUST_LOG".to_owned(), "trace".to_owned()));
        let dir = scratch();
        // The input holds the canaries: it lives outside the folder whose files are checked.
        let input_dir = scratch();
        let input = write_lines(input_dir.path(), "in.jsonl", &records());
        let input = input.to_str().unwrap();
        let state = dir.path().join("state.db");
        let state = state.to_str().unwrap();
        let runs: Vec<Vec<&str>> = vec![
            vec![
                "-vvv",
                "validate",
                "--input",
                input,
                "--report",
                "validate.jsonl",
            ],
            vec![
                "-vvv",
                "import",
                "--provider",
                provider,
                "--input",
                input,
                "--dry-run",
                "--report",
                "plan.jsonl",
            ],
            vec![
                "-vvv",
                "import",
                "--provider",
                provider,
                "--input",
                input,
                "--state",
                state,
                "--report",
                "import.jsonl",
            ],
            // Again, to exercise the unchanged path, and once more without --report (stdout).
            vec![
                "-vvv",
                "import",
                "--provider",
                provider,
                "--input",
                input,
                "--state",
                state,
            ],
            vec!["-vvv", "verify", "--provider", provider, "--state", state],
            vec![
                "-vvv",
                "rollback",
                "--provider",
                provider,
                "--state",
                state,
                "--report",
                "rollback.jsonl",
            ],
        ];
        let mut verbose = false;
        for args in &runs {
            let out = authport(dir.path(), args, &env).await;
            assert!(
                out.code == 0 || out.code == 1,
                "{provider} {args:?} exited {}: {}",
                out.code,
                out.stderr
            );
            assert_no_canary(&format!("{provider} {args:?}"), &out.printed());
            verbose |= out.stderr.contains("TRACE") || out.stderr.contains("DEBUG");
        }
        let written = std::fs::read_dir(dir.path()).unwrap().count();
        assert!(
            written >= 5,
            "state and reports were written: {written} files"
        );
        assert_no_canary_in_dir(dir.path());
        // Not vacuous: the import really happened and the logs were verbose.
        let report = read_lines(&dir.path().join("import.jsonl"));
        assert_eq!(report.len(), 9, "{provider}");
        let imported = report.iter().filter(|l| l["status"] == "imported").count();
        assert!(imported >= 6, "{provider}: {report:?}");
        assert!(verbose, "{provider}: logs were not verbose");
        sandbox.stop().await;
    }
}
