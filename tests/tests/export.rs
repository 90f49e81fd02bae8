//! `authport export` end to end: the example records, every secret a canary, are imported into
//! the sandbox (Tray, then Nango) with the binary, exported with the binary, and every canary
//! must come back exactly once, in the right field, for the right owner; the file is 0600, is
//! not overwritten without --force, and stderr never shows a secret.

use crate::common;

use std::path::Path;

use authport_core::{Auth, CredentialRecord, ExposeSecret};
use common::*;
use serde_json::Value;

/// The secret a record holds in a canonical field (`custom` fields by the same name).
fn field_of(record: &CredentialRecord, field: &str) -> Option<String> {
    let text = |s: &authport_core::SecretString| s.expose_secret().to_owned();
    match (&record.auth, field) {
        (Auth::OAuth2(o), "access_token") => Some(text(&o.access_token)),
        (Auth::OAuth2(o), "refresh_token") => o.refresh_token.as_ref().map(text),
        (Auth::ApiKey { api_key }, "api_key") => Some(text(api_key)),
        (Auth::Basic { password, .. }, "password") => Some(text(password)),
        (Auth::Basic { username, .. }, "username") => Some(text(username)),
        (Auth::Custom { fields }, name) => fields.get(name).map(text),
        _ => None,
    }
}

fn read_records(lines: &[Value]) -> Vec<CredentialRecord> {
    lines
        .iter()
        .map(|line| authport_testkit::record(line))
        .collect()
}

/// Every planted secret that was imported arrives once in the export, in its field, in a
/// record of its owner and service. Returns how many were checked.
fn check_canaries(
    export_text: &str,
    records: &[CredentialRecord],
    planted: &[Planted],
    imported: &[String],
) -> usize {
    let mut checked = 0;
    for plant in planted
        .iter()
        .filter(|p| imported.iter().any(|id| id == p.record_id))
    {
        assert_eq!(
            export_text.matches(plant.secret.as_str()).count(),
            1,
            "{} {} must be in the export exactly once",
            plant.record_id,
            plant.field
        );
        let holders: Vec<&CredentialRecord> = records
            .iter()
            .filter(|r| r.secret_values().contains(&plant.secret.as_str()))
            .collect();
        assert_eq!(holders.len(), 1, "{}", plant.record_id);
        let holder = holders[0];
        assert_eq!(holder.owner.id, plant.owner, "{}", plant.record_id);
        assert_eq!(holder.service, plant.service, "{}", plant.record_id);
        assert_eq!(
            field_of(holder, plant.field).as_deref(),
            Some(plant.secret.as_str()),
            "{} {} is in another field of {:?}",
            plant.record_id,
            plant.field,
            holder.auth
        );
        checked += 1;
    }
    checked
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(not(unix))]
fn mode(_path: &Path) -> u32 {
    0o600
}

/// Imports the dataset into `provider`, exports it to a file and to stdout, and checks both.
async fn round_trip(provider: &str, expect_imported: usize) {
    let sandbox = sandbox().await;
    let env = sandbox.env();
    let (lines, planted) = canary_dataset("");
    let input_dir = scratch();
    let input = write_lines(input_dir.path(), "in.jsonl", &lines);
    let dir = scratch();
    let run = import_with_state(provider, &env, dir.path(), &input, &[]).await;
    let imported: Vec<String> = statuses(&run.report)
        .into_iter()
        .filter(|(_, status)| status == "imported")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        imported.len(),
        expect_imported,
        "{provider}: {:?}\n{}",
        run.report,
        run.out.stderr
    );

    // To a file: private, every canary once, in place, with a warning that says where.
    let out = authport(
        dir.path(),
        &["export", "--provider", provider, "--output", "out.jsonl"],
        &env,
    )
    .await;
    assert_eq!(out.code, 0, "{provider}: {}", out.stderr);
    let file = dir.path().join("out.jsonl");
    assert_eq!(mode(&file), 0o600);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(out.stderr.contains("out.jsonl holds"), "{}", out.stderr);
    assert_no_canary("export stderr", &out.stderr);
    let text = std::fs::read_to_string(&file).unwrap();
    let records = read_records(&read_lines(&file));
    assert_eq!(
        records.len(),
        imported.len(),
        "{provider}: one record per imported auth"
    );
    let checked = check_canaries(&text, &records, &planted, &imported);
    assert!(
        checked >= expect_imported,
        "{provider}: {checked} canaries checked"
    );
    // The format's own reader accepts it, and so does import's.
    let out = authport(
        dir.path(),
        &[
            "validate",
            "--input",
            "out.jsonl",
            "--report",
            "validated.jsonl",
        ],
        &env,
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);

    // Never overwritten without --force; with it, replaced and still private.
    std::fs::write(&file, "keep me\n").unwrap();
    let out = authport(
        dir.path(),
        &["export", "--provider", provider, "--output", "out.jsonl"],
        &env,
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let out = authport(
        dir.path(),
        &[
            "export",
            "--provider",
            provider,
            "--output",
            "out.jsonl",
            "--force",
        ],
        &env,
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(mode(&file), 0o600);
    assert_eq!(read_records(&read_lines(&file)).len(), imported.len());

    // `--output -` to a pipe (tests have no terminal): the same records on stdout.
    let out = authport(
        dir.path(),
        &["export", "--provider", provider, "--output", "-"],
        &env,
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("stdout holds"), "{}", out.stderr);
    assert_no_canary("export stderr", &out.stderr);
    let piped = read_records(&parse_lines(&out.stdout));
    assert_eq!(
        check_canaries(&out.stdout, &piped, &planted, &imported),
        checked
    );

    // One owner only; at the most verbose logging, stderr still shows no secret.
    let mut traced = env.clone();
    traced.push(("RUST_LOG".to_owned(), "trace".to_owned()));
    let out = authport(
        dir.path(),
        &[
            "-vvv",
            "export",
            "--provider",
            provider,
            "--owner",
            "globex-7",
        ],
        &traced,
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_no_canary("export stderr at trace", &out.stderr);
    let owners: Vec<String> = read_records(&parse_lines(&out.stdout))
        .into_iter()
        .map(|r| r.owner.id)
        .collect();
    assert!(!owners.is_empty());
    assert!(owners.iter().all(|o| o == "globex-7"), "{owners:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tray_export_returns_every_canary_once_for_its_owner() {
    round_trip("tray", 6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nango_export_returns_every_canary_once_for_its_owner() {
    round_trip("nango", 6).await;
}

#[cfg(unix)]
#[tokio::test]
async fn an_export_is_never_written_through_a_symlink() {
    let sandbox = sandbox().await;
    let dir = scratch();
    let target = dir.path().join("elsewhere.jsonl");
    std::os::unix::fs::symlink(&target, dir.path().join("link.jsonl")).unwrap();
    for extra in [&[][..], &["--force"][..]] {
        let mut args = vec!["export", "--provider", "tray", "--output", "link.jsonl"];
        args.extend_from_slice(extra);
        let out = authport(dir.path(), &args, &sandbox.env()).await;
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(out.stderr.contains("symbolic link"), "{}", out.stderr);
        assert!(!target.exists());
    }
}

#[tokio::test]
async fn a_provider_that_cannot_export_is_refused_by_name() {
    let dir = scratch();
    let out = authport(
        dir.path(),
        &["export", "--provider", "apideck", "--output", "x.jsonl"],
        &[],
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("cannot export; providers that can: nango, tray"),
        "{}",
        out.stderr
    );
    assert!(!dir.path().join("x.jsonl").exists());
}

#[tokio::test]
async fn providers_says_which_can_export() {
    let dir = scratch();
    let out = authport(dir.path(), &["providers"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let line = |name: &str| {
        out.stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing: {}", out.stdout))
            .to_owned()
    };
    assert!(line("tray ").contains("import, export"));
    assert!(line("nango ").contains("import, export"));
    assert!(!line("apideck ").contains("export"));
}

#[tokio::test]
async fn a_configuration_error_leaves_no_file_behind() {
    let dir = scratch();
    // No TRAY_MASTER_TOKEN: the provider cannot be built, nothing is read or written.
    let out = authport(
        dir.path(),
        &["export", "--provider", "tray", "--output", "x.jsonl"],
        &[],
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("TRAY_MASTER_TOKEN"), "{}", out.stderr);
    assert!(!dir.path().join("x.jsonl").exists());
}
