//! authport-tray: imports end users' existing authentications into Tray.ai Embedded.
//!
//! Registered as provider `tray`. See `docs/tray.md` for configuration and field rules.

pub mod adopt;
pub mod catalogue;
pub mod client;
pub mod config;
pub mod export;
pub mod importer;
pub mod links;
pub mod map;
pub mod offers;
pub mod schema;
pub mod solution;
pub mod solution_enable;
pub mod solution_state;
pub mod target;
pub mod users;
pub mod wire;

use authport_core::{AuthImporter, BuildContext, ConfigError, ProviderLimits, VendorRate};

pub use config::{Region, TrayConfig};
pub use importer::TrayImporter;

/// Builds the Tray importer (no network calls).
pub fn build(context: &BuildContext) -> Result<Box<dyn AuthImporter>, ConfigError> {
    Ok(Box::new(TrayImporter::new(context)?))
}

authport_core::inventory::submit! {
    authport_core::ProviderPlugin {
        name: "tray",
        description: "Tray.ai Embedded: create end users' authentications (REST core/v1 + GraphQL)",
        // Tray: 30 requests/second, bursts up to 50 (REST and GraphQL).
        limits: ProviderLimits { rate: VendorRate::Documented { per_second: 30.0, burst: 50 }, default_concurrency: 8 },
        build,
        capabilities: authport_core::Capabilities {
            export: Some(authport_core::ExportCapability {
                description: "Tray.ai Embedded: end users' authentications with their credentials (Get full authentication)",
                build: export::build_exporter,
            }),
            links: Some(authport_core::LinksCapability { of: authport_core::links_of::<TrayImporter> }),
            catalog: Some(authport_core::CatalogCapability { build: offers::build_catalog }),
            ..authport_core::Capabilities::NONE
        },
    }
}
