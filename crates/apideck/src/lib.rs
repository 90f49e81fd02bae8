//! authport-apideck: imports end users' credentials into Apideck Vault as connections.
//!
//! Registration and re-exports only; see `config` (settings), `wire` (Apideck's JSON), `map`
//! (pure record -> import body), `client` (HTTP) and `importer` (the [`AuthImporter`]).
//! Operator documentation: `docs/apideck.md`.

pub mod client;
pub mod config;
pub mod defaults;
pub mod importer;
pub mod map;
pub mod schema;
pub mod wire;

use authport_core::{AuthImporter, BuildContext, ConfigError, ProviderLimits};

pub use config::ApideckConfig;
pub use importer::ApideckImporter;
pub use map::PROVIDER;

/// Builds the importer from the `[apideck]` section and the environment (no network IO).
pub fn build_importer(context: &BuildContext) -> Result<Box<dyn AuthImporter>, ConfigError> {
    let config = ApideckConfig::from_sources(&context.config, &context.env)?;
    let importer = ApideckImporter::new(config, context.request_timeout)?;
    Ok(Box::new(importer.with_gate(context.gate.clone())))
}

authport_core::inventory::submit! {
    authport_core::ProviderPlugin {
        name: "apideck",
        description: "Apideck Vault: import end users' connections (upsert per consumer)",
        // Apideck publishes no Vault rate limit: a conservative default.
        limits: ProviderLimits { requests_per_second: 10.0, burst: 10, default_concurrency: 4 },
        build: build_importer,
    }
}
