//! The optional capability behind `authport targets`: what a target offers that records
//! (`service`, `targets.<provider>`) and mapping errors ask the operator to name, read live
//! from the vendor. A provider declares it as the `catalog` capability of its `ProviderPlugin`:
//! a capability of its own, not a method every importer must have.

use std::fmt;

use async_trait::async_trait;

use crate::error::ProviderError;

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
