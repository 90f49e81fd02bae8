//! Transport rules every provider inherits from the kit, seen from the binary: loopback traffic
//! never goes through a proxy, redirects are never followed, base URLs with credentials or a
//! query are refused without being quoted.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const MASTER: &str = "CANARY9-master-token";
const API_KEY: &str = "CANARY9-apideck-key";

/// A server that counts the connections it gets. With `redirect_to`, it answers every request
/// with a 307 to that address; without, it answers nothing and closes.
async fn counting_server(redirect_to: Option<String>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let redirect_to = redirect_to.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 64 * 1024];
                let _ = socket.read(&mut buffer).await;
                if let Some(location) = redirect_to {
                    let answer = format!(
                        "HTTP/1.1 307 Temporary Redirect\r\nlocation: {location}/core/v1/steal?token=x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                }
            });
        }
    });
    (address, count)
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn sandbox_runs_never_go_through_a_proxy() {
    let (proxy, connections) = counting_server(None).await;
    for provider in ["tray", "apideck"] {
        let dir = scratch();
        let input = example("records.jsonl");
        let out = authport(
            dir.path(),
            &[
                "import",
                "--provider",
                provider,
                "--input",
                input.to_str().unwrap(),
                "--sandbox",
            ],
            &env(&[
                ("HTTP_PROXY", &proxy),
                ("HTTPS_PROXY", &proxy),
                ("ALL_PROXY", &proxy),
                ("http_proxy", &proxy),
                ("https_proxy", &proxy),
                ("all_proxy", &proxy),
            ]),
        )
        .await;
        assert_eq!(out.code, 0, "{provider}: {}", out.stderr);
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "a proxy saw loopback traffic"
    );
}

#[tokio::test]
async fn redirects_are_never_followed() {
    let (thief, stolen) = counting_server(None).await;
    let (redirector, _) = counting_server(Some(thief.clone())).await;
    let thief_host = thief.trim_start_matches("http://").to_owned();
    let cases = [
        (
            "tray",
            env(&[
                ("TRAY_MASTER_TOKEN", MASTER),
                ("TRAY_API_URL", &redirector),
                ("TRAY_GRAPHQL_URL", &format!("{redirector}/graphql")),
            ]),
        ),
        (
            "apideck",
            env(&[
                ("APIDECK_API_KEY", API_KEY),
                ("APIDECK_APP_ID", "app-1"),
                ("APIDECK_API_URL", &redirector),
            ]),
        ),
    ];
    for (provider, env) in cases {
        let dir = scratch();
        let input = example("records.jsonl");
        let out = authport(
            dir.path(),
            &[
                "import",
                "--provider",
                provider,
                "--input",
                input.to_str().unwrap(),
            ],
            &env,
        )
        .await;
        assert_ne!(out.code, 0, "{provider}: a redirected run cannot succeed");
        let printed = out.printed();
        assert!(printed.contains("307"), "{provider}: {printed}");
        assert!(printed.contains(&thief_host), "{provider}: {printed}");
        assert!(!printed.contains("steal"), "{provider}: {printed}");
        assert!(!printed.contains("CANARY9"), "{provider}: {printed}");
    }
    assert_eq!(stolen.load(Ordering::SeqCst), 0, "a redirect was followed");
}

#[tokio::test]
async fn base_urls_with_credentials_or_a_query_are_refused_unquoted() {
    let cases = [
        (
            "tray",
            "TRAY_API_URL",
            "https://user:CANARY9-pw@api.tray.io",
        ),
        (
            "tray",
            "TRAY_GRAPHQL_URL",
            "https://tray.io/graphql?key=CANARY9-q",
        ),
        (
            "apideck",
            "APIDECK_API_URL",
            "https://CANARY9-user@unify.apideck.com",
        ),
        (
            "apideck",
            "APIDECK_API_URL",
            "https://unify.apideck.com/?k=CANARY9-q",
        ),
    ];
    for (provider, variable, url) in cases {
        let dir = scratch();
        let input = example("records.jsonl");
        let out = authport(
            dir.path(),
            &[
                "import",
                "--provider",
                provider,
                "--input",
                input.to_str().unwrap(),
            ],
            &env(&[
                ("TRAY_MASTER_TOKEN", MASTER),
                ("APIDECK_API_KEY", API_KEY),
                ("APIDECK_APP_ID", "app-1"),
                (variable, url),
            ]),
        )
        .await;
        assert_eq!(out.code, 2, "{variable}: {}", out.stderr);
        assert!(out.stderr.contains(variable), "{variable}: {}", out.stderr);
        assert!(
            !out.printed().contains("CANARY9"),
            "{variable}: {}",
            out.printed()
        );
    }
}
