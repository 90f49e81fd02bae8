//! Durable reconnect links: the broker behind `authport links serve` and the links
//! `authport reconnect --links --broker URL` writes.
//!
//! Vendor reconnect links die fast (Tray's auth-only dialog codes: single use, 5 minutes;
//! Apideck's Vault sessions: 1 hour; Nango's connect sessions: 30 minutes), and mail scanners
//! open every link before the person does. A broker link lasts days instead, and a vendor link
//! is minted only when the person presses the button on its page.
//!
//! # The link
//!
//! `https://<broker>/r/{token}`, where the token is
//!
//! ```text
//! base64url(json claims) "." base64url(HMAC-SHA256(key, base64url(json claims)))
//! ```
//!
//! without padding, URL-safe as it is. The claims ([`LinkClaims`]) name the record and an
//! expiry, in short keys: `{"p": provider, "o": owner id, "s": service, "r": reason, "e":
//! expiry in unix seconds}`. They hold no secret and are readable by whoever has the token
//! (base64 is not encryption); the full 32-byte tag protects their integrity. The claims are
//! serialised in a fixed order, so the same claims and key give the same token: a re-run of
//! `reconnect --links` writes the same links until they expire.
//!
//! The key ([`LinkKey`], 32 random bytes) lives in the caller's state file (0600); its `Debug`
//! prints nothing of it. Verification refuses tokens over 2 KiB before decoding, compares the
//! tag in constant time before the payload is decoded, and then checks the expiry:
//! [`verify`] answers the claims, [`TokenError::BadSignature`] (for every malformation too) or
//! [`TokenError::Expired`].
//!
//! # The broker
//!
//! [`router`] serves `GET /r/{token}` and `POST /r/{token}` for a host implementing
//! [`Broker`]:
//!
//! - GET answers the page (who, which service, why, one "Reconnect" button in a POST form
//!   with a CSRF token bound to the link: `HMAC(key, "csrf\x1f" + token)`). It journals the
//!   visit ([`Broker::clicked`]) and never mints anything.
//! - POST checks the signature, the expiry, the revocation, the rate (10 a minute per link),
//!   the CSRF token, then mints ([`Broker::mint`]) and answers 303 to the vendor's URL.
//! - Refusals: 404 with the same page for every bad token, 410 expired, 410 revoked, 429, 400
//!   for a bad CSRF token, 502 when the vendor refuses (the page names no secret and no URL).
//! - Every answer carries `Cache-Control: no-store`, `Referrer-Policy: no-referrer`,
//!   `X-Frame-Options: DENY`, `X-Content-Type-Options: nosniff` and a CSP with no remote
//!   source ([`CONTENT_SECURITY_POLICY`]). Pages hold no script and inline CSS only.
//!
//! Same links on a re-run: the expiry is part of the claims, so `reconnect --links` must
//! reuse the expiry it first gave a row (kept with the key in the state) rather than `now +
//! ttl` each time; [`expiry`] computes the first one, [`link_url`] puts the token under the
//! `--broker` address (https, or http to loopback only).
//!
//! # Behind a reverse proxy
//!
//! The broker listens on loopback; the operator's TLS reverse proxy forwards `/r/` to it
//! (under any prefix: the page's form has no `action`, it posts to its own address). The proxy
//! must not log the paths under `/r/` (each holds a token) and must not cache (every answer
//! says `no-store`). The broker needs no forwarded headers.
//!
//! # Link hygiene
//!
//! A link is a bearer capability: whoever holds it can reconnect the owner's account until it
//! expires or is revoked. So links go to the worklist file only: never to a log line, an
//! error message, the journal or a terminal. The router logs nothing; the rate limiter keeps
//! the SHA-256 of a token, not the token. Revoke a leaked link with `authport links revoke`.
//! The vendor URL a POST mints is as sensitive: it goes to the `Location` header only, never
//! to a page.

mod address;
mod pages;
mod rate;
mod revocation;
mod router;
mod token;
mod ttl;

pub use address::{BrokerUrlError, link_url};
pub use pages::{escape, reason_in_plain_words};
pub use rate::{POSTS_PER_MINUTE, RateLimiter};
pub use revocation::{Revocation, is_revoked};
pub use router::{Broker, CONTENT_SECURITY_POLICY, MAX_FORM_BYTES, MintRefused, Visit, router};
pub use token::{
    LinkClaims, LinkKey, MAX_TOKEN_LEN, TokenError, csrf_matches, csrf_token, sign, verify,
    verify_signature,
};
pub use ttl::{TtlError, expiry, parse_ttl};
