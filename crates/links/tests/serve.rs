//! The router served by hyper on loopback (`axum::serve`), spoken to in raw HTTP/1.1: the
//! path, the form body and the headers survive a real connection, and a GET then a POST mint
//! once.

use std::sync::Arc;
use std::sync::Mutex;

use async_trait::async_trait;
use authport_core::Health;
use authport_links::{Broker, LinkClaims, LinkKey, MintRefused, Visit, router, sign};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

const NOW: i64 = 1_800_000_000;

struct Host {
    key: LinkKey,
    mints: Mutex<u32>,
}

#[async_trait]
impl Broker for Host {
    fn key(&self) -> &LinkKey {
        &self.key
    }
    fn now(&self) -> i64 {
        NOW
    }
    fn is_revoked(&self, _: &LinkClaims) -> bool {
        false
    }
    fn owner_name(&self, _: &LinkClaims) -> Option<String> {
        Some("Grace Hopper".to_owned())
    }
    async fn clicked(&self, _: &LinkClaims, _: Visit) {}
    async fn mint(&self, _: &LinkClaims) -> Result<String, MintRefused> {
        *self.mints.lock().unwrap() += 1;
        Ok("http://127.0.0.1:9/vendor/session".to_owned())
    }
}

/// One request on a fresh connection; the answer as text (head and body).
async fn exchange(address: std::net::SocketAddr, request: String) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test]
async fn a_get_and_a_post_over_a_real_connection() {
    let host = Arc::new(Host {
        key: LinkKey::generate(),
        mints: Mutex::new(0),
    });
    let token = sign(
        &host.key,
        &LinkClaims {
            provider: "nango".to_owned(),
            owner_id: "o-7".to_owned(),
            service: "GitHub".to_owned(),
            reason: Health::NotImported,
            expires_at: NOW + 3_600,
        },
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, router(host.clone())).into_future());

    let page = exchange(
        address,
        format!("GET /r/{token} HTTP/1.1\r\nHost: links\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    let head = page.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    for header in [
        "cache-control: no-store",
        "referrer-policy: no-referrer",
        "x-frame-options: deny",
        "x-content-type-options: nosniff",
        "content-security-policy: default-src 'none'",
    ] {
        assert!(head.contains(header), "{header}: {head}");
    }
    assert!(page.contains("Hello Grace Hopper,"));
    assert_eq!(*host.mints.lock().unwrap(), 0);

    let start = page.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = &page[start..start + page[start..].find('"').unwrap()];
    let form = format!("csrf={csrf}");
    let redirect = exchange(
        address,
        format!(
            "POST /r/{token} HTTP/1.1\r\nHost: links\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        ),
    )
    .await;
    assert!(
        redirect.starts_with("HTTP/1.1 303 See Other\r\n"),
        "{redirect}"
    );
    assert!(
        redirect
            .to_ascii_lowercase()
            .contains("\r\nlocation: http://127.0.0.1:9/vendor/session\r\n")
    );
    assert_eq!(*host.mints.lock().unwrap(), 1);
    server.abort();
}
