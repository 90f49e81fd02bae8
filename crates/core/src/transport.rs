//! The pure half of the provider kit's HTTP path: how a call's answer is classified into
//! [`ProviderError`], how `Retry-After` is read, how secrets are scrubbed from vendor text and
//! how much of it is shown. `authport-kit` does the IO around these; every provider gets the
//! same rules, and a vendor's differences are parameters ([`StatusOverride`]), not copies.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::ProviderError;
use crate::secret::REDACTED;

/// The most characters of vendor text an error message quotes (after scrubbing).
pub const VENDOR_TEXT_LIMIT: usize = 300;

/// What a call may have changed at the target, which decides how a failure is classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Changes nothing: a failure is safe to retry.
    Read,
    /// Changes something, but sending it twice leaves the same result (PUT, DELETE, Apideck's
    /// import upsert): a failure after sending may have been applied, and so may a retry.
    IdempotentWrite,
    /// Creates something (Tray's POST authentication, createExternalUser): a lost answer means
    /// the outcome is unknown and the engine must reconcile before sending it again.
    Create,
}

impl Effect {
    /// Whether a failure after sending must be reconciled before anything else is sent.
    fn needs_reconcile(self) -> bool {
        matches!(self, Self::IdempotentWrite | Self::Create)
    }
}

/// A vendor's own reading of a status, applied before the common table (e.g. Apideck's 401
/// and 402 stop the run). Returns `None` to use the common table.
pub type StatusOverride = fn(status: u16, vendor_text: &str, effect: Effect) -> Option<Verdict>;

/// What a vendor override decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Stop the run; the hint tells the operator what to check.
    Fatal { hint: &'static str },
    /// Give up on this record.
    Rejected,
    /// Retry.
    Transient,
}

/// Classifies a non-2xx answer. `message` is the already scrubbed and shortened text.
///
/// The common table, one for every provider:
/// - 429: rate limited (with the parsed `Retry-After`);
/// - 408 and 5xx: transient for reads; after a write the request may have been applied, so
///   the outcome is unknown (the engine reconciles, for idempotent writes too, because the
///   answer the provider would build from the response is lost);
/// - 3xx: rejected (vendors' APIs do not redirect; redirects are never followed);
/// - anything else: rejected.
pub fn classify_status(
    status: u16,
    effect: Effect,
    retry_after: Option<Duration>,
    vendor_text: &str,
    message: String,
    vendor_override: Option<StatusOverride>,
) -> ProviderError {
    if let Some(verdict) = vendor_override.and_then(|f| f(status, vendor_text, effect)) {
        return match verdict {
            Verdict::Fatal { hint: "" } => ProviderError::fatal(message),
            Verdict::Fatal { hint } => ProviderError::fatal(format!("{message}; {hint}")),
            Verdict::Rejected => ProviderError::rejected(message),
            Verdict::Transient => ProviderError::transient(message),
        };
    }
    match status {
        429 => ProviderError::rate_limited(retry_after, message),
        408 | 500..=599 if effect.needs_reconcile() => ProviderError::outcome_unknown(message),
        408 | 500..=599 => ProviderError::transient(message),
        _ => ProviderError::rejected(message),
    }
}

/// Where a transport failure happened, as far as the client can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportFailure {
    /// No connection was made: nothing was sent.
    Connect,
    /// The request timed out after it may have been sent.
    Timeout,
    /// The connection broke while sending or reading the answer.
    Broken,
}

/// Classifies a failure below HTTP. Before a connection exists nothing was sent, so a retry is
/// safe; after it, a write may have been applied.
pub fn classify_transport(
    failure: TransportFailure,
    effect: Effect,
    operation: &str,
) -> ProviderError {
    let what = match failure {
        TransportFailure::Connect => "could not connect",
        TransportFailure::Timeout => "timed out",
        TransportFailure::Broken => "the connection failed",
    };
    if failure == TransportFailure::Connect || !effect.needs_reconcile() {
        return ProviderError::transient(format!("{operation}: {what}"));
    }
    ProviderError::outcome_unknown(format!("{operation}: {what} after the request was sent"))
}

/// Reads a `Retry-After` value: delay-seconds or an HTTP-date (RFC 9110 §10.2.3). A date in
/// the past means "now". Anything else is ignored (the engine then backs off by itself).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = DateTime::parse_from_rfc2822(value).ok()?;
    let delay = date.with_timezone(&Utc) - now;
    Some(delay.to_std().unwrap_or(Duration::ZERO))
}

/// How a vendor's rate-limit headers say when its budget comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateHeaders {
    /// The header with the window's size in requests (`X-RateLimit-Limit`), when the vendor
    /// sends one: `--budget-share` keeps its reserve as a share of it.
    pub limit: Option<&'static str>,
    /// The header with the requests left in the current window (`X-RateLimit-Remaining`).
    pub remaining: &'static str,
    /// The header with the end of the window (`X-RateLimit-Reset`).
    pub reset: &'static str,
    pub reset_is: ResetIs,
}

/// What a reset header holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetIs {
    /// A Unix time in seconds (Nango).
    UnixSeconds,
    /// Seconds from now.
    Seconds,
}

/// The longest hold read from rate-limit headers: a wrong clock or header must not stall a run
/// for hours (a later 429 with `Retry-After` still says the truth).
pub const MAX_HEADER_HOLD: Duration = Duration::from_secs(300);

/// The wait until the window resets, read from a reset header's value; `None` when it does
/// not parse. A reset in the past means no wait.
pub fn reset_wait(reset: &str, reset_is: ResetIs, now: DateTime<Utc>) -> Option<Duration> {
    let value = reset.trim().parse::<i64>().ok()?;
    let seconds = match reset_is {
        ResetIs::UnixSeconds => value - now.timestamp(),
        ResetIs::Seconds => value,
    };
    Some(Duration::from_secs(seconds.max(0) as u64).min(MAX_HEADER_HOLD))
}

/// What one answer's rate headers said of the vendor's current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateWindow {
    /// The window's size in requests.
    pub limit: u64,
    /// Requests left in it when the answer was sent.
    pub remaining: u64,
    /// How long until it resets (at most [`MAX_HEADER_HOLD`]).
    pub reset: Duration,
}

/// The window an answer describes: all three headers present and parsed, else `None`.
pub fn rate_window(
    limit: Option<&str>,
    remaining: Option<&str>,
    reset: Option<Duration>,
) -> Option<RateWindow> {
    Some(RateWindow {
        limit: limit?.trim().parse().ok()?,
        remaining: remaining?.trim().parse().ok()?,
        reset: reset?,
    })
}

/// Whether a remaining-requests header says the budget is spent.
pub fn budget_spent(remaining: &str) -> bool {
    remaining.trim().parse::<u64>() == Ok(0)
}

/// Removes every form in which a secret may come back in vendor text: as it is, JSON-escaped
/// (inside a quoted string), URL-encoded (both `%20` and `+` for spaces), and with any of the
/// escapes a JSON string may use for any character (`\u0061` for `a`, `\/`, the HTML-safe
/// `\u003c` and friends, surrogate pairs). Longer secrets go first, so a secret that contains
/// another is replaced whole. There is no length floor: a one-character secret is scrubbed too
/// (the text may become hard to read; it cannot leak).
///
/// The escapes are handled by decoding them and scrubbing again (a vendor's encoder may escape
/// any subset of characters, so listing forms cannot be complete). The decoded text is kept
/// only when it held a secret: other vendor text reads as the vendor wrote it. Runs on error
/// text only, so the second pass (and its allocation) costs nothing on the success path.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let forms = forms_of(secrets);
    let scrubbed = replace_forms(text, &forms);
    if forms.is_empty() || !scrubbed.contains('\\') {
        return scrubbed;
    }
    let decoded = decode_json_escapes(&scrubbed);
    if decoded == scrubbed {
        return scrubbed;
    }
    let again = replace_forms(&decoded, &forms);
    if again == decoded { scrubbed } else { again }
}

/// The forms of each secret matched literally, longest first.
fn forms_of(secrets: &[&str]) -> Vec<String> {
    let mut forms: Vec<String> = Vec::new();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        forms.push((*secret).to_owned());
        let escaped = serde_json::to_string(secret).unwrap_or_default();
        forms.push(escaped[1..escaped.len().saturating_sub(1).max(1)].to_owned());
        let encoded = percent_encode(secret);
        forms.push(encoded.replace("%20", "+"));
        forms.push(encoded);
    }
    forms.retain(|form| !form.is_empty());
    forms.sort_by_key(|form| std::cmp::Reverse(form.len()));
    forms.dedup();
    forms
}

fn replace_forms(text: &str, forms: &[String]) -> String {
    let mut text = text.to_owned();
    for form in forms {
        if text.contains(form.as_str()) {
            text = text.replace(form.as_str(), REDACTED);
        }
    }
    text
}

/// Decodes JSON string escapes wherever they appear (one level: `\\u0061` becomes `\u0061`).
/// A backslash that starts no valid escape (or a lone surrogate) is kept as it is.
fn decode_json_escapes(text: &str) -> String {
    let mut decoded = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        decoded.push_str(&rest[..at]);
        let escape = &rest[at..];
        let used = match decode_escape(escape) {
            Some((character, used)) => {
                decoded.push(character);
                used
            }
            None => {
                decoded.push('\\');
                1
            }
        };
        rest = &escape[used..];
    }
    decoded.push_str(rest);
    decoded
}

/// The character one escape at the start of `escape` stands for, and its length in bytes.
fn decode_escape(escape: &str) -> Option<(char, usize)> {
    let character = match escape.as_bytes().get(1)? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => return decode_unicode_escape(escape),
        _ => return None,
    };
    Some((character, 2))
}

/// `\uXXXX`, or a surrogate pair `\uD83D\uDE00` for a character beyond the BMP.
fn decode_unicode_escape(escape: &str) -> Option<(char, usize)> {
    let first = hex_unit(escape, 2)?;
    if let Some(character) = char::from_u32(u32::from(first)) {
        return Some((character, 6));
    }
    if (0xD800..0xDC00).contains(&first) && escape.get(6..8) == Some("\\u") {
        let second = hex_unit(escape, 8)?;
        let character = char::decode_utf16([first, second]).next()?.ok()?;
        return Some((character, 12));
    }
    None
}

/// The four hex digits at `at`, as one UTF-16 unit.
fn hex_unit(escape: &str, at: usize) -> Option<u16> {
    let digits = escape.get(at..at + 4)?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(digits, 16).ok()
}

/// Scrubs, then shortens to [`VENDOR_TEXT_LIMIT`] characters (in that order, so a secret cut
/// in half by the limit was already gone). Control characters are shown escaped, so vendor
/// text cannot move the cursor on an operator's terminal.
pub fn vendor_text(text: &str, secrets: &[&str]) -> String {
    let scrubbed = scrub(text, secrets);
    let mut shown = String::new();
    for (count, c) in scrubbed.chars().enumerate() {
        if count == VENDOR_TEXT_LIMIT {
            shown.push('…');
            break;
        }
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}

/// Percent-encodes every byte outside RFC 3986's unreserved set.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_status(status: u16, effect: Effect, expect: &str) {
        let error = classify_status(status, effect, None, "", "m".to_owned(), None);
        assert_eq!(error.kind().as_str(), expect, "{status} {effect:?}");
    }

    #[test]
    fn statuses_are_classified_by_effect() {
        use Effect::*;
        check_status(400, Create, "rejected");
        check_status(401, Read, "rejected");
        check_status(404, Read, "rejected");
        check_status(307, Create, "rejected");
        check_status(429, Create, "rate_limited");
        check_status(408, Read, "transient");
        check_status(408, Create, "outcome_unknown");
        check_status(408, IdempotentWrite, "outcome_unknown");
        check_status(500, Read, "transient");
        check_status(503, Read, "transient");
        check_status(500, Create, "outcome_unknown");
        check_status(502, IdempotentWrite, "outcome_unknown");
    }

    #[test]
    fn a_vendor_override_comes_first_and_adds_its_hint() {
        fn apideck_like(status: u16, _: &str, _: Effect) -> Option<Verdict> {
            (status == 401).then_some(Verdict::Fatal {
                hint: "check the key",
            })
        }
        let error = classify_status(401, Effect::Read, None, "", "m".into(), Some(apideck_like));
        assert_eq!(error, ProviderError::fatal("m; check the key"));
        let error = classify_status(404, Effect::Read, None, "", "m".into(), Some(apideck_like));
        assert_eq!(error.kind().as_str(), "rejected");
    }

    #[test]
    fn transport_failures_before_and_after_sending() {
        use Effect::*;
        use TransportFailure::*;
        let kind = |f, e| classify_transport(f, e, "op").kind().as_str();
        assert_eq!(kind(Connect, Create), "transient");
        assert_eq!(kind(Timeout, Read), "transient");
        assert_eq!(kind(Broken, Read), "transient");
        assert_eq!(kind(Timeout, Create), "outcome_unknown");
        assert_eq!(kind(Broken, IdempotentWrite), "outcome_unknown");
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let check = |value: &str, expect: Option<u64>| {
            assert_eq!(
                parse_retry_after(value, now),
                expect.map(Duration::from_secs),
                "{value}"
            );
        };
        check("3", Some(3));
        check(" 120 ", Some(120));
        check("Wed, 25 Nov 2026 10:00:30 GMT", Some(30));
        check("Wed, 25 Nov 2026 09:00:00 GMT", Some(0));
        check("-1", None);
        check("soon", None);
        check("", None);
    }

    #[test]
    fn reset_headers_give_the_wait() {
        let now = DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let epoch = now.timestamp();
        let check = |value: String, reset_is, expect: Option<u64>| {
            assert_eq!(
                reset_wait(&value, reset_is, now),
                expect.map(Duration::from_secs),
                "{value}"
            );
        };
        check(format!("{}", epoch + 12), ResetIs::UnixSeconds, Some(12));
        check(format!("{}", epoch - 5), ResetIs::UnixSeconds, Some(0));
        check(
            format!("{}", epoch + 86_400),
            ResetIs::UnixSeconds,
            Some(300),
        );
        check("7".into(), ResetIs::Seconds, Some(7));
        check("soon".into(), ResetIs::Seconds, None);
        assert!(budget_spent("0") && budget_spent(" 0 "));
        let reset = Some(Duration::from_secs(3));
        assert_eq!(
            rate_window(Some(" 200"), Some("57"), reset),
            Some(RateWindow {
                limit: 200,
                remaining: 57,
                reset: Duration::from_secs(3)
            })
        );
        assert_eq!(rate_window(None, Some("57"), reset), None);
        assert_eq!(rate_window(Some("200"), Some("-1"), reset), None);
        assert_eq!(rate_window(Some("200"), Some("5"), None), None);
        assert!(!budget_spent("1") && !budget_spent("") && !budget_spent("-"));
    }

    #[test]
    fn every_form_of_a_secret_is_scrubbed() {
        let secret = "sk live/\"ab+c\"";
        let raw = format!("bad key {secret}");
        let json = format!("{{\"key\":{}}}", serde_json::to_string(secret).unwrap());
        let url_plus = "key=sk+live%2F%22ab%2Bc%22";
        let url_pct = "key=sk%20live%2F%22ab%2Bc%22";
        for text in [raw.as_str(), json.as_str(), url_plus, url_pct] {
            let scrubbed = scrub(text, &[secret]);
            assert!(scrubbed.contains(REDACTED), "{text} -> {scrubbed}");
            assert!(!scrubbed.contains("ab"), "{text} -> {scrubbed}");
        }
    }

    #[test]
    fn short_secrets_are_scrubbed_too() {
        assert_eq!(scrub("pin 42 ok", &["42"]), format!("pin {REDACTED} ok"));
        assert_eq!(scrub("x=7", &["7"]), format!("x={REDACTED}"));
        assert_eq!(scrub("nothing", &[""]), "nothing");
    }

    #[test]
    fn a_secret_cut_by_the_length_limit_is_gone_before_the_cut() {
        let secret = "SECRETSECRETSECRET";
        let text = format!("{}{secret}", "x".repeat(VENDOR_TEXT_LIMIT - 5));
        let shown = vendor_text(&text, &[secret]);
        assert!(!shown.contains("SECR"), "{shown}");
        assert!(shown.ends_with('…'));
    }

    #[test]
    fn vendor_text_escapes_control_characters() {
        assert_eq!(vendor_text("a\u{1b}[2Jb\n", &[]), "a\\u{1b}[2Jb\\n");
    }
}
