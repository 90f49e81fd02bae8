//! Servers on loopback: the bundled sandbox, or any other emulator behind the sandbox's fault
//! injector (a new provider's, before it has a module in the sandbox).

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;

use authport_core::EnvSnapshot;
use authport_sandbox::faults::{FaultPlan, Faults};
use authport_sandbox::{RunningSandbox, SandboxConfig};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::canary::canary;
use crate::context::{ContextBuilder, context};

/// What a provider under test needs from its server: the environment that points the provider
/// at it (URLs and credentials) and the fault injector (faults to switch on, requests seen).
#[derive(Debug, Clone)]
pub struct Target {
    pub env: Vec<(String, String)>,
    pub faults: Arc<Faults>,
}

impl Target {
    /// Every request the server received so far.
    pub fn requests_seen(&self) -> u64 {
        self.faults.requests_seen()
    }
}

/// The bundled sandbox on a random loopback port, with the default catalogues and canary
/// credentials. See [`sandbox_with`].
pub async fn sandbox() -> Sandbox {
    sandbox_with(SandboxConfig::default()).await
}

/// The bundled sandbox on a random loopback port. Credentials left at the sandbox's defaults
/// are replaced by canaries ([`crate::canary`]), so every leak check also covers the vendor
/// credentials a provider sends.
pub async fn sandbox_with(config: SandboxConfig) -> Sandbox {
    let running = authport_sandbox::start(config.with_canaries(canary), loopback())
        .await
        .expect("the sandbox starts on loopback");
    Sandbox { running }
}

/// The bundled sandbox, running. Derefs to [`RunningSandbox`] for the vendors' state
/// (`sandbox.tray`, `sandbox.apideck`) and the fault injector (`sandbox.faults`). Dropping it
/// stops the server.
#[derive(Debug)]
pub struct Sandbox {
    running: RunningSandbox,
}

impl Deref for Sandbox {
    type Target = RunningSandbox;

    fn deref(&self) -> &RunningSandbox {
        &self.running
    }
}

impl Sandbox {
    /// `http://127.0.0.1:PORT`: Tray's REST base and Apideck's base.
    pub fn url(&self) -> String {
        self.running.base_url()
    }

    /// Tray's GraphQL endpoint.
    pub fn graphql_url(&self) -> String {
        format!("{}/graphql", self.url())
    }

    /// The variables that point both providers at this sandbox, with its credentials.
    pub fn env(&self) -> Vec<(String, String)> {
        self.running.provider_env()
    }

    pub fn env_snapshot(&self) -> EnvSnapshot {
        EnvSnapshot::from_pairs(self.env())
    }

    /// A `BuildContext` builder with this sandbox's environment.
    pub fn context(&self) -> ContextBuilder {
        context().env(self.env())
    }

    /// This sandbox as the conformance suite's target.
    pub fn target(&self) -> Target {
        Target {
            env: self.env(),
            faults: self.running.faults.clone(),
        }
    }

    /// Switches faults on (or off, with `FaultPlan::default()`) while the server runs.
    pub fn set_faults(&self, plan: FaultPlan) {
        self.running.faults.set(plan);
    }

    /// Every request the sandbox received so far.
    pub fn requests_seen(&self) -> u64 {
        self.running.faults.requests_seen()
    }

    /// Stops the server and waits for it.
    pub async fn stop(self) {
        self.running.stop().await;
    }
}

/// Serves `router` (an emulator of a vendor the sandbox does not know yet) on a random
/// loopback port behind the sandbox's fault injector. `env` gets the base URL
/// (`http://127.0.0.1:PORT`) and returns the variables that point the provider at it.
pub async fn serve(
    router: axum::Router,
    env: impl FnOnce(&str) -> Vec<(String, String)>,
) -> Served {
    let faults = Faults::new(FaultPlan::default());
    let app = router.layer(axum::middleware::from_fn_with_state(
        faults.clone(),
        authport_sandbox::faults::inject,
    ));
    let listener = TcpListener::bind(loopback())
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("a bound address");
    let (shutdown, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    let url = format!("http://{addr}");
    Served {
        env: env(&url),
        url,
        faults,
        _shutdown: shutdown,
    }
}

/// A server started by [`serve`]. Dropping it stops the server.
#[derive(Debug)]
pub struct Served {
    pub url: String,
    pub env: Vec<(String, String)>,
    pub faults: Arc<Faults>,
    _shutdown: oneshot::Sender<()>,
}

impl Served {
    pub fn target(&self) -> Target {
        Target {
            env: self.env.clone(),
            faults: self.faults.clone(),
        }
    }

    pub fn context(&self) -> ContextBuilder {
        context().env(self.env.clone())
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::CANARY;

    #[tokio::test]
    async fn the_sandbox_serves_with_canary_credentials() {
        let sandbox = sandbox().await;
        let env = sandbox.env_snapshot();
        assert!(env.get("TRAY_MASTER_TOKEN").unwrap().contains(CANARY));
        assert!(env.get("APIDECK_API_KEY").unwrap().contains(CANARY));
        assert!(env.get("NANGO_SECRET_KEY").unwrap().contains(CANARY));
        assert_eq!(env.get("NANGO_API_URL"), Some(sandbox.url().as_str()));
        assert_eq!(env.get("TRAY_API_URL"), Some(sandbox.url().as_str()));
        assert_eq!(
            env.get("TRAY_GRAPHQL_URL"),
            Some(sandbox.graphql_url().as_str())
        );
        let before = sandbox.requests_seen();
        let stream = tokio::net::TcpStream::connect(sandbox.addr).await;
        assert!(stream.is_ok());
        assert_eq!(
            sandbox.requests_seen(),
            before,
            "a connection is not a request"
        );
        sandbox.stop().await;
    }

    #[tokio::test]
    async fn served_routers_count_their_requests() {
        let router = axum::Router::new().route("/ping", axum::routing::get(|| async { "pong" }));
        let served = serve(router, |url| vec![("X_URL".to_owned(), url.to_owned())]).await;
        assert_eq!(served.env[0].1, served.url);
        let mut stream = tokio::net::TcpStream::connect(served.url.trim_start_matches("http://"))
            .await
            .unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET /ping HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.ends_with("pong"), "{answer}");
        assert_eq!(served.target().requests_seen(), 1);
    }
}
