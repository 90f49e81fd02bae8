//! Canary secrets planted in records never appear in any output: stdout, stderr (at -vvv and
//! RUST_LOG=trace), reports, state files, for every command and both providers.

mod common;

use common::*;

const CANARIES: [&str; 8] = [
    "CANARY7-hubspot-access",
    "CANARY7-hubspot-refresh",
    "CANARY7-salesforce-access",
    "CANARY7-activecampaign-key",
    "CANARY7-greenhouse-key",
    "CANARY7-quickbooks-access",
    "CANARY7-zendesk-user@initech.example",
    "CANARY7-zendesk-password",
];

/// The example records with every secret replaced by a canary, plus bad records that put
/// canaries where they do not belong.
fn records() -> Vec<String> {
    let example = std::fs::read_to_string(example("records.jsonl")).unwrap();
    let replaced = example
        .replace("example-hubspot-access-token", CANARIES[0])
        .replace("example-hubspot-refresh-token", CANARIES[1])
        .replace("example-salesforce-access-token", CANARIES[2])
        .replace("example-activecampaign-key", CANARIES[3])
        .replace("example-greenhouse-key", CANARIES[4])
        .replace("example-quickbooks-access-token", CANARIES[5])
        .replace("it@initech.example", CANARIES[6])
        .replace("example-zendesk-api-token", CANARIES[7]);
    let mut lines: Vec<String> = replaced.lines().map(str::to_owned).collect();
    lines.push(format!(
        r#"{{"id":"bad/1","owner":{{"id":"o"}},"service":"greenhouse","auth":{{"type":"api_key","api_key":["{}"]}}}}"#,
        CANARIES[4]
    ));
    lines.push(format!(
        r#"{{"id":"bad/2","owner":{{"id":"o"}},"service":"hubspot","auth":{{"type":"oauth2","access_token":"{}","issued_at":"2026-11-01T00:00:00Z","expires_in":"{}"}}}}"#,
        CANARIES[0], CANARIES[1]
    ));
    lines.push(format!(
        r#"{{"id":"bad/3","owner":{{"id":"o"}},"service":"nosuchservice","auth":{{"type":"api_key","api_key":"{}"}}}}"#,
        CANARIES[3]
    ));
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_command_leaks_a_secret() {
    for provider in ["tray", "apideck"] {
        let sandbox = authport_sandbox::start(Default::default(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let mut env = sandbox.provider_env();
        env.push(("RUST_LOG".to_owned(), "trace".to_owned()));
        let dir = scratch();
        // The input holds the canaries: it lives outside the folder whose files are checked.
        let input_dir = scratch();
        let input = write_lines(input_dir.path(), "in.jsonl", &records());
        let input = input.to_str().unwrap();
        let state = dir.path().join("state.db");
        let state = state.to_str().unwrap();
        let mut printed = Vec::new();
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
        for args in &runs {
            let out = authport(dir.path(), args, &env).await;
            assert!(
                out.code == 0 || out.code == 1,
                "{provider} {args:?} exited {}: {}",
                out.code,
                out.stderr
            );
            printed.push(out.printed());
        }
        let texts: Vec<&str> = printed.iter().map(String::as_str).collect();
        let files = all_file_bytes(dir.path());
        assert!(
            files.len() >= 5,
            "state and reports were written: {files:?}"
        );
        assert_no_canary(&CANARIES, &texts, &files);
        // The vendor credentials (from the environment) never show either.
        let credentials: Vec<&str> = env
            .iter()
            .filter(|(name, _)| name == "TRAY_MASTER_TOKEN" || name == "APIDECK_API_KEY")
            .map(|(_, value)| value.as_str())
            .collect();
        assert_eq!(credentials.len(), 2);
        assert_no_canary(&credentials, &texts, &files);
        // Not vacuous: the import really happened and the logs were verbose.
        let report = read_lines(&dir.path().join("import.jsonl"));
        assert_eq!(report.len(), 9, "{provider}");
        let imported = report.iter().filter(|l| l["status"] == "imported").count();
        assert!(imported >= 6, "{provider}: {report:?}");
        assert!(
            texts
                .iter()
                .any(|t| t.contains("TRACE") || t.contains("DEBUG")),
            "{provider}: logs were not verbose"
        );
        sandbox.stop().await;
    }
}
