//! Reconnect links for Tray: the auth-only dialog URL with a fresh `generateAuthorizationCode`
//! code (Tray's "Create new auths"): `{dialog host}/external/auth/create/{embeddedId}?code=...
//! &serviceId=...&serviceEnvironmentId=...`. The code is single use and expires after 5 minutes,
//! so such a link only suits an immediate redirect: mint it when the end user is about to open
//! it, not for a mail-merge.

use async_trait::async_trait;
use authport_core::{
    CredentialRecord, Owner, ProviderError, ReconnectLink, ReconnectLinks, TargetRef,
};
use authport_kit::{Effect, Url};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::client::{GraphqlCall, master_failure};
use crate::importer::TrayImporter;
use crate::map::{TrayTarget, select};
use crate::target::TrayRef;
use crate::users::UserRef;
use crate::wire::queries;

/// "single-use and expires after 5 minutes".
pub const CODE_SECONDS: i64 = 300;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Generated {
    generate_authorization_code: GeneratedCode,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeneratedCode {
    authorization_code: String,
}

/// The dialog URL. Pure.
pub fn dialog_url(
    base: &Url,
    embedded_id: &str,
    code: &str,
    service_id: &str,
    service_environment_id: &str,
) -> Result<Url, ProviderError> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|_| ProviderError::rejected("the tray auth dialog url cannot take a path"))?
        .pop_if_empty()
        .extend(["external", "auth", "create", embedded_id]);
    url.query_pairs_mut()
        .append_pair("code", code)
        .append_pair("serviceId", service_id)
        .append_pair("serviceEnvironmentId", service_environment_id);
    Ok(url)
}

fn text<'a>(ids: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    ids.get(key).and_then(Value::as_str)
}

#[async_trait]
impl ReconnectLinks for TrayImporter {
    async fn link_ids(
        &self,
        record: &CredentialRecord,
        target: Option<&TargetRef>,
    ) -> Map<String, Value> {
        let mut ids = Map::new();
        let imported = target.and_then(|t| TrayRef::from_target_ref(t).ok());
        if let Some(imported) = &imported {
            ids.insert("userId".into(), json!(imported.user_id));
            ids.insert(
                "serviceEnvironmentId".into(),
                json!(imported.service_environment_id),
            );
        }
        // The service (and the environment, for records never imported) from the catalogue
        // discovery learnt; the connector list is cached, so this sends nothing new.
        let Ok(tray_target) = TrayTarget::parse(record.targets.get("tray")) else {
            return ids;
        };
        let selection = select(&record.service, &tray_target, &self.config);
        let Ok(resolved) = self.catalogue.target(&selection) else {
            return ids;
        };
        ids.entry("serviceEnvironmentId")
            .or_insert_with(|| json!(resolved.environment.id));
        if let Ok(connectors) = self.catalogue.connectors(&self.client).await {
            let service = connectors.iter().find(|c| {
                c.service.name == resolved.service_name
                    && c.service.version == resolved.service_version
            });
            if let Some(connector) = service {
                ids.insert("serviceId".into(), json!(connector.service.id));
            }
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
        let Some(embedded_id) = self.config.embedded_id.as_deref() else {
            return Err(ProviderError::fatal(
                "tray reconnect links need the Embedded ID: set TRAY_EMBEDDED_ID or [tray] embedded_id",
            ));
        };
        let first = ids.first().cloned().unwrap_or_default();
        let (Some(service_id), Some(environment_id)) = (
            text(&first, "serviceId"),
            text(&first, "serviceEnvironmentId"),
        ) else {
            return Err(ProviderError::rejected(
                "the tray service or service environment of this row is unknown",
            ));
        };
        let user = UserRef {
            external_user_id: &owner.id,
            name: owner.name.as_deref(),
            user_id: text(&first, "userId"),
            secrets: &[],
        };
        let user_id = match user.user_id {
            Some(known) => known.to_owned(),
            None => self.users.user_for_link(user).await?,
        };
        let variables = json!({ "userId": user_id });
        let minted_at = chrono::Utc::now();
        let data: Generated = self
            .client
            .graphql(
                self.client.master(),
                GraphqlCall {
                    document: queries::GENERATE_AUTHORIZATION_CODE,
                    variables: &variables,
                    effect: Effect::IdempotentWrite,
                    operation: "generate authorization code",
                    secrets: &[],
                },
            )
            .await
            .map_err(master_failure)?;
        let code = data.generate_authorization_code.authorization_code;
        let url = dialog_url(
            &self.config.auth_dialog_base,
            embedded_id,
            &code,
            service_id,
            environment_id,
        )?;
        Ok(ReconnectLink {
            url: url.to_string(),
            expires_at: (minted_at + chrono::Duration::seconds(CODE_SECONDS))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            note: "Tray auth-only dialog: single use, expires 5 minutes after minting; only \
                   for an immediate redirect (mint again with --links --force-links)"
                .to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dialog_url_carries_the_code_service_and_environment() {
        let base = Url::parse("https://embedded.eu1.tray.io").unwrap();
        let url = dialog_url(&base, "acme", "c0de", "svc-1", "env 1").unwrap();
        assert_eq!(
            url.as_str(),
            "https://embedded.eu1.tray.io/external/auth/create/acme?code=c0de&serviceId=svc-1&serviceEnvironmentId=env+1"
        );
    }
}
