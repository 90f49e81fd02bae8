//! Reconnect links for Nango: a Connect session token for Nango's hosted Connect UI
//! (nango-api.md §5), opened as `{connect_url}?session_token=...`.
//! - A record that was imported (its connection is known) gets
//!   `POST /connect/sessions/reconnect` `{connection_id, integration_id}`: the end user
//!   re-authorises that connection in place.
//! - A record never imported gets `POST /connect/sessions` limited to its integration
//!   (`allowed_integrations`), with the owner as `tags` (the spec deprecates `end_user` for
//!   them): the same `end_user_id` / `organization_id` / `end_user_email` tags an import sets,
//!   so the connection the end user makes is found like an imported one.
//!
//! Nango's server gives a session 30 minutes (its `expires_at` is used as answered), so such a
//! link only suits an immediate redirect, not a mail-merge. The token is a secret: it lives
//! only in the link's URL, which `ReconnectLink`'s `Debug` never shows.

use async_trait::async_trait;
use authport_core::{
    CredentialRecord, ExposeSecret, Owner, ProviderError, ReconnectLink, ReconnectLinks, TargetRef,
};
use authport_kit::Url;
use serde_json::{Map, Value, json};

use crate::importer::NangoImporter;
use crate::resolve::resolve_destination;
use crate::target::{NangoRef, PROVIDER};

/// How long Nango keeps a Connect session (its server's `ttlInMs: 30 * 60 * 1000`); used only
/// when the answer's `expires_at` cannot be read.
pub const SESSION_SECONDS: i64 = 30 * 60;

/// What the worklist says of the link.
pub const NOTE: &str = "Nango Connect session: expires 30 minutes after minting; the end user \
                        connects the integration again there";

/// `Tags`: at most 255 characters a value.
const TAG_VALUE_MAX: usize = 255;

/// The ids a link needs: `integration_id` (the provider config key) and, for an imported
/// record, `connection_id`. Keys are Nango's request fields.
pub const INTEGRATION_ID: &str = "integration_id";
pub const CONNECTION_ID: &str = "connection_id";

/// The body of `POST /connect/sessions/reconnect` (`ConnectSessionReconnectInput`). Pure.
pub fn reconnect_body(connection_id: &str, integration_id: &str) -> Value {
    json!({"connection_id": connection_id, "integration_id": integration_id})
}

/// The body of `POST /connect/sessions` (`ConnectSessionInput`): the owner as tags, one
/// integration allowed. Pure; an owner id or email longer than a tag value is refused
/// without quoting it.
pub fn session_body(owner: &Owner, integration_id: &str) -> Result<Value, ProviderError> {
    let mut tags = Map::new();
    let mut put = |key: &str, what: &str, value: &str| {
        if value.chars().count() > TAG_VALUE_MAX {
            return Err(ProviderError::rejected(format!(
                "the owner's {what} is longer than a Nango tag value ({TAG_VALUE_MAX} characters)"
            )));
        }
        tags.insert(key.to_owned(), json!(value));
        Ok(())
    };
    put("end_user_id", "id", &owner.id)?;
    put("organization_id", "id", &owner.id)?;
    if let Some(email) = owner.email.as_deref().filter(|e| !e.is_empty()) {
        put("end_user_email", "email", email)?;
    }
    Ok(json!({"tags": tags, "allowed_integrations": [integration_id]}))
}

/// `{connect_url}?session_token={token}`, Nango's documented Connect link form. Pure.
pub fn connect_link(base: &Url, token: &str) -> Url {
    let mut url = base.clone();
    url.query_pairs_mut().append_pair("session_token", token);
    url
}

/// The answer's `expires_at` as RFC 3339 seconds, else `minted_at` plus 30 minutes. Pure.
pub fn expiry(answered: &str, minted_at: chrono::DateTime<chrono::Utc>) -> String {
    let at = chrono::DateTime::parse_from_rfc3339(answered)
        .map(|at| at.with_timezone(&chrono::Utc))
        .unwrap_or_else(|_| minted_at + chrono::Duration::seconds(SESSION_SECONDS));
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn text<'a>(ids: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    ids.get(key)
        .and_then(Value::as_str)
        .filter(|value| !value.is_empty())
}

#[async_trait]
impl ReconnectLinks for NangoImporter {
    async fn link_ids(
        &self,
        record: &CredentialRecord,
        target: Option<&TargetRef>,
    ) -> Map<String, Value> {
        let mut ids = Map::new();
        if let Some(imported) = target.and_then(|t| NangoRef::try_from(t).ok()) {
            ids.insert(INTEGRATION_ID.into(), json!(imported.provider_config_key));
            ids.insert(CONNECTION_ID.into(), json!(imported.connection_id));
            return ids;
        }
        // Never imported: the integration an import would choose, from the integrations
        // discovery cached (one read-only `GET /integrations` when nothing discovered them yet,
        // e.g. a broker minting on a click).
        let integrations = self
            .integrations
            .get_or_discover(&(), || async {
                self.client.list_integrations().await.map(Ok)
            })
            .await;
        if let Ok(Ok(integrations)) = integrations
            && let Ok(destination) = resolve_destination(
                &record.service,
                record.targets.get(PROVIDER),
                &self.config,
                &integrations,
            )
        {
            ids.insert(
                INTEGRATION_ID.into(),
                json!(destination.provider_config_key),
            );
        }
        ids
    }

    fn one_link_per_owner(&self) -> bool {
        false
    }

    async fn mint(
        &self,
        owner: &Owner,
        ids: &[Map<String, Value>],
    ) -> Result<ReconnectLink, ProviderError> {
        let first = ids.first().cloned().unwrap_or_default();
        let Some(integration_id) = text(&first, INTEGRATION_ID) else {
            return Err(ProviderError::rejected(
                "the nango integration of this row is unknown",
            ));
        };
        let (body, reconnect) = match text(&first, CONNECTION_ID) {
            Some(connection_id) => (reconnect_body(connection_id, integration_id), true),
            None => (session_body(owner, integration_id)?, false),
        };
        let minted_at = chrono::Utc::now();
        let session = self.client.create_connect_session(&body, reconnect).await?;
        let url = connect_link(&self.config.connect_url, session.token.expose_secret());
        Ok(ReconnectLink {
            url: url.into(),
            expires_at: expiry(&session.expires_at, minted_at),
            note: NOTE.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(email: Option<&str>) -> Owner {
        Owner {
            id: "acme-42".into(),
            name: Some("Ada".into()),
            email: email.map(str::to_owned),
        }
    }

    #[test]
    fn bodies_carry_only_documented_fields_and_no_secret() {
        assert_eq!(
            reconnect_body("acme-42-hubspot", "hubspot"),
            json!({"connection_id": "acme-42-hubspot", "integration_id": "hubspot"})
        );
        assert_eq!(
            session_body(&owner(Some("ada@acme.example")), "hubspot").unwrap(),
            json!({"tags": {"end_user_id": "acme-42", "organization_id": "acme-42",
                            "end_user_email": "ada@acme.example"},
                   "allowed_integrations": ["hubspot"]})
        );
        assert_eq!(
            session_body(&owner(None), "hubspot").unwrap()["tags"],
            json!({"end_user_id": "acme-42", "organization_id": "acme-42"})
        );
        let long = Owner {
            id: "x".repeat(256),
            name: None,
            email: None,
        };
        let error = session_body(&long, "hubspot").expect_err("too long");
        assert!(!error.message().contains("xxxx"), "{error}");
    }

    #[test]
    fn the_link_is_the_connect_url_with_the_token_and_the_expiry_is_normalised() {
        let base = Url::parse("https://connect.nango.dev").unwrap();
        assert_eq!(
            connect_link(&base, "nango_connect_session_a+b").as_str(),
            "https://connect.nango.dev/?session_token=nango_connect_session_a%2Bb"
        );
        let path = Url::parse("http://127.0.0.1:9/_sandbox/nango/connect").unwrap();
        assert_eq!(
            connect_link(&path, "t").as_str(),
            "http://127.0.0.1:9/_sandbox/nango/connect?session_token=t"
        );
        let minted = chrono::DateTime::parse_from_rfc3339("2026-01-01T10:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            expiry("2026-01-01T10:30:00.123Z", minted),
            "2026-01-01T10:30:00Z"
        );
        assert_eq!(expiry("soon", minted), "2026-01-01T10:30:00Z");
    }
}
