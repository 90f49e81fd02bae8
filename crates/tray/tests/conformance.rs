//! The shared provider guarantees (`authport_testkit::conformance`), for Tray against the
//! sandbox. Tray-specific behaviour is tested in `sandbox.rs`, `lookup.rs`, `solution.rs` and
//! `config.rs`.

use authport_testkit::conformance::{self, Subject, WriteRequest};
use serde_json::{Value, json};

// Links this crate, so its `inventory::submit!` registers "tray".
use authport_tray as _;

/// A Greenhouse API key record; each id gets its own end user, so its own auth.
fn fixture(id: &str, secret: &str) -> Value {
    json!({"id": id, "owner": {"id": id.replace('/', "-")}, "service": "greenhouse",
           "auth": {"type": "api_key", "api_key": secret}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tray_keeps_the_shared_guarantees() {
    let sandbox = authport_testkit::sandbox().await;
    let tray = sandbox.tray.clone();
    let subject = Subject::new("tray", sandbox.target(), fixture)
        // The create of a record's authentication: the suite drops its answer.
        .write(WriteRequest::new("POST", "/core/v1/authentications"))
        .objects(move || tray.auth_count());
    conformance::run_all(&subject).await;
}
