//! Nango's side of `authport targets`: the environment's integrations (`GET /integrations`),
//! each the `provider_config_key` a record's `targets.nango` or `[nango.services.<slug>]`
//! names when a service has more than one.

use async_trait::async_trait;
use authport_core::{BuildContext, ConfigError, Offer, ProviderError, TargetCatalog};

use crate::client::NangoClient;
use crate::config::NangoConfig;

#[derive(Debug)]
pub struct NangoCatalog {
    client: NangoClient,
}

/// Builds the catalogue from the `[nango]` section and the environment (no network IO).
pub fn build_catalog(context: &BuildContext) -> Result<Box<dyn TargetCatalog>, ConfigError> {
    let config = NangoConfig::from_sources(&context.config, &context.env)?;
    Ok(Box::new(NangoCatalog {
        client: NangoClient::new(&config, context)?,
    }))
}

#[async_trait]
impl TargetCatalog for NangoCatalog {
    async fn offers(&self, service: Option<&str>) -> Result<Vec<Offer>, ProviderError> {
        let mut offers: Vec<Offer> = self
            .client
            .list_integrations()
            .await?
            .into_iter()
            .filter(|integration| service.is_none_or(|s| integration.provider == s))
            .map(|integration| Offer {
                service: Some(integration.provider),
                kind: "integration",
                detail: match integration.display_name {
                    Some(name) => format!("targets.nango.provider_config_key ({name})"),
                    None => "targets.nango.provider_config_key".to_owned(),
                },
                name: integration.unique_key,
            })
            .collect();
        offers.sort();
        Ok(offers)
    }
}
