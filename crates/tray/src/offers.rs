//! Tray's side of `authport targets`: the services its connectors offer (`GET /connectors`)
//! and, for one service (`--service`), its environments (`GET /services/{name}/{version}/
//! environments`), whose title or id `targets.tray.service_environment` names. Environments
//! are read for one service only: a call per service of Tray's whole catalogue would be
//! hundreds of reads.

use std::collections::BTreeMap;

use async_trait::async_trait;
use authport_core::{BuildContext, ConfigError, Offer, ProviderError, TargetCatalog};

use crate::catalogue::Catalogue;
use crate::client::TrayClient;
use crate::config::TrayConfig;
use crate::wire::Connector;

#[derive(Debug)]
pub struct TrayOffers {
    client: TrayClient,
    catalogue: Catalogue,
}

/// Builds the catalogue from the `[tray]` section and the environment (no network IO).
pub fn build_catalog(context: &BuildContext) -> Result<Box<dyn TargetCatalog>, ConfigError> {
    let config = TrayConfig::from_context(context)?;
    Ok(Box::new(TrayOffers {
        client: TrayClient::new(&config, context)?,
        catalogue: Catalogue::default(),
    }))
}

/// `"9.10"` > `"9.2"`, as discovery compares connector versions.
fn version_key(version: &str) -> Vec<u64> {
    version.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

#[async_trait]
impl TargetCatalog for TrayOffers {
    async fn offers(&self, service: Option<&str>) -> Result<Vec<Offer>, ProviderError> {
        let connectors = self.catalogue.connectors(&self.client).await?;
        // Each service once, at the version of its highest connector (what discovery picks).
        let mut latest: BTreeMap<&str, &Connector> = BTreeMap::new();
        for connector in connectors.iter() {
            let name = connector.service.name.as_str();
            if service.is_some_and(|wanted| wanted != name && wanted != connector.name) {
                continue;
            }
            let newer = latest
                .get(name)
                .is_none_or(|seen| version_key(&connector.version) > version_key(&seen.version));
            if newer {
                latest.insert(name, connector);
            }
        }
        let mut offers = Vec::new();
        for (name, connector) in &latest {
            offers.push(Offer {
                service: Some((*name).to_owned()),
                kind: "service",
                name: (*name).to_owned(),
                detail: format!(
                    "version {} (connector {} {}); record `service`",
                    connector.service.version, connector.name, connector.version
                ),
            });
            if service.is_none() {
                continue;
            }
            let environments = self
                .catalogue
                .environments(&self.client, name, connector.service.version)
                .await?;
            for environment in environments.iter().flat_map(|list| list.iter()) {
                offers.push(Offer {
                    service: Some((*name).to_owned()),
                    kind: "service environment",
                    name: environment.title.clone(),
                    detail: format!(
                        "targets.tray.service_environment (id {}, {})",
                        environment.id, environment.authentication_type
                    ),
                });
            }
        }
        Ok(offers)
    }
}
