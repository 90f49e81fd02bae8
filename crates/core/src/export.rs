//! The optional export side of a provider: [`AuthExporter`] reads end users' authentications
//! back out of a platform as canonical v1 records. A provider declares it as the `export`
//! capability of its `ProviderPlugin`; importers need no change. Records cross
//! the trait as [`CredentialRecord`]s, secrets still in `SecretString`s; only
//! [`record_to_v1_json`] exposes them, into a [`SecretJson`] the writer exposes once, when it
//! writes the line.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use chrono::SecondsFormat;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use crate::error::ProviderError;
use crate::importer::Removal;
use crate::record::{Auth, CredentialRecord};
use crate::secret::SecretJson;

/// Which records to export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportFilter {
    /// Only these owners (`owner.id`); empty: every owner.
    pub owners: Vec<String>,
}

impl ExportFilter {
    pub fn wants_owner(&self, owner_id: &str) -> bool {
        self.owners.is_empty() || self.owners.iter().any(|o| o == owner_id)
    }
}

/// Where an exporter sends what it reads, one source object at a time (so an export streams:
/// nothing is collected in memory). An `Err` from the sink stops the export with that error.
#[async_trait]
pub trait ExportSink: Send {
    /// One exported record. Untyped fields are already in `record.warnings`.
    async fn record(&mut self, record: CredentialRecord) -> Result<(), ProviderError>;

    /// A source object that could not be exported (`source_id` is the source's non-secret
    /// id). The export goes on with the next object.
    async fn failed(&mut self, source_id: &str, error: ProviderError) -> Result<(), ProviderError>;

    /// How the exporter retries its reads: call each through [`retry_read`] with this.
    fn reads(&self) -> &dyn ReadRetry;
}

/// What an export saw, for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportCounts {
    /// Owners (end users) whose objects were read.
    pub owners: u64,
    /// Source objects handed to the sink (records and failures).
    pub objects: u64,
}

/// A provider's exporter. Object-safe: the runner holds a `Box<dyn AuthExporter>`.
#[async_trait]
pub trait AuthExporter: Send + Sync + fmt::Debug {
    /// Reads every authentication the filter selects and hands each to `sink`, as a record or
    /// as a failure. Read-only at the source. An `Err` stops the export (bad credentials, a
    /// refused capability, or the sink's own error).
    async fn export(
        &self,
        filter: &ExportFilter,
        sink: &mut dyn ExportSink,
    ) -> Result<ExportCounts, ProviderError>;

    /// `migrate --cutover`: reads one exported object again as the export read it, *without
    /// forcing a refresh* at the source, so the engine can see whether the source refreshed
    /// (and, on rotating providers, invalidated) the credential after the export. `Ok(None)`:
    /// the object is gone. The default: this source cannot (a rejection, so the record's
    /// handover is reported as not checked rather than guessed).
    async fn reread(
        &self,
        object: &SourceObject,
        reads: &dyn ReadRetry,
    ) -> Result<Option<CredentialRecord>, ProviderError> {
        let _ = (object, reads);
        Err(ProviderError::rejected(
            "this source cannot re-read one object (no cutover support)",
        ))
    }

    /// `migrate --retire-source`: deletes the object at the source once its handover is
    /// complete, so that only the target refreshes it. Not reversible. A 404 is `AlreadyGone`.
    async fn retire(
        &self,
        object: &SourceObject,
        reads: &dyn ReadRetry,
    ) -> Result<Removal, ProviderError> {
        let _ = (object, reads);
        Err(ProviderError::rejected(
            "this source cannot delete one object (no --retire-source support)",
        ))
    }
}

/// One exported object as the cutover names it again: the record's `id` (the source's own id
/// of the object) and its `owner.id`. Neither is secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceObject {
    pub id: String,
    pub owner_id: String,
}

/// The future of one erased read (see [`ReadRetry`]).
pub type ReadFuture<'a> = Pin<Box<dyn Future<Output = Result<(), ProviderError>> + Send + 'a>>;

/// How an exporter's reads are retried: the engine's retry loop (its backoff, `Retry-After`
/// cap and rate limiter), handed to the exporter by its sink ([`ExportSink::reads`]), so a
/// provider never writes a retry loop of its own. Object-safe: a read is erased to `()` here
/// and its answer kept by [`retry_read`], the one way to call it.
pub trait ReadRetry: Send + Sync {
    /// Calls `call` until it succeeds or the engine gives up; the last failure comes back.
    fn read<'a>(
        &'a self,
        call: &'a mut (dyn FnMut() -> ReadFuture<'a> + Send + 'a),
    ) -> ReadFuture<'a>;
}

/// Runs one export read through `retry`: every try goes through the provider's gate as usual,
/// and failures that may pass (a rate limit, a transient failure, a lost answer: reads change
/// nothing at the source) are tried again. The caller cancels a whole export (a signal) by
/// dropping its future: every wait ends with it.
pub async fn retry_read<'a, T, Call, Answer>(
    retry: &'a dyn ReadRetry,
    mut call: Call,
) -> Result<T, ProviderError>
where
    T: Send + 'a,
    Call: FnMut() -> Answer + Send + 'a,
    Answer: Future<Output = Result<T, ProviderError>> + Send + 'a,
{
    let answer: std::sync::Mutex<Option<T>> = std::sync::Mutex::new(None);
    {
        let slot = &answer;
        let mut erased = || -> ReadFuture<'_> {
            let read = call();
            Box::pin(async move {
                let value = read.await?;
                *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
                Ok(())
            })
        };
        retry.read(&mut erased).await?;
    }
    answer
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .ok_or_else(|| ProviderError::fatal("a read succeeded without an answer"))
}

/// One value of a vendor's credentials object as an exporter reads it: text is secret from
/// the moment it is deserialized; a number or a flag (e.g. `expires_in`) is not; an object or
/// array is kept whole as secret JSON text. `Debug` shows no secret.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
pub enum SecretValue {
    Text(SecretString),
    Number(serde_json::Number),
    Flag(bool),
    Null(()),
    Structured(StructuredSecret),
}

/// A nested credential value, held only as secret JSON text.
#[derive(Debug)]
pub struct StructuredSecret(pub SecretString);

impl<'de> serde::Deserialize<'de> for StructuredSecret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Ok(Self(SecretString::from(value.to_string())))
    }
}

impl SecretValue {
    /// The value as secret text (numbers and flags as their JSON text); `None` when null or
    /// blank, which no canonical auth field can hold.
    pub fn into_secret(self) -> Option<SecretString> {
        match self {
            Self::Text(text) if text.expose_secret().trim().is_empty() => None,
            Self::Text(text) => Some(text),
            Self::Number(n) => Some(SecretString::from(n.to_string())),
            Self::Flag(flag) => Some(SecretString::from(flag.to_string())),
            Self::Null(()) => None,
            Self::Structured(StructuredSecret(text)) => Some(text),
        }
    }
}

/// The record as one v1 JSON object, the inverse of [`crate::record::from_json_located`]:
/// reading the result back gives the same record. Expiry is written as the absolute
/// `expires_at` (with `issued_at` when known). The value holds the secrets, so it comes back
/// as a [`SecretJson`]: expose it only to write it.
pub fn record_to_v1_json(record: &CredentialRecord) -> SecretJson {
    let mut top = Map::new();
    top.insert("id".into(), json!(record.id));
    let mut owner = Map::new();
    owner.insert("id".into(), json!(record.owner.id));
    if let Some(name) = &record.owner.name {
        owner.insert("name".into(), json!(name));
    }
    if let Some(email) = &record.owner.email {
        owner.insert("email".into(), json!(email));
    }
    top.insert("owner".into(), Value::Object(owner));
    top.insert("service".into(), json!(record.service));
    if let Some(name) = &record.name {
        top.insert("name".into(), json!(name));
    }
    top.insert("auth".into(), Value::Object(auth_to_json(&record.auth)));
    for (key, map) in [
        ("settings", &record.settings),
        ("metadata", &record.metadata),
        ("targets", &record.targets),
    ] {
        if !map.is_empty() {
            top.insert(key.into(), Value::Object(map.clone()));
        }
    }
    SecretJson::new(Value::Object(top))
}

fn auth_to_json(auth: &Auth) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("type".into(), json!(auth.kind()));
    let secret = |s: &secrecy::SecretString| json!(s.expose_secret());
    match auth {
        Auth::OAuth2(oauth) => {
            map.insert("access_token".into(), secret(&oauth.access_token));
            if let Some(refresh) = &oauth.refresh_token {
                map.insert("refresh_token".into(), secret(refresh));
            }
            if let Some(token_type) = &oauth.token_type {
                map.insert("token_type".into(), json!(token_type));
            }
            if !oauth.scopes.is_empty() {
                map.insert("scopes".into(), json!(oauth.scopes));
            }
            if let Some(expiry) = &oauth.expiry {
                let instant = |t: chrono::DateTime<chrono::Utc>| {
                    json!(t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
                };
                map.insert("expires_at".into(), instant(expiry.expires_at));
                if let Some(issued) = expiry.issued_at {
                    map.insert("issued_at".into(), instant(issued));
                }
            }
            if let Some(client_id) = &oauth.client_id {
                map.insert("client_id".into(), json!(client_id));
            }
        }
        Auth::ApiKey { api_key } => {
            map.insert("api_key".into(), secret(api_key));
        }
        Auth::Basic { username, password } => {
            map.insert("username".into(), secret(username));
            map.insert("password".into(), secret(password));
        }
        Auth::Custom { fields } => {
            let fields: Map<String, Value> = fields
                .iter()
                .map(|(key, value)| (key.clone(), secret(value)))
                .collect();
            map.insert("fields".into(), Value::Object(fields));
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::record::from_json_located;

    fn round_trip(input: Value) {
        let now = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let record = from_json_located(&input, now).unwrap();
        let written = record_to_v1_json(&record);
        let again = from_json_located(written.expose(), now).unwrap();
        assert_eq!(record_to_v1_json(&again).expose(), written.expose());
        assert_eq!(again.secret_values(), record.secret_values());
    }

    #[test]
    fn every_auth_kind_reads_back_as_the_same_record() {
        round_trip(
            json!({"id": "a/1", "owner": {"id": "a", "name": "A", "email": "a@x.example"},
            "service": "mailchimp", "name": "A Mailchimp",
            "auth": {"type": "oauth2", "access_token": "at", "refresh_token": "rt",
                "token_type": "Bearer", "scopes": ["r"], "issued_at": "2026-11-01T10:00:00Z",
                "expires_in": 3600, "client_id": "cid"},
            "settings": {"dc": "us21"}, "metadata": {"plan": "gold"},
            "targets": {"tray": {"service_environment": "e1"}}}),
        );
        round_trip(json!({"id": "2", "owner": {"id": "b"}, "service": "s",
            "auth": {"type": "oauth2", "access_token": "at", "expires_at": "2027-01-01T00:00:00.5Z"}}));
        round_trip(json!({"id": "3", "owner": {"id": "b"}, "service": "s",
            "auth": {"type": "api_key", "api_key": "k"}}));
        round_trip(json!({"id": "4", "owner": {"id": "b"}, "service": "s",
            "auth": {"type": "basic", "username": "u", "password": "p"}}));
        round_trip(json!({"id": "5", "owner": {"id": "b"}, "service": "s",
            "auth": {"type": "custom", "fields": {"key": "k", "secret": "s"}}}));
    }

    #[test]
    fn expiry_is_written_as_an_absolute_instant() {
        let now = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let record = from_json_located(
            &json!({"id": "1", "owner": {"id": "b"}, "service": "s",
                "auth": {"type": "oauth2", "access_token": "at",
                    "issued_at": "2026-11-01T10:00:00Z", "expires_in": 3600}}),
            now,
        )
        .unwrap();
        let written = record_to_v1_json(&record);
        assert_eq!(
            written.expose()["auth"]["expires_at"],
            "2026-11-01T11:00:00Z"
        );
        assert_eq!(
            written.expose()["auth"]["issued_at"],
            "2026-11-01T10:00:00Z"
        );
        assert!(written.expose()["auth"].get("expires_in").is_none());
        assert_eq!(format!("{written:?}"), "SecretJson([redacted])");
    }

    #[test]
    fn secret_values_keep_text_secret_and_read_numbers_as_text() {
        let read = |v: Value| {
            serde_json::from_value::<SecretValue>(v)
                .unwrap()
                .into_secret()
                .map(|s| s.expose_secret().to_owned())
        };
        assert_eq!(read(json!("t")), Some("t".to_owned()));
        assert_eq!(read(json!(3600)), Some("3600".to_owned()));
        assert_eq!(read(json!(true)), Some("true".to_owned()));
        assert_eq!(read(json!({"a": 1})), Some(r#"{"a":1}"#.to_owned()));
        assert_eq!(read(json!(null)), None);
        assert_eq!(read(json!("  ")), None);
        let value: SecretValue = serde_json::from_value(json!("CANARY-x")).unwrap();
        assert!(!format!("{value:?}").contains("CANARY"));
        let value: SecretValue = serde_json::from_value(json!({"k": "CANARY-x"})).unwrap();
        assert!(!format!("{value:?}").contains("CANARY"));
    }

    /// Tries each read up to three times, at once.
    struct ThreeTries;

    impl ReadRetry for ThreeTries {
        fn read<'a>(
            &'a self,
            call: &'a mut (dyn FnMut() -> ReadFuture<'a> + Send + 'a),
        ) -> ReadFuture<'a> {
            Box::pin(async move {
                let mut last = None;
                for _ in 0..3 {
                    match call().await {
                        Ok(()) => return Ok(()),
                        Err(error) => last = Some(error),
                    }
                }
                Err(last.unwrap_or_else(|| ProviderError::fatal("no try")))
            })
        }
    }

    /// Polls a future that never waits (these reads answer at once).
    fn ready<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(output) => output,
            std::task::Poll::Pending => panic!("the read waited"),
        }
    }

    #[test]
    fn a_read_through_the_retry_gives_its_answer_or_the_last_failure() {
        let tries = std::sync::atomic::AtomicU32::new(0);
        let answer = ready(retry_read(&ThreeTries, || async {
            match tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed) {
                0 | 1 => Err(ProviderError::transient("503")),
                n => Ok(n),
            }
        }));
        assert_eq!(answer, Ok(2));
        let refused: Result<u32, _> = ready(retry_read(&ThreeTries, || async {
            Err(ProviderError::rejected("404"))
        }));
        assert_eq!(refused, Err(ProviderError::rejected("404")));
    }

    #[test]
    fn the_owner_filter_keeps_the_named_owners_only() {
        assert!(ExportFilter::default().wants_owner("any"));
        let filter = ExportFilter {
            owners: vec!["a".into(), "b".into()],
        };
        assert!(filter.wants_owner("b"));
        assert!(!filter.wants_owner("c"));
    }
}
