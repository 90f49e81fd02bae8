//! `authport webhooks`: a long-running receiver of a provider's webhooks (Apideck Vault events)
//! that stores what they say about the migration's connections in the event store beside the
//! state file (`<state>.events`, see `authport_engine::events`).
//!
//! It starts only on an existing authport state (`--state`), so it never acknowledges deliveries
//! it cannot keep, and listens on loopback unless `--allow-public-listen` (it speaks plain HTTP:
//! put it behind a TLS reverse proxy). The HTTP side is [`crate::serve`]: header and body
//! deadlines, a connection cap and a bounded stop.
//!
//! Every delivery is answered at once: 401 for a missing or wrong signature; 400 for a wrong
//! content type, malformed JSON, or a signed body without `event_id`, `event_type` or a
//! readable `occurred_at`, or dated more than 7 days ago or more than 5 minutes ahead; 413 over
//! 1 MiB; 408 for a body slower than 10 s; 200 otherwise (stored, duplicate, or about a
//! connection this migration does not own). Only the signed body decides: the unsigned
//! `x-apideck-event-type` and `x-apideck-idempotency-key` headers are not read. Logs name the
//! event type and the outcome, never a value of the payload.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use authport_apideck::webhooks::{self as apideck_webhooks, SIGNATURE_HEADER};
use authport_core::{EnvSnapshot, TargetIdentity, TargetRef};
use authport_engine::events::{OutsideWindow, require_state_file};
use authport_engine::{Delivery, EventStore, Exit, Recorded, owned_in_journal};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use clap::Args;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::config::ConfigFile;
use crate::serve::{LimitArgs, Limits, RefusalLog, StopSignals, Stopped};

#[derive(Debug, Args)]
pub struct WebhooksArgs {
    /// Provider whose webhooks to receive (apideck).
    #[arg(long, short = 'p', value_name = "NAME")]
    pub provider: String,
    /// TOML config file (`[apideck]`: the API key that signs deliveries, and the app id).
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

/// The Apideck connection key of a journal target ref, for providers that send webhooks.
pub fn connection_key_fn(provider: &str) -> Option<fn(&TargetRef) -> Option<String>> {
    (provider == authport_apideck::PROVIDER).then_some(apideck_webhooks::connection_key_of)
}

#[derive(Default)]
struct Counters {
    stored: AtomicU64,
    duplicate: AtomicU64,
    unknown: AtomicU64,
    rejected: AtomicU64,
}

struct Receiver {
    api_key: SecretString,
    store: Arc<EventStore>,
    state_path: PathBuf,
    counters: Counters,
    log: Arc<RefusalLog>,
}

/// Runs the receiver until SIGTERM or Ctrl-C (a second one stops it at once, exit 130).
pub async fn webhooks(args: WebhooksArgs) -> anyhow::Result<Exit> {
    if args.provider != authport_apideck::PROVIDER {
        return Err(crate::usage(anyhow::anyhow!(
            "webhooks are received for provider `apideck` only"
        )));
    }
    if !args.listen.ip().is_loopback() {
        if !args.allow_public_listen {
            return Err(crate::usage(anyhow::anyhow!(
                "--listen {} is not a loopback address: the receiver speaks plain HTTP, so run it \
                 on loopback behind a TLS reverse proxy (or give --allow-public-listen)",
                args.listen
            )));
        }
        tracing::warn!(
            "listening on {}, not loopback: the receiver speaks plain HTTP; expose it only through a TLS reverse proxy",
            args.listen
        );
    }
    let names = authport_core::provider_names();
    let config = match &args.config {
        Some(path) => ConfigFile::load(path, &names).map_err(crate::usage)?,
        None => ConfigFile::default(),
    };
    let apideck = authport_apideck::ApideckConfig::from_sources(
        &config.section(authport_apideck::PROVIDER),
        &EnvSnapshot::from_process(),
    )
    .map_err(|e| crate::usage(anyhow::anyhow!("provider `apideck`: {e}")))?;
    // Before anything is made beside it.
    require_state_file(&args.state)?;
    let store = EventStore::open(&args.state)?;
    let identity = TargetIdentity {
        endpoints: vec![apideck.api_base().to_owned()],
        account: Some(apideck.app_id.clone()),
        credential: apideck.api_key.clone(),
    };
    store.bind(
        authport_apideck::PROVIDER,
        &identity,
        args.allow_target_change,
    )?;
    let receiver = Arc::new(Receiver {
        api_key: apideck.api_key.clone(),
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
    Ok(match stopped {
        Stopped::Graceful => Exit::Ok,
        Stopped::GraceExpired { cut } => {
            tracing::warn!("{cut} connections were cut at the end of the grace period");
            Exit::Ok
        }
        Stopped::Interrupted => {
            tracing::warn!("stopped at once by a second signal");
            Exit::Interrupted
        }
    })
}

impl Receiver {
    /// Learns the connections the journal owns, once, at start. The journal is opened
    /// read-only and fails at once while a run holds it; runs publish their connections to the
    /// event store themselves (before and after the import). Reading it again later could make
    /// an import that starts at that instant find the journal busy, so it is not.
    async fn refresh_owners(&self) {
        let (path, store) = (self.state_path.clone(), self.store.clone());
        let learnt = tokio::task::spawn_blocking(move || learn_owners(&path, &store)).await;
        match learnt {
            Ok(Ok(Some(new))) if new > 0 => {
                tracing::info!(new, "learnt connections from the state file");
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::info!("state file not readable now (a run may hold it): {error:#}");
            }
            Err(error) => tracing::warn!("cannot read the state file: {error}"),
        }
    }
}

fn learn_owners(state_path: &Path, store: &EventStore) -> anyhow::Result<Option<usize>> {
    let provider = authport_apideck::PROVIDER;
    let owned = owned_in_journal(state_path, provider, apideck_webhooks::connection_key_of)?;
    Ok(Some(store.own(provider, &owned)?))
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

async fn handle(receiver: &Receiver, headers: &HeaderMap, body: &[u8]) -> Result<Outcome, Refused> {
    if !is_json(headers) {
        return Err(bad(
            "content type",
            "the content type must be application/json",
        ));
    }
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    apideck_webhooks::verify(&receiver.api_key, body, parsed.as_ref(), signature).map_err(|e| {
        Refused {
            status: StatusCode::UNAUTHORIZED,
            reason: "signature",
            message: e.to_string(),
        }
    })?;
    let parsed = parsed.ok_or_else(|| bad("malformed", "the body is not JSON"))?;
    let event =
        apideck_webhooks::parse_event(&parsed).map_err(|e| bad("malformed", e.to_string()))?;
    let delivery = to_delivery(&event)?;
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
                    event_type = %delivery.event_type,
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
    tracing::debug!(event_type = %delivery.event_type, outcome = outcome.as_str(), "webhook");
    Ok(outcome)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// The typed, non-secret fields the event store keeps, all from the signed body. An event
/// without an id (nothing to deduplicate on), a type (a header's is not signed) or a readable
/// date (nothing to order by) is refused.
fn to_delivery(event: &apideck_webhooks::ConnectionEvent) -> Result<Delivery, Refused> {
    let event_id = event
        .event_id
        .clone()
        .filter(|id| !id.is_empty() && id.len() <= 200)
        .ok_or_else(|| bad("no event id", "the event has no payload.event_id"))?;
    let event_type = event
        .event_type
        .clone()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("no event type", "the event has no payload.event_type"))?;
    let occurred_at = event.occurred_at_utc().ok_or_else(|| {
        bad(
            "no date",
            "the event has no payload.occurred_at in ISO 8601 (RFC 3339) form",
        )
    })?;
    let entity = event.entity.as_ref();
    Ok(Delivery {
        provider: authport_apideck::PROVIDER.to_owned(),
        event_id,
        connection_key: event.connection_key().unwrap_or_default(),
        event_type,
        occurred_at,
        state: entity.and_then(|e| e.state.clone()),
        health: entity.and_then(|e| e.health.clone()),
        last_refresh_failed_at: entity.and_then(|e| e.last_refresh_failed_at.clone()),
        connection_id: entity.and_then(|e| e.id.clone()),
    })
}
