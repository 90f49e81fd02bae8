//! HTTP to Tray through the provider kit. The kit owns the rate gate, the timeout, the
//! sensitive bearer, redirects, proxies, HTTPS, the status classification and the scrubbing of
//! secrets; this file adds only Tray's own rules: its `{message, code}` error envelope, GraphQL
//! failures inside a 200 (`errors[]`), and a refused master token stopping the run.

use authport_core::{BuildContext, ConfigError, ProviderError, SecretString};
use authport_kit::{
    Body, Call, CallFailure, DEFAULT_MAX_RESPONSE_BYTES, Effect, HttpClient, Method, Url, Vendor,
    unreadable_answer, url_at,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::config::TrayConfig;
use crate::wire::{ErrorBody, GraphqlResponse};

/// Tray on the kit's HTTP path.
pub const VENDOR: Vendor = Vendor {
    name: "tray",
    user_agent: concat!("authport-tray/", env!("CARGO_PKG_VERSION")),
    error_text,
    // A 401 means two different things (a bad master token stops the run, an expired user
    // token is minted again), so Tray reads it itself: see [`master_failure`].
    status_override: None,
    max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
    rate_headers: None,
};

/// Tray's error text: the envelope's `message` and `code` (never the rest of the body).
fn error_text(_status: u16, body: &[u8]) -> Option<String> {
    serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(ErrorBody::text)
}

/// A REST resource under `/core/v1`. Path segments are percent-encoded by the URL builder, so
/// an id or service name can never change the path.
#[derive(Debug, Clone, Copy)]
pub enum Resource<'a> {
    Connectors,
    Environments {
        service: &'a str,
        version: i64,
    },
    Authentications,
    Authentication(&'a str),
    /// §4.7 Get full authentication: the auth with its credentials (export only).
    FullAuthentication(&'a str),
}

impl Resource<'_> {
    fn segments(self) -> Vec<String> {
        let mut segments = vec!["core".to_owned(), "v1".to_owned()];
        match self {
            Self::Connectors => segments.push("connectors".into()),
            Self::Environments { service, version } => segments.extend([
                "services".into(),
                service.to_owned(),
                "versions".into(),
                version.to_string(),
                "environments".into(),
            ]),
            Self::Authentications => segments.push("authentications".into()),
            Self::Authentication(id) => segments.extend(["authentications".into(), id.to_owned()]),
            Self::FullAuthentication(id) => {
                segments.extend(["authentications".into(), id.to_owned(), "full".into()])
            }
        }
        segments
    }
}

/// One REST request, before a token is chosen.
#[derive(Debug, Clone, Copy)]
pub struct RestCall<'a> {
    pub method: &'a Method,
    pub resource: Resource<'a>,
    /// The JSON body (may hold the record's secrets).
    pub body: Option<&'a Value>,
    pub effect: Effect,
    /// Names the call in messages; never a secret.
    pub operation: &'static str,
    /// The record's secret values: scrubbed from anything Tray answers.
    pub secrets: &'a [&'a str],
}

/// One GraphQL request, before a token is chosen.
#[derive(Debug, Clone, Copy)]
pub struct GraphqlCall<'a> {
    pub document: &'static str,
    pub variables: &'a Value,
    pub effect: Effect,
    pub operation: &'static str,
    pub secrets: &'a [&'a str],
}

/// The HTTP client for one Tray organisation. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TrayClient {
    http: HttpClient,
    api_base: Url,
    graphql_url: Url,
    master: SecretString,
}

impl TrayClient {
    pub fn new(config: &TrayConfig, context: &BuildContext) -> Result<Self, ConfigError> {
        let http = HttpClient::new(VENDOR, context, vec![config.master_token.clone()])?;
        Ok(Self {
            http,
            api_base: config.api_base.clone(),
            graphql_url: config.graphql_url.clone(),
            master: config.master_token.clone(),
        })
    }

    /// The master token (discovery, users, user tokens, verify, delete).
    pub fn master(&self) -> &SecretString {
        &self.master
    }

    /// A REST call; returns the body of a 2xx answer.
    pub async fn rest(
        &self,
        token: &SecretString,
        call: RestCall<'_>,
    ) -> Result<Body, CallFailure> {
        let segments = call.resource.segments();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let url = url_at(&self.api_base, &segments).map_err(no_answer)?;
        let mut request = Call::new(call.method.clone(), url, call.effect, call.operation)
            .bearer(token)
            .secrets(call.secrets);
        if let Some(body) = call.body {
            request = request.json(body);
        }
        Ok(self.http.send(request).await?.body)
    }

    /// A REST call whose answer is read as `T`.
    pub async fn rest_json<T: DeserializeOwned>(
        &self,
        token: &SecretString,
        call: RestCall<'_>,
    ) -> Result<T, CallFailure> {
        let body = self.rest(token, call).await?;
        body.json(call.operation)
            .map_err(|problem| unexpected_answer(call.effect, call.operation, &problem))
    }

    /// A GraphQL call; returns `data` read as `T` when `errors` is empty.
    pub async fn graphql<T: DeserializeOwned>(
        &self,
        token: &SecretString,
        call: GraphqlCall<'_>,
    ) -> Result<T, CallFailure> {
        let body = json!({ "query": call.document, "variables": call.variables });
        let request = Call::new(
            Method::POST,
            self.graphql_url.clone(),
            call.effect,
            call.operation,
        )
        .bearer(token)
        .json(&body)
        .secrets(call.secrets);
        let answer = self.http.send(request).await?;
        let envelope: GraphqlResponse = answer
            .body
            .json("graphql")
            .map_err(|problem| unexpected_answer(call.effect, call.operation, &problem))?;
        if let Some(first) = envelope.errors.first() {
            // Tray reports these inside a 200; they are read as the statuses they stand for,
            // so the kit's one table classifies them (429: retry later; others: rejected).
            let (status, text) = if envelope.errors.iter().any(|e| e.is_rate_limit()) {
                (429, "Rate limit exceeded")
            } else if first.is_unauthorized() {
                (401, first.message.as_str())
            } else {
                (answer.status, first.message.as_str())
            };
            return Err(self.http.failure(
                status,
                call.effect,
                None,
                call.operation,
                text,
                call.secrets,
            ));
        }
        let data = envelope.data.filter(|d| !d.is_null()).ok_or_else(|| {
            unexpected_answer(call.effect, call.operation, "the answer has no data")
        })?;
        serde_json::from_value(data).map_err(|_| {
            unexpected_answer(
                call.effect,
                call.operation,
                "the answer is not the expected shape",
            )
        })
    }
}

/// A 2xx answer that cannot be read, by the kit's one rule: after a create the write may well
/// have happened, so the engine must reconcile; a read may simply be asked again.
fn unexpected_answer(effect: Effect, operation: &str, problem: &str) -> CallFailure {
    no_answer(unreadable_answer(
        effect,
        format!("tray {operation}: {problem}"),
    ))
}

fn no_answer(error: ProviderError) -> CallFailure {
    CallFailure {
        status: None,
        vendor_text: String::new(),
        error,
    }
}

/// A call made with the master token: a 401 means the configuration is wrong (token or
/// region), so nothing can succeed and the run stops.
pub fn master_failure(failure: CallFailure) -> ProviderError {
    if failure.is_unauthorized() {
        return ProviderError::fatal(
            "tray refused the master token (401): check TRAY_MASTER_TOKEN and TRAY_REGION",
        );
    }
    failure.error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_reads_the_envelope_only() {
        let check = |body: &str, expect: Option<&str>| {
            assert_eq!(
                error_text(400, body.as_bytes()).as_deref(),
                expect,
                "{body}"
            );
        };
        check(
            r#"{"message":"bad input","code":"E1"}"#,
            Some("bad input (E1)"),
        );
        check(r#"{"message":"bad input","code":null}"#, Some("bad input"));
        check(r#"{"message":"bad input","code":""}"#, Some("bad input"));
        check("<html>proxy error</html>", None);
        check(r#"{"error":"x"}"#, None);
    }

    #[test]
    fn paths_are_built_from_encoded_segments() {
        let segments = Resource::Environments {
            service: "a/b?c",
            version: 4,
        }
        .segments();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let url = url_at(&Url::parse("http://127.0.0.1:9").unwrap(), &segments).unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/core/v1/services/a%2Fb%3Fc/versions/4/environments"
        );
    }

    #[test]
    fn only_a_refused_master_token_stops_the_run() {
        let failure = |status| CallFailure {
            status: Some(status),
            vendor_text: String::new(),
            error: ProviderError::rejected("tray list connectors: answered"),
        };
        assert_eq!(master_failure(failure(401)).kind().as_str(), "fatal");
        assert_eq!(master_failure(failure(403)).kind().as_str(), "rejected");
    }
}
