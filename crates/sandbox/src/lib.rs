//! authport-sandbox: a local, stateful emulator of the Tray.ai, Apideck Vault and Nango APIs.
//!
//! One axum server serves every vendor on one loopback port (their paths do not overlap:
//! Tray uses `/core/v1/...` and `/graphql`, Apideck `/vault/...`, Nango `/integrations` and
//! `/connections`). Tests start it in-process on a
//! random port with [`start`]; `authport sandbox` runs it as a command; `authport --sandbox
//! --state FILE` keeps its data beside the state with [`persist::start_durable`]. Each vendor
//! lives in a module of its own whose state implements [`Emulator`], and the sandbox is built
//! from one list of them (`emulators!` below); [`faults`] wraps them with switchable, seeded
//! fault injection.

mod emulator;
pub mod faults;
pub mod persist;
mod rotation;
#[cfg(feature = "contract")]
pub mod spec;
// The vendors' modules are declared by `emulators!` below.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use emulator::Emulator;

/// The Embedded ID the sandbox hands out for Tray's auth-only dialog (`reconnect --links`).
pub const SANDBOX_TRAY_EMBEDDED_ID: &str = tray::SANDBOX_EMBEDDED_ID;

/// Builds the sandbox from one list of emulators: `module::StateType` per vendor, the type an
/// [`Emulator`]. It declares each module. From it come [`SandboxConfig`] (one options field per
/// vendor), [`RunningSandbox`] (one typed state field per vendor: `sandbox.tray`), the combined
/// router, the environment, the canary list, [`env_prefixes`] and the durable sandbox's data
/// file (one key per vendor). A macro, not a `Vec<Box<dyn ...>>`, so tests keep typed fields.
macro_rules! emulators {
    ($($name:ident::$state:ident),+ $(,)?) => {
        $(pub mod $name;)+

        /// Everything a sandbox run can be configured with.
        #[derive(Debug, Clone, Default)]
        pub struct SandboxConfig {
            $(pub $name: <$name::$state as Emulator>::Options,)+
            pub faults: faults::FaultPlan,
        }

        impl SandboxConfig {
            /// Replaces every vendor secret still at its default with `canary(label)` (labels
            /// like `tray-master-token`), so a leak check also covers the credentials a
            /// provider sends.
            pub fn with_canaries(mut self, canary: impl Fn(&str) -> String) -> Self {
                $(emulator::replace_default_secrets::<$name::$state>(&mut self.$name, &canary);)+
                self
            }
        }

        /// A sandbox serving on a loopback port. Dropping it stops the server.
        #[derive(Debug)]
        pub struct RunningSandbox {
            pub addr: SocketAddr,
            /// Each vendor's emulator state, for tests that inspect what was created.
            $(pub $name: Arc<$name::$state>,)+
            /// The fault injector, switchable while the server runs.
            pub faults: Arc<faults::Faults>,
            shutdown: Option<oneshot::Sender<()>>,
            server: Option<JoinHandle<()>>,
        }

        impl RunningSandbox {
            /// Another handle on the running states.
            fn states(&self) -> States {
                States {
                    $($name: self.$name.clone(),)+
                    faults: self.faults.clone(),
                }
            }
        }

        /// Every vendor's emulator state and the fault injector, before the server runs.
        #[derive(Debug, Clone)]
        pub(crate) struct States {
            $(pub(crate) $name: Arc<$name::$state>,)+
            pub(crate) faults: Arc<faults::Faults>,
        }

        impl States {
            pub(crate) fn new(config: SandboxConfig) -> Self {
                Self {
                    $($name: <$name::$state as Emulator>::new(config.$name),)+
                    faults: faults::Faults::new(config.faults),
                }
            }

            /// Every vendor's routes (their paths do not overlap), wrapped in the fault
            /// injector.
            fn router(&self) -> axum::Router {
                axum::Router::new()
                    $(.merge(Emulator::router(self.$name.clone())))+
                    .layer(axum::middleware::from_fn_with_state(
                        self.faults.clone(),
                        faults::inject,
                    ))
            }

            fn env(&self, base_url: &str) -> Vec<(String, String)> {
                let mut env = Vec::new();
                $(env.extend(self.$name.env(base_url));)+
                env
            }

            fn canary_credentials(&self) -> Vec<String> {
                let mut secrets = Vec::new();
                $(secrets.extend(self.$name.canary_credentials());)+
                secrets
            }

            pub(crate) fn saved(&self, listen: SocketAddr) -> Saved {
                Saved {
                    format: persist::FORMAT.to_owned(),
                    version: persist::VERSION,
                    listen,
                    $($name: self.$name.data(),)+
                }
            }

            pub(crate) fn restore(&self, saved: Saved) {
                $(self.$name.restore(saved.$name);)+
            }

            fn into_running(
                self,
                addr: SocketAddr,
                shutdown: oneshot::Sender<()>,
                server: JoinHandle<()>,
            ) -> RunningSandbox {
                RunningSandbox {
                    addr,
                    $($name: self.$name,)+
                    faults: self.faults,
                    shutdown: Some(shutdown),
                    server: Some(server),
                }
            }
        }

        /// The durable sandbox's file ([`persist`]): what it is, its address, and every
        /// vendor's data under the vendor's field name.
        #[derive(serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct Saved {
            pub(crate) format: String,
            pub(crate) version: u32,
            pub(crate) listen: SocketAddr,
            // A file saved before a vendor joined the list still loads (its data empty).
            $(#[serde(default)] $name: <$name::$state as Emulator>::Data,)+
        }

        /// Every variable prefix an emulator's environment uses (`TRAY_`, `APIDECK_`,
        /// `NANGO_`, ...): a child process started by a test is scrubbed of these.
        pub fn env_prefixes() -> Vec<&'static str> {
            vec![$(<$name::$state as Emulator>::ENV_PREFIX),+]
        }

        /// The vendors the sandbox emulates, as `--provider` names them.
        pub fn emulator_names() -> Vec<&'static str> {
            vec![$(<$name::$state as Emulator>::NAME),+]
        }
    };
}

// The one list of emulators: `module::StateType`, the module in `src/<module>/`, its field in
// `SandboxConfig`, `RunningSandbox` and the data file named after it. `cargo xtask
// new-provider` appends a line above the anchor.
emulators! {
    tray::TrayState,
    apideck::ApideckState,
    nango::NangoState,
    // new-provider: emulators above this line
}

impl RunningSandbox {
    /// `http://127.0.0.1:PORT`, the base that replaces every vendor's API host.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Environment variables that point authport's providers at this sandbox, with the
    /// sandbox's own (fake) credentials.
    pub fn provider_env(&self) -> Vec<(String, String)> {
        self.states().env(&self.base_url())
    }

    /// Every secret the sandbox hands out in [`RunningSandbox::provider_env`]: what tests grep
    /// outputs for.
    pub fn canary_credentials(&self) -> Vec<String> {
        self.states().canary_credentials()
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
pub fn router(config: SandboxConfig) -> axum::Router {
    States::new(config).router()
}

/// Starts a sandbox on `addr` (use `127.0.0.1:0` for a random port). Its data lives in memory
/// only; see [`persist::start_durable`] for a sandbox that remembers.
pub async fn start(config: SandboxConfig, addr: SocketAddr) -> std::io::Result<RunningSandbox> {
    let listener = TcpListener::bind(addr).await?;
    launch(listener, States::new(config), None)
}

/// Serves `states` on `listener`; with a `saver`, the data is saved after each change.
pub(crate) fn launch(
    listener: TcpListener,
    states: States,
    saver: Option<Arc<persist::Saver>>,
) -> std::io::Result<RunningSandbox> {
    let addr = listener.local_addr()?;
    let mut app = states.router();
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
    Ok(states.into_running(addr, shutdown_tx, server))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_emulator_variable_starts_with_a_listed_prefix() {
        let prefixes = env_prefixes();
        assert!(prefixes.contains(&"NANGO_"), "{prefixes:?}");
        let states = States::new(SandboxConfig::default());
        for (name, _) in states.env("http://127.0.0.1:1") {
            assert!(
                prefixes.iter().any(|p| name.starts_with(p)),
                "{name} has no listed prefix"
            );
        }
        assert_eq!(emulator_names(), ["tray", "apideck", "nango"]);
    }

    #[test]
    fn canaries_replace_only_default_secrets_and_are_listed() {
        let mut config = SandboxConfig::default();
        config.apideck.api_key = "chosen-by-the-test".to_owned();
        let config = config.with_canaries(|label| format!("CANARY-{label}"));
        assert_eq!(config.tray.master_token, "CANARY-tray-master-token");
        assert_eq!(config.apideck.api_key, "chosen-by-the-test");
        let states = States::new(config);
        let secrets = states.canary_credentials();
        assert!(
            secrets.contains(&"CANARY-nango-secret-key".to_owned()),
            "{secrets:?}"
        );
        let env = states.env("http://127.0.0.1:1");
        for secret in &secrets {
            assert!(
                env.iter().any(|(_, v)| v == secret),
                "{secret} is handed out"
            );
        }
    }
}
