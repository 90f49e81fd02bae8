//! The one HTTP path every provider uses. It owns what a provider must never get wrong on its
//! own: the run's rate gate before each request, the timeout, the sensitive auth header, no
//! redirects, no proxy for loopback traffic, HTTPS off loopback, a bounded answer, one
//! classification of failures into [`ProviderError`] and one scrub of secrets from any vendor
//! text. Providers add only their vendor's wire shapes and rules ([`Vendor`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use authport_core::transport::{
    Effect, RateHeaders, StatusOverride, TransportFailure, budget_spent, classify_status,
    classify_transport, parse_retry_after, rate_window, reset_wait, vendor_text,
};
use authport_core::{
    BuildContext, ConfigError, EnvSnapshot, ExposeSecret, ProviderError, RequestGate, SecretString,
};
use reqwest::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LOCATION, RETRY_AFTER,
};
use reqwest::redirect::Policy;
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::answer::read_answer;
use crate::url::{host_for_message, is_loopback};

/// The largest answer read by default; vendors' answers for one object are a few KiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// What differs between vendors on the HTTP path. A `const` per provider crate.
#[derive(Clone, Copy)]
pub struct Vendor {
    /// Short name used in messages (`tray`, `apideck`).
    pub name: &'static str,
    /// `User-Agent` sent with every request.
    pub user_agent: &'static str,
    /// Reads the vendor's own, non-secret error text out of an error body (its envelope's
    /// `message`, `code`...). `None` falls back to the status's reason phrase. The kit scrubs
    /// and shortens whatever this returns.
    pub error_text: fn(status: u16, body: &[u8]) -> Option<String>,
    /// The vendor's reading of a status, before the common table (e.g. 401 stops the run).
    pub status_override: Option<StatusOverride>,
    /// The largest answer accepted.
    pub max_response_bytes: usize,
    /// The vendor's rate-limit headers, if it sends them: when an answer says the budget is
    /// spent, every sender is held until the reset, and a 429 without `Retry-After` waits for
    /// the reset.
    pub rate_headers: Option<RateHeaders>,
}

impl fmt::Debug for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vendor")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// One request, built by a provider and sent by [`HttpClient`]. `Debug` shows the method and
/// the operation only.
pub struct Call<'a> {
    method: Method,
    url: Url,
    effect: Effect,
    operation: String,
    bearer: Option<&'a SecretString>,
    headers: HeaderMap,
    json: Option<JsonBody<'a>>,
    secrets: &'a [&'a str],
}

/// A call's JSON body: a tree, or the bytes a provider serialized itself (e.g. a mapped body
/// with a value rendered at send time, written without building a second tree).
enum JsonBody<'a> {
    Tree(&'a Value),
    Serialized(Vec<u8>),
}

impl fmt::Debug for Call<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("method", &self.method)
            .field("operation", &self.operation)
            .field("effect", &self.effect)
            .finish_non_exhaustive()
    }
}

impl<'a> Call<'a> {
    /// `operation` names the call in messages (`create authentication`, `GET /vault/...`); it
    /// must hold no secret.
    pub fn new(method: Method, url: Url, effect: Effect, operation: impl Into<String>) -> Self {
        Self {
            method,
            url,
            effect,
            operation: operation.into(),
            bearer: None,
            headers: HeaderMap::new(),
            json: None,
            secrets: &[],
        }
    }

    /// `Authorization: Bearer <token>`, marked sensitive (never printed by the HTTP stack).
    pub fn bearer(mut self, token: &'a SecretString) -> Self {
        self.bearer = Some(token);
        self
    }

    /// Another header. Values that are secrets must be marked sensitive by the caller.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// A JSON body (it may hold secrets: it is never logged nor quoted).
    pub fn json(mut self, body: &'a Value) -> Self {
        self.json = Some(JsonBody::Tree(body));
        self
    }

    /// A JSON body already serialized by the provider (it may hold secrets: never logged nor
    /// quoted). Sent exactly as [`Call::json`] sends a tree: the same bytes for the same
    /// JSON, and `Content-Type: application/json` unless the call set one.
    pub fn json_bytes(mut self, body: Vec<u8>) -> Self {
        self.json = Some(JsonBody::Serialized(body));
        self
    }

    /// Secrets the vendor may echo back (the record's): scrubbed from every message, in every
    /// form, together with the bearer token and the client's own credentials.
    pub fn secrets(mut self, secrets: &'a [&'a str]) -> Self {
        self.secrets = secrets;
        self
    }
}

/// An answer that was read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Body,
}

/// A response body. Its `Debug` shows the length only: bodies may echo secrets.
pub struct Body(Vec<u8>);

impl Body {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Parses the body; on failure the error says what was expected, never what was found
    /// (serde's message could quote a value).
    pub fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, String> {
        serde_json::from_slice(&self.0)
            .map_err(|_| format!("the answer is not the expected {what} shape"))
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Body({} bytes)", self.0.len())
    }
}

/// A failed call: the classified error, plus the status when there was an answer (providers
/// treat 404 on a read, or 401 on a user token, as answers of their own).
#[derive(Debug, Clone, PartialEq)]
pub struct CallFailure {
    pub status: Option<u16>,
    /// The vendor's error text, scrubbed and shortened (empty without an answer).
    pub vendor_text: String,
    pub error: ProviderError,
}

impl CallFailure {
    pub fn is_not_found(&self) -> bool {
        self.status == Some(404)
    }

    pub fn is_unauthorized(&self) -> bool {
        self.status == Some(401)
    }
}

impl From<CallFailure> for ProviderError {
    fn from(failure: CallFailure) -> Self {
        failure.error
    }
}

/// The HTTP client of one provider instance. Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    /// For remote hosts: HTTPS only; proxies from `HTTPS_PROXY`/`NO_PROXY` are honoured.
    remote: reqwest::Client,
    /// For loopback hosts (the sandbox, a self-hosted target): never through a proxy.
    loopback: reqwest::Client,
    gate: Arc<dyn RequestGate>,
    vendor: Vendor,
    /// The vendor credentials this client sends; scrubbed from every message.
    credentials: Arc<Vec<SecretString>>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("vendor", &self.vendor.name)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// Builds the client from the provider's [`BuildContext`] (its gate, timeout and
    /// environment). `credentials` are the vendor secrets the provider will send (master token,
    /// API key): the client scrubs them from any text it returns.
    ///
    /// Proxies: traffic to loopback hosts never goes through one. Other traffic (always HTTPS)
    /// goes through `HTTPS_PROXY` (or `https_proxy`, then `ALL_PROXY`/`all_proxy`) unless its
    /// host is listed in `NO_PROXY`/`no_proxy`. `HTTP_PROXY` is never used: nothing leaves this
    /// machine by plain HTTP. The settings come from the context's environment snapshot.
    pub fn new(
        vendor: Vendor,
        context: &BuildContext,
        credentials: Vec<SecretString>,
    ) -> Result<Self, ConfigError> {
        let proxy = proxy_from_env(&context.env)?;
        let build = |loopback: bool| {
            let builder = reqwest::Client::builder()
                .timeout(context.request_timeout)
                .redirect(Policy::none())
                .user_agent(vendor.user_agent)
                // reqwest would read the process environment itself; the proxy is set below
                // from the snapshot instead, and never for loopback.
                .no_proxy();
            let builder = match (&proxy, loopback) {
                (Some(proxy), false) => builder.https_only(true).proxy(proxy.clone()),
                (None, false) => builder.https_only(true),
                (_, true) => builder,
            };
            builder
                .build()
                .map_err(|_| ConfigError::new("cannot build the http client"))
        };
        Ok(Self {
            remote: build(false)?,
            loopback: build(true)?,
            gate: context.gate.clone(),
            vendor,
            credentials: Arc::new(credentials),
        })
    }

    /// Sends the call and returns a 2xx answer; anything else is a classified failure.
    pub async fn send(&self, call: Call<'_>) -> Result<Answer, CallFailure> {
        let effect = call.effect;
        let operation = call.operation.clone();
        let secrets = call.secrets;
        let bearer = call.bearer;
        let (answer, retry_after) = self.exchange_inner(call).await?;
        if (200..300).contains(&answer.status) {
            return Ok(answer);
        }
        let raw = (self.vendor.error_text)(answer.status, answer.body.bytes());
        let text = self.scrub_with(raw.as_deref().unwrap_or(""), secrets, bearer);
        let shown = if text.is_empty() {
            reason(answer.status).to_owned()
        } else {
            text.clone()
        };
        let message = format!(
            "{} {operation}: answered {} {shown}",
            self.vendor.name, answer.status
        );
        Err(CallFailure {
            status: Some(answer.status),
            error: classify_status(
                answer.status,
                effect,
                retry_after,
                &text,
                message,
                self.vendor.status_override,
            ),
            vendor_text: text,
        })
    }

    /// Sends the call and reads its 2xx answer as `T`; an answer that cannot be read is
    /// classified by the call's effect ([`crate::answer`]: unknown outcome after a write,
    /// transient after a read). `what` names the shape expected in the message.
    pub async fn send_json<T: DeserializeOwned>(
        &self,
        call: Call<'_>,
        what: &str,
    ) -> Result<T, CallFailure> {
        let effect = call.effect;
        let operation = call.operation.clone();
        let answer = self.send(call).await?;
        read_answer(
            answer.body.bytes(),
            effect,
            self.vendor.name,
            &operation,
            what,
        )
        .map_err(|error| CallFailure {
            status: None,
            vendor_text: String::new(),
            error,
        })
    }

    /// Sends the call and returns any answer, 2xx or not (for protocols such as GraphQL whose
    /// failures come inside a 200). Transport failures, redirects and oversized answers are
    /// still classified failures. The `Retry-After` of the answer comes with it.
    pub async fn exchange(
        &self,
        call: Call<'_>,
    ) -> Result<(Answer, Option<Duration>), CallFailure> {
        self.exchange_inner(call).await
    }

    /// Classifies a failure a provider found inside an answer (e.g. GraphQL `errors[]`) with
    /// the common rules, after scrubbing `text` of the credentials and `secrets`.
    pub fn failure(
        &self,
        status: u16,
        effect: Effect,
        retry_after: Option<Duration>,
        operation: &str,
        text: &str,
        secrets: &[&str],
    ) -> CallFailure {
        let text = self.scrub_with(text, secrets, None);
        let message = format!("{} {operation}: {text}", self.vendor.name);
        CallFailure {
            status: Some(status),
            error: classify_status(
                status,
                effect,
                retry_after,
                &text,
                message,
                self.vendor.status_override,
            ),
            vendor_text: text,
        }
    }

    /// Scrubs the client's credentials and `secrets` from `text`, then shortens it: for
    /// provider messages that quote vendor text outside a call.
    pub fn scrub(&self, text: &str, secrets: &[&str]) -> String {
        self.scrub_with(text, secrets, None)
    }

    fn scrub_with(&self, text: &str, secrets: &[&str], bearer: Option<&SecretString>) -> String {
        let mut all: Vec<&str> = secrets.to_vec();
        all.extend(self.credentials.iter().map(|c| c.expose_secret()));
        if let Some(bearer) = bearer {
            all.push(bearer.expose_secret());
        }
        vendor_text(text, &all)
    }

    async fn exchange_inner(
        &self,
        call: Call<'_>,
    ) -> Result<(Answer, Option<Duration>), CallFailure> {
        let Call {
            method,
            url,
            effect,
            operation,
            bearer,
            mut headers,
            json,
            secrets: _,
        } = call;
        let no_answer = |error: ProviderError| CallFailure {
            status: None,
            vendor_text: String::new(),
            error,
        };
        let loopback = is_loopback(&url);
        if !loopback && url.scheme() != "https" {
            return Err(no_answer(ProviderError::fatal(format!(
                "{} {operation}: refusing plain http to {} (only https leaves this machine)",
                self.vendor.name,
                host_for_message(&url)
            ))));
        }
        if let Some(token) = bearer {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
                .map_err(|_| {
                    no_answer(ProviderError::fatal(format!(
                        "{} {operation}: the token is not a valid header value",
                        self.vendor.name
                    )))
                })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let client = if loopback {
            &self.loopback
        } else {
            &self.remote
        };
        let request_sets_content_type = headers.contains_key(CONTENT_TYPE);
        let mut request = client.request(method, url.clone()).headers(headers);
        match json {
            Some(JsonBody::Tree(body)) => request = request.json(body),
            Some(JsonBody::Serialized(body)) => {
                // reqwest's `json` rule: the JSON content type unless the call set one.
                if !request_sets_content_type {
                    request = request.header(CONTENT_TYPE, "application/json");
                }
                request = request.body(body);
            }
            None => {}
        }
        let labelled = format!("{} {operation}", self.vendor.name);
        self.gate.ready().await;
        let mut response = request.send().await.map_err(|e| {
            self.gate.answered(None);
            no_answer(classify_transport(transport_failure(&e), effect, &labelled))
        })?;
        let status = response.status().as_u16();
        let now = chrono::Utc::now();
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
        let mut retry_after = header(RETRY_AFTER.as_str()).and_then(|v| parse_retry_after(v, now));
        let mut window = None;
        if let Some(rate) = self.vendor.rate_headers
            && let Some(wait) = header(rate.reset).and_then(|v| reset_wait(v, rate.reset_is, now))
        {
            if header(rate.remaining).is_some_and(budget_spent) {
                self.gate.hold_for(wait);
            }
            if status == 429 && retry_after.is_none() {
                retry_after = Some(wait);
            }
            window = rate_window(
                rate.limit.and_then(&header),
                header(rate.remaining),
                Some(wait),
            );
        }
        self.gate.answered(window);
        if (300..400).contains(&status) {
            let target = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|location| url.join(location).ok())
                .map(|location| host_for_message(&location))
                .unwrap_or_else(|| "an unnamed location".to_owned());
            return Err(CallFailure {
                status: Some(status),
                vendor_text: String::new(),
                error: ProviderError::rejected(format!(
                    "{labelled}: answered {status}, a redirect to {target}; redirects are never followed"
                )),
            });
        }
        let limit = self.vendor.max_response_bytes;
        let too_large = || {
            let message = format!("{labelled}: the answer is larger than {limit} bytes");
            no_answer(match effect {
                Effect::Read => ProviderError::rejected(message),
                Effect::IdempotentWrite | Effect::Create => ProviderError::outcome_unknown(message),
            })
        };
        if response
            .content_length()
            .is_some_and(|length| length > limit as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > limit {
                        return Err(too_large());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    let failure = match transport_failure(&e) {
                        TransportFailure::Connect => TransportFailure::Broken,
                        other => other,
                    };
                    return Err(no_answer(classify_transport(failure, effect, &labelled)));
                }
            }
        }
        Ok((
            Answer {
                status,
                body: Body(body),
            },
            retry_after,
        ))
    }
}

/// The proxy for HTTPS traffic off this machine, from the environment snapshot.
fn proxy_from_env(env: &EnvSnapshot) -> Result<Option<reqwest::Proxy>, ConfigError> {
    let Some(address) = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .find_map(|name| env.get(name))
    else {
        return Ok(None);
    };
    // The message never quotes the address: it may carry a proxy password.
    let proxy = reqwest::Proxy::https(address)
        .map_err(|_| ConfigError::new("HTTPS_PROXY is not a valid proxy URL"))?;
    let no_proxy = ["NO_PROXY", "no_proxy"]
        .iter()
        .find_map(|name| env.get(name))
        .and_then(reqwest::NoProxy::from_string);
    Ok(Some(proxy.no_proxy(no_proxy)))
}

/// reqwest's own `Display` names the URL (which may carry a query): only its kind is used.
fn transport_failure(error: &reqwest::Error) -> TransportFailure {
    if error.is_connect() {
        TransportFailure::Connect
    } else if error.is_timeout() {
        TransportFailure::Timeout
    } else {
        TransportFailure::Broken
    }
}

fn reason(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("error")
}
