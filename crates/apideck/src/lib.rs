//! authport-apideck: imports end users' credentials into Apideck Vault as connections.
//!
//! Registration and re-exports only; see `config` (settings), `wire` (Apideck's JSON),
//! `target` (where a record goes, and the typed connection reference), `connector` (what
//! discovery learns), `consumers` (the run's consumer list, the bulk pre-existing check), `map`
//! and `expiry` (pure record -> import body), `client` (Vault's calls on the kit's HTTP path)
//! and `importer` (the [`AuthImporter`]).
//! Operator documentation: `docs/apideck.md`.

pub mod client;
pub mod config;
pub mod connector;
pub mod consumers;
pub mod defaults;
pub mod expiry;
pub mod importer;
pub mod map;
pub mod offers;
pub mod schema;
pub mod sessions;
pub mod target;
pub mod webhooks;
pub mod wire;

use authport_core::{AuthImporter, BuildContext, ConfigError, ProviderLimits, VendorRate};

pub use config::ApideckConfig;
pub use importer::ApideckImporter;
pub use target::{ApideckRef, PROVIDER};

/// Builds the importer from the `[apideck]` section and the environment (no network IO).
pub fn build_importer(context: &BuildContext) -> Result<Box<dyn AuthImporter>, ConfigError> {
    let config = ApideckConfig::from_sources(&context.config, &context.env)?;
    Ok(Box::new(ApideckImporter::new(config, context)?))
}

authport_core::inventory::submit! {
    authport_core::ProviderPlugin {
        name: "apideck",
        description: "Apideck Vault: import end users' connections (upsert per consumer)",
        // Apideck publishes no Vault rate limit: a conservative default.
        limits: ProviderLimits { rate: VendorRate::Undocumented { ceiling: 100.0 }, default_concurrency: 4 },
        build: build_importer,
        capabilities: authport_core::Capabilities {
            links: Some(authport_core::LinksCapability { of: authport_core::links_of::<ApideckImporter> }),
            catalog: Some(authport_core::CatalogCapability { build: offers::build_catalog }),
            webhooks: Some(authport_core::WebhooksCapability { build: webhooks::build_webhooks }),
            ..authport_core::Capabilities::NONE
        },
    }
}
