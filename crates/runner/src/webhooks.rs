//! `authport webhooks`: a long-running receiver of a provider's webhooks that stores what they
//! say about the migration's connections in the event store beside the state file
//! (`<state>.events`, see `authport_engine::events`). It serves whatever [`WebhookSource`] the
//! provider's plugin declares (`authport providers` lists `webhooks` for those); it knows no
//! vendor: the source checks the signature and reduces the body to a typed event.
//!
//! It starts only on an existing authport state (`--state`), so it never acknowledges deliveries
//! it cannot keep, and listens on loopback unless `--allow-public-listen` (it speaks plain HTTP:
//! put it behind a TLS reverse proxy). The HTTP side is [`crate::serve`]: header and body
//! deadlines, a connection cap and a bounded stop.
//!
//! Every delivery is answered at once: 401 for a missing or wrong signature; 400 for a wrong
//! content type or a signed body the source cannot use (malformed JSON, no event id, type or
//! readable date where the vendor signs one), or dated more than 7 days ago or more than 5
//! minutes ahead; 413 over 1 MiB; 408 for a body slower than 10 s; 200 otherwise (stored,
//! duplicate, or about a connection this migration does not own). Only the signed body decides.
//! Logs name the event's kind and the outcome, never a value of the payload.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use authport_core::{
    EnvSnapshot, InMemoryMemo, Ungated, WebhookHeaders, WebhookRefusal, WebhookSource,
};
use authport_engine::events::{OutsideWindow, Upgrade, require_state_file};
use authport_engine::{Delivery, EventStore, Exit, Recorded, owned_in_journal};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use clap::Args;
use serde_json::{Value, json};

use crate::config::ConfigFile;
use crate::serve::{LimitArgs, Limits, RefusalLog, StopSignals};

#[derive(Debug, Args)]
pub struct WebhooksArgs {
    /// Provider whose webhooks to receive (those `authport providers` lists with `webhooks`).
    #[arg(long, short = 'p', value_name = "NAME")]
    pub provider: String,
    /// TOML config file: the provider's section (what verifies its deliveries: Apideck's API
    /// key and app id; Nango's secret key, with NANGO_WEBHOOK_SECRET in the environment).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080 behind a TLS reverse proxy; port 0 picks one.
    /// Loopback only, unless --allow-public-listen. A client gets 10 s for a request head (or
    /// between requests) and 10 s for its body; at most 512 connections are open.
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Listen on a non-loopback address. The receiver speaks plain HTTP: only behind a TLS
    /// reverse proxy or on a private network.
    #[arg(long)]
    pub allow_public_listen: bool,
    /// The state file of the migration (it must exist: run `import --state` first); events
    /// go to `<FILE>.events` beside it. Events dated more than 7 days ago are refused.
    #[arg(long, value_name = "FILE")]
    pub state: PathBuf,
    /// Bind an event store made for another target (provider, endpoint or account) to this one.
    #[arg(long)]
    pub allow_target_change: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// The webhook source of provider `name`, built from its config section and `env` (no network
/// IO); `Ok(None)` when the provider declares no webhooks. Import and `status` use it to key
/// connections and upgrade an older event store, which needs no signing secret.
pub fn source_for(
    name: &str,
    config: &ConfigFile,
    env: &EnvSnapshot,
) -> anyhow::Result<Option<Box<dyn WebhookSource>>> {
    let Ok(capability) = authport_core::find_webhooks(name) else {
        return Ok(None);
    };
    // A source makes no requests and keeps no notes.
    let context = config.build_context(
        name,
        env,
        Arc::new(InMemoryMemo::default()),
        Arc::new(Ungated),
    );
    let source =
        (capability.build)(&context).map_err(|e| anyhow::anyhow!("provider `{name}`: {e}"))?;
    Ok(Some(source))
}

/// [`source_for`], for a process that may also find an older event store beside the state: the
/// source that upgrades it (`None`: the provider declares no webhooks, or its settings are
/// missing; an older store is then refused with a message that says how to upgrade it).
pub fn upgrade_source(
    name: &str,
    config: &ConfigFile,
    env: &EnvSnapshot,
) -> Option<Box<dyn WebhookSource>> {
    match source_for(name, config, env) {
        Ok(source) => source,
        Err(error) => {
            tracing::debug!("no webhook source to read the event store with: {error:#}");
            None
        }
    }
}

/// Opens the event store beside `state` with `source` (when there is one) to upgrade an older
/// one in place.
pub fn open_store(
    state: &Path,
    provider: &str,
    source: Option<&dyn WebhookSource>,
) -> anyhow::Result<EventStore> {
    match source {
        Some(source) => EventStore::open_upgrading(state, Upgrade { provider, source }),
        None => EventStore::open(state),
    }
}

#[derive(Default)]
struct Counters {
    stored: AtomicU64,
    duplicate: AtomicU64,
    unknown: AtomicU64,
    rejected: AtomicU64,
}

struct Receiver {
    provider: &'static str,
    source: Box<dyn WebhookSource>,
    store: Arc<EventStore>,
    state_path: PathBuf,
    counters: Counters,
    log: Arc<RefusalLog>,
}

/// Runs the receiver until SIGTERM or Ctrl-C (a second one stops it at once, exit 130).
pub async fn webhooks(args: WebhooksArgs) -> anyhow::Result<Exit> {
    let plugin = authport_core::find_provider(&args.provider)
        .map_err(|e| crate::usage(anyhow::anyhow!("{e}")))?;
    authport_core::find_webhooks(plugin.name).map_err(|e| crate::usage(anyhow::anyhow!("{e}")))?;
    crate::serve::check_listen(args.listen, args.allow_public_listen, "the receiver")
        .map_err(|e| crate::usage(anyhow::anyhow!(e)))?;
    let names = authport_core::provider_names();
    let config = match &args.config {
        Some(path) => ConfigFile::load(path, &names).map_err(crate::usage)?,
        None => ConfigFile::default(),
    };
    let source = source_for(plugin.name, &config, &EnvSnapshot::from_process())
        .map_err(crate::usage)?
        .expect("the plugin declares webhooks");
    if let Some(missing) = source.missing_setting() {
        return Err(crate::usage(anyhow::anyhow!(
            "provider `{}`: {missing}",
            plugin.name
        )));
    }
    // Before anything is made beside it.
    require_state_file(&args.state)?;
    let store = open_store(&args.state, plugin.name, Some(source.as_ref()))?;
    store.bind(plugin.name, &source.identity(), args.allow_target_change)?;
    let receiver = Arc::new(Receiver {
        provider: plugin.name,
        source,
        store: Arc::new(store),
        state_path: args.state.clone(),
        counters: Counters::default(),
        log: Arc::new(RefusalLog::default()),
    });
    receiver.refresh_owners().await;

    // Listened to from now on, so a signal during the start is not lost.
    let signals = StopSignals::install().context("cannot listen for signals")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    // One line on stdout, so a supervisor (or a test) learns the port picked for `:0`.
    println!("authport webhooks: listening on http://{address}/");
    let app = axum::Router::new()
        .route("/", post(receive))
        .with_state(receiver.clone());
    let limits = args.limits.apply(Limits::DEFAULT);
    let stopped = crate::serve::serve(listener, app, limits, signals, receiver.log.clone()).await;
    let c = &receiver.counters;
    eprintln!(
        "webhooks: {} stored, {} duplicate, {} for connections not in this migration, {} rejected",
        c.stored.load(Ordering::Relaxed),
        c.duplicate.load(Ordering::Relaxed),
        c.unknown.load(Ordering::Relaxed),
        c.rejected.load(Ordering::Relaxed),
    );
    Ok(stopped.exit())
}

impl Receiver {
    /// Learns the connections the journal owns, once, at start. The journal is opened
    /// read-only and fails at once while a run holds it; runs publish their connections to the
    /// event store themselves (before and after the import). Reading it again later could make
    /// an import that starts at that instant find the journal busy, so it is not.
    async fn refresh_owners(self: &Arc<Self>) {
        let receiver = self.clone();
        let learnt = tokio::task::spawn_blocking(move || receiver.learn_owners()).await;
        match learnt {
            Ok(Ok(new)) if new > 0 => {
                tracing::info!(new, "learnt connections from the state file");
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::info!("state file not readable now (a run may hold it): {error:#}");
            }
            Err(error) => tracing::warn!("cannot read the state file: {error}"),
        }
    }

    fn learn_owners(&self) -> anyhow::Result<usize> {
        let owned = owned_in_journal(&self.state_path, self.provider, |target| {
            self.source.connection_key(target)
        })?;
        self.store.own(self.provider, &owned)
    }
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, axum::Json<Value>) {
    match handle(&receiver, &headers, &body).await {
        Ok(outcome) => (
            StatusCode::OK,
            axum::Json(json!({ "status": outcome.as_str() })),
        ),
        Err(refused) => {
            receiver.counters.rejected.fetch_add(1, Ordering::Relaxed);
            receiver.log.refused(
                refused.reason,
                &format!(
                    "webhook refused ({}): {}",
                    refused.status.as_u16(),
                    refused.message
                ),
            );
            (
                refused.status,
                axum::Json(json!({ "error": refused.message })),
            )
        }
    }
}

/// What became of an accepted delivery.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Stored,
    Duplicate,
    Unknown,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Stored => "stored",
            Outcome::Duplicate => "duplicate",
            Outcome::Unknown => "ignored",
        }
    }
}

/// A refused delivery: the answer, and the reason its log lines are rate-limited by.
struct Refused {
    status: StatusCode,
    reason: &'static str,
    message: String,
}

fn bad(reason: &'static str, message: impl Into<String>) -> Refused {
    Refused {
        status: StatusCode::BAD_REQUEST,
        reason,
        message: message.into(),
    }
}

impl From<WebhookRefusal> for Refused {
    fn from(refusal: WebhookRefusal) -> Self {
        Refused {
            status: StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_REQUEST),
            reason: refusal.reason,
            message: refusal.message,
        }
    }
}

async fn handle(receiver: &Receiver, headers: &HeaderMap, body: &[u8]) -> Result<Outcome, Refused> {
    if !is_json(headers) {
        return Err(bad(
            "content type",
            "the content type must be application/json",
        ));
    }
    let pairs = headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.to_str().ok()));
    receiver
        .source
        .verify(&WebhookHeaders::from_pairs(pairs), body)?;
    let event = receiver.source.parse(body)?;
    let delivery = Delivery::of(receiver.provider, event);
    let now = chrono::Utc::now();
    let store = receiver.store.clone();
    let to_store = delivery.clone();
    let recorded = tokio::task::spawn_blocking(move || store.record(&to_store, now)).await;
    let recorded = match recorded {
        Ok(Ok(recorded)) => recorded,
        Ok(Err(error)) => {
            tracing::error!("cannot store a webhook event: {error:#}");
            return Err(Refused {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                reason: "store",
                message: "the event store failed; deliver again".to_owned(),
            });
        }
        Err(_) => {
            return Err(Refused {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                reason: "store",
                message: "the receiver failed; deliver again".to_owned(),
            });
        }
    };
    let (outcome, counter) = match recorded {
        Recorded::Stored { latest } => {
            if !latest {
                tracing::info!(
                    kind = %delivery.kind,
                    "an event older than the connection's latest: kept in its history only"
                );
            }
            (Outcome::Stored, &receiver.counters.stored)
        }
        Recorded::Duplicate => (Outcome::Duplicate, &receiver.counters.duplicate),
        Recorded::Unknown => (Outcome::Unknown, &receiver.counters.unknown),
        Recorded::OutsideWindow(outside) => {
            let reason = match outside {
                OutsideWindow::TooOld => "too old",
                OutsideWindow::InTheFuture => "in the future",
            };
            return Err(bad(reason, outside.to_string()));
        }
    };
    counter.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(kind = %delivery.kind, outcome = outcome.as_str(), "webhook");
    Ok(outcome)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}
