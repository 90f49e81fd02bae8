//! Discovery: what Tray offers for each (service, environment) the input needs, read once per
//! run with the master token and then used by the pure `map`. Connectors are listed once; each
//! service's environments once per service version; each selection is resolved once.

use std::sync::Arc;

use authport_core::{DiscoveryKey, MappingError, ProviderError};
use authport_kit::{DiscoveryCache, Effect, Method};

use crate::client::{Resource, RestCall, TrayClient, master_failure};
use crate::config::TrayConfig;
use crate::map::{ResolvedTarget, Selection, TrayTarget, select};
use crate::wire::{Connector, ConnectorList, EnvironmentList, ServiceEnvironment};

/// A selection's answer: a target to map to, or the located reason the records of that
/// selection cannot be mapped.
type Resolution = Result<Arc<ResolvedTarget>, MappingError>;

#[derive(Debug, Default)]
pub struct Catalogue {
    connectors: DiscoveryCache<(), Vec<Connector>>,
    environments: DiscoveryCache<(String, i64), Vec<ServiceEnvironment>>,
    targets: DiscoveryCache<Selection, Resolution>,
}

/// `"9.10"` > `"9.2"`: compare connector versions numerically, part by part.
fn version_key(version: &str) -> Vec<u64> {
    version.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

impl Catalogue {
    /// Resolves every key's selection (read-only calls with the master token).
    pub async fn discover(
        &self,
        client: &TrayClient,
        config: &TrayConfig,
        keys: &[DiscoveryKey],
    ) -> Result<(), ProviderError> {
        self.connectors(client).await?;
        for key in keys {
            // A bad `targets.tray` is the record's problem: `map` reports it, located.
            let Ok(target) = TrayTarget::parse(key.target.as_ref()) else {
                continue;
            };
            let selection = select(&key.service, &target, config);
            // The answer, a target or a mapping error, is cached for `map`.
            let _answer = self
                .targets
                .get_or_discover(&selection, || async {
                    self.resolve(client, &selection).await.map(Ok)
                })
                .await?;
        }
        Ok(())
    }

    /// What discovery found for a selection (for the synchronous `map`).
    pub fn target(&self, selection: &Selection) -> Result<Arc<ResolvedTarget>, MappingError> {
        let not_discovered = || {
            MappingError::new(
                "service",
                format!(
                    "tray service {} was not discovered for this run",
                    selection.service_name
                ),
            )
        };
        match self.targets.get(selection) {
            Some(Ok(resolution)) => resolution.as_ref().clone(),
            Some(Err(_)) | None => Err(not_discovered()),
        }
    }

    pub(crate) async fn connectors(
        &self,
        client: &TrayClient,
    ) -> Result<Arc<Vec<Connector>>, ProviderError> {
        let found = self
            .connectors
            .get_or_discover(&(), || async {
                let list: ConnectorList = client
                    .rest_json(
                        client.master(),
                        RestCall {
                            method: &Method::GET,
                            resource: Resource::Connectors,
                            body: None,
                            effect: Effect::Read,
                            operation: "list connectors",
                            secrets: &[],
                        },
                    )
                    .await
                    .map_err(master_failure)?;
                Ok::<_, ProviderError>(Ok(list.elements))
            })
            .await?;
        found.map_err(ProviderError::rejected)
    }

    /// A service's environments; `Ok(Err(text))` when Tray has no such service version.
    pub(crate) async fn environments(
        &self,
        client: &TrayClient,
        service: &str,
        version: i64,
    ) -> Result<Result<Arc<Vec<ServiceEnvironment>>, String>, ProviderError> {
        self.environments
            .get_or_discover(&(service.to_owned(), version), || async {
                let answer = client
                    .rest_json::<EnvironmentList>(
                        client.master(),
                        RestCall {
                            method: &Method::GET,
                            resource: Resource::Environments { service, version },
                            body: None,
                            effect: Effect::Read,
                            operation: "list service environments",
                            secrets: &[],
                        },
                    )
                    .await;
                match answer {
                    Ok(list) => Ok(Ok(list.elements)),
                    Err(failure) if failure.is_not_found() => Ok(Err(format!(
                        "tray has no service {service} version {version}"
                    ))),
                    Err(failure) => Err(master_failure(failure)),
                }
            })
            .await
    }

    async fn resolve(
        &self,
        client: &TrayClient,
        selection: &Selection,
    ) -> Result<Resolution, ProviderError> {
        let connectors = self.connectors(client).await?;
        let name = &selection.service_name;
        let candidates = connectors
            .iter()
            .filter(|c| &c.service.name == name || &c.name == name)
            .filter(|c| {
                selection
                    .service_version
                    .is_none_or(|v| c.service.version == v)
            });
        // The service version of the highest connector version, unless pinned.
        let Some(connector) = candidates.max_by_key(|c| version_key(&c.version)) else {
            let pinned = selection
                .service_version
                .map(|v| format!(" version {v}"))
                .unwrap_or_default();
            return Ok(Err(MappingError::new(
                "service",
                format!("tray has no connector for service {name}{pinned}"),
            )));
        };
        let service = &connector.service;
        let environments = match self
            .environments(client, &service.name, service.version)
            .await?
        {
            Ok(environments) => environments,
            Err(message) => return Ok(Err(MappingError::new("service", message))),
        };
        let wanted = &selection.environment;
        let Some(environment) = environments
            .iter()
            .find(|e| &e.title == wanted || &e.id == wanted)
        else {
            let available: Vec<&str> = environments.iter().map(|e| e.title.as_str()).collect();
            return Ok(Err(MappingError::new(
                "targets.tray.service_environment",
                format!(
                    "tray service {} version {} has no environment `{wanted}`; available: {}",
                    service.name,
                    service.version,
                    available.join(", ")
                ),
            )));
        };
        Ok(Ok(Arc::new(ResolvedTarget::new(
            service.name.clone(),
            connector.title.clone(),
            service.version,
            environment.clone(),
        ))))
    }
}

/// The client binding check ([`authport_kit::check_binding`]): Tray does not expose its OAuth
/// clients, so the client is `[tray.oauth_clients]`; the scopes are `[tray.oauth_scopes]`, else
/// the service environment's `scopes` when it lists any.
pub fn check_binding(
    record: &authport_core::CredentialRecord,
    resolved: &ResolvedTarget,
    config: &TrayConfig,
) -> Result<Vec<String>, MappingError> {
    let offered = resolved.environment.scope_names();
    let environment = authport_kit::TargetClient {
        client_id: None,
        scopes: (!offered.is_empty()).then_some(offered),
    };
    let client = config
        .binding
        .target_client(&record.service, Some(&environment));
    authport_kit::check_binding(record, &client, "tray")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connector_versions_compare_numerically() {
        assert!(version_key("9.10") > version_key("9.2"));
        assert!(version_key("10.0") > version_key("9.9"));
        assert_eq!(version_key("x"), vec![0]);
    }
}
