//! Reconnect links for Apideck: a Hosted Vault session per consumer (`POST /vault/sessions`,
//! vault.yml `sessionsCreate`), limited to the unified APIs the consumer must reconnect, with
//! `redirect_uri` from `[apideck]`. Vault documents the session as short lived: 1 hour.

use std::collections::BTreeSet;

use async_trait::async_trait;
use authport_core::transport::Effect;
use authport_core::{
    CredentialRecord, Owner, ProviderError, ReconnectLink, ReconnectLinks, TargetRef,
};
use authport_kit::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::client::parse_data;
use crate::importer::ApideckImporter;
use crate::target::resolve_target;

/// How long Vault keeps a session, as vault.yml documents it ("TTL: 3600").
pub const SESSION_SECONDS: i64 = 3600;

/// `CreateSessionResponse.data`.
#[derive(Deserialize)]
struct CreatedSession {
    session_uri: String,
}

/// The `Session` body: the consumer's name and email (never a secret), the redirect and the
/// unified APIs to show. Pure.
pub fn session_body(owner: &Owner, unified_apis: &[String], redirect_uri: Option<&str>) -> Value {
    let mut metadata = Map::new();
    if let Some(name) = &owner.name {
        metadata.insert("user_name".into(), json!(name));
    }
    if let Some(email) = &owner.email {
        metadata.insert("email".into(), json!(email));
    }
    let mut body = Map::new();
    if !metadata.is_empty() {
        body.insert("consumer_metadata".into(), Value::Object(metadata));
    }
    if let Some(uri) = redirect_uri {
        body.insert("redirect_uri".into(), json!(uri));
    }
    body.insert(
        "settings".into(),
        json!({"unified_apis": unified_apis, "session_length": "1h"}),
    );
    Value::Object(body)
}

#[async_trait]
impl ReconnectLinks for ApideckImporter {
    async fn link_ids(
        &self,
        record: &CredentialRecord,
        target: Option<&TargetRef>,
    ) -> Map<String, Value> {
        let mut ids = Map::new();
        ids.insert("consumer_id".into(), json!(record.owner.id));
        let from_target =
            target.and_then(|t| Some((t.get_str("unified_api")?, t.get_str("service_id")?)));
        if let Some((unified_api, service_id)) = from_target {
            ids.insert("unified_api".into(), json!(unified_api));
            ids.insert("service_id".into(), json!(service_id));
        } else if let Ok(resolved) = resolve_target(
            &record.service,
            record.targets.get(crate::PROVIDER),
            &self.config.services,
        ) {
            ids.insert("unified_api".into(), json!(resolved.unified_api));
            ids.insert("service_id".into(), json!(resolved.service_id));
        }
        ids
    }

    fn one_link_per_owner(&self) -> bool {
        true
    }

    async fn mint(
        &self,
        owner: &Owner,
        ids: &[Map<String, Value>],
    ) -> Result<ReconnectLink, ProviderError> {
        let unified_apis: Vec<String> = ids
            .iter()
            .filter_map(|i| i.get("unified_api").and_then(Value::as_str))
            .map(str::to_owned)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let body = session_body(owner, &unified_apis, self.config.redirect_uri.as_deref());
        let path = "/vault/sessions";
        let client = &self.client;
        // Sending it twice leaves a second session, which is harmless (both expire).
        let call = client
            .call(
                Method::POST,
                client.url(path),
                path,
                Effect::IdempotentWrite,
                Some(&owner.id),
            )?
            .json(&body);
        let minted_at = chrono::Utc::now();
        let answer = client.http.send(call).await.map_err(ProviderError::from)?;
        let session: CreatedSession = parse_data(path, answer.body.bytes())?;
        let expires = minted_at + chrono::Duration::seconds(SESSION_SECONDS);
        Ok(ReconnectLink {
            url: session.session_uri,
            expires_at: expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            note: "Apideck Vault session: valid for 1 hour from minting; the end user \
                   reconnects the listed services there"
                .to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_shows_only_the_needed_apis_and_no_secret() {
        let owner = Owner {
            id: "c1".into(),
            name: Some("Ada".into()),
            email: Some("ada@example.com".into()),
        };
        let body = session_body(
            &owner,
            &["crm".to_owned()],
            Some("https://app.example/back"),
        );
        assert_eq!(
            body,
            json!({"consumer_metadata": {"user_name": "Ada", "email": "ada@example.com"},
                   "redirect_uri": "https://app.example/back",
                   "settings": {"unified_apis": ["crm"], "session_length": "1h"}})
        );
        let bare = Owner {
            id: "c2".into(),
            name: None,
            email: None,
        };
        assert_eq!(
            session_body(&bare, &[], None),
            json!({"settings": {"unified_apis": [], "session_length": "1h"}})
        );
    }
}
