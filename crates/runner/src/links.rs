//! `authport links serve` and `authport links revoke`: the durable reconnect-link broker.
//!
//! `serve` builds the provider's importer (as the other commands do), requires its reconnect
//! links capability, opens the links store beside the state (`<state>.links`, see
//! `authport_engine::links_store`) and serves `authport_links::router` through
//! [`crate::serve`] (the webhook receiver's hardening: loopback unless
//! `--allow-public-listen`, timeouts, a connection cap, a bounded stop). GET shows the link's
//! page and never mints; POST mints one vendor link with the provider's `ReconnectLinks::mint`
//! and answers 303 to it. Revocations are read from the store on every request, so a
//! `links revoke` while the broker runs takes effect at once.
//!
//! Nothing here logs a token or a vendor URL: log lines name the provider, the service and the
//! outcome (a refusal: the provider error's kind only).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use async_trait::async_trait;
use authport_core::{AuthImporter, EnvSnapshot, InMemoryMemo, Owner, ProviderPlugin};
use authport_engine::links_store::{LinkEvent, LinksStore};
use authport_engine::{Exit, RateChoice, RunGate};
use authport_links::{Broker, LinkClaims, LinkKey, MintRefused, Revocation, Visit};
use clap::{Args, Subcommand};

use crate::config::ConfigFile;
use crate::serve::{LimitArgs, Limits, RefusalLog, StopSignals};

#[derive(Debug, Subcommand)]
pub enum LinksCommand {
    /// Serve the broker links `reconnect --links --broker URL` wrote, until SIGTERM or
    /// Ctrl-C: a GET shows a page with a Reconnect button (it never mints), a POST mints the
    /// vendor's link and redirects to it.
    #[command(after_help = examples::SERVE)]
    Serve(ServeArgs),
    /// Revoke an owner's broker links (all of them, or one service's): they answer 410 from
    /// now on, even while `links serve` runs.
    #[command(after_help = examples::REVOKE)]
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Provider whose reconnect links to mint (those `authport providers` lists with `links`).
    #[arg(long, short = 'p', value_name = "NAME")]
    pub provider: String,
    /// The state file of the migration (it must exist); the links are in `<FILE>.links`.
    #[arg(long, value_name = "FILE")]
    pub state: PathBuf,
    /// Address to listen on, e.g. 127.0.0.1:8090 behind a TLS reverse proxy; port 0 picks
    /// one. Loopback only, unless --allow-public-listen.
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// TOML config file: the provider's section (what mints its links).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Listen on a non-loopback address. The broker speaks plain HTTP: only behind a TLS
    /// reverse proxy.
    #[arg(long)]
    pub allow_public_listen: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The state file of the migration; the revocation goes to `<FILE>.links`.
    #[arg(long, value_name = "FILE")]
    pub state: PathBuf,
    /// The owner whose links to revoke, as the input names it.
    #[arg(long, value_name = "ID")]
    pub owner: String,
    /// Only this service's link (default: all the owner's).
    #[arg(long, value_name = "S")]
    pub service: Option<String>,
    /// Only this provider's links (default: every provider that issued the owner a link).
    #[arg(long, short = 'p', value_name = "NAME")]
    pub provider: Option<String>,
}

pub(crate) mod examples {
    pub const LINKS: &str = "\
Examples:
  authport links serve --provider apideck --state run.db --listen 127.0.0.1:8090
  authport links revoke --state run.db --owner user-42";
    pub const SERVE: &str = "\
Examples:
  authport links serve --provider apideck --state run.db --listen 127.0.0.1:8090";
    pub const REVOKE: &str = "\
Examples:
  authport links revoke --state run.db --owner user-42
  authport links revoke --state run.db --owner user-42 --service slack --provider tray";
}

pub async fn links(command: LinksCommand) -> anyhow::Result<Exit> {
    match command {
        LinksCommand::Serve(args) => serve(args).await,
        LinksCommand::Revoke(args) => revoke(&args),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<Exit> {
    let plugin = authport_core::find_provider(&args.provider)
        .map_err(|e| crate::usage(anyhow::anyhow!("{e}")))?;
    crate::serve::check_listen(args.listen, args.allow_public_listen, "the broker")
        .map_err(|e| crate::usage(anyhow::anyhow!(e)))?;
    // The state first: nothing is built for a migration that does not exist.
    let store = LinksStore::open(&args.state)?;
    let names = authport_core::provider_names();
    let config = match &args.config {
        Some(path) => ConfigFile::load(path, &names).map_err(crate::usage)?,
        None => ConfigFile::default(),
    };
    let importer = build(plugin, &config)?;
    if plugin.links(importer.as_ref()).is_none() {
        return Err(crate::usage(anyhow::anyhow!(
            "provider `{}` cannot mint reconnect links",
            plugin.name
        )));
    }
    let key = store.key()?;
    let broker = Arc::new(HostBroker {
        plugin,
        importer,
        store,
        key,
    });

    // Listened to from now on, so a signal during the start is not lost.
    let signals = StopSignals::install().context("cannot listen for signals")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    // One line on stdout, so a supervisor (or a test) learns the port picked for `:0`.
    println!("authport links: listening on http://{address}/");
    let app = authport_links::router(broker);
    // A form is under 1 KiB (the router refuses more); the rest as for webhooks.
    let limits = args.limits.apply(Limits {
        max_body: 16 * 1024,
        ..Limits::DEFAULT
    });
    let stopped = crate::serve::serve(
        listener,
        app,
        limits,
        signals,
        Arc::new(RefusalLog::default()),
    )
    .await;
    Ok(stopped.exit())
}

/// The provider's importer, paced at the vendor's default rate. No journal: its memo is in
/// memory (an import may hold the state file's lock while the broker runs).
fn build(
    plugin: &'static ProviderPlugin,
    config: &ConfigFile,
) -> anyhow::Result<Arc<dyn AuthImporter>> {
    let gate = RunGate::new();
    authport_engine::pacing(&plugin.limits, RateChoice::VendorDefault, None).configure(&gate);
    let context = config.build_context(
        plugin.name,
        &EnvSnapshot::from_process(),
        Arc::new(InMemoryMemo::default()),
        gate,
    );
    let importer = (plugin.build)(&context)
        .map_err(|e| crate::usage(anyhow::anyhow!("provider `{}`: {e}", plugin.name)))?;
    Ok(Arc::from(importer))
}

/// The broker's host: the links store and the provider's reconnect links.
struct HostBroker {
    plugin: &'static ProviderPlugin,
    importer: Arc<dyn AuthImporter>,
    store: LinksStore,
    key: LinkKey,
}

impl HostBroker {
    fn journal(&self, claims: &LinkClaims, what: LinkEvent) {
        if let Err(error) = self.store.journal(claims, what, chrono::Utc::now()) {
            tracing::warn!("cannot journal a link {}: {error:#}", what.as_str());
        }
    }
}

/// The journal's word for a GET's outcome. Pure.
fn visit_event(visit: Visit) -> LinkEvent {
    match visit {
        Visit::Shown => LinkEvent::Shown,
        Visit::Expired => LinkEvent::Expired,
        Visit::Revoked => LinkEvent::Revoked,
    }
}

#[async_trait]
impl Broker for HostBroker {
    fn key(&self) -> &LinkKey {
        &self.key
    }

    fn now(&self) -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn is_revoked(&self, claims: &LinkClaims) -> bool {
        match self.store.revocations() {
            Ok(revocations) => authport_links::is_revoked(&revocations, claims),
            Err(error) => {
                // Fail closed: a link that may be revoked is not served.
                tracing::error!("cannot read the revocations: {error:#}");
                true
            }
        }
    }

    fn owner_name(&self, claims: &LinkClaims) -> Option<String> {
        self.store
            .issued(&claims.provider, &claims.owner_id, &claims.service)
            .ok()
            .flatten()
            .and_then(|issued| issued.owner_name)
    }

    async fn clicked(&self, claims: &LinkClaims, visit: Visit) {
        let what = visit_event(visit);
        tracing::info!(service = %claims.service, "link {}", what.as_str());
        self.journal(claims, what);
    }

    async fn mint(&self, claims: &LinkClaims) -> Result<String, MintRefused> {
        let refused = |why: &str| {
            tracing::warn!(service = %claims.service, "no vendor link minted: {why}");
            self.journal(claims, LinkEvent::Refused);
            MintRefused
        };
        if claims.provider != self.plugin.name {
            return Err(refused("the link is for another provider"));
        }
        let issued = match self
            .store
            .issued(&claims.provider, &claims.owner_id, &claims.service)
        {
            Ok(Some(issued)) => issued,
            Ok(None) => return Err(refused("the links store has no such link")),
            Err(error) => {
                tracing::error!("cannot read the links store: {error:#}");
                return Err(refused("the links store could not be read"));
            }
        };
        let Some(links) = self.plugin.links(self.importer.as_ref()) else {
            return Err(refused("the provider cannot mint reconnect links"));
        };
        let owner = Owner {
            id: issued.claims.owner_id.clone(),
            name: issued.owner_name.clone(),
            email: issued.owner_email.clone(),
        };
        match links.mint(&owner, &[issued.vendor_ids]).await {
            Ok(link) => {
                tracing::info!(service = %claims.service, "vendor link minted");
                self.journal(claims, LinkEvent::Minted);
                Ok(link.url)
            }
            // The kind only: a provider's message may quote what the vendor answered.
            Err(error) => Err(refused(&format!("the vendor refused ({:?})", error.kind()))),
        }
    }
}

/// Stores the revocation(s) and prints how many issued links they cover.
fn revoke(args: &RevokeArgs) -> anyhow::Result<Exit> {
    if let Some(provider) = &args.provider {
        authport_core::find_provider(provider).map_err(|e| crate::usage(anyhow::anyhow!("{e}")))?;
    }
    let store = LinksStore::open(&args.state)?;
    let providers = match &args.provider {
        Some(provider) => vec![provider.clone()],
        None => store.providers_of(&args.owner)?,
    };
    if providers.is_empty() {
        return Err(crate::usage(anyhow::anyhow!(
            "no link was issued to owner {:?}: give --provider to revoke links issued later",
            args.owner
        )));
    }
    let now = chrono::Utc::now();
    let mut covered = 0;
    for provider in providers {
        covered += store.revoke(
            &Revocation {
                provider,
                owner_id: args.owner.clone(),
                service: args.service.clone(),
            },
            now,
        )?;
    }
    println!("links revoke: {covered} issued links covered");
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_listen_needs_the_flag() {
        let public: SocketAddr = "0.0.0.0:8090".parse().unwrap();
        let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
        assert!(crate::serve::check_listen(loopback, false, "the broker").is_ok());
        assert!(crate::serve::check_listen(public, true, "the broker").is_ok());
        let refused = crate::serve::check_listen(public, false, "the broker").unwrap_err();
        assert!(refused.contains("--allow-public-listen"), "{refused}");
    }

    #[test]
    fn every_visit_is_journalled_in_its_own_word() {
        assert_eq!(visit_event(Visit::Shown).as_str(), "shown");
        assert_eq!(visit_event(Visit::Expired).as_str(), "expired");
        assert_eq!(visit_event(Visit::Revoked).as_str(), "revoked");
    }
}
