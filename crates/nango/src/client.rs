//! Nango's calls, sent over the kit's one HTTP path ([`HttpClient`]): it paces, times out,
//! refuses redirects and plain HTTP off loopback, classifies failures (429 with `Retry-After`
//! becomes `RateLimited`) and scrubs secrets. This file adds Nango's paths, its `StdError`
//! envelope and the statuses that stop a run.
//!
//! Request bodies hold secrets and `GET /connections/{id}` answers carry credentials: neither
//! is logged, and the credentials are never deserialized ([`Connection`] has no such field).

use std::fmt;

use authport_core::transport::{Effect, Verdict};
use authport_core::{BuildContext, ConfigError, ProviderError, Removal, SecretString};
use authport_kit::{
    Call, CallFailure, DEFAULT_MAX_RESPONSE_BYTES, HttpClient, Method, RateHeaders, ResetIs, Url,
    Vendor, read_answer, url_at,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::NangoConfig;
use crate::target::NangoRef;
use crate::wire::{
    ConnectSession, ConnectSessionAnswer, Connection, ConnectionList, Integration,
    IntegrationAnswer, IntegrationClient, IntegrationList, error_text,
};

/// Nango on the kit's HTTP path.
pub const VENDOR: Vendor = Vendor {
    name: "nango",
    user_agent: concat!("authport-nango/", env!("CARGO_PKG_VERSION")),
    error_text,
    status_override: Some(status_override),
    max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
    // Nango documents these on every answer (nango-api.md §6): the kit holds the run's gate
    // when the window's budget is spent, so the plan's limit is met without a 429.
    rate_headers: Some(RateHeaders {
        limit: Some("x-ratelimit-limit"),
        remaining: "x-ratelimit-remaining",
        reset: "x-ratelimit-reset",
        reset_is: ResetIs::UnixSeconds,
    }),
};

/// 401 and 403 stop the run: every request would fail the same way (wrong key, or a key
/// without the `environment:connections:create` scope).
pub fn status_override(status: u16, _vendor_text: &str, _effect: Effect) -> Option<Verdict> {
    match status {
        401 => Some(Verdict::Fatal {
            hint: "check NANGO_SECRET_KEY",
        }),
        403 => Some(Verdict::Fatal {
            hint: "the Nango key lacks a scope (environment:connections:create is needed)",
        }),
        _ => None,
    }
}

/// The answer to a connection read.
#[derive(Debug)]
pub enum Lookup {
    Found(Box<Connection>),
    /// 404.
    Missing,
    /// 424 "Connection refresh exhausted": it exists, Nango can no longer refresh it.
    RefreshExhausted,
}

/// The answer to a read with credentials (export).
#[derive(Debug)]
pub enum CredentialRead<T> {
    Found(Box<T>),
    /// 404: removed since it was listed.
    Missing,
    /// 424 "Connection refresh exhausted".
    RefreshExhausted,
}

/// A Nango API client. `Debug` shows the base URL only.
#[derive(Clone)]
pub struct NangoClient {
    http: HttpClient,
    /// The configured base; each call's URL is it plus percent-encoded segments.
    base: Url,
    secret_key: SecretString,
}

impl fmt::Debug for NangoClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NangoClient")
            .field("base_url", &self.base.as_str().trim_end_matches('/'))
            .finish_non_exhaustive()
    }
}

impl NangoClient {
    pub fn new(config: &NangoConfig, context: &BuildContext) -> Result<Self, ConfigError> {
        Ok(Self {
            http: HttpClient::new(VENDOR, context, vec![config.secret_key.clone()])?,
            base: config.api_url.clone(),
            secret_key: config.secret_key.clone(),
        })
    }

    /// `GET /integrations`.
    pub async fn list_integrations(&self) -> Result<Vec<Integration>, ProviderError> {
        let call = self.call(
            Method::GET,
            url_at(&self.base, &["integrations"])?,
            "GET /integrations",
            Effect::Read,
        );
        let list: IntegrationList = self.http.send_json(call, "integration list").await?;
        Ok(list.data)
    }

    /// `GET /integrations/{uniqueKey}?include=credentials`: the integration's OAuth client id
    /// and scopes (nango-api.md §2). The answer holds the client secret too: it is never
    /// deserialized, and the bytes are dropped here. `None` when the integration has no
    /// credentials, is gone (404), or the read is refused (400, 403).
    pub async fn integration_client(
        &self,
        unique_key: &str,
    ) -> Result<Option<IntegrationClient>, ProviderError> {
        let mut url = url_at(&self.base, &["integrations", unique_key])?;
        url.query_pairs_mut().append_pair("include", "credentials");
        let call = self.call(
            Method::GET,
            url,
            "GET /integrations/{uniqueKey}",
            Effect::Read,
        );
        match self
            .http
            .send_json::<IntegrationAnswer>(call, "integration")
            .await
        {
            Ok(answer) => Ok(answer.data.credentials),
            // Gone, or a Nango that refuses `include=credentials` (an older self-hosted one, a
            // key without the right) [assume]: the binding is unknown, the run goes on.
            Err(failure) if matches!(failure.status, Some(400 | 403 | 404)) => Ok(None),
            Err(failure) => Err(failure.error),
        }
    }

    /// `POST /connections`: the documented upsert, so sending it twice leaves one connection.
    pub async fn upsert(
        &self,
        body: &Value,
        secrets: &[&str],
    ) -> Result<Connection, ProviderError> {
        let operation = "POST /connections";
        let call = self
            .call(
                Method::POST,
                url_at(&self.base, &["connections"])?,
                operation,
                Effect::IdempotentWrite,
            )
            .json(body)
            .secrets(secrets);
        let answer = self.http.send(call).await.map_err(ProviderError::from)?;
        // The kit's rule would make an unreadable answer an unknown outcome; this 2xx is the
        // documented upsert's, so the write happened and only the note's details are lost.
        Ok(read_answer(
            answer.body.bytes(),
            Effect::IdempotentWrite,
            VENDOR.name,
            operation,
            "connection",
        )
        .unwrap_or_default())
    }

    /// `GET /connections/{id}?provider_config_key=…` (no refresh token asked for). The answer
    /// carries credentials: only the non-secret fields are read.
    pub async fn get_connection(
        &self,
        at: &NangoRef,
        secrets: &[&str],
    ) -> Result<Lookup, ProviderError> {
        let mut url = self.connection_url(at)?;
        url.query_pairs_mut()
            .append_pair("provider_config_key", &at.provider_config_key);
        let call = self
            .call(Method::GET, url, "GET /connections/{id}", Effect::Read)
            .secrets(secrets);
        match self.http.send_json::<Connection>(call, "connection").await {
            Ok(connection) => Ok(Lookup::Found(Box::new(connection))),
            Err(failure) if failure.is_not_found() => Ok(Lookup::Missing),
            Err(failure) if failure.status == Some(424) => Ok(Lookup::RefreshExhausted),
            Err(failure) => Err(failure.error),
        }
    }

    /// `GET /connections?connectionId=…`: the connections with this id in every integration,
    /// without credentials, and without the refresh a read of one connection may trigger.
    pub async fn find_connections(
        &self,
        connection_id: &str,
    ) -> Result<Vec<Connection>, ProviderError> {
        let mut url = url_at(&self.base, &["connections"])?;
        url.query_pairs_mut()
            .append_pair("connectionId", connection_id);
        let call = self.call(Method::GET, url, "GET /connections", Effect::Read);
        let list: ConnectionList = self.http.send_json(call, "connection list").await?;
        Ok(list.connections)
    }

    /// `GET /connections?limit=…&page=…` (and `tags[end_user_id]=…` for one owner): one page
    /// of connections, without credentials. Pages count from 0 [assume: not documented].
    pub async fn list_connections_page(
        &self,
        end_user_id: Option<&str>,
        page: u64,
        limit: u64,
    ) -> Result<Vec<Connection>, ProviderError> {
        let mut url = url_at(&self.base, &["connections"])?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(owner) = end_user_id {
                query.append_pair("tags[end_user_id]", owner);
            }
            query
                .append_pair("limit", &limit.to_string())
                .append_pair("page", &page.to_string());
        }
        let call = self.call(Method::GET, url, "GET /connections", Effect::Read);
        let list: ConnectionList = self.http.send_json(call, "connection list").await?;
        Ok(list.connections)
    }

    /// `GET /connections/{id}?provider_config_key=…&refresh_token=true`, for an export: the
    /// answer with its credentials (and the refresh token) read as `T`, whose credential
    /// fields must be secret types.
    pub async fn read_connection_with_credentials<T: DeserializeOwned>(
        &self,
        at: &NangoRef,
    ) -> Result<CredentialRead<T>, ProviderError> {
        let mut url = self.connection_url(at)?;
        url.query_pairs_mut()
            .append_pair("provider_config_key", &at.provider_config_key)
            .append_pair("refresh_token", "true");
        let call = self.call(Method::GET, url, "GET /connections/{id}", Effect::Read);
        match self.http.send_json::<T>(call, "connection").await {
            Ok(read) => Ok(CredentialRead::Found(Box::new(read))),
            Err(failure) if failure.is_not_found() => Ok(CredentialRead::Missing),
            Err(failure) if failure.status == Some(424) => Ok(CredentialRead::RefreshExhausted),
            Err(failure) => Err(failure.error),
        }
    }

    /// `DELETE /connections/{id}?provider_config_key=…`: 200 removed, 404 already gone.
    pub async fn delete(&self, at: &NangoRef) -> Result<Removal, ProviderError> {
        let mut url = self.connection_url(at)?;
        url.query_pairs_mut()
            .append_pair("provider_config_key", &at.provider_config_key);
        let call = self.call(
            Method::DELETE,
            url,
            "DELETE /connections/{id}",
            Effect::IdempotentWrite,
        );
        match self.http.send(call).await {
            Ok(_) => Ok(Removal::Removed),
            Err(failure) if failure.is_not_found() => Ok(Removal::AlreadyGone),
            Err(CallFailure { error, .. }) => Err(error),
        }
    }

    /// `POST /connect/sessions` (`ConnectSessionInput`), or `POST /connect/sessions/reconnect`
    /// (`ConnectSessionReconnectInput`) when `reconnect`: a Connect session token for the
    /// hosted Connect UI. The body names the owner and the integration, no secret; the
    /// answer's token is one, kept in a `SecretString`. Sending it twice leaves a second
    /// session, which is harmless (both expire).
    pub async fn create_connect_session(
        &self,
        body: &Value,
        reconnect: bool,
    ) -> Result<ConnectSession, ProviderError> {
        let (segments, operation): (&[&str], &str) = if reconnect {
            (
                &["connect", "sessions", "reconnect"],
                "POST /connect/sessions/reconnect",
            )
        } else {
            (&["connect", "sessions"], "POST /connect/sessions")
        };
        let call = self
            .call(
                Method::POST,
                url_at(&self.base, segments)?,
                operation,
                Effect::IdempotentWrite,
            )
            .json(body);
        let answer: ConnectSessionAnswer = self.http.send_json(call, "connect session").await?;
        Ok(answer.data)
    }

    /// `{base}/connections/{id}`, the id percent-encoded as one path segment.
    fn connection_url(&self, at: &NangoRef) -> Result<Url, ProviderError> {
        url_at(&self.base, &["connections", &at.connection_id])
    }

    /// A call with the bearer key. `operation` names it in messages: a path template, never
    /// an id or a query (a connection id is the record's).
    fn call<'a>(&'a self, method: Method, url: Url, operation: &str, effect: Effect) -> Call<'a> {
        Call::new(method, url, effect, operation.to_owned()).bearer(&self.secret_key)
    }
}
