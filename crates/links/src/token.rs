//! Link tokens and the CSRF token bound to each link: pure functions of a [`LinkKey`].
//!
//! A token is `base64url(json claims) "." base64url(HMAC-SHA256(key, first part))`, without
//! padding. The claims are serialised in a fixed field order, so the same claims and key always
//! give the same token (a re-run of `reconnect --links` writes the same links). The signature is
//! checked, in constant time, before anything of the payload is decoded.

use authport_core::Health;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Tokens longer than this are refused before any decoding (a real one is ~200 bytes).
pub const MAX_TOKEN_LEN: usize = 2048;

/// The HMAC-SHA256 tag length: the full tag is kept, never truncated.
const TAG_LEN: usize = 32;

/// Separates the CSRF domain from the token's: a token payload is base64url and never holds it.
const CSRF_DOMAIN: &[u8] = b"csrf\x1f";

/// The broker's signing key: 32 random bytes the caller keeps in the 0600 state file. Wiped
/// from memory on drop; its `Debug` shows nothing of it.
pub struct LinkKey(SecretBox<[u8; 32]>);

impl LinkKey {
    /// A fresh key from the operating system's seeded CSPRNG (`rand`'s thread generator).
    pub fn generate() -> LinkKey {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        LinkKey::from_bytes(bytes)
    }

    /// The key as read back from the state.
    pub fn from_bytes(bytes: [u8; 32]) -> LinkKey {
        LinkKey(SecretBox::new(Box::new(bytes)))
    }

    /// The raw bytes, only to write them to the state file.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length: this cannot fail.
        HmacSha256::new_from_slice(self.expose_bytes()).expect("hmac accepts any key length")
    }
}

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(..)")
    }
}

/// What a link names: one owner's service to reconnect, and until when. No secret: the token is
/// readable by whoever holds it (base64 is not encryption), only its integrity is protected.
/// Short JSON keys keep the token compact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkClaims {
    /// The provider's registry name (`tray`, `apideck`, `nango`).
    #[serde(rename = "p")]
    pub provider: String,
    /// The owner's id as the input names it.
    #[serde(rename = "o")]
    pub owner_id: String,
    /// The service to reconnect, as the worklist names it.
    #[serde(rename = "s")]
    pub service: String,
    /// Why the end user must reconnect (`refresh_failed`, `revoked`, `not_imported`, ...).
    #[serde(rename = "r")]
    pub reason: Health,
    /// Unix seconds; the link answers 410 from then on.
    #[serde(rename = "e")]
    pub expires_at: i64,
}

impl LinkClaims {
    /// Whether the link no longer works at `now` (unix seconds): expired from `expires_at` on.
    pub fn is_expired_at(&self, now: i64) -> bool {
        now >= self.expires_at
    }
}

/// Why a token was refused. `BadSignature` covers every malformation too, so a caller cannot
/// tell a tampered token from garbage (the broker answers both with the same 404).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("link token is not valid")]
    BadSignature,
    #[error("link has expired")]
    Expired,
}

/// The token for `claims`: deterministic for a given key.
pub fn sign(key: &LinkKey, claims: &LinkClaims) -> String {
    // A struct of strings and integers always serialises.
    let json = serde_json::to_vec(claims).expect("claims serialise");
    let payload = URL_SAFE_NO_PAD.encode(json);
    let tag = tag_of(key, &[payload.as_bytes()]);
    format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// The claims of a token signed with `key` and not yet expired at `now` (unix seconds).
pub fn verify(key: &LinkKey, token: &str, now: i64) -> Result<LinkClaims, TokenError> {
    let claims = verify_signature(key, token)?;
    if claims.is_expired_at(now) {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// The claims of a token signed with `key`, whatever its expiry (the broker journals a click
/// on an expired link with its claims).
pub fn verify_signature(key: &LinkKey, token: &str) -> Result<LinkClaims, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::BadSignature);
    }
    let (payload, tag) = token.split_once('.').ok_or(TokenError::BadSignature)?;
    if !tag_matches(key, &[payload.as_bytes()], tag) {
        return Err(TokenError::BadSignature);
    }
    // Signed by us, so well-formed unless the key signed something else: still refused.
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::BadSignature)?;
    serde_json::from_slice(&json).map_err(|_| TokenError::BadSignature)
}

/// The CSRF token the link's page carries in its form: bound to the link, so a form posted to
/// another link (or built without reading this page) is refused.
pub fn csrf_token(key: &LinkKey, token: &str) -> String {
    URL_SAFE_NO_PAD.encode(tag_of(key, &[CSRF_DOMAIN, token.as_bytes()]))
}

/// Whether `csrf` is the CSRF token of `token`, compared in constant time.
pub fn csrf_matches(key: &LinkKey, token: &str, csrf: &str) -> bool {
    tag_matches(key, &[CSRF_DOMAIN, token.as_bytes()], csrf)
}

fn tag_of(key: &LinkKey, parts: &[&[u8]]) -> [u8; TAG_LEN] {
    let mut mac = key.mac();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Decodes `encoded_tag` (refusing anything but a full tag) and compares it with the MAC of
/// `parts` in constant time (`hmac`'s `verify_slice`).
fn tag_matches(key: &LinkKey, parts: &[&[u8]], encoded_tag: &str) -> bool {
    // 32 bytes are 43 base64 characters: refuse anything else before decoding.
    if encoded_tag.len() != 43 {
        return false;
    }
    let Ok(tag) = URL_SAFE_NO_PAD.decode(encoded_tag) else {
        return false;
    };
    let mut mac = key.mac();
    for part in parts {
        mac.update(part);
    }
    tag.len() == TAG_LEN && mac.verify_slice(&tag).is_ok()
}

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;
