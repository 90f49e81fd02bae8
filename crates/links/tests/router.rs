//! The broker's router end to end in memory (tower's `oneshot`), against a host whose mint
//! records its calls: the test's own stand-in for the vendor side (the end-to-end tests run
//! the real binary against the sandbox).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use authport_core::Health;
use authport_links::{
    Broker, CONTENT_SECURITY_POLICY, LinkClaims, LinkKey, MintRefused, Visit, router, sign,
};
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use tower::ServiceExt as _;

const NOW: i64 = 1_800_000_000;
const VENDOR_URL: &str = "https://vault.vendor.example/session/abc?session_token=vendor-secret";

struct TestBroker {
    key: LinkKey,
    now: AtomicI64,
    names: HashMap<String, String>,
    revoked_owners: Mutex<HashSet<String>>,
    refuse_mint: AtomicBool,
    mint_url: Mutex<String>,
    clicks: Mutex<Vec<(String, Visit)>>,
    mints: Mutex<Vec<LinkClaims>>,
}

#[async_trait]
impl Broker for TestBroker {
    fn key(&self) -> &LinkKey {
        &self.key
    }
    fn now(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }
    fn is_revoked(&self, claims: &LinkClaims) -> bool {
        self.revoked_owners
            .lock()
            .unwrap()
            .contains(&claims.owner_id)
    }
    fn owner_name(&self, claims: &LinkClaims) -> Option<String> {
        self.names.get(&claims.owner_id).cloned()
    }
    async fn clicked(&self, claims: &LinkClaims, visit: Visit) {
        self.clicks
            .lock()
            .unwrap()
            .push((claims.owner_id.clone(), visit));
    }
    async fn mint(&self, claims: &LinkClaims) -> Result<String, MintRefused> {
        self.mints.lock().unwrap().push(claims.clone());
        if self.refuse_mint.load(Ordering::SeqCst) {
            return Err(MintRefused);
        }
        Ok(self.mint_url.lock().unwrap().clone())
    }
}

fn broker() -> Arc<TestBroker> {
    Arc::new(TestBroker {
        key: LinkKey::from_bytes([0x5a; 32]),
        now: AtomicI64::new(NOW),
        names: HashMap::from([
            ("owner-1".to_owned(), "Ada Lovelace".to_owned()),
            (
                "owner-evil".to_owned(),
                "<script>alert('x')</script>".to_owned(),
            ),
        ]),
        revoked_owners: Mutex::new(HashSet::new()),
        refuse_mint: AtomicBool::new(false),
        mint_url: Mutex::new(VENDOR_URL.to_owned()),
        clicks: Mutex::new(Vec::new()),
        mints: Mutex::new(Vec::new()),
    })
}

fn claims(owner: &str) -> LinkClaims {
    LinkClaims {
        provider: "apideck".to_owned(),
        owner_id: owner.to_owned(),
        service: "Salesforce".to_owned(),
        reason: Health::RefreshFailed,
        expires_at: NOW + 14 * 86_400,
    }
}

fn link(broker: &TestBroker, owner: &str) -> String {
    sign(&broker.key, &claims(owner))
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

/// Sends one request and checks what every answer must carry and never carry.
async fn send(app: &Router, method: Method, uri: &str, form: Option<String>) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if form.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    let request = request
        .body(form.map(Body::from).unwrap_or_else(Body::empty))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = String::from_utf8(bytes.to_vec()).unwrap();
    for (name, value) in [
        ("cache-control", "no-store"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("content-security-policy", CONTENT_SECURITY_POLICY),
    ] {
        assert_eq!(headers[name], value, "{uri}: {name}");
    }
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        !csp.contains("http") && !csp.contains("form-action"),
        "{csp}"
    );
    assert!(
        !body.contains("vendor.example") && !body.contains("vendor-secret"),
        "{body}"
    );
    for key_form in key_forms() {
        assert!(!body.contains(&key_form), "{uri}: the key is in the page");
    }
    Answer {
        status,
        headers,
        body,
    }
}

/// The test key as hex and base64, as a leak would show it.
fn key_forms() -> Vec<String> {
    use base64::Engine as _;
    let bytes = [0x5a_u8; 32];
    vec![
        bytes.iter().map(|b| format!("{b:02x}")).collect(),
        base64::engine::general_purpose::STANDARD.encode(bytes),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
    ]
}

async fn get(app: &Router, token: &str) -> Answer {
    send(app, Method::GET, &format!("/r/{token}"), None).await
}

async fn post(app: &Router, token: &str, form: &str) -> Answer {
    send(
        app,
        Method::POST,
        &format!("/r/{token}"),
        Some(form.to_owned()),
    )
    .await
}

fn csrf_in(page: &str) -> String {
    let start = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    let end = start + page[start..].find('"').unwrap();
    page[start..end].to_owned()
}

fn mints(broker: &TestBroker) -> usize {
    broker.mints.lock().unwrap().len()
}

#[tokio::test]
async fn a_scanner_get_then_the_persons_get_and_post_mint_exactly_once() {
    let broker = broker();
    let app = router(broker.clone());
    let token = link(&broker, "owner-1");

    let scanner = get(&app, &token).await;
    assert_eq!(scanner.status, StatusCode::OK);
    assert_eq!(scanner.headers["content-type"], "text/html; charset=utf-8");
    let person = get(&app, &token).await;
    assert_eq!(person.body, scanner.body);
    assert!(person.body.contains("Hello Ada Lovelace,"));
    assert!(person.body.contains("<h1>Reconnect Salesforce</h1>"));
    assert!(!person.body.contains(&token), "the page repeats no token");
    assert_eq!(mints(&broker), 0, "GET never mints");

    let pressed = post(&app, &token, &format!("csrf={}", csrf_in(&person.body))).await;
    assert_eq!(pressed.status, StatusCode::SEE_OTHER);
    assert_eq!(pressed.headers["location"], VENDOR_URL);
    assert_eq!(pressed.body, "");
    assert_eq!(*broker.mints.lock().unwrap(), vec![claims("owner-1")]);
    assert_eq!(
        *broker.clicks.lock().unwrap(),
        vec![
            ("owner-1".to_owned(), Visit::Shown),
            ("owner-1".to_owned(), Visit::Shown)
        ]
    );
}

#[tokio::test]
async fn every_bad_token_gets_the_same_404_page() {
    let broker = broker();
    let app = router(broker.clone());
    let token = link(&broker, "owner-1");
    let garbage = get(&app, "garbage").await;
    assert_eq!(garbage.status, StatusCode::NOT_FOUND);
    let (payload, tag) = token.split_once('.').unwrap();
    let other_key = sign(&LinkKey::from_bytes([1; 32]), &claims("owner-1"));
    let mut tampered_payload = payload.to_owned();
    tampered_payload.replace_range(0..1, if payload.starts_with('e') { "f" } else { "e" });
    let too_long = format!("{}.{tag}", "A".repeat(3000));
    for bad in [
        format!("{tampered_payload}.{tag}"),
        format!("{payload}.{}", &tag[1..]),
        other_key,
        too_long,
        "%FF%FE".to_owned(),
        format!("{token}%2Fx"),
    ] {
        let answer = get(&app, &bad).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{bad}");
        assert_eq!(answer.body, garbage.body, "{bad}");
        let answer = post(&app, &bad, "csrf=x").await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{bad}");
        assert_eq!(answer.body, garbage.body, "{bad}");
    }
    for path in [
        "/",
        "/r/",
        "/r",
        "/favicon.ico",
        &format!("/r/{token}/more"),
    ] {
        let answer = send(&app, Method::GET, path, None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(answer.body, garbage.body, "{path}");
    }
    assert_eq!(mints(&broker), 0);
    assert!(broker.clicks.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_expired_link_answers_410_and_never_mints() {
    let broker = broker();
    let app = router(broker.clone());
    let token = link(&broker, "owner-1");
    let csrf = csrf_in(&get(&app, &token).await.body);
    broker.now.store(NOW + 14 * 86_400, Ordering::SeqCst);
    let answer = get(&app, &token).await;
    assert_eq!(answer.status, StatusCode::GONE);
    assert!(answer.body.contains("This link has expired"));
    let answer = post(&app, &token, &format!("csrf={csrf}")).await;
    assert_eq!(answer.status, StatusCode::GONE);
    assert_eq!(mints(&broker), 0);
    assert_eq!(
        broker.clicks.lock().unwrap().last(),
        Some(&("owner-1".to_owned(), Visit::Expired))
    );
}

#[tokio::test]
async fn a_revoked_link_answers_410_and_never_mints() {
    let broker = broker();
    let app = router(broker.clone());
    let token = link(&broker, "owner-1");
    let csrf = csrf_in(&get(&app, &token).await.body);
    broker
        .revoked_owners
        .lock()
        .unwrap()
        .insert("owner-1".to_owned());
    let answer = get(&app, &token).await;
    assert_eq!(answer.status, StatusCode::GONE);
    assert!(answer.body.contains("no longer active"));
    let answer = post(&app, &token, &format!("csrf={csrf}")).await;
    assert_eq!(answer.status, StatusCode::GONE);
    assert_eq!(mints(&broker), 0);
    assert_eq!(
        broker.clicks.lock().unwrap().last(),
        Some(&("owner-1".to_owned(), Visit::Revoked))
    );
}

#[tokio::test]
async fn a_bad_csrf_token_answers_400_and_never_mints() {
    let broker = broker();
    let app = router(broker.clone());
    let token = link(&broker, "owner-1");
    let other = link(&broker, "owner-2");
    let good = csrf_in(&get(&app, &token).await.body);
    let of_other_link = csrf_in(&get(&app, &other).await.body);
    for form in [
        String::new(),
        "csrf=".to_owned(),
        "csrf=abc".to_owned(),
        format!("csrf={of_other_link}"),
        format!("csrf={good}&csrf={good}"),
        format!("CSRF={good}"),
    ] {
        let answer = post(&app, &token, &form).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{form}");
        assert!(answer.body.contains("Please try again"));
    }
    assert_eq!(mints(&broker), 0);
}

#[tokio::test]
async fn the_eleventh_post_within_a_minute_answers_429() {
    let broker = broker();
    let app = router(broker.clone());
    let token = link(&broker, "owner-1");
    let form = format!("csrf={}", csrf_in(&get(&app, &token).await.body));
    for _ in 0..10 {
        assert_eq!(
            post(&app, &token, &form).await.status,
            StatusCode::SEE_OTHER
        );
    }
    let refused = post(&app, &token, &form).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers["retry-after"], "60");
    assert!(refused.body.contains("Too many attempts"));
    // A bad CSRF token is limited too, and another link has its own budget.
    assert_eq!(
        post(&app, &token, "csrf=x").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let other = link(&broker, "owner-2");
    let other_form = format!("csrf={}", csrf_in(&get(&app, &other).await.body));
    assert_eq!(
        post(&app, &other, &other_form).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(mints(&broker), 11);
    broker.now.store(NOW + 60, Ordering::SeqCst);
    assert_eq!(
        post(&app, &token, &form).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn the_owner_name_is_escaped() {
    let broker = broker();
    let app = router(broker.clone());
    let page = get(&app, &link(&broker, "owner-evil")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("<script"), "{}", page.body);
    assert!(
        page.body
            .contains("Hello &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;,")
    );
}

#[tokio::test]
async fn a_vendor_refusal_or_an_unusable_url_answers_502() {
    let broker = broker();
    let app = router(broker.clone());
    let token = link(&broker, "owner-1");
    let form = format!("csrf={}", csrf_in(&get(&app, &token).await.body));
    broker.refuse_mint.store(true, Ordering::SeqCst);
    let refused = post(&app, &token, &form).await;
    assert_eq!(refused.status, StatusCode::BAD_GATEWAY);
    assert!(refused.body.contains("could not start"));
    assert!(!refused.headers.contains_key("location"));
    broker.refuse_mint.store(false, Ordering::SeqCst);
    for unusable in [
        "javascript:alert(1)",
        "/relative",
        "https://",
        "ftp://vendor.example/x",
    ] {
        *broker.mint_url.lock().unwrap() = unusable.to_owned();
        let answer = post(&app, &token, &form).await;
        assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{unusable:?}");
        assert!(!answer.headers.contains_key("location"));
    }
}

#[tokio::test]
async fn oversized_forms_and_other_methods_are_refused_with_the_headers() {
    let broker = broker();
    let app = router(broker.clone());
    let token = link(&broker, "owner-1");
    let csrf = csrf_in(&get(&app, &token).await.body);
    let oversized = format!("csrf={csrf}&pad={}", "x".repeat(2048));
    let answer = post(&app, &token, &oversized).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    let answer = send(&app, Method::PUT, &format!("/r/{token}"), None).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(mints(&broker), 0);
}
