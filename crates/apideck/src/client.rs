//! HTTP to Apideck Vault, and the classification of its answers into [`ProviderError`].
//!
//! Request bodies hold secrets and responses may echo them (`settings` of apiKey connectors):
//! neither is ever logged or quoted in an error; only Apideck's error envelope fields are, after
//! the record's secrets are scrubbed from them.

use std::sync::Arc;
use std::time::Duration;

use authport_core::{
    ExposeSecret, ProviderError, REDACTED, Removal, RequestGate, SecretString, Ungated,
};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::ApideckConfig;
use crate::wire::{Connection, Envelope, ErrorEnvelope, ValidatedState};

const APP_HEADER: &str = "x-apideck-app-id";
const CONSUMER_HEADER: &str = "x-apideck-consumer-id";

/// Whether a failed call may have changed anything at Apideck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// A read (or a delete, which is idempotent): a failure changed nothing worth reconciling.
    Read,
    /// The import: a failure after sending may or may not have been applied.
    Write,
}

/// One connector of one consumer, addressed by path.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionAddress<'a> {
    pub consumer_id: &'a str,
    pub unified_api: &'a str,
    pub service_id: &'a str,
}

impl ConnectionAddress<'_> {
    fn path(&self, suffix: &str) -> String {
        format!(
            "/vault/connections/{}/{}{suffix}",
            self.unified_api, self.service_id
        )
    }
}

/// The answer to a connection read.
#[derive(Debug)]
pub enum Lookup {
    Found(Box<Connection>),
    /// 404, with Apideck's reason (connector, integration or connection not found).
    NotFound(String),
}

/// A Vault API client. `Debug` shows the base URL only.
#[derive(Clone)]
pub struct VaultClient {
    http: reqwest::Client,
    base_url: String,
    authorization: HeaderValue,
    app_id: HeaderValue,
    /// Paces every request (the run's rate limit counts them all).
    gate: Arc<dyn RequestGate>,
}

impl std::fmt::Debug for VaultClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultClient")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl VaultClient {
    pub fn new(config: &ApideckConfig, timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .https_only(!config.api_url.starts_with("http://"))
            .user_agent(concat!("authport-apideck/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the http client: {e}"))?;
        Ok(Self {
            http,
            base_url: config.api_url.clone(),
            authorization: bearer(&config.api_key)?,
            app_id: HeaderValue::from_str(&config.app_id)
                .map_err(|_| "apideck app id is not a valid header value".to_owned())?,
            gate: Arc::new(Ungated),
        })
    }

    /// Paces every request through `gate` (the run's rate limit).
    pub fn with_gate(mut self, gate: Arc<dyn RequestGate>) -> Self {
        self.gate = gate;
        self
    }

    /// `GET /vault/connections/{u}/{s}`; a 404 is an answer, not an error.
    pub async fn get_connection(
        &self,
        at: ConnectionAddress<'_>,
        secrets: &[&str],
    ) -> Result<Lookup, ProviderError> {
        match self
            .send(
                Method::GET,
                &at.path(""),
                Some(at.consumer_id),
                None,
                CallKind::Read,
                secrets,
            )
            .await
        {
            Ok(body) => parse_data::<Connection>(&body).map(|c| Lookup::Found(Box::new(c))),
            Err(Failure::NotFound(error)) => Ok(Lookup::NotFound(error.message().to_owned())),
            Err(Failure::Other(error)) => Err(error),
        }
    }

    /// `GET /vault/connections?api={u}`: every connector of one unified API, without a consumer.
    pub async fn list_connections(
        &self,
        unified_api: &str,
    ) -> Result<Vec<Connection>, ProviderError> {
        let path = format!("/vault/connections?api={unified_api}");
        match self
            .send(Method::GET, &path, None, None, CallKind::Read, &[])
            .await
        {
            Ok(body) => parse_data::<Vec<Connection>>(&body),
            Err(failure) => Err(failure.into_error()),
        }
    }

    /// `POST /vault/connections/{u}/{s}/import`.
    pub async fn import(
        &self,
        at: ConnectionAddress<'_>,
        body: &Value,
        secrets: &[&str],
    ) -> Result<Connection, ProviderError> {
        let answer = self
            .send(
                Method::POST,
                &at.path("/import"),
                Some(at.consumer_id),
                Some(body),
                CallKind::Write,
                secrets,
            )
            .await;
        match answer {
            Ok(body) => parse_data::<Connection>(&body).or_else(|_| Ok(Connection::default())),
            Err(failure) => Err(failure.into_error()),
        }
    }

    /// `POST /vault/connections/{u}/{s}/validate` with the closed empty body.
    pub async fn validate(
        &self,
        at: ConnectionAddress<'_>,
    ) -> Result<ValidatedState, ProviderError> {
        let empty = Value::Object(serde_json::Map::new());
        match self
            .send(
                Method::POST,
                &at.path("/validate"),
                Some(at.consumer_id),
                Some(&empty),
                CallKind::Read,
                &[],
            )
            .await
        {
            Ok(body) => parse_data::<ValidatedState>(&body),
            Err(failure) => Err(failure.into_error()),
        }
    }

    /// `DELETE /vault/connections/{u}/{s}`: 204 removed, 404 already gone.
    pub async fn delete(&self, at: ConnectionAddress<'_>) -> Result<Removal, ProviderError> {
        match self
            .send(
                Method::DELETE,
                &at.path(""),
                Some(at.consumer_id),
                None,
                CallKind::Read,
                &[],
            )
            .await
        {
            Ok(_) => Ok(Removal::Removed),
            Err(Failure::NotFound(_)) => Ok(Removal::AlreadyGone),
            Err(Failure::Other(error)) => Err(error),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        consumer_id: Option<&str>,
        body: Option<&Value>,
        kind: CallKind,
        secrets: &[&str],
    ) -> Result<Vec<u8>, Failure> {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, self.authorization.clone());
        headers.insert(APP_HEADER, self.app_id.clone());
        if let Some(consumer_id) = consumer_id {
            let consumer = HeaderValue::from_str(consumer_id).map_err(|_| {
                Failure::Other(ProviderError::rejected(
                    "consumer id is not a valid header value",
                ))
            })?;
            headers.insert(CONSUMER_HEADER, consumer);
        }
        let url = format!("{}{path}", self.base_url);
        let mut request = self.http.request(method.clone(), &url).headers(headers);
        if let Some(body) = body {
            request = request.json(body);
        }
        let operation = format!("{method} {path}");
        self.gate.ready().await;
        let response = request
            .send()
            .await
            .map_err(|e| Failure::Other(classify_transport(&operation, &e, kind)))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Failure::Other(classify_transport(&operation, &e, kind)))?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        let error = classify_status(&operation, status, &bytes, retry_after, kind, secrets);
        if status == StatusCode::NOT_FOUND {
            return Err(Failure::NotFound(error));
        }
        Err(Failure::Other(error))
    }
}

/// A failed call; 404 is kept apart because reads and deletes treat it as an answer.
enum Failure {
    NotFound(ProviderError),
    Other(ProviderError),
}

impl Failure {
    fn into_error(self) -> ProviderError {
        match self {
            Self::NotFound(error) | Self::Other(error) => error,
        }
    }
}

fn bearer(key: &SecretString) -> Result<HeaderValue, String> {
    let key = key.expose_secret().trim();
    // Like Apideck's SDKs: accept a key given with or without its `Bearer ` prefix.
    let value = if key.len() > 7 && key[..7].eq_ignore_ascii_case("bearer ") {
        key.to_owned()
    } else {
        format!("Bearer {key}")
    };
    let mut header = HeaderValue::from_str(&value)
        .map_err(|_| "apideck api key is not a valid header value".to_owned())?;
    header.set_sensitive(true);
    Ok(header)
}

fn parse_data<T: DeserializeOwned>(body: &[u8]) -> Result<T, ProviderError> {
    // serde's message could quote a value: report the shape problem only.
    serde_json::from_slice::<Envelope<T>>(body)
        .map(|envelope| envelope.data)
        .map_err(|_| ProviderError::transient("apideck answered with an unexpected response shape"))
}

/// Transport failures: before a request is sent nothing happened; after, a write may have.
fn classify_transport(operation: &str, error: &reqwest::Error, kind: CallKind) -> ProviderError {
    // reqwest's Display names the URL, which holds no secret (ids only).
    let reason = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "connection failed"
    };
    let message = format!("{operation}: {reason}");
    if error.is_connect() || kind == CallKind::Read {
        ProviderError::transient(message)
    } else {
        ProviderError::outcome_unknown(message)
    }
}

/// Classifies a non-2xx answer. `secrets` are scrubbed from whatever of the envelope is quoted.
pub fn classify_status(
    operation: &str,
    status: StatusCode,
    body: &[u8],
    retry_after: Option<Duration>,
    kind: CallKind,
    secrets: &[&str],
) -> ProviderError {
    let envelope = serde_json::from_slice::<ErrorEnvelope>(body).unwrap_or_default();
    let summary = scrub(&describe(status, &envelope), secrets);
    let message = format!("{operation}: {summary}");
    match status.as_u16() {
        401 => ProviderError::fatal(format!(
            "{message}; check APIDECK_API_KEY and APIDECK_APP_ID"
        )),
        402 => ProviderError::fatal(format!("{message}; the Apideck plan limit is reached")),
        400 if envelope.type_name.as_deref() == Some("RequestHeadersValidationError")
            && envelope_mentions(&envelope, "app-id") =>
        {
            ProviderError::fatal(message)
        }
        429 => ProviderError::rate_limited(retry_after, message),
        408 | 500..=599 => match kind {
            CallKind::Read => ProviderError::transient(message),
            CallKind::Write => ProviderError::outcome_unknown(message),
        },
        _ => ProviderError::rejected(message),
    }
}

fn envelope_mentions(envelope: &ErrorEnvelope, needle: &str) -> bool {
    envelope
        .detail
        .as_ref()
        .and_then(Value::as_str)
        .is_some_and(|d| d.contains(needle))
}

/// `status type_name: message (detail)`, from the envelope's non-secret fields. An object
/// `detail` is shown without its `debug` part (which carries downstream responses).
fn describe(status: StatusCode, envelope: &ErrorEnvelope) -> String {
    let mut text = format!("apideck answered {}", status.as_u16());
    if let Some(type_name) = &envelope.type_name {
        text.push(' ');
        text.push_str(type_name);
    }
    if let Some(message) = &envelope.message {
        text.push_str(": ");
        text.push_str(message);
    }
    let detail = match &envelope.detail {
        Some(Value::String(detail)) => Some(detail.clone()),
        Some(Value::Object(map)) => {
            let mut map = map.clone();
            map.remove("debug");
            Some(Value::Object(map).to_string())
        }
        _ => None,
    };
    if let Some(detail) = detail.filter(|d| !d.is_empty()) {
        let mut shown: String = detail.chars().take(300).collect();
        if shown.len() < detail.len() {
            shown.push('…');
        }
        let detail = shown;
        text.push_str(" (");
        text.push_str(&detail);
        text.push(')');
    }
    if let Some(reference) = &envelope.reference {
        text.push_str("; see ");
        text.push_str(reference);
    }
    text
}

/// Replaces every occurrence of a secret in `text`.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret, REDACTED);
    }
    text
}
