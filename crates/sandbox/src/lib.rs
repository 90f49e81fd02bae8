//! authport-sandbox: a local, stateful emulator of the Tray.ai, Apideck Vault and Nango APIs.
//!
//! One axum server serves every vendor on one loopback port (their paths do not overlap:
//! Tray uses `/core/v1/...` and `/graphql`, Apideck `/vault/...`, Nango `/integrations` and
//! `/connections`). Tests start it in-process on a
//! random port with [`start`]; `authport sandbox` runs it as a command; `authport --sandbox
//! --state FILE` keeps its data beside the state with [`persist::start_durable`]. Each vendor
//! lives in a module of its own; [`faults`] wraps them with switchable, seeded fault injection.

pub mod apideck;
pub mod faults;
pub mod nango;
pub mod persist;
#[cfg(feature = "contract")]
pub mod spec;
pub mod tray;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Everything a sandbox run can be configured with.
#[derive(Debug, Clone, Default)]
pub struct SandboxConfig {
    pub tray: tray::TrayOptions,
    pub apideck: apideck::ApideckOptions,
    pub nango: nango::NangoOptions,
    pub faults: faults::FaultPlan,
}

/// The Embedded ID the sandbox hands out for Tray's auth-only dialog (`reconnect --links`).
pub const SANDBOX_TRAY_EMBEDDED_ID: &str = "sandbox-embedded-id";

/// A sandbox serving on a loopback port. Dropping it stops the server.
#[derive(Debug)]
pub struct RunningSandbox {
    pub addr: SocketAddr,
    /// The Tray emulator's state, for tests that inspect what was created.
    pub tray: Arc<tray::TrayState>,
    /// The Apideck emulator's state, for tests that inspect what was created.
    pub apideck: Arc<apideck::ApideckState>,
    /// The Nango emulator's state, for tests that inspect what was created.
    pub nango: Arc<nango::NangoState>,
    /// The fault injector, switchable while the server runs.
    pub faults: Arc<faults::Faults>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl RunningSandbox {
    /// `http://127.0.0.1:PORT`, the base that replaces both vendors' API hosts.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Environment variables that point authport's providers at this sandbox, with the
    /// sandbox's own (fake) credentials.
    pub fn provider_env(&self) -> Vec<(String, String)> {
        let base = self.base_url();
        let mut env = vec![
            ("TRAY_API_URL".to_owned(), base.clone()),
            ("TRAY_GRAPHQL_URL".to_owned(), format!("{base}/graphql")),
            // The auth-only dialog Tray's reconnect links open is served here too.
            ("TRAY_AUTH_DIALOG_URL".to_owned(), base.clone()),
            (
                "TRAY_EMBEDDED_ID".to_owned(),
                SANDBOX_TRAY_EMBEDDED_ID.to_owned(),
            ),
            ("APIDECK_API_URL".to_owned(), base.clone()),
            ("NANGO_API_URL".to_owned(), base),
        ];
        env.extend(self.tray.credentials_env());
        env.extend(self.apideck.credentials_env());
        env.extend(self.nango.credentials_env());
        env
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) {
        self.stop_inner().await;
    }

    async fn stop_inner(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for RunningSandbox {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Builds the combined router for every vendor, wrapped in the fault injector.
pub fn router(
    tray: Arc<tray::TrayState>,
    apideck: Arc<apideck::ApideckState>,
    nango: Arc<nango::NangoState>,
    faults: Arc<faults::Faults>,
) -> axum::Router {
    tray::router(tray)
        .merge(apideck::router(apideck))
        .merge(nango::router(nango))
        .layer(axum::middleware::from_fn_with_state(faults, faults::inject))
}

/// Starts a sandbox on `addr` (use `127.0.0.1:0` for a random port). Its data lives in memory
/// only; see [`persist::start_durable`] for a sandbox that remembers.
pub async fn start(config: SandboxConfig, addr: SocketAddr) -> std::io::Result<RunningSandbox> {
    let listener = TcpListener::bind(addr).await?;
    launch(listener, States::new(config), None)
}

/// Every vendor's emulator state and the fault injector, before the server runs.
pub(crate) struct States {
    pub(crate) tray: Arc<tray::TrayState>,
    pub(crate) apideck: Arc<apideck::ApideckState>,
    pub(crate) nango: Arc<nango::NangoState>,
    pub(crate) faults: Arc<faults::Faults>,
}

impl States {
    pub(crate) fn new(config: SandboxConfig) -> Self {
        Self {
            tray: tray::TrayState::new(config.tray),
            apideck: apideck::ApideckState::new(config.apideck),
            nango: nango::NangoState::new(config.nango),
            faults: faults::Faults::new(config.faults),
        }
    }
}

/// Serves `states` on `listener`; with a `saver`, the data is saved after each change.
pub(crate) fn launch(
    listener: TcpListener,
    states: States,
    saver: Option<Arc<persist::Saver>>,
) -> std::io::Result<RunningSandbox> {
    let addr = listener.local_addr()?;
    let States {
        tray,
        apideck,
        nango,
        faults,
    } = states;
    let mut app = router(tray.clone(), apideck.clone(), nango.clone(), faults.clone());
    if let Some(saver) = saver {
        // Outermost: it saves whatever the handlers and the fault injector let happen.
        app = app.layer(axum::middleware::from_fn_with_state(
            saver,
            persist::save_after_change,
        ));
    }
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = shutdown_rx.await;
            })
            .await;
    });
    Ok(RunningSandbox {
        addr,
        tray,
        apideck,
        nango,
        faults,
        shutdown: Some(shutdown_tx),
        server: Some(server),
    })
}
