//! authport-nango: imports end users' credentials into Nango as connections (the documented
//! upsert, `POST /connections`).
//!
//! Registration and re-exports only; see `config` (settings), `wire` (Nango's JSON), `target`
//! (the typed connection reference), `resolve` (which integration a record goes to), `map` and
//! `schema` (pure record -> upsert body, validated against the spec), `client` (Nango's calls
//! on the kit's HTTP path), `importer` (the [`AuthImporter`]) and `links` (reconnect links:
//! Connect sessions).
//! Operator documentation: `docs/nango.md`.

pub mod catalog;
pub mod client;
pub mod config;
pub mod export;
pub mod importer;
pub mod links;
pub mod map;
pub mod resolve;
pub mod schema;
pub mod target;
pub mod webhooks;
pub mod wire;

use authport_core::{AuthImporter, BuildContext, ConfigError, ProviderLimits, VendorRate};

pub use config::NangoConfig;
pub use importer::NangoImporter;
pub use target::{NangoRef, PROVIDER};

/// Burst above the steady rate.
const BURST: u32 = 5;

/// The free plan's documented limit, 200 requests per minute, as the engine's rate. A token
/// bucket sends at most `burst + rate × 60 s` in any minute, so the steady rate leaves room for
/// the burst: at most 200 requests in any minute, hence in any of Nango's fixed windows.
pub const LIMITS: ProviderLimits = ProviderLimits {
    rate: VendorRate::Documented {
        per_second: (config::FREE_PLAN_REQUESTS_PER_MINUTE - BURST) as f64 / 60.0,
        burst: BURST,
    },
    default_concurrency: 4,
};

/// Builds the importer from the `[nango]` section and the environment (no network IO).
pub fn build_importer(context: &BuildContext) -> Result<Box<dyn AuthImporter>, ConfigError> {
    let config = NangoConfig::from_sources(&context.config, &context.env)?;
    Ok(Box::new(NangoImporter::new(config, context)?))
}

authport_core::inventory::submit! {
    authport_core::ProviderPlugin {
        name: "nango",
        description: "Nango: import end users' connections (upsert per integration and connection id)",
        limits: LIMITS,
        build: build_importer,
        capabilities: authport_core::Capabilities {
            export: Some(authport_core::ExportCapability {
                description: "Nango: connections with their credentials (read with refresh_token=true)",
                build: export::build_exporter,
            }),
            catalog: Some(authport_core::CatalogCapability { build: catalog::build_catalog }),
            webhooks: Some(authport_core::WebhooksCapability { build: webhooks::build_webhooks }),
            links: Some(authport_core::LinksCapability {
                of: authport_core::links_of::<NangoImporter>,
            }),
        },
    }
}
