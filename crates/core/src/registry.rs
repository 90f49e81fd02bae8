//! The plugin registry: provider crates submit a [`ProviderPlugin`] with `inventory::submit!`;
//! the runner lists and builds them by name at runtime.

use crate::importer::{AuthImporter, BuildContext, ConfigError, ProviderLimits};

/// One provider, as registered by its crate:
///
/// ```text
/// inventory::submit! {
///     authport_core::ProviderPlugin {
///         name: "tray",
///         description: "Tray.ai Embedded: create end users' authentications",
///         limits: ProviderLimits { requests_per_second: 30.0, documented: true, burst: 50, default_concurrency: 8 },
///         build: build_importer,
///     }
/// }
/// ```
#[derive(Debug)]
pub struct ProviderPlugin {
    /// The `--provider` name: lower-case, unique.
    pub name: &'static str,
    /// One line for `authport providers`.
    pub description: &'static str,
    /// The vendor's documented limits: the engine's defaults for rate, burst and concurrency,
    /// known before the importer is built so the run's gate is configured once.
    pub limits: ProviderLimits,
    /// Builds the importer from config and environment (no network calls).
    pub build: fn(&BuildContext) -> Result<Box<dyn AuthImporter>, ConfigError>,
}

inventory::collect!(ProviderPlugin);

/// An unknown `--provider` name, with the valid ones.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown provider `{name}`; registered providers: {}", if valid.is_empty() { "(none)".to_owned() } else { valid.join(", ") })]
pub struct UnknownProvider {
    pub name: String,
    pub valid: Vec<&'static str>,
}

/// Every registered provider, sorted by name.
///
/// # Panics
/// When two crates register the same name: that is a build mistake, not a runtime condition.
pub fn providers() -> Vec<&'static ProviderPlugin> {
    let mut plugins: Vec<&'static ProviderPlugin> =
        inventory::iter::<ProviderPlugin>.into_iter().collect();
    plugins.sort_by_key(|p| p.name);
    for pair in plugins.windows(2) {
        assert!(
            pair[0].name != pair[1].name,
            "two providers are registered under the name `{}`; provider names must be unique",
            pair[0].name
        );
    }
    plugins
}

/// The sorted provider names.
pub fn provider_names() -> Vec<&'static str> {
    providers().into_iter().map(|p| p.name).collect()
}

/// Looks a provider up by name.
pub fn find_provider(name: &str) -> Result<&'static ProviderPlugin, UnknownProvider> {
    let plugins = providers();
    match plugins.iter().find(|p| p.name == name) {
        Some(plugin) => Ok(plugin),
        None => Err(UnknownProvider {
            name: name.to_owned(),
            valid: plugins.iter().map(|p| p.name).collect(),
        }),
    }
}
