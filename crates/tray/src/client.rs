//! HTTP to Tray (REST `/core/v1` and GraphQL), with every failure classified for the engine.
//! Tokens go in sensitive headers; no request or response body ever reaches an error message,
//! only Tray's own `message` field (which the importer scrubs of the record's secrets).

use std::sync::Arc;
use std::time::Duration;

use authport_core::{ExposeSecret, ProviderError, RequestGate, SecretString};
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

use crate::wire::{ErrorBody, GraphqlResponse};

/// Whether a request may have changed something that sending it again would duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Reads, and idempotent writes (PUT, DELETE): safe to send again.
    Repeatable,
    /// Creates (POST auth, createExternalUser, createSolutionInstance): a lost answer means
    /// the outcome is unknown.
    Creates,
}

/// A failed call: the classified error, plus whether the bearer was refused (so a user token
/// can be re-minted once).
#[derive(Debug, Clone, PartialEq)]
pub struct CallFailure {
    pub status: Option<u16>,
    pub unauthorized: bool,
    pub error: ProviderError,
}

impl CallFailure {
    fn new(status: Option<u16>, error: ProviderError) -> Self {
        Self {
            status,
            unauthorized: status == Some(401),
            error,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status == Some(404)
    }
}

/// The HTTP client for one Tray organisation.
#[derive(Debug, Clone)]
pub struct TrayClient {
    http: reqwest::Client,
    api_base: Url,
    graphql_url: Url,
    /// Paces every request, REST and GraphQL alike: Tray's limit counts them all.
    gate: Arc<dyn RequestGate>,
}

impl TrayClient {
    pub fn new(
        api_base: Url,
        graphql_url: Url,
        timeout: Duration,
        gate: Arc<dyn RequestGate>,
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("authport-tray/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the http client: {e}"))?;
        Ok(Self {
            http,
            api_base,
            graphql_url,
            gate,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.api_base.as_str().trim_end_matches('/'), path)
    }

    /// Sends one request once the rate gate allows it, and reads the whole answer: status,
    /// `Retry-After`, body. A failure after sending a write is classified by `effect`.
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        effect: Effect,
        operation: &str,
    ) -> Result<(StatusCode, Option<Duration>, Vec<u8>), CallFailure> {
        self.gate.ready().await;
        let response = request
            .send()
            .await
            .map_err(|e| send_failure(&e, effect, operation))?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let bytes = response.bytes().await.map_err(|_| {
            send_failure_text(
                effect,
                operation,
                "the connection broke while reading the answer",
            )
        })?;
        Ok((status, retry_after, bytes.to_vec()))
    }

    /// A REST call; returns the status and the body bytes of a 2xx answer.
    pub async fn rest(
        &self,
        method: Method,
        path: &str,
        token: &SecretString,
        body: Option<&Value>,
        effect: Effect,
        operation: &str,
    ) -> Result<(StatusCode, bytes_body::Body), CallFailure> {
        let mut request = self
            .http
            .request(method, self.url(path))
            .header(AUTHORIZATION, bearer(token));
        if let Some(body) = body {
            request = request.json(body);
        }
        let (status, retry_after, bytes) = self.exchange(request, effect, operation).await?;
        if status.is_success() {
            return Ok((status, bytes_body::Body(bytes)));
        }
        let message = serde_json::from_slice::<ErrorBody>(&bytes)
            .ok()
            .map(|b| match b.code {
                Some(code) if !code.is_empty() => format!("{} ({code})", b.message),
                _ => b.message,
            })
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
        Err(classify_status(
            status.as_u16(),
            retry_after,
            effect,
            &format!("tray {operation}: {} {message}", status.as_u16()),
        ))
    }

    /// A GraphQL call; returns `data` when `errors` is empty.
    pub async fn graphql(
        &self,
        token: &SecretString,
        query: &str,
        variables: Value,
        effect: Effect,
        operation: &str,
    ) -> Result<Value, CallFailure> {
        let request = self
            .http
            .post(self.graphql_url.clone())
            .header(AUTHORIZATION, bearer(token))
            .json(&json!({ "query": query, "variables": variables }));
        let (status, retry_after, bytes) = self.exchange(request, effect, operation).await?;
        let parsed = serde_json::from_slice::<GraphqlResponse>(&bytes).ok();
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|b| b.message)
                .unwrap_or_else(|_| status.canonical_reason().unwrap_or("error").to_owned());
            return Err(classify_status(
                status.as_u16(),
                retry_after,
                effect,
                &format!("tray graphql {operation}: {} {message}", status.as_u16()),
            ));
        }
        let Some(parsed) = parsed else {
            return Err(CallFailure::new(
                Some(status.as_u16()),
                ProviderError::transient(format!(
                    "tray graphql {operation}: the answer is not valid json"
                )),
            ));
        };
        if let Some(first) = parsed.errors.first() {
            if parsed.errors.iter().any(|e| e.is_rate_limit()) {
                return Err(CallFailure::new(
                    None,
                    ProviderError::rate_limited(
                        retry_after,
                        format!("tray graphql {operation}: Rate limit exceeded"),
                    ),
                ));
            }
            let unauthorized = first.message.eq_ignore_ascii_case("unauthorized");
            let mut failure = CallFailure::new(
                None,
                ProviderError::rejected(format!("tray graphql {operation}: {}", first.message)),
            );
            failure.unauthorized = unauthorized;
            return Err(failure);
        }
        parsed.data.filter(|d| !d.is_null()).ok_or_else(|| {
            CallFailure::new(
                None,
                ProviderError::rejected(format!(
                    "tray graphql {operation}: the answer has no data"
                )),
            )
        })
    }
}

pub mod bytes_body {
    /// A 2xx body. Not `Debug`-printed anywhere: it may hold ids only for the calls we make,
    /// but the type keeps it out of logs by default.
    pub struct Body(pub Vec<u8>);

    impl std::fmt::Debug for Body {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Body({} bytes)", self.0.len())
        }
    }
}

fn bearer(token: &SecretString) -> HeaderValue {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid"));
    value.set_sensitive(true);
    value
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn send_failure(error: &reqwest::Error, effect: Effect, operation: &str) -> CallFailure {
    // A connect error means nothing was sent. reqwest's message names the URL, never a header.
    if error.is_connect() {
        return CallFailure::new(
            None,
            ProviderError::transient(format!("tray {operation}: cannot connect: {error}")),
        );
    }
    let what = if error.is_timeout() {
        "timed out"
    } else {
        "the connection failed"
    };
    send_failure_text(effect, operation, what)
}

fn send_failure_text(effect: Effect, operation: &str, what: &str) -> CallFailure {
    let message = format!("tray {operation}: {what}");
    match effect {
        Effect::Creates => CallFailure::new(
            None,
            ProviderError::outcome_unknown(format!("{message} after the request was sent")),
        ),
        Effect::Repeatable => CallFailure::new(None, ProviderError::transient(message)),
    }
}

/// Tray's statuses -> the core taxonomy. 5xx on a create may have been applied.
pub fn classify_status(
    status: u16,
    retry_after: Option<Duration>,
    effect: Effect,
    message: &str,
) -> CallFailure {
    let error = match status {
        429 => ProviderError::rate_limited(retry_after, message),
        500..=599 if effect == Effect::Creates => ProviderError::outcome_unknown(message),
        500..=599 | 408 => ProviderError::transient(message),
        _ => ProviderError::rejected(message),
    };
    CallFailure::new(Some(status), error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: u16, effect: Effect, expect: &str) {
        let failure = classify_status(status, None, effect, "m");
        assert_eq!(failure.error.kind(), expect, "{status} {effect:?}");
        assert_eq!(failure.unauthorized, status == 401);
    }

    #[test]
    fn statuses_are_classified() {
        check(400, Effect::Creates, "rejected");
        check(401, Effect::Repeatable, "rejected");
        check(403, Effect::Repeatable, "rejected");
        check(404, Effect::Repeatable, "rejected");
        check(429, Effect::Creates, "rate_limited");
        check(500, Effect::Creates, "outcome_unknown");
        check(502, Effect::Creates, "outcome_unknown");
        check(500, Effect::Repeatable, "transient");
        check(503, Effect::Repeatable, "transient");
    }

    #[test]
    fn retry_after_is_kept_when_present() {
        let failure = classify_status(429, Some(Duration::from_secs(3)), Effect::Repeatable, "m");
        assert_eq!(
            failure.error,
            ProviderError::rate_limited(Some(Duration::from_secs(3)), "m")
        );
    }
}
