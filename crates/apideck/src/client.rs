//! Vault's calls, sent over the kit's one HTTP path ([`HttpClient`]): it paces, times out,
//! refuses redirects and plain HTTP off loopback, classifies failures and scrubs secrets. This
//! file adds only Apideck's rules: its headers, its error envelope ([`VENDOR`]'s `error_text`)
//! and the statuses that stop a run (`status_override`).
//!
//! Request bodies hold secrets and responses may echo them (`settings` of apiKey connectors):
//! neither is ever logged; only the envelope's fields are quoted, after the kit scrubs them.

use std::fmt;

use authport_core::transport::{Effect, Verdict};
use authport_core::{BuildContext, ConfigError, ProviderError, Removal, SecretString};
use authport_kit::{
    Call, CallFailure, DEFAULT_MAX_RESPONSE_BYTES, HttpClient, Method, Url, Vendor, read_answer,
    url_at,
};
use reqwest::header::{HeaderName, HeaderValue};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::ApideckConfig;
use crate::target::ApideckRef;
use crate::wire::{
    Connection, ConsumersPage, Envelope, ErrorEnvelope, ImportedConnection, ValidatedState,
};

const APP_HEADER: HeaderName = HeaderName::from_static("x-apideck-app-id");
const CONSUMER_HEADER: HeaderName = HeaderName::from_static("x-apideck-consumer-id");

/// Apideck on the kit's HTTP path.
pub const VENDOR: Vendor = Vendor {
    name: "apideck",
    user_agent: concat!("authport-apideck/", env!("CARGO_PKG_VERSION")),
    error_text,
    status_override: Some(status_override),
    max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
    rate_headers: None,
};

/// Apideck's error envelope as text: `type_name: message (detail); see ref`, from its
/// non-secret fields. An object `detail` is shown without its `debug` part (which carries
/// downstream responses). `None` when the body is not an envelope (the kit then shows the
/// status's reason). The kit scrubs and shortens the result.
pub fn error_text(_status: u16, body: &[u8]) -> Option<String> {
    let envelope = serde_json::from_slice::<ErrorEnvelope>(body).ok()?;
    let mut text = envelope.type_name.clone().unwrap_or_default();
    if let Some(message) = envelope.message.as_deref().filter(|m| !m.is_empty()) {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(message);
    }
    let detail = match envelope.detail {
        Some(Value::String(detail)) => detail,
        Some(Value::Object(mut map)) => {
            map.remove("debug");
            if map.is_empty() {
                String::new()
            } else {
                Value::Object(map).to_string()
            }
        }
        _ => String::new(),
    };
    if !detail.is_empty() {
        text.push_str(if text.is_empty() { "(" } else { " (" });
        text.push_str(&detail);
        text.push(')');
    }
    if let Some(reference) = envelope.reference.as_deref().filter(|r| !r.is_empty()) {
        text.push_str("; see ");
        text.push_str(reference);
    }
    (!text.is_empty()).then_some(text)
}

/// Apideck's statuses that stop the run, before the kit's common table: 401 (key or app id),
/// 402 `RequestLimitError` (the plan's limit) and 400 `RequestHeadersValidationError` about the
/// app id (every request would fail the same way).
pub fn status_override(status: u16, vendor_text: &str, _effect: Effect) -> Option<Verdict> {
    match status {
        401 => Some(Verdict::Fatal {
            hint: "check APIDECK_API_KEY and APIDECK_APP_ID",
        }),
        402 => Some(Verdict::Fatal {
            hint: "the Apideck plan limit is reached",
        }),
        400 if vendor_text.starts_with("RequestHeadersValidationError")
            && vendor_text.contains("app-id") =>
        {
            Some(Verdict::Fatal {
                hint: "check APIDECK_APP_ID",
            })
        }
        _ => None,
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
    pub(crate) http: HttpClient,
    /// The configured base, parsed once: each call's URL is it with its path extended
    /// (`/vault/...`), so scheme and host are not parsed per request.
    base: Url,
    /// `{base}/vault/connections`, the prefix of every connection's URL, built once.
    connections_base: Url,
    api_key: SecretString,
    app_id: HeaderValue,
}

impl fmt::Debug for VaultClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultClient")
            .field("base_url", &self.base.as_str().trim_end_matches('/'))
            .finish_non_exhaustive()
    }
}

impl VaultClient {
    /// The client for `config`, paced by the context's gate, with its timeout and proxies.
    pub fn new(config: &ApideckConfig, context: &BuildContext) -> Result<Self, ConfigError> {
        let app_id = HeaderValue::from_str(&config.app_id).map_err(|_| {
            ConfigError::new("the apideck application id is not a valid header value")
        })?;
        let connections_base = url_at(&config.api_url, &["vault", "connections"])
            .map_err(|_| ConfigError::new("the apideck API URL cannot take a path"))?;
        Ok(Self {
            http: HttpClient::new(VENDOR, context, vec![config.api_key.clone()])?,
            base: config.api_url.clone(),
            connections_base,
            api_key: config.api_key.clone(),
            app_id,
        })
    }

    /// `GET /vault/connections/{u}/{s}`; a 404 is an answer, not an error.
    pub async fn get_connection(
        &self,
        at: &ApideckRef,
        secrets: &[&str],
    ) -> Result<Lookup, ProviderError> {
        let (url, operation) = self.connection_url(Method::GET, at, None)?;
        let call = self
            .call_named(
                Method::GET,
                url,
                operation,
                Effect::Read,
                Some(&at.consumer_id),
            )?
            .secrets(secrets);
        match self
            .http
            .send_json::<Envelope<Connection>>(call, "envelope")
            .await
        {
            Ok(envelope) => Ok(Lookup::Found(Box::new(envelope.data))),
            Err(failure) if failure.is_not_found() => {
                Ok(Lookup::NotFound(failure.error.message().to_owned()))
            }
            Err(failure) => Err(failure.error),
        }
    }

    /// `GET /vault/connections?api={u}`: every connector of one unified API, without a consumer.
    pub async fn list_connections(
        &self,
        unified_api: &str,
    ) -> Result<Vec<Connection>, ProviderError> {
        let path = "/vault/connections";
        let mut url = url_at(&self.base, &["vault", "connections"])?;
        url.query_pairs_mut().append_pair("api", unified_api);
        let call = self.call(Method::GET, url, path, Effect::Read, None)?;
        let envelope: Envelope<Vec<Connection>> = self.http.send_json(call, "envelope").await?;
        Ok(envelope.data)
    }

    /// One page of `GET /vault/consumers?limit={limit}[&cursor=...]` (no consumer header: the
    /// endpoint lists them all). The cursor is Vault's, passed back as given.
    pub async fn consumers_page(
        &self,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<ConsumersPage, ProviderError> {
        let path = "/vault/consumers";
        let mut url = url_at(&self.base, &["vault", "consumers"])?;
        url.query_pairs_mut()
            .append_pair("limit", &limit.to_string());
        if let Some(cursor) = cursor {
            url.query_pairs_mut().append_pair("cursor", cursor);
        }
        let call = self.call(Method::GET, url, path, Effect::Read, None)?;
        // The whole answer, not only `data`: the cursors are in `meta`.
        Ok(self.http.send_json(call, "page").await?)
    }

    /// `POST /vault/connections/{u}/{s}/import`: an upsert, so sending it twice leaves the
    /// same connection.
    pub async fn import(
        &self,
        at: &ApideckRef,
        body: &Value,
        secrets: &[&str],
    ) -> Result<ImportedConnection, ProviderError> {
        // Serializing a JSON tree into memory cannot fail.
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        self.import_serialized(at, bytes, secrets).await
    }

    /// [`Self::import`] of a body the importer serialized itself (the mapped body with its
    /// expiry rendered, [`crate::expiry::render_at_send_bytes`]).
    pub async fn import_serialized(
        &self,
        at: &ApideckRef,
        body: Vec<u8>,
        secrets: &[&str],
    ) -> Result<ImportedConnection, ProviderError> {
        let (url, operation) = self.connection_url(Method::POST, at, Some("import"))?;
        let call = self
            .call_named(
                Method::POST,
                url,
                operation,
                Effect::IdempotentWrite,
                Some(&at.consumer_id),
            )?
            .json_bytes(body)
            .secrets(secrets);
        let answer = self.http.send(call).await.map_err(ProviderError::from)?;
        // The kit's rule would make an unreadable answer an unknown outcome; this 2xx is the
        // documented upsert's, so the import happened and only the note's details are lost
        // (hence no message is built for it).
        Ok(
            serde_json::from_slice::<Envelope<ImportedConnection>>(answer.body.bytes())
                .map(|envelope| envelope.data)
                .unwrap_or_default(),
        )
    }

    /// `POST /vault/connections/{u}/{s}/validate` with the closed empty body. `secrets` are the
    /// record's: Vault's answer may quote what it refreshed with.
    pub async fn validate(
        &self,
        at: &ApideckRef,
        secrets: &[&str],
    ) -> Result<ValidatedState, ProviderError> {
        let (url, operation) = self.connection_url(Method::POST, at, Some("validate"))?;
        let empty = Value::Object(serde_json::Map::new());
        // A read: it changes no credentials we sent (Vault refreshes with what it holds).
        let call = self
            .call_named(
                Method::POST,
                url,
                operation,
                Effect::Read,
                Some(&at.consumer_id),
            )?
            .json(&empty)
            .secrets(secrets);
        let envelope: Envelope<ValidatedState> = self.http.send_json(call, "envelope").await?;
        Ok(envelope.data)
    }

    /// `DELETE /vault/connections/{u}/{s}`: 204 removed, 404 already gone.
    pub async fn delete(&self, at: &ApideckRef) -> Result<Removal, ProviderError> {
        let (url, operation) = self.connection_url(Method::DELETE, at, None)?;
        let call = self.call_named(
            Method::DELETE,
            url,
            operation,
            Effect::IdempotentWrite,
            Some(&at.consumer_id),
        )?;
        match self.http.send(call).await {
            Ok(_) => Ok(Removal::Removed),
            Err(failure) if failure.is_not_found() => Ok(Removal::AlreadyGone),
            Err(CallFailure { error, .. }) => Err(error),
        }
    }

    /// The URL of a fixed `path` (no ids) under the configured base.
    pub(crate) fn url(&self, path: &str) -> Url {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        // A configured base is http(s) with a host (the kit's rules), so it takes a path.
        url_at(&self.base, &segments).unwrap_or_else(|_| self.base.clone())
    }

    /// `/vault/connections/{u}/{s}[/{action}]`: the URL, each id a percent-encoded segment
    /// (appended to the prefix built once), and the call's name in messages, `{method} {path}`
    /// (ids only: no secret, no query), written in one string.
    fn connection_url(
        &self,
        method: Method,
        at: &ApideckRef,
        action: Option<&str>,
    ) -> Result<(Url, String), ProviderError> {
        let ids = [at.unified_api.as_str(), at.service_id.as_str()];
        let url = match action {
            Some(action) => url_at(&self.connections_base, &[ids[0], ids[1], action])?,
            None => url_at(&self.connections_base, &ids)?,
        };
        let mut operation = String::with_capacity(
            48 + at.unified_api.len() + at.service_id.len() + action.map_or(0, str::len),
        );
        operation.push_str(method.as_str());
        operation.push_str(" /vault/connections/");
        operation.push_str(&at.unified_api);
        operation.push('/');
        operation.push_str(&at.service_id);
        if let Some(action) = action {
            operation.push('/');
            operation.push_str(action);
        }
        Ok((url, operation))
    }

    /// A call to `url` with Apideck's headers. `path` (ids only: no secret, no query) names
    /// the call in messages.
    pub(crate) fn call<'a>(
        &'a self,
        method: Method,
        url: Url,
        path: &str,
        effect: Effect,
        consumer_id: Option<&str>,
    ) -> Result<Call<'a>, ProviderError> {
        let operation = format!("{method} {path}");
        self.call_named(method, url, operation, effect, consumer_id)
    }

    /// [`Self::call`] with its name in messages already written (`{method} {path}`).
    fn call_named<'a>(
        &'a self,
        method: Method,
        url: Url,
        operation: String,
        effect: Effect,
        consumer_id: Option<&str>,
    ) -> Result<Call<'a>, ProviderError> {
        let mut call = Call::new(method, url, effect, operation)
            .bearer(&self.api_key)
            .header(APP_HEADER, self.app_id.clone());
        if let Some(consumer_id) = consumer_id {
            let consumer = HeaderValue::from_str(consumer_id).map_err(|_| {
                ProviderError::rejected("the consumer id is not a valid header value")
            })?;
            call = call.header(CONSUMER_HEADER, consumer);
        }
        Ok(call)
    }
}

/// The `data` of Apideck's success envelope, read by the kit's rule for a read (sessions).
pub(crate) fn parse_data<T: DeserializeOwned>(path: &str, body: &[u8]) -> Result<T, ProviderError> {
    read_answer::<Envelope<T>>(body, Effect::Read, VENDOR.name, path, "envelope")
        .map(|envelope| envelope.data)
}
