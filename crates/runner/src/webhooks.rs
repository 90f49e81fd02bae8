//! `authport webhooks`: a long-running receiver of a provider's webhooks (Apideck Vault events)
//! that stores what they say about the migration's connections in the event store beside the
//! state file (`<state>.events`, see `authport_engine::events`).
//!
//! Every delivery is answered at once: 401 for a missing or wrong signature, 400 for a wrong
//! content type, malformed JSON or a missing idempotency key, 413 over 1 MiB, 200 otherwise
//! (stored, duplicate or about a connection this migration does not own). Logs name the event
//! type and the outcome, never a value of the payload.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use authport_apideck::webhooks::{
    self as apideck_webhooks, EVENT_TYPE_HEADER, IDEMPOTENCY_HEADER, SIGNATURE_HEADER,
};
use authport_core::{EnvSnapshot, TargetIdentity, TargetRef};
use authport_engine::{Delivery, EventStore, Exit, Recorded, owned_in_journal};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use clap::Args;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::config::ConfigFile;

/// Apideck's deliveries are small; anything larger is refused unread (413).
pub const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug, Args)]
pub struct WebhooksArgs {
    /// Provider whose webhooks to receive (apideck).
    #[arg(long, short = 'p', value_name = "NAME")]
    pub provider: String,
    /// TOML config file (`[apideck]`: the API key that signs deliveries, and the app id).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080 behind a TLS reverse proxy; port 0 picks one.
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// The migration's state file; events go to `<FILE>.events` beside it.
    #[arg(long, value_name = "FILE")]
    pub state: PathBuf,
    /// Bind an event store made for another target (provider, endpoint or account) to this one.
    #[arg(long)]
    pub allow_target_change: bool,
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
}

/// Runs the receiver until SIGTERM or Ctrl-C.
pub async fn webhooks(args: WebhooksArgs) -> anyhow::Result<Exit> {
    if args.provider != authport_apideck::PROVIDER {
        return Err(crate::usage(anyhow::anyhow!(
            "webhooks are received for provider `apideck` only"
        )));
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
    });
    receiver.refresh_owners().await;

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    // One line on stdout, so a supervisor (or a test) learns the port picked for `:0`.
    println!("authport webhooks: listening on http://{address}/");
    let app = axum::Router::new()
        .route("/", post(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(receiver.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(stop_signal())
        .await
        .context("the webhook receiver failed")?;
    let c = &receiver.counters;
    eprintln!(
        "webhooks: {} stored, {} duplicate, {} for connections not in this migration, {} rejected",
        c.stored.load(Ordering::Relaxed),
        c.duplicate.load(Ordering::Relaxed),
        c.unknown.load(Ordering::Relaxed),
        c.rejected.load(Ordering::Relaxed),
    );
    Ok(Exit::Ok)
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
    if !state_path.exists() {
        return Ok(None);
    }
    let provider = authport_apideck::PROVIDER;
    let owned = owned_in_journal(state_path, provider, apideck_webhooks::connection_key_of)?;
    Ok(Some(store.own(provider, &owned)?))
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, axum::Json<Value>) {
    let answer = handle(&receiver, &headers, &body).await;
    let (status, outcome) = match &answer {
        Ok(outcome) => (StatusCode::OK, outcome.as_str()),
        Err((status, _)) => {
            receiver.counters.rejected.fetch_add(1, Ordering::Relaxed);
            (*status, "rejected")
        }
    };
    match answer {
        Ok(_) => (status, axum::Json(json!({ "status": outcome }))),
        Err((_, message)) => {
            tracing::warn!(status = status.as_u16(), "webhook refused: {message}");
            (status, axum::Json(json!({ "error": message })))
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

type Refused = (StatusCode, String);

async fn handle(receiver: &Receiver, headers: &HeaderMap, body: &[u8]) -> Result<Outcome, Refused> {
    if !is_json(headers) {
        return Err(bad("the content type must be application/json"));
    }
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    apideck_webhooks::verify(&receiver.api_key, body, parsed.as_ref(), signature)
        .map_err(|e| (StatusCode::UNAUTHORIZED, e.to_string()))?;
    let parsed = parsed.ok_or_else(|| bad("the body is not JSON"))?;
    let event = apideck_webhooks::parse_event(&parsed).map_err(|e| bad(&e.to_string()))?;
    let idempotency_key = headers
        .get(IDEMPOTENCY_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .ok_or_else(|| bad("the x-apideck-idempotency-key header is missing"))?
        .to_owned();
    let event_type = event
        .event_type
        .clone()
        .or_else(|| {
            headers
                .get(EVENT_TYPE_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .ok_or_else(|| bad("the event has no event type"))?;
    let delivery = to_delivery(&event, event_type, idempotency_key);
    let store = receiver.store.clone();
    let to_store = delivery.clone();
    let recorded = tokio::task::spawn_blocking(move || store.record(&to_store)).await;
    let recorded = match recorded {
        Ok(Ok(recorded)) => recorded,
        Ok(Err(error)) => {
            tracing::error!("cannot store a webhook event: {error:#}");
            return Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                "the event store failed; deliver again".to_owned(),
            ));
        }
        Err(_) => {
            return Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                "the receiver failed; deliver again".to_owned(),
            ));
        }
    };
    let (outcome, counter) = match recorded {
        Recorded::Stored => (Outcome::Stored, &receiver.counters.stored),
        Recorded::Duplicate => (Outcome::Duplicate, &receiver.counters.duplicate),
        Recorded::Unknown => (Outcome::Unknown, &receiver.counters.unknown),
    };
    counter.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(event_type = %delivery.event_type, outcome = outcome.as_str(), "webhook");
    Ok(outcome)
}

fn bad(message: &str) -> Refused {
    (StatusCode::BAD_REQUEST, message.to_owned())
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// The typed, non-secret fields the event store keeps.
fn to_delivery(
    event: &apideck_webhooks::ConnectionEvent,
    event_type: String,
    idempotency_key: String,
) -> Delivery {
    let entity = event.entity.as_ref();
    Delivery {
        provider: authport_apideck::PROVIDER.to_owned(),
        idempotency_key,
        connection_key: event.connection_key().unwrap_or_default(),
        event_type,
        occurred_at: event.occurred_at.clone(),
        state: entity.and_then(|e| e.state.clone()),
        health: entity.and_then(|e| e.health.clone()),
        last_refresh_failed_at: entity.and_then(|e| e.last_refresh_failed_at.clone()),
        connection_id: entity.and_then(|e| e.id.clone()),
    }
}

/// Resolves on Ctrl-C or SIGTERM: the server stops accepting and finishes open requests.
async fn stop_signal() {
    crate::interrupted().await;
    tracing::info!("stopping the webhook receiver");
}
