//! `--sandbox`: the bundled emulator, started in-process for one command.
//!
//! Without a state file its data lives in memory and ends with the command. With `--state FILE`
//! it lives in `FILE.sandbox.json` ([`authport_sandbox::persist`]) and the sandbox listens on the
//! same loopback address every time, so the state's target (its endpoint) stays the same and
//! every later command on that state (a re-run, `verify`, `status`, `reconnect`, `rollback`)
//! meets the sandbox the import wrote to. Nothing else changes: the providers see an ordinary
//! endpoint, the state binds it as any other.
//!
//! The emulators are linked only with the default-on cargo feature `sandbox`: a build without
//! it (`--no-default-features`) keeps the flags, and `--sandbox` / `authport sandbox` answer
//! that it was built without the sandbox (exit 2). The rest of the runner sees the same names
//! either way.

use std::path::{Path, PathBuf};

#[cfg(feature = "sandbox")]
pub(crate) use bundled::{Sandbox, serve_until_stopped, start};
#[cfg(not(feature = "sandbox"))]
pub(crate) use without::{Sandbox, serve_until_stopped, start};

/// Where a `--sandbox` command's emulator keeps its data.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(
    not(feature = "sandbox"),
    expect(
        dead_code,
        reason = "only the bundled sandbox reads where its data goes"
    )
)]
pub(crate) enum SandboxData<'a> {
    /// In memory: gone when the command ends (no `--state`).
    InMemory,
    /// Beside this state file. `create`: the command may start a new sandbox (an import or
    /// migrate whose state does not exist yet); the other commands need the one the state was
    /// made with.
    BesideState { state: &'a Path, create: bool },
}

impl<'a> SandboxData<'a> {
    /// For `import` and `migrate`: beside `--state` when one is given.
    pub(crate) fn for_run(state: Option<&'a Path>) -> Self {
        match state {
            Some(state) => SandboxData::BesideState {
                state,
                create: true,
            },
            None => SandboxData::InMemory,
        }
    }

    /// For the commands that read a state (`verify`, `rollback`, `status`, `reconnect`).
    pub(crate) fn for_state(state: &'a Path) -> Self {
        SandboxData::BesideState {
            state,
            create: false,
        }
    }
}

/// The sandbox data file beside a state file (`FILE.sandbox.json`), which no output may
/// overwrite.
#[cfg(feature = "sandbox")]
pub(crate) fn data_path(state: &Path) -> Option<PathBuf> {
    Some(authport_sandbox::persist::data_path(state))
}

/// A build without the sandbox keeps no data beside a state.
#[cfg(not(feature = "sandbox"))]
pub(crate) fn data_path(_state: &Path) -> Option<PathBuf> {
    None
}

#[cfg(feature = "sandbox")]
mod bundled {
    use std::io::Write as _;

    use anyhow::Context as _;
    use authport_engine::Exit;
    use authport_sandbox::persist::{PersistError, data_path, start_durable};

    use super::SandboxData;
    use crate::usage;

    /// The sandbox running for one command.
    pub(crate) type Sandbox = authport_sandbox::RunningSandbox;

    /// Starts the sandbox for one command (see the module docs). Refusals are exit 2 with nothing
    /// changed: a state made without `--sandbox`, a data file that is not sandbox data, the
    /// sandbox's address taken by another program.
    pub(crate) async fn start(data: SandboxData<'_>) -> anyhow::Result<Sandbox> {
        let (state, create) = match data {
            SandboxData::InMemory => return in_memory().await,
            SandboxData::BesideState { state, create } => (state, create),
        };
        let state_exists = std::fs::symlink_metadata(state).is_ok();
        if !state_exists && !create {
            // The command refuses the missing state itself, in its own words.
            return in_memory().await;
        }
        let path = data_path(state);
        // A new sandbox only for a new state: an existing state without sandbox data was bound to
        // another target, and a fresh sandbox would only be refused as "endpoint differs".
        let create = create && !state_exists;
        let sandbox = match start_durable(Default::default(), &path, create).await {
            Ok(sandbox) => sandbox,
            Err(PersistError::Missing(_)) => {
                return Err(usage(anyhow::anyhow!(
                    "--sandbox: state file {} was not made with --sandbox (there is no {} beside it): give a new --state for a sandbox run, or leave out --sandbox",
                    state.display(),
                    path.display()
                )));
            }
            Err(error @ (PersistError::Invalid { .. } | PersistError::AddressInUse(_))) => {
                return Err(usage(anyhow::Error::new(error)));
            }
            Err(error @ PersistError::Io { .. }) => return Err(error.into()),
        };
        tracing::info!(
            url = %sandbox.base_url(),
            data = %path.display(),
            "using the bundled sandbox, its data beside the state: nothing leaves this machine"
        );
        Ok(sandbox)
    }

    async fn in_memory() -> anyhow::Result<Sandbox> {
        let sandbox = authport_sandbox::start(Default::default(), "127.0.0.1:0".parse()?)
            .await
            .context("cannot start the bundled sandbox")?;
        tracing::info!(url = %sandbox.base_url(), "using the bundled sandbox: nothing leaves this machine");
        Ok(sandbox)
    }

    /// `authport sandbox`: the emulator as a server on `listen` (loopback only) until Ctrl-C, after
    /// printing the environment that points authport at it.
    pub(crate) async fn serve_until_stopped(
        listen: std::net::SocketAddr,
        tray_rate_limit: bool,
    ) -> anyhow::Result<Exit> {
        if !listen.ip().is_loopback() {
            return Err(usage(anyhow::anyhow!(
                "the sandbox listens on loopback addresses only, not {listen}"
            )));
        }
        let mut config = authport_sandbox::SandboxConfig::default();
        if tray_rate_limit {
            config.tray.rate_limit = Some(authport_sandbox::tray::RateLimit::DOCUMENTED);
        }
        let sandbox = authport_sandbox::start(config, listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "# authport sandbox on {}; export these, then run authport:",
            sandbox.base_url()
        )?;
        for (name, value) in sandbox.provider_env() {
            writeln!(out, "export {name}={value}")?;
        }
        out.flush()?;
        drop(out);
        let _ = tokio::signal::ctrl_c().await;
        sandbox.stop().await;
        Ok(Exit::Ok)
    }
}

#[cfg(not(feature = "sandbox"))]
mod without {
    use authport_engine::Exit;

    use super::SandboxData;
    use crate::usage;

    /// Never made: a build without the sandbox has none to run.
    #[derive(Debug)]
    pub(crate) enum Sandbox {}

    impl Sandbox {
        pub(crate) fn provider_env(&self) -> Vec<(String, String)> {
            match *self {}
        }
    }

    fn built_without() -> anyhow::Error {
        usage(anyhow::anyhow!(
            "this authport was built without the sandbox (cargo feature `sandbox`): leave out --sandbox, or use a build with it"
        ))
    }

    pub(crate) async fn start(_data: SandboxData<'_>) -> anyhow::Result<Sandbox> {
        Err(built_without())
    }

    pub(crate) async fn serve_until_stopped(
        _listen: std::net::SocketAddr,
        _tray_rate_limit: bool,
    ) -> anyhow::Result<Exit> {
        Err(built_without())
    }
}
