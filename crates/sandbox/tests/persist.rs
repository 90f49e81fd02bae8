//! A durable sandbox (`--sandbox --state`): its data and address survive a restart, every
//! acknowledged change is already in the file, and files it cannot use are refused unchanged.

use std::path::Path;

use authport_sandbox::persist::{PersistError, data_path, start_durable};
use authport_sandbox::{RunningSandbox, SandboxConfig};
use serde_json::{Value, json};

use crate::common;

const KEY: &str = authport_sandbox::nango::SANDBOX_SECRET_KEY;

async fn nango(sandbox: &RunningSandbox, method: &str, path: &str, body: Option<&Value>) -> Value {
    let bearer = format!("Bearer {KEY}");
    let answer = common::call(
        sandbox,
        method,
        path,
        &[("authorization", Some(&bearer))],
        body,
    )
    .await;
    assert_eq!(answer.status / 100, 2, "{method} {path}: {}", answer.text);
    answer.body
}

fn upsert(connection_id: &str) -> Value {
    json!({"provider_config_key": "greenhouse", "connection_id": connection_id,
           "credentials": {"type": "API_KEY", "apiKey": "sandbox-test-key"},
           "tags": {"end_user_id": "acme-42"}})
}

async fn durable(path: &Path, create: bool) -> Result<RunningSandbox, PersistError> {
    start_durable(SandboxConfig::default(), path, create).await
}

#[test]
fn the_data_file_sits_beside_the_state() {
    assert_eq!(
        data_path(Path::new("dir/migration.db")),
        Path::new("dir/migration.db.sandbox.json")
    );
}

#[tokio::test]
async fn a_durable_sandbox_keeps_its_data_and_its_address_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db.sandbox.json");
    let first = durable(&path, true).await.expect("created");
    let address = first.addr;
    nango(&first, "POST", "/connections", Some(&upsert("c1"))).await;
    first.stop().await;

    let second = durable(&path, false).await.expect("loaded");
    assert_eq!(second.addr, address, "the address is the state's target");
    let read = nango(
        &second,
        "GET",
        "/connections/c1?provider_config_key=greenhouse",
        None,
    )
    .await;
    assert_eq!(read["connection_id"], "c1");
    assert_eq!(second.nango.connection_count(), 1);
    // A new connection never takes an old one's id.
    nango(&second, "POST", "/connections", Some(&upsert("c2"))).await;
    let ids: Vec<u64> = second
        .nango
        .connection_keys()
        .iter()
        .map(|(key, id)| second.nango.connection(key, id).expect("stored").id)
        .collect();
    assert_eq!(ids, vec![1, 2]);
}

#[tokio::test]
async fn every_acknowledged_change_is_already_in_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db.sandbox.json");
    let sandbox = durable(&path, true).await.expect("created");
    nango(&sandbox, "POST", "/connections", Some(&upsert("c1"))).await;
    // Read while the sandbox still runs: as after a kill, nothing is saved at exit.
    let saved: Value = serde_json::from_slice(&std::fs::read(&path).expect("file")).expect("json");
    assert_eq!(
        saved["nango"]["connections"][0][0],
        json!(["greenhouse", "c1"])
    );
    nango(
        &sandbox,
        "DELETE",
        "/connections/c1?provider_config_key=greenhouse",
        None,
    )
    .await;
    let saved: Value = serde_json::from_slice(&std::fs::read(&path).expect("file")).expect("json");
    assert_eq!(saved["nango"]["connections"], json!([]));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the file holds the records' secrets");
    }
}

#[tokio::test]
async fn a_missing_file_is_created_only_when_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db.sandbox.json");
    let error = durable(&path, false).await.expect_err("refused");
    assert!(matches!(error, PersistError::Missing(_)), "{error}");
    assert!(!path.exists(), "nothing is created");
}

#[tokio::test]
async fn files_that_are_not_sandbox_data_are_refused_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("other.json");
    let file = |format: &str, version: u32, listen: &str| {
        json!({"format": format, "version": version, "listen": listen,
               "tray": {"users": [], "auths": [], "instances": []},
               "apideck": {"consumers": [], "connections": [], "imports_accepted": 0},
               "nango": {"connections": [], "next_id": 1, "upserts_accepted": 0}})
        .to_string()
    };
    // The well-formed file is accepted, so each refusal below is its own check's (on a port
    // the system just gave out, so no other program holds it).
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .to_string();
    std::fs::write(&path, file("authport-sandbox", 1, &free)).expect("write");
    let accepted = durable(&path, false).await.expect("sandbox data");
    accepted.stop().await;
    for (content, why) in [
        ("not json".to_owned(), "not readable"),
        (
            file("CANARY-sandbox-format", 1, "127.0.0.1:20001"),
            "not authport-sandbox data of version 1",
        ),
        (
            file("authport-sandbox", 99, "127.0.0.1:20001"),
            "not authport-sandbox data of version 1",
        ),
        (
            file("authport-sandbox", 1, "192.0.2.1:20001"),
            "not a loopback address",
        ),
    ] {
        std::fs::write(&path, &content).expect("write");
        let error = durable(&path, true).await.expect_err("refused");
        assert!(matches!(error, PersistError::Invalid { .. }), "{error}");
        assert!(error.to_string().contains(why), "{why}: {error}");
        assert!(
            !error.to_string().contains("CANARY"),
            "quoted the file: {error}"
        );
        assert_eq!(std::fs::read_to_string(&path).expect("read"), content);
    }
    #[cfg(unix)]
    {
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&path, &link).expect("symlink");
        let error = durable(&link, true).await.expect_err("refused");
        assert!(error.to_string().contains("symbolic link"), "{error}");
    }
}

#[tokio::test]
async fn a_taken_address_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db.sandbox.json");
    let first = durable(&path, true).await.expect("created");
    // The same sandbox started twice: the second cannot have the address.
    let error = durable(&path, false).await.expect_err("address taken");
    assert!(
        matches!(error, PersistError::AddressInUse(addr) if addr == first.addr),
        "{error}"
    );
}

#[tokio::test]
async fn the_environment_points_tray_reconnect_links_at_the_sandbox() {
    let sandbox = common::start(SandboxConfig::default()).await;
    let env: std::collections::BTreeMap<String, String> =
        sandbox.provider_env().into_iter().collect();
    assert_eq!(env["TRAY_AUTH_DIALOG_URL"], sandbox.base_url());
    assert_eq!(
        env["TRAY_EMBEDDED_ID"],
        authport_sandbox::SANDBOX_TRAY_EMBEDDED_ID
    );
}
