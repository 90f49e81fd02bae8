//! The broker's HTTP surface: `GET /r/{token}` shows the link's page (never mints), `POST
//! /r/{token}` mints a fresh vendor link and answers 303 to it. The serve loop (timeouts,
//! connection cap, shutdown) is the caller's; this is the router it serves.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::pages;
use crate::rate::RateLimiter;
use crate::token::{self, LinkClaims, LinkKey};

/// A form body is `csrf=<43 characters>`: anything past this is refused with 413.
pub const MAX_FORM_BYTES: usize = 1024;

/// The CSP: nothing remote, no script, inline styles only, never framed. No `form-action`:
/// Chromium applies it to the 303 redirect to the vendor, which would block the reconnect.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'";

/// What the GET of a link with a valid signature found, for the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit {
    /// The page with the button was shown.
    Shown,
    /// The link had expired (410).
    Expired,
    /// The link was revoked (410).
    Revoked,
}

/// The vendor refused to mint a link. It carries nothing: the broker's caller journals the
/// detail, the end user gets a page that names no secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the vendor refused to mint a reconnect link")]
pub struct MintRefused;

/// What the router needs from its host (the runner: the state store, the journal and the
/// provider's `ReconnectLinks`).
#[async_trait]
pub trait Broker: Send + Sync {
    /// The key links are signed with.
    fn key(&self) -> &LinkKey;
    /// Unix seconds: link expiry and the POST rate limit read this clock.
    fn now(&self) -> i64;
    /// Whether `authport links revoke` covers the link.
    fn is_revoked(&self, claims: &LinkClaims) -> bool;
    /// The owner's name as the input gives it, for the page (escaped by the router).
    fn owner_name(&self, claims: &LinkClaims) -> Option<String>;
    /// Journals a GET of a link with a valid signature. Never mints or spends anything: mail
    /// scanners open every link before the person does.
    async fn clicked(&self, claims: &LinkClaims, visit: Visit);
    /// Mints a fresh vendor link for the claims (and journals it); the router answers 303 to
    /// it. The URL must be absolute `https` (or `http`, for a sandbox) or the router answers 502.
    async fn mint(&self, claims: &LinkClaims) -> Result<String, MintRefused>;
}

struct Shared {
    broker: Arc<dyn Broker>,
    limiter: Mutex<RateLimiter>,
}

/// The broker's router: `GET` and `POST /r/{token}`; every other address answers the same 404
/// page as a bad token. Every answer carries [`secure_headers`].
pub fn router(broker: Arc<dyn Broker>) -> Router {
    let shared = Arc::new(Shared {
        broker,
        limiter: Mutex::new(RateLimiter::per_minute()),
    });
    Router::new()
        .route(
            "/r/{token}",
            get(show)
                .post(reconnect)
                .layer(DefaultBodyLimit::max(MAX_FORM_BYTES)),
        )
        .fallback(not_found)
        .with_state(shared)
        .layer(axum::middleware::map_response(secure_headers))
}

/// Why a link is not served, before any form is read.
enum Refusal {
    NotFound,
    Expired(LinkClaims),
    Revoked(LinkClaims),
}

/// Signature (malformations included), then expiry, then revocation.
fn admit(broker: &dyn Broker, token: &str) -> Result<LinkClaims, Refusal> {
    let claims = token::verify_signature(broker.key(), token).map_err(|_| Refusal::NotFound)?;
    if claims.is_expired_at(broker.now()) {
        return Err(Refusal::Expired(claims));
    }
    if broker.is_revoked(&claims) {
        return Err(Refusal::Revoked(claims));
    }
    Ok(claims)
}

async fn show(
    State(shared): State<Arc<Shared>>,
    token: Result<Path<String>, PathRejection>,
) -> Response {
    let Ok(Path(token)) = token else {
        return not_found().await;
    };
    let broker = shared.broker.as_ref();
    let claims = match admit(broker, &token) {
        Ok(claims) => claims,
        Err(Refusal::NotFound) => return not_found().await,
        Err(Refusal::Expired(claims)) => {
            broker.clicked(&claims, Visit::Expired).await;
            return html(StatusCode::GONE, pages::expired_page());
        }
        Err(Refusal::Revoked(claims)) => {
            broker.clicked(&claims, Visit::Revoked).await;
            return html(StatusCode::GONE, pages::revoked_page());
        }
    };
    broker.clicked(&claims, Visit::Shown).await;
    let owner_name = broker.owner_name(&claims);
    let csrf = token::csrf_token(broker.key(), &token);
    html(
        StatusCode::OK,
        pages::link_page(&pages::LinkPage {
            owner_name: owner_name.as_deref(),
            service: &claims.service,
            reason: claims.reason,
            expires_at: claims.expires_at,
            csrf: &csrf,
        }),
    )
}

/// Signature, expiry, revocation, then the rate limit (before the CSRF check, so every POST
/// on a valid link counts, a forged form included), then the CSRF token, then the mint.
async fn reconnect(
    State(shared): State<Arc<Shared>>,
    token: Result<Path<String>, PathRejection>,
    form: Bytes,
) -> Response {
    let Ok(Path(token)) = token else {
        return not_found().await;
    };
    let broker = shared.broker.as_ref();
    let claims = match admit(broker, &token) {
        Ok(claims) => claims,
        Err(Refusal::NotFound) => return not_found().await,
        Err(Refusal::Expired(_)) => return html(StatusCode::GONE, pages::expired_page()),
        Err(Refusal::Revoked(_)) => return html(StatusCode::GONE, pages::revoked_page()),
    };
    let allowed = shared
        .limiter
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .allow(&token, broker.now());
    if !allowed {
        let mut response = html(StatusCode::TOO_MANY_REQUESTS, pages::too_many_page());
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        return response;
    }
    let csrf_ok =
        csrf_of(&form).is_some_and(|csrf| token::csrf_matches(broker.key(), &token, &csrf));
    if !csrf_ok {
        return html(StatusCode::BAD_REQUEST, pages::bad_csrf_page());
    }
    match broker
        .mint(&claims)
        .await
        .ok()
        .and_then(|url| redirect_target(&url))
    {
        Some(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        None => html(StatusCode::BAD_GATEWAY, pages::vendor_refused_page()),
    }
}

/// The form's single `csrf` field; a second one makes the form invalid.
fn csrf_of(form: &[u8]) -> Option<String> {
    let mut values = url::form_urlencoded::parse(form)
        .filter(|(name, _)| name == "csrf")
        .map(|(_, value)| value.into_owned());
    let csrf = values.next()?;
    values.next().is_none().then_some(csrf)
}

/// The minted URL as a `Location`, if it is an absolute http(s) URL a header can carry.
fn redirect_target(minted: &str) -> Option<HeaderValue> {
    let url = url::Url::parse(minted).ok()?;
    if !matches!(url.scheme(), "https" | "http") || !url.has_host() {
        return None;
    }
    HeaderValue::from_str(url.as_str()).ok()
}

async fn not_found() -> Response {
    html(StatusCode::NOT_FOUND, pages::not_found_page())
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// The headers of every answer (405s and 413s from axum included): nothing cached, no
/// referrer sent to the vendor, never framed, no type sniffing, the CSP.
async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (HeaderName::from_static("x-robots-tag"), "noindex, nofollow"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_must_carry_exactly_one_csrf_field() {
        assert_eq!(csrf_of(b"csrf=abc"), Some("abc".to_owned()));
        assert_eq!(csrf_of(b"other=1&csrf=a%2Db"), Some("a-b".to_owned()));
        assert_eq!(csrf_of(b""), None);
        assert_eq!(csrf_of(b"csrf=a&csrf=a"), None);
        assert_eq!(csrf_of(b"CSRF=a"), None);
    }

    #[test]
    fn only_absolute_http_urls_are_followed() {
        assert!(redirect_target("https://vault.example/session?token=x").is_some());
        assert!(redirect_target("http://127.0.0.1:4010/connect").is_some());
        for bad in [
            "",
            "/relative",
            "javascript:alert(1)",
            "data:text/html,x",
            "ftp://example/x",
            "https://",
        ] {
            assert!(redirect_target(bad).is_none(), "{bad}");
        }
    }
}
