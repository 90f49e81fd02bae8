//! Apideck's side of `authport targets`: the connectors this application has for each unified
//! API of the built-in table (`GET /vault/connections?api=…`, no consumer), each the
//! `targets.apideck` pair (`unified_api`, `service_id`) a record or `[apideck.services.<slug>]`
//! names. Unified APIs outside the built-in table are not listed (Vault documents no call
//! that lists every unified API).

use std::collections::BTreeSet;

use async_trait::async_trait;
use authport_core::{BuildContext, ConfigError, Offer, ProviderError, TargetCatalog};

use crate::client::VaultClient;
use crate::config::ApideckConfig;
use crate::defaults::BUILT_IN_TARGETS;

#[derive(Debug)]
pub struct ApideckOffers {
    client: VaultClient,
}

/// Builds the catalogue from the `[apideck]` section and the environment (no network IO).
pub fn build_catalog(context: &BuildContext) -> Result<Box<dyn TargetCatalog>, ConfigError> {
    let config = ApideckConfig::from_sources(&context.config, &context.env)?;
    Ok(Box::new(ApideckOffers {
        client: VaultClient::new(&config, context)?,
    }))
}

#[async_trait]
impl TargetCatalog for ApideckOffers {
    async fn offers(&self, service: Option<&str>) -> Result<Vec<Offer>, ProviderError> {
        // A record's service slug, or the connector's own id, selects.
        let wanted = |service_id: &str| {
            service.is_none_or(|slug| {
                slug == service_id
                    || BUILT_IN_TARGETS
                        .iter()
                        .any(|row| row.service == slug && row.service_id == service_id)
            })
        };
        let apis: BTreeSet<&str> = BUILT_IN_TARGETS.iter().map(|row| row.unified_api).collect();
        let mut offers = Vec::new();
        for api in apis {
            for connection in self.client.list_connections(api).await? {
                let Some(service_id) = connection.service_id else {
                    continue;
                };
                if !wanted(&service_id) {
                    continue;
                }
                let state = connection.state.as_deref().unwrap_or("unknown state");
                offers.push(Offer {
                    service: Some(service_id.clone()),
                    kind: "connector",
                    name: format!("{api}/{service_id}"),
                    detail: format!(
                        "targets.apideck.unified_api = {api}, service_id = {service_id} ({state})"
                    ),
                });
            }
        }
        offers.sort();
        offers.dedup();
        Ok(offers)
    }
}
