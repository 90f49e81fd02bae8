//! End to end: what the `authport` binary sends Apideck Vault and what it lets out: secrets an
//! echoing Vault quotes never reach any output, a migration into fresh consumers costs one
//! request per record, the consumer list's fallbacks, and settings `[apideck]` refuses.

use crate::apideck::{CONNECTION_READ, CONSUMERS, IMPORT, count, import, line, precreate_theirs};
use crate::common;

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Issue 8 item 10, from the binary: Vault's validation answer quotes the record's secrets
/// (as they are and JSON-escaped) and the API key; none of it reaches stdout, stderr (at
/// trace level), the report or the state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_echoed_by_the_validation_call_never_reach_any_output() {
    let access = canary("validate-access");
    let refresh = canary("validate-refresh");
    let api_key = canary("validate-api-key");
    let echo = format!(
        "invalid_grant for refresh_token={refresh} access_token={} with key {api_key}",
        serde_json::to_string(&access).unwrap()
    );
    let base = echoing_vault(echo).await;
    let dir = scratch();
    std::fs::write(
        dir.path().join("authport.toml"),
        "[apideck]\nvalidate_after_import = \"always\"\n",
    )
    .unwrap();
    let inputs = scratch();
    let line = json!({"id": "acme-42/hubspot", "owner": {"id": "acme-42"}, "service": "hubspot",
        "auth": {"type": "oauth2", "access_token": access, "refresh_token": refresh},
        "targets": {"apideck": {"unified_api": "crm", "service_id": "hubspot"}}});
    let input = write_lines(inputs.path(), "in.jsonl", &[line.to_string()]);
    let env: Vec<(String, String)> = [
        ("APIDECK_API_KEY", api_key.as_str()),
        ("APIDECK_APP_ID", "app"),
        ("APIDECK_API_URL", base.as_str()),
        ("RUST_LOG", "trace"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let run = import_with_state(
        "apideck",
        &env,
        dir.path(),
        &input,
        &["--config", "authport.toml"],
    )
    .await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    let imported = &run.report[0];
    assert_eq!(imported["status"], "imported", "{imported}");
    assert!(
        imported["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("ConnectionValidationError")),
        "the failed validation is reported: {imported}"
    );
    assert_no_canary("output", &run.out.printed());
    assert_no_canary_in_dir(dir.path());
}

/// A loopback Vault for one OAuth connector (crm/hubspot): reads answer the connector as
/// `available`, imports answer `callable`, and every validation fails with `echo` in its
/// detail. Returns its base URL.
async fn echoing_vault(echo: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let echo = echo.clone();
            tokio::spawn(async move {
                let Some(request_line) = read_request(&mut socket).await else {
                    return;
                };
                let (status, body) = if request_line.contains("/validate") {
                    (
                        "400 Bad Request",
                        json!({"status_code": 400, "error": "Bad Request",
                               "type_name": "ConnectionValidationError",
                               "message": "refresh failed", "detail": echo}),
                    )
                } else if request_line.starts_with("POST") {
                    (
                        "200 OK",
                        json!({"status_code": 200, "status": "OK", "data": {
                            "id": "crm+hubspot", "auth_type": "oauth2", "state": "callable",
                            "health": "ok"}}),
                    )
                } else {
                    (
                        "200 OK",
                        json!({"status_code": 200, "status": "OK", "data": {
                            "service_id": "hubspot", "unified_api": "crm", "auth_type": "oauth2",
                            "state": "available", "form_fields": []}}),
                    )
                };
                let body = body.to_string();
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    base
}

/// Reads one HTTP/1.1 request (head and `content-length` body) and returns its request line.
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let mut wanted: Option<usize> = None;
    loop {
        if let Some(total) = wanted {
            if buffer.len() >= total {
                let head = String::from_utf8_lossy(&buffer).into_owned();
                return head.lines().next().map(str::to_owned);
            }
        } else if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse::<usize>().ok())
                .unwrap_or(0);
            wanted = Some(end + 4 + length);
            continue;
        }
        let read = socket.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

/// One greenhouse (api key) record for `consumer`.
fn greenhouse_line(consumer: &str) -> String {
    json!({"id": format!("{consumer}/greenhouse"), "owner": {"id": consumer}, "service": "greenhouse",
           "auth": {"type": "api_key", "api_key": format!("key-of-{consumer}")}})
    .to_string()
}

/// Issue 10 item 2: a migration into consumers that do not hold the service sends one request
/// per record (the import), after one discovery read and one paged consumer listing per run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_into_fresh_consumers_sends_one_request_per_record() {
    let sandbox = sandbox().await;
    // 250 other consumers (two pages of 200), a few holding other services.
    for n in 0..250 {
        sandbox.apideck.precreate_consumer(&format!("other-{n:03}"));
    }
    for consumer in ["other-007", "existing-1", "existing-2"] {
        precreate_theirs(&sandbox.apideck, consumer);
    }
    let dir = scratch();
    // 30 fresh consumers and two that exist, holding another service only.
    let mut lines: Vec<String> = (0..30)
        .map(|n| greenhouse_line(&format!("fresh-{n:02}")))
        .collect();
    lines.push(greenhouse_line("existing-1"));
    lines.push(greenhouse_line("existing-2"));
    let input = write_lines(dir.path(), "in.jsonl", &lines);
    let run = import(&sandbox, dir.path(), &input, &[]).await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    assert_eq!(count(&run.report, "imported"), 32);

    let requests = sandbox.apideck.request_counts();
    assert_eq!(requests.get(IMPORT), Some(&32), "{requests:?}");
    assert_eq!(
        requests.get(CONSUMERS),
        Some(&2),
        "paged once: {requests:?}"
    );
    assert_eq!(
        requests.get(CONNECTION_READ),
        Some(&1),
        "discovery only: {requests:?}"
    );
    assert_eq!(requests.values().sum::<u64>(), 32 + 2 + 1, "{requests:?}");
    sandbox.stop().await;
}

/// A consumer list that fails costs the speed-up, never the safety: after a bounded number of
/// tries, every connection is read before its import, and a pre-existing one is still skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_consumer_list_falls_back_to_reading_each_connection() {
    let sandbox = sandbox().await;
    sandbox.apideck.set_consumers_listing_broken(true);
    precreate_theirs(&sandbox.apideck, "acme-42");
    let dir = scratch();
    let input = write_lines(dir.path(), "in.jsonl", &example_lines());
    let run = import(&sandbox, dir.path(), &input, &[]).await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    let hubspot = line(&run.report, "acme-42/hubspot");
    assert_eq!(hubspot["error"]["kind"], "pre_existing", "{hubspot}");
    assert_eq!(count(&run.report, "imported"), 5);
    assert_eq!(sandbox.apideck.request_count(CONSUMERS), 3, "three tries");
    assert_eq!(
        sandbox.apideck.request_count(CONNECTION_READ),
        6 + 6,
        "one discovery read per connector, one check per record"
    );
    assert_eq!(sandbox.apideck.request_count(IMPORT), 5);
    sandbox.stop().await;
}

/// `pre_existing_check = "per_connection"` keeps a read before every import (no listing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_connection_checks_read_every_connection_and_list_nothing() {
    let sandbox = sandbox().await;
    let dir = scratch();
    std::fs::write(
        dir.path().join("authport.toml"),
        "[apideck]\npre_existing_check = \"per_connection\"\n",
    )
    .unwrap();
    let input = write_lines(dir.path(), "in.jsonl", &example_lines());
    let run = import(&sandbox, dir.path(), &input, &["--config", "authport.toml"]).await;
    assert_eq!(run.out.code, 0, "{}", run.out.stderr);
    assert_eq!(count(&run.report, "imported"), 6);
    assert_eq!(sandbox.apideck.request_count(CONSUMERS), 0);
    assert_eq!(sandbox.apideck.request_count(CONNECTION_READ), 6 + 6);
    sandbox.stop().await;
}

/// Issue 8 leftover: the rate keys `[apideck]` no longer reads are refused, pointing to
/// `[engine]`, before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_keys_in_the_apideck_section_are_refused_with_a_pointer_to_engine() {
    let sandbox = sandbox().await;
    for key in ["requests_per_second = 5.0", "burst = 3", "concurrency = 2"] {
        let dir = scratch();
        std::fs::write(
            dir.path().join("authport.toml"),
            format!("[apideck]\n{key}\n"),
        )
        .unwrap();
        let input = write_lines(dir.path(), "in.jsonl", &example_lines());
        let out = authport(
            dir.path(),
            &[
                "import",
                "--provider",
                "apideck",
                "--input",
                input.to_str().unwrap(),
                "--state",
                "state.db",
                "--config",
                "authport.toml",
            ],
            &sandbox.provider_env(),
        )
        .await;
        assert_eq!(out.code, 2, "{key}: {}", out.stderr);
        let name = key.split(' ').next().unwrap();
        assert!(
            out.stderr.contains(name) && out.stderr.contains("[engine]"),
            "{key}: {}",
            out.stderr
        );
    }
    assert_eq!(sandbox.apideck.request_counts().values().sum::<u64>(), 0);
    sandbox.stop().await;
}
