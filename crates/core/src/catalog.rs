//! The optional capability behind `authport targets`: what a target offers that records
//! (`service`, `targets.<provider>`) and mapping errors ask the operator to name, read live
//! from the vendor. A provider registers a [`CatalogPlugin`] beside its `ProviderPlugin`, as
//! it registers an `ExporterPlugin`: a capability of its own, not a method every importer
//! must have (the plugin surface is redesigned in issue 18).

use std::fmt;

use async_trait::async_trait;

use crate::error::ProviderError;
use crate::importer::{BuildContext, ConfigError};

/// One thing the target offers. Never a secret: names, ids and display names only.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Offer {
    /// The service slug it serves (`slack`), when it serves one.
    pub service: Option<String>,
    /// What it is, in the vendor's word (`integration`, `connector`, `service environment`).
    pub kind: &'static str,
    /// The name a record or the config gives to choose it.
    pub name: String,
    /// Where it is named (`targets.nango.provider_config_key`), and anything else worth a word.
    pub detail: String,
}

#[async_trait]
pub trait TargetCatalog: Send + Sync + fmt::Debug {
    /// Everything the target offers (read-only calls), or only what serves `service`.
    async fn offers(&self, service: Option<&str>) -> Result<Vec<Offer>, ProviderError>;
}

/// A provider's catalogue, registered with `inventory::submit!`.
#[derive(Debug)]
pub struct CatalogPlugin {
    /// The `--provider` name.
    pub name: &'static str,
    /// Builds the catalogue from config and environment (no network calls).
    pub build: fn(&BuildContext) -> Result<Box<dyn TargetCatalog>, ConfigError>,
}

inventory::collect!(CatalogPlugin);

/// The catalogue of a provider, if it registered one.
pub fn find_catalog(name: &str) -> Option<&'static CatalogPlugin> {
    inventory::iter::<CatalogPlugin>
        .into_iter()
        .find(|plugin| plugin.name == name)
}

/// The names of the providers that can list their targets, sorted.
pub fn catalog_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = inventory::iter::<CatalogPlugin>
        .into_iter()
        .map(|plugin| plugin.name)
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}
