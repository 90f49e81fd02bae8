//! An OAuth token's expiry, as the mapped body carries it and as Vault receives it.
//!
//! Vault's `credentials` take `issued_at` + `expires_in` (seconds); it computes the expiry as
//! their sum. When the source knows the issue time, the mapped body carries that pair as is.
//! When it knows only the absolute expiry, the documented rule (shared/docs/apideck-api.md
//! §10.3) is `issued_at` = now, `expires_in` = the seconds from now until the expiry. "Now"
//! must not be written into the mapped body, or a re-run on another day would compare a
//! different body and report `updated`; so the mapped body carries the absolute expiry as
//! `credentials.expires_at`, and [`render_at_send`] — the one place it happens, named in the
//! plan's notes — turns it into the pair when the import is sent. `expires_at` itself is never
//! sent (Vault's `credentials` object is closed). The import writes that rendering straight
//! into the request's bytes ([`render_at_send_bytes`], tested byte for byte against it), and
//! `map` checks it on the body rendered in place ([`with_rendered`]): no second tree per record.

use authport_core::{MappingError, OAuth2};
use chrono::{DateTime, DurationRound, SecondsFormat, TimeDelta, Utc};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value, json};

use crate::config::SuspectMilliseconds;
use crate::map::MapOptions;
use crate::target::PROVIDER;

/// The key of the absolute expiry inside the mapped body's `credentials`; rendered away by
/// [`render_at_send`].
pub const EXPIRES_AT_KEY: &str = "expires_at";

/// How the mapped body states a token's expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MappedExpiry {
    /// The issue time is known: `issued_at` (RFC 3339 UTC) + `expires_in` (whole seconds),
    /// sent as they are.
    IssuedAt { issued_at: String, expires_in: i64 },
    /// Only the absolute expiry is known (RFC 3339 UTC): `credentials.expires_at`, which
    /// [`render_at_send`] turns into the pair.
    ExpiresAt { expires_at: String },
}

/// The expiry as the mapped body carries it, with what the operator should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedExpiry {
    /// `None` omits the expiry, which makes Vault queue a refresh.
    pub expiry: Option<MappedExpiry>,
    pub notes: Vec<String>,
}

/// Renders the normalised expiry for the mapped body.
///
/// - unknown expiry: omitted (Vault queues a refresh), which needs a refresh token unless the
///   service's tokens are long-lived;
/// - suspect milliseconds: refused unless the policy says how to read it;
/// - already expired at the run's `now`: omitted so Vault refreshes it, which needs a refresh
///   token;
/// - known issue time: [`MappedExpiry::IssuedAt`];
/// - unknown issue time: [`MappedExpiry::ExpiresAt`], rendered by [`render_at_send`].
pub fn render_expiry(
    oauth: &OAuth2,
    long_lived: bool,
    options: &MapOptions,
) -> Result<RenderedExpiry, MappingError> {
    let has_refresh = oauth.refresh_token.is_some();
    let mut notes = Vec::new();
    let Some(expiry) = oauth.expiry else {
        if has_refresh {
            notes.push("expiry unknown: sent without issued_at/expires_in, so Vault queues a refresh on import".to_owned());
        } else if long_lived {
            notes.push(
                "long-lived token without expiry or refresh token: Vault cannot refresh it"
                    .to_owned(),
            );
        } else {
            return Err(MappingError::new(
                "auth.refresh_token",
                format!(
                    "the token has no expiry and no refresh_token: Vault would queue a refresh it cannot perform; give expires_at (or issued_at + expires_in), or mark the service's tokens long-lived (targets.{PROVIDER}.long_lived_tokens)"
                ),
            ));
        }
        return Ok(RenderedExpiry {
            expiry: None,
            notes,
        });
    };

    let mut expires_at = expiry.expires_at;
    if expiry.suspect_milliseconds {
        match (options.suspect_milliseconds, expiry.issued_at) {
            (SuspectMilliseconds::Refuse, _) => {
                return Err(MappingError::new(
                    "auth.expires_in",
                    "looks like milliseconds, but Apideck's expires_in is seconds; fix the input, or set [apideck] suspect_milliseconds = \"as_milliseconds\" (or \"as_seconds\")",
                ));
            }
            (SuspectMilliseconds::AsSeconds, _) => {
                notes.push(
                    "expires_in sent as seconds, as configured (suspect_milliseconds = as_seconds)"
                        .to_owned(),
                );
            }
            (SuspectMilliseconds::AsMilliseconds, Some(issued_at)) => {
                let millis = (expiry.expires_at - issued_at).num_seconds();
                expires_at = issued_at + TimeDelta::milliseconds(millis);
                notes.push(
                    "expires_in read as milliseconds and converted to seconds, as configured"
                        .to_owned(),
                );
            }
            (SuspectMilliseconds::AsMilliseconds, None) => {
                return Err(MappingError::new(
                    "auth.expires_in",
                    "cannot convert milliseconds without issued_at",
                ));
            }
        }
    }

    let expires_at = whole_seconds(expires_at);
    let expires_at_text = rfc3339(expires_at);
    if expires_at <= options.now {
        if !has_refresh {
            return Err(MappingError::new(
                "auth.access_token",
                format!(
                    "expired at {expires_at_text} and there is no refresh_token: Vault could neither use nor refresh it"
                ),
            ));
        }
        notes.push(format!(
            "access token expired at {expires_at_text}: sent without expiry so Vault refreshes it with the refresh token"
        ));
        return Ok(RenderedExpiry {
            expiry: None,
            notes,
        });
    }
    if !has_refresh {
        notes.push(format!(
            "no refresh_token: the connection stops working at {expires_at_text} unless re-imported"
        ));
    }

    let Some(issued_at) = expiry.issued_at.map(whole_seconds) else {
        notes.push(format!(
            "issue time unknown: credentials.{EXPIRES_AT_KEY} is sent as issued_at = the run's start and expires_in = the seconds from then until {expires_at_text} (rule apideck::expiry::render_at_send)"
        ));
        return Ok(RenderedExpiry {
            expiry: Some(MappedExpiry::ExpiresAt {
                expires_at: expires_at_text,
            }),
            notes,
        });
    };
    let expires_in = (expires_at - issued_at).num_seconds();
    if expires_in <= 0 {
        return Err(MappingError::new(
            "auth.issued_at",
            "is not before the token's expiry",
        ));
    }
    Ok(RenderedExpiry {
        expiry: Some(MappedExpiry::IssuedAt {
            issued_at: rfc3339(issued_at),
            expires_in,
        }),
        notes,
    })
}

/// Writes `expiry` into a mapped body's `credentials`.
pub(crate) fn insert(credentials: &mut serde_json::Map<String, Value>, expiry: &MappedExpiry) {
    match expiry {
        MappedExpiry::IssuedAt {
            issued_at,
            expires_in,
        } => {
            credentials.insert("issued_at".to_owned(), json!(issued_at));
            credentials.insert("expires_in".to_owned(), json!(expires_in));
        }
        MappedExpiry::ExpiresAt { expires_at } => {
            credentials.insert(EXPIRES_AT_KEY.to_owned(), json!(expires_at));
        }
    }
}

/// The body Vault receives for a mapped body: `credentials.expires_at`, when present, becomes
/// `issued_at` = `now` (whole seconds) and `expires_in` = the whole seconds from then until
/// `expires_at`; their sum is the expiry Vault computes. Should the expiry have passed by
/// `now` (or be unreadable), both are left out, so Vault queues a refresh, as for any expired
/// token. Every other body is returned unchanged.
///
/// The import sends [`render_at_send_bytes`], this rule's serialized form, with the run's clock
/// (the same `now` mapping used to check "already expired"); mapping validates the rendering
/// against `ConnectionImportData` ([`with_rendered`]).
pub fn render_at_send(body: &Value, now: DateTime<Utc>) -> Value {
    let mut body = body.clone();
    if let Some(credentials) = body.get_mut("credentials").and_then(Value::as_object_mut) {
        render_in_place(credentials, &SendClock::new(now));
    }
    body
}

/// The run's clock as [`render_at_send`] writes it: `issued_at`, in whole seconds, and its
/// text, formatted once per run rather than once per record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendClock {
    issued_at: DateTime<Utc>,
    issued_at_text: String,
}

impl SendClock {
    pub fn new(now: DateTime<Utc>) -> Self {
        let issued_at = whole_seconds(now);
        Self {
            issued_at,
            issued_at_text: rfc3339(issued_at),
        }
    }

    /// What `credentials.expires_at` (as mapped) becomes: `expires_in`, the whole seconds
    /// from `issued_at` until it, or `None` (left out) when it has passed or is unreadable.
    fn expires_in(&self, expires_at: &Value) -> Option<i64> {
        expires_at
            .as_str()
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
            .map(|at| (at.with_timezone(&Utc) - self.issued_at).num_seconds())
            .filter(|seconds| *seconds > 0)
    }
}

/// What [`render_in_place`] replaced, so that [`restore`] can put the mapped form back.
struct Replaced {
    expires_at: Value,
    issued_at: Option<Value>,
    expires_in: Option<Value>,
    rendered: bool,
}

/// Renders `credentials` as [`render_at_send`] does, in place; `None` when there was nothing
/// to render (no `expires_at`).
fn render_in_place(credentials: &mut Map<String, Value>, clock: &SendClock) -> Option<Replaced> {
    let expires_at = credentials.remove(EXPIRES_AT_KEY)?;
    let mut replaced = Replaced {
        issued_at: None,
        expires_in: None,
        rendered: false,
        expires_at,
    };
    if let Some(expires_in) = clock.expires_in(&replaced.expires_at) {
        replaced.issued_at =
            credentials.insert("issued_at".to_owned(), json!(clock.issued_at_text));
        replaced.expires_in = credentials.insert("expires_in".to_owned(), json!(expires_in));
        replaced.rendered = true;
    }
    Some(replaced)
}

/// Undoes [`render_in_place`]: the credentials are as mapped again (maps are sorted by key, so
/// the order is the mapped one too).
fn restore(credentials: &mut Map<String, Value>, replaced: Replaced) {
    if replaced.rendered {
        for (key, before) in [
            ("issued_at", replaced.issued_at),
            ("expires_in", replaced.expires_in),
        ] {
            match before {
                Some(before) => {
                    credentials.insert(key.to_owned(), before);
                }
                None => {
                    credentials.remove(key);
                }
            }
        }
    }
    credentials.insert(EXPIRES_AT_KEY.to_owned(), replaced.expires_at);
}

/// Calls `check` with the body as [`render_at_send`] renders it at the `clock`'s time,
/// rendering the owned body in place and putting it back afterwards (no second tree per
/// record).
pub fn with_rendered<T>(body: &mut Value, clock: &SendClock, check: impl FnOnce(&Value) -> T) -> T {
    let replaced = body
        .get_mut("credentials")
        .and_then(Value::as_object_mut)
        .and_then(|credentials| render_in_place(credentials, clock));
    let result = check(body);
    if let Some(replaced) = replaced
        && let Some(credentials) = body.get_mut("credentials").and_then(Value::as_object_mut)
    {
        restore(credentials, replaced);
    }
    result
}

/// `serde_json::to_vec(&render_at_send(body, now))`, byte for byte, written straight from the
/// mapped body: the rendered `issued_at`/`expires_in` are serialized in place of `expires_at`
/// (at their sorted positions, as a `serde_json::Map` orders them) instead of cloning the
/// whole tree to edit it.
pub fn render_at_send_bytes(body: &Value, clock: &SendClock) -> Vec<u8> {
    let rendering = body
        .get("credentials")
        .and_then(Value::as_object)
        .and_then(|credentials| {
            let expires_at = credentials.get(EXPIRES_AT_KEY)?;
            Some((credentials, clock.expires_in(expires_at)))
        });
    // A typical import body fits: one allocation, no regrowth.
    let mut bytes = Vec::with_capacity(512);
    let result = match (rendering, body.as_object()) {
        (Some((credentials, expires_in)), Some(top)) => serde_json::to_writer(
            &mut bytes,
            &RenderedBody {
                top,
                credentials: RenderedCredentials {
                    credentials,
                    sent: expires_in.map(|expires_in| (clock.issued_at_text.as_str(), expires_in)),
                },
            },
        ),
        _ => serde_json::to_writer(&mut bytes, body),
    };
    // Serializing JSON values into memory cannot fail (string keys only, no I/O).
    debug_assert!(result.is_ok());
    bytes
}

/// The top-level object with its `credentials` rendered.
struct RenderedBody<'a> {
    top: &'a Map<String, Value>,
    credentials: RenderedCredentials<'a>,
}

impl Serialize for RenderedBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.top {
            if key == "credentials" {
                map.serialize_entry(key, &self.credentials)?;
            } else {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

/// `credentials` without `expires_at` and, when `sent` (`issued_at` text, `expires_in`), with
/// those two keys at their sorted positions, replacing any of the same name.
struct RenderedCredentials<'a> {
    credentials: &'a Map<String, Value>,
    sent: Option<(&'a str, i64)>,
}

impl Serialize for RenderedCredentials<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Sorted as the map sorts its keys ("expires_in" < "issued_at").
        let mut pending: &[(&str, SentValue<'_>)] = &[];
        let sent;
        if let Some((issued_at, expires_in)) = self.sent {
            sent = [
                ("expires_in", SentValue::Seconds(expires_in)),
                ("issued_at", SentValue::Text(issued_at)),
            ];
            pending = &sent;
        }
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.credentials {
            let key = key.as_str();
            if key == EXPIRES_AT_KEY
                || (self.sent.is_some() && (key == "expires_in" || key == "issued_at"))
            {
                continue;
            }
            while let [(sent_key, sent_value), rest @ ..] = pending
                && *sent_key < key
            {
                map.serialize_entry(sent_key, sent_value)?;
                pending = rest;
            }
            map.serialize_entry(key, value)?;
        }
        for (sent_key, sent_value) in pending {
            map.serialize_entry(sent_key, sent_value)?;
        }
        map.end()
    }
}

/// A rendered value, serialized as `json!` would (a string, or an integer).
enum SentValue<'a> {
    Seconds(i64),
    Text(&'a str),
}

impl Serialize for SentValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Seconds(seconds) => serializer.serialize_i64(*seconds),
            Self::Text(text) => serializer.serialize_str(text),
        }
    }
}

fn whole_seconds(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::seconds(1)).unwrap_or(at)
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("an instant")
    }

    fn body(expires_at: Option<Value>) -> Value {
        let mut credentials = json!({"access_token": "a", "refresh_token": "r"});
        if let Some(expires_at) = expires_at {
            credentials[EXPIRES_AT_KEY] = expires_at;
        }
        json!({"credentials": credentials, "metadata": {"authport_record_id": "x"}})
    }

    fn check(expires_at: Option<Value>, now: &str, expect: Option<(&str, i64)>) {
        let sent = render_at_send(&body(expires_at.clone()), at(now));
        let mut expected = body(None);
        if let Some((issued_at, expires_in)) = expect {
            expected["credentials"]["issued_at"] = json!(issued_at);
            expected["credentials"]["expires_in"] = json!(expires_in);
        }
        assert_eq!(sent, expected, "{expires_at:?} at {now}");
    }

    #[test]
    fn the_absolute_expiry_is_sent_as_the_time_left_from_now() {
        let expiry = Some(json!("2026-11-01T13:00:00Z"));
        check(
            expiry.clone(),
            "2026-11-01T12:00:00Z",
            Some(("2026-11-01T12:00:00Z", 3600)),
        );
        // Fractions of a second of the clock are dropped; the sum is still the expiry.
        check(
            expiry.clone(),
            "2026-11-01T12:00:00.400Z",
            Some(("2026-11-01T12:00:00Z", 3600)),
        );
        check(
            expiry.clone(),
            "2026-11-01T12:30:00Z",
            Some(("2026-11-01T12:30:00Z", 1800)),
        );
        // Expired by the time it is sent, or unreadable: left out, so Vault refreshes.
        check(expiry.clone(), "2026-11-01T13:00:00Z", None);
        check(expiry, "2026-11-02T00:00:00Z", None);
        check(Some(json!("tomorrow")), "2026-11-01T12:00:00Z", None);
    }

    #[test]
    fn the_serialized_rendering_is_the_rendered_tree_byte_for_byte() {
        let bodies = [
            body(Some(json!("2026-11-01T13:00:00Z"))),
            body(Some(json!("2026-11-01T11:00:00Z"))),
            body(Some(json!("tomorrow"))),
            body(Some(json!(5))),
            body(None),
            json!({"credentials": {EXPIRES_AT_KEY: "2026-11-01T13:00:00Z"}}),
            json!({"credentials": {EXPIRES_AT_KEY: "never"}, "settings": {}}),
            json!({"credentials": {"access_token": "a", "expires_in": 7, "issued_at": "x", EXPIRES_AT_KEY: "2026-11-01T13:00:00Z", "zz": [1, {"b": 2, "a": null}]}}),
            json!({"credentials": {"access_token": "a", "expires_in": 7, EXPIRES_AT_KEY: "bad"}}),
            json!({"credentials": {"a\"\u{1}é": "\n", EXPIRES_AT_KEY: "2026-11-01T12:00:01Z"}, "metadata": {"k": 1.5}}),
            json!({"credentials": "not an object", "settings": {"api_key": "k"}}),
            json!({"settings": {"api_key": "k"}, "metadata": {}}),
            json!([1, 2]),
        ];
        for now in ["2026-11-01T12:00:00.400Z", "2026-11-01T12:30:00Z"] {
            let clock = SendClock::new(at(now));
            for body in &bodies {
                let expected = serde_json::to_vec(&render_at_send(body, at(now))).unwrap();
                assert_eq!(
                    String::from_utf8(render_at_send_bytes(body, &clock)).unwrap(),
                    String::from_utf8(expected).unwrap(),
                    "{body} at {now}"
                );
            }
        }
    }

    #[test]
    fn the_check_sees_the_rendered_body_and_the_mapped_one_is_put_back() {
        let now = at("2026-11-01T12:00:00Z");
        for original in [
            body(Some(json!("2026-11-01T13:00:00Z"))),
            body(Some(json!("2026-11-01T11:00:00Z"))),
            json!({"credentials": {"expires_in": 7, "issued_at": "x", EXPIRES_AT_KEY: "2026-11-01T13:00:00Z"}}),
            body(None),
        ] {
            let mut mapped = original.clone();
            let seen = with_rendered(&mut mapped, &SendClock::new(now), Value::clone);
            assert_eq!(seen, render_at_send(&original, now));
            assert_eq!(mapped, original);
        }
    }

    #[test]
    fn bodies_without_an_absolute_expiry_are_sent_as_mapped() {
        let known = json!({"credentials": {"access_token": "a", "issued_at": "2026-11-01T11:30:00Z", "expires_in": 3600}});
        assert_eq!(render_at_send(&known, at("2026-11-05T00:00:00Z")), known);
        let settings_only = json!({"settings": {"api_key": "k"}, "metadata": {}});
        assert_eq!(
            render_at_send(&settings_only, at("2026-11-05T00:00:00Z")),
            settings_only
        );
        check(None, "2026-11-01T12:00:00Z", None);
    }
}
