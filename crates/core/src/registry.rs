//! The plugin registry: provider crates submit one [`ProviderPlugin`] with `inventory::submit!`;
//! the runner lists and builds them by name at runtime. The plugin is the one place a provider
//! declares what it can do: import (always), and the optional [`Capabilities`] (export, webhooks,
//! reconnect links, target catalogue).

use std::any::Any;

use crate::catalog::TargetCatalog;
use crate::export::AuthExporter;
use crate::importer::{AuthImporter, BuildContext, ConfigError, ProviderLimits};
use crate::links::ReconnectLinks;
use crate::webhook::WebhookSource;

/// One provider, as registered by its crate:
///
/// ```text
/// inventory::submit! {
///     authport_core::ProviderPlugin {
///         name: "tray",
///         description: "Tray.ai Embedded: create end users' authentications",
///         limits: ProviderLimits { rate: VendorRate::Documented { per_second: 30.0, burst: 50 }, default_concurrency: 8 },
///         build: build_importer,
///         capabilities: Capabilities {
///             export: Some(ExportCapability { description: "...", build: build_exporter }),
///             ..Capabilities::NONE
///         },
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
    /// What else the provider can do.
    pub capabilities: Capabilities,
}

/// A provider's optional capabilities, each `None` when it lacks it.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    /// A migration source: `authport export` and `migrate --from`.
    pub export: Option<ExportCapability>,
    /// Signed webhooks about its connections: `authport webhooks`.
    pub webhooks: Option<WebhooksCapability>,
    /// Reconnect links for end users: `authport reconnect --links`.
    pub links: Option<LinksCapability>,
    /// What the target offers: `authport targets`.
    pub catalog: Option<CatalogCapability>,
}

impl Capabilities {
    /// What a provider can do, in the words `authport providers` prints: `import` always, then
    /// each capability it declares, by the command that uses it.
    pub fn words(&self) -> Vec<&'static str> {
        let declared = [
            (self.export.is_some(), "export"),
            (self.webhooks.is_some(), "webhooks"),
            (self.links.is_some(), "links"),
            (self.catalog.is_some(), "targets"),
        ];
        std::iter::once("import")
            .chain(
                declared
                    .into_iter()
                    .filter(|(has, _)| *has)
                    .map(|(_, word)| word),
            )
            .collect()
    }

    /// Import only.
    pub const NONE: Capabilities = Capabilities {
        export: None,
        webhooks: None,
        links: None,
        catalog: None,
    };
}

/// Export: builds the exporter (paced by the plugin's `limits`).
#[derive(Debug, Clone, Copy)]
pub struct ExportCapability {
    /// One line for `authport providers`.
    pub description: &'static str,
    /// Builds the exporter from config and environment (no network calls).
    pub build: fn(&BuildContext) -> Result<Box<dyn AuthExporter>, ConfigError>,
}

/// Webhooks: builds the source that verifies and parses deliveries (no network calls).
#[derive(Debug, Clone, Copy)]
pub struct WebhooksCapability {
    pub build: fn(&BuildContext) -> Result<Box<dyn WebhookSource>, ConfigError>,
}

/// Reconnect links: minted by the importer itself (it holds the discovered catalogue the link
/// ids come from), so the capability is a view of the built importer. Declare it with
/// [`links_of`]: `LinksCapability { of: links_of::<MyImporter> }`.
#[derive(Debug, Clone, Copy)]
pub struct LinksCapability {
    pub of: for<'a> fn(&'a dyn AuthImporter) -> Option<&'a dyn ReconnectLinks>,
}

/// The [`LinksCapability`] view for an importer of type `T` (`None` for another type).
pub fn links_of<T: AuthImporter + ReconnectLinks>(
    importer: &dyn AuthImporter,
) -> Option<&dyn ReconnectLinks> {
    let any: &dyn Any = importer;
    any.downcast_ref::<T>()
        .map(|links| links as &dyn ReconnectLinks)
}

/// The target catalogue: builds it from config and environment (no network calls).
#[derive(Debug, Clone, Copy)]
pub struct CatalogCapability {
    pub build: fn(&BuildContext) -> Result<Box<dyn TargetCatalog>, ConfigError>,
}

impl ProviderPlugin {
    /// The reconnect links of an importer this plugin built, when the provider declares them.
    pub fn links<'a>(&self, importer: &'a dyn AuthImporter) -> Option<&'a dyn ReconnectLinks> {
        self.capabilities
            .links
            .and_then(|links| (links.of)(importer))
    }
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

/// An unknown provider, or one that lacks a capability, with the names that have it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("provider `{name}` cannot {what}; providers that can: {}", if valid.is_empty() { "(none)".to_owned() } else { valid.join(", ") })]
pub struct Lacks {
    pub name: String,
    /// What it cannot do, as a verb phrase (`export`, `receive webhooks`, `list its targets`).
    pub what: &'static str,
    pub valid: Vec<&'static str>,
}

/// The names of the providers whose plugin has the capability `has` picks, sorted.
pub fn names_with<T>(has: impl Fn(&Capabilities) -> Option<T>) -> Vec<&'static str> {
    providers()
        .into_iter()
        .filter(|plugin| has(&plugin.capabilities).is_some())
        .map(|plugin| plugin.name)
        .collect()
}

/// The capability `has` picks of provider `name`, or which providers have it.
pub fn find_capability<T>(
    name: &str,
    what: &'static str,
    has: impl Fn(&Capabilities) -> Option<T>,
) -> Result<T, Lacks> {
    providers()
        .into_iter()
        .find(|plugin| plugin.name == name)
        .and_then(|plugin| has(&plugin.capabilities))
        .ok_or_else(|| Lacks {
            name: name.to_owned(),
            what,
            valid: names_with(&has),
        })
}

/// The export capability of provider `name`.
pub fn find_exporter(name: &str) -> Result<ExportCapability, Lacks> {
    find_capability(name, "export", |c| c.export)
}

/// The webhook capability of provider `name`.
pub fn find_webhooks(name: &str) -> Result<WebhooksCapability, Lacks> {
    find_capability(name, "receive webhooks", |c| c.webhooks)
}

/// The catalogue capability of provider `name`.
pub fn find_catalog(name: &str) -> Result<CatalogCapability, Lacks> {
    find_capability(name, "list its targets", |c| c.catalog)
}
