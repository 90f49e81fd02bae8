//! The kit's HTTP path against real servers on loopback: what every provider inherits.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use authport_core::transport::Effect;
use authport_core::{BuildContext, REDACTED, SecretString};
use authport_kit::{Call, DEFAULT_MAX_RESPONSE_BYTES, HttpClient, Method, Url, Vendor};
use authport_testkit::CountingGate;
use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use futures_util::FutureExt as _;
use tokio::net::TcpListener;

/// `Call::json_bytes` against `Call::json`, byte for byte.
#[path = "http/body.rs"]
mod body;

const CREDENTIAL: &str = "CANARY-master-credential-7f3a";
const RECORD_SECRET: &str = "CANARY-rec\"ord/secret+1";

fn error_text(_status: u16, body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("message")?.as_str().map(str::to_owned)
}

const VENDOR: Vendor = Vendor {
    name: "testvendor",
    user_agent: "authport-kit-test",
    error_text,
    status_override: None,
    max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
    rate_headers: None,
};

fn context(gate: Arc<CountingGate>, env: &[(&str, &str)]) -> BuildContext {
    timed_context(gate, env, Duration::from_secs(5))
}

fn timed_context(gate: Arc<CountingGate>, env: &[(&str, &str)], timeout: Duration) -> BuildContext {
    authport_testkit::context()
        .gate(gate)
        .env(env.iter().copied())
        .timeout(timeout)
        .build()
}

fn client(gate: Arc<CountingGate>, env: &[(&str, &str)]) -> HttpClient {
    HttpClient::new(
        VENDOR,
        &context(gate, env),
        vec![SecretString::from(CREDENTIAL)],
    )
    .unwrap()
}

async fn serve(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{address}")
}

fn url(base: &str, path: &str) -> Url {
    Url::parse(&format!("{base}{path}")).unwrap()
}

#[tokio::test]
async fn every_request_waits_for_the_gate_and_carries_the_bearer() {
    let app = Router::new().route(
        "/ok",
        get(|headers: HeaderMap| async move {
            let auth = headers
                .get(header::AUTHORIZATION)
                .unwrap()
                .to_str()
                .unwrap();
            assert_eq!(auth, format!("Bearer {CREDENTIAL}"));
            "{}"
        }),
    );
    let base = serve(app).await;
    let gate = CountingGate::new();
    let http = client(gate.clone(), &[]);
    let token = SecretString::from(CREDENTIAL);
    for _ in 0..3 {
        let answer = http
            .send(Call::new(Method::GET, url(&base, "/ok"), Effect::Read, "read").bearer(&token))
            .await
            .unwrap();
        assert_eq!(answer.status, 200);
    }
    let missing = http
        .send(Call::new(
            Method::GET,
            url(&base, "/nope"),
            Effect::Read,
            "read",
        ))
        .await
        .unwrap_err();
    assert!(missing.is_not_found());
    assert_eq!(gate.count(), 4);
}

#[tokio::test]
async fn redirects_are_not_followed_and_name_only_the_host() {
    let stolen = Arc::new(AtomicUsize::new(0));
    let thief = {
        let stolen = stolen.clone();
        Router::new().route(
            "/steal",
            any(move || {
                stolen.fetch_add(1, Ordering::SeqCst);
                async { "" }
            }),
        )
    };
    let thief_base = serve(thief).await;
    let location = format!("{thief_base}/steal?token=abc");
    let app = Router::new().route(
        "/create",
        any(move || {
            let location = location.clone();
            async move {
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(header::LOCATION, location)],
                )
                    .into_response()
            }
        }),
    );
    let base = serve(app).await;
    let http = client(CountingGate::new(), &[]);
    let body = serde_json::json!({ "secret": RECORD_SECRET });
    let failure = http
        .send(
            Call::new(
                Method::POST,
                url(&base, "/create"),
                Effect::Create,
                "create",
            )
            .json(&body),
        )
        .await
        .unwrap_err();
    assert_eq!(failure.error.kind().as_str(), "rejected");
    let message = failure.error.to_string();
    let thief_host = thief_base.trim_start_matches("http://");
    assert!(message.contains("307"), "{message}");
    assert!(message.contains(thief_host), "{message}");
    assert!(
        !message.contains("steal") && !message.contains("token"),
        "{message}"
    );
    assert_eq!(
        stolen.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
}

#[tokio::test]
async fn plain_http_off_loopback_is_refused_before_connecting() {
    let gate = CountingGate::new();
    let http = client(gate.clone(), &[]);
    let failure = http
        .send(Call::new(
            Method::GET,
            Url::parse("http://api.example.invalid/x?key=abc").unwrap(),
            Effect::Read,
            "read",
        ))
        .await
        .unwrap_err();
    assert_eq!(failure.error.kind().as_str(), "fatal");
    let message = failure.error.to_string();
    assert!(message.contains("api.example.invalid"), "{message}");
    assert!(!message.contains("key=abc"), "{message}");
    assert_eq!(gate.count(), 0);
}

/// A proxy that records the first line of every connection it gets and answers nothing.
async fn recording_proxy() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::AsyncReadExt;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buffer = vec![0u8; 1024];
            let read = socket.read(&mut buffer).await.unwrap_or(0);
            let text = String::from_utf8_lossy(&buffer[..read]).to_string();
            let _ = sender.send(text.lines().next().unwrap_or("").to_owned());
        }
    });
    (format!("http://{address}"), receiver)
}

#[tokio::test]
async fn loopback_never_goes_through_a_proxy_and_remote_https_does() {
    let (proxy, mut seen) = recording_proxy().await;
    let app = Router::new().route("/ok", get(|| async { "{}" }));
    let base = serve(app).await;
    let env = [
        ("HTTPS_PROXY", proxy.as_str()),
        ("HTTP_PROXY", proxy.as_str()),
        ("ALL_PROXY", proxy.as_str()),
    ];
    let http = client(CountingGate::new(), &env);
    let token = SecretString::from(CREDENTIAL);
    let answer = http
        .send(Call::new(Method::GET, url(&base, "/ok"), Effect::Read, "read").bearer(&token))
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    assert!(
        seen.recv().now_or_never().is_none(),
        "loopback went through the proxy"
    );

    // A remote host: the connection goes to the proxy (which answers nothing, so the call
    // fails as a transport error), proving HTTPS_PROXY is honoured.
    let http = HttpClient::new(
        VENDOR,
        &timed_context(CountingGate::new(), &env, Duration::from_secs(1)),
        vec![],
    )
    .unwrap();
    let failure = http
        .send(Call::new(
            Method::GET,
            Url::parse("https://api.example.invalid/x").unwrap(),
            Effect::Read,
            "read",
        ))
        .await
        .unwrap_err();
    assert_eq!(failure.error.kind().as_str(), "transient");
    let first_line = seen.recv().await.unwrap();
    assert!(
        first_line.starts_with("CONNECT api.example.invalid:443"),
        "{first_line}"
    );
}

#[tokio::test]
async fn no_proxy_hosts_bypass_the_proxy() {
    let (proxy, mut seen) = recording_proxy().await;
    let env = [
        ("HTTPS_PROXY", proxy.as_str()),
        ("NO_PROXY", "api.example.invalid"),
    ];
    let http = client(CountingGate::new(), &env);
    let failure = http
        .send(Call::new(
            Method::GET,
            Url::parse("https://api.example.invalid/x").unwrap(),
            Effect::Read,
            "read",
        ))
        .await
        .unwrap_err();
    assert_eq!(
        failure.error.kind().as_str(),
        "transient",
        "{:?}",
        failure.error
    );
    assert!(seen.recv().now_or_never().is_none(), "NO_PROXY was ignored");
}

#[tokio::test]
async fn vendor_text_is_scrubbed_in_every_form_before_it_is_shortened() {
    let escaped = serde_json::to_string(RECORD_SECRET).unwrap();
    let message = format!(
        "{} key {} and {} and {CREDENTIAL}",
        "x".repeat(250),
        &escaped[1..escaped.len() - 1],
        "CANARY-rec%22ord%2Fsecret%2B1"
    );
    let app = Router::new().route(
        "/bad",
        any(move || {
            let body = serde_json::json!({ "message": message.clone() }).to_string();
            async move { (StatusCode::BAD_REQUEST, body) }
        }),
    );
    let base = serve(app).await;
    let http = client(CountingGate::new(), &[]);
    let failure = http
        .send(
            Call::new(Method::POST, url(&base, "/bad"), Effect::Create, "create")
                .secrets(&[RECORD_SECRET]),
        )
        .await
        .unwrap_err();
    let shown = format!("{} {}", failure.error, failure.vendor_text);
    assert!(!shown.contains("CANARY"), "{shown}");
    assert!(!shown.contains("ord"), "{shown}");
    assert!(shown.contains(REDACTED) || shown.ends_with('…'), "{shown}");
    assert_eq!(failure.error.kind().as_str(), "rejected");
}

#[tokio::test]
async fn statuses_are_classified_by_effect_with_retry_after() {
    let app = Router::new()
        .route(
            "/busy",
            any(|| async {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, "7")],
                    "",
                )
            }),
        )
        .route(
            "/down",
            any(|| async { (StatusCode::SERVICE_UNAVAILABLE, "") }),
        )
        .route("/slow", any(|| async { (StatusCode::REQUEST_TIMEOUT, "") }));
    let base = serve(app).await;
    let http = client(CountingGate::new(), &[]);
    let kind = |path: &'static str, effect| {
        let http = http.clone();
        let base = base.clone();
        async move {
            http.send(Call::new(Method::POST, url(&base, path), effect, "op"))
                .await
                .unwrap_err()
                .error
        }
    };
    let busy = kind("/busy", Effect::Create).await;
    assert_eq!(
        busy,
        authport_core::ProviderError::rate_limited(
            Some(Duration::from_secs(7)),
            busy.message().to_owned()
        )
    );
    assert_eq!(
        kind("/down", Effect::Read).await.kind().as_str(),
        "transient"
    );
    assert_eq!(
        kind("/down", Effect::Create).await.kind().as_str(),
        "outcome_unknown"
    );
    // One rule for every provider: a 408 after a create may have been applied.
    assert_eq!(
        kind("/slow", Effect::Create).await.kind().as_str(),
        "outcome_unknown"
    );
    assert_eq!(
        kind("/slow", Effect::Read).await.kind().as_str(),
        "transient"
    );
}

#[tokio::test]
async fn answers_larger_than_the_limit_are_refused() {
    let app = Router::new().route("/big", any(|| async { "x".repeat(4096) }));
    let base = serve(app).await;
    let small = Vendor {
        max_response_bytes: 1024,
        ..VENDOR
    };
    let http = HttpClient::new(small, &context(CountingGate::new(), &[]), vec![]).unwrap();
    let read = http
        .send(Call::new(
            Method::GET,
            url(&base, "/big"),
            Effect::Read,
            "read",
        ))
        .await
        .unwrap_err();
    assert_eq!(read.error.kind().as_str(), "rejected");
    let create = http
        .send(Call::new(
            Method::POST,
            url(&base, "/big"),
            Effect::Create,
            "create",
        ))
        .await
        .unwrap_err();
    assert_eq!(create.error.kind().as_str(), "outcome_unknown");
}

#[tokio::test]
async fn a_timeout_after_a_create_is_outcome_unknown() {
    let app = Router::new().route(
        "/hang",
        any(|| async {
            std::future::pending::<()>().await;
            ""
        }),
    );
    let base = serve(app).await;
    let http = HttpClient::new(
        VENDOR,
        &timed_context(CountingGate::new(), &[], Duration::from_millis(200)),
        vec![],
    )
    .unwrap();
    let create = http
        .send(Call::new(
            Method::POST,
            url(&base, "/hang"),
            Effect::Create,
            "create",
        ))
        .await
        .unwrap_err();
    assert_eq!(create.error.kind().as_str(), "outcome_unknown");
    let read = http
        .send(Call::new(
            Method::GET,
            url(&base, "/hang"),
            Effect::Read,
            "read",
        ))
        .await
        .unwrap_err();
    assert_eq!(read.error.kind().as_str(), "transient");
}

#[tokio::test]
async fn a_spent_budget_holds_the_gate_until_the_reset_and_sets_a_429s_wait() {
    use authport_kit::{RateHeaders, ResetIs};
    let reset = || (chrono::Utc::now().timestamp() + 20).to_string();
    let app = Router::new()
        .route(
            "/last",
            get(move || async move {
                (
                    [
                        ("x-ratelimit-remaining", "0".to_owned()),
                        ("x-ratelimit-reset", reset()),
                    ],
                    "{}",
                )
            }),
        )
        .route(
            "/over",
            get(move || async move {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [
                        ("x-ratelimit-remaining", "0".to_owned()),
                        ("x-ratelimit-reset", reset()),
                    ],
                    "",
                )
            }),
        )
        .route(
            "/plenty",
            get(|| async {
                (
                    [("x-ratelimit-remaining", "9"), ("x-ratelimit-reset", "0")],
                    "{}",
                )
            }),
        );
    let base = serve(app).await;
    let paced = Vendor {
        rate_headers: Some(RateHeaders {
            limit: None,
            remaining: "x-ratelimit-remaining",
            reset: "x-ratelimit-reset",
            reset_is: ResetIs::UnixSeconds,
        }),
        ..VENDOR
    };
    let gate = CountingGate::new();
    let http = HttpClient::new(paced, &context(gate.clone(), &[]), vec![]).unwrap();
    let get = |path: &'static str| {
        let http = http.clone();
        let base = base.clone();
        async move {
            http.send(Call::new(
                Method::GET,
                url(&base, path),
                Effect::Read,
                "read",
            ))
            .await
        }
    };
    get("/plenty").await.unwrap();
    assert_eq!(gate.longest_hold(), Duration::ZERO, "budget left: no hold");
    get("/last").await.unwrap();
    let held = gate.longest_hold();
    assert!(
        held >= Duration::from_secs(15) && held <= Duration::from_secs(20),
        "{held:?}"
    );
    let over = get("/over").await.unwrap_err().error;
    let authport_core::ProviderError::RateLimited { retry_after, .. } = over else {
        panic!("{over:?}");
    };
    let wait = retry_after.unwrap();
    assert!(
        wait >= Duration::from_secs(15) && wait <= Duration::from_secs(20),
        "{wait:?}"
    );
}

/// Issue 18: one rule for a 2xx answer that cannot be read, by the call's effect: after a
/// write the outcome is unknown (the engine reconciles), after a read it is transient; the
/// message names the shape expected, never the body (which echoes the record's secret).
#[tokio::test]
async fn an_unreadable_answer_is_classified_by_the_calls_effect() {
    let app = Router::new()
        .route(
            "/garbled",
            any(|| async { format!("not json {RECORD_SECRET}") }),
        )
        .route("/fine", get(|| async { r#"{"id":"a-1"}"# }));
    let base = serve(app).await;
    let http = client(CountingGate::new(), &[]);
    #[derive(Debug, serde::Deserialize)]
    struct Created {
        id: String,
    }
    let read = |effect| {
        let http = http.clone();
        let base = base.clone();
        async move {
            http.send_json::<Created>(
                Call::new(Method::POST, url(&base, "/garbled"), effect, "create thing"),
                "created thing",
            )
            .await
            .unwrap_err()
        }
    };
    for (effect, kind) in [
        (Effect::Read, "transient"),
        (Effect::IdempotentWrite, "outcome_unknown"),
        (Effect::Create, "outcome_unknown"),
    ] {
        let failure = read(effect).await;
        assert_eq!(failure.error.kind().as_str(), kind, "{effect:?}");
        assert_eq!(failure.status, None);
        let message = failure.error.message();
        assert_eq!(
            message,
            "testvendor create thing: the answer is not the expected created thing shape"
        );
    }
    let fine: Created = http
        .send_json(
            Call::new(Method::GET, url(&base, "/fine"), Effect::Read, "get thing"),
            "thing",
        )
        .await
        .unwrap();
    assert_eq!(fine.id, "a-1");
}
