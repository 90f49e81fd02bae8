//! A sandbox that remembers: its data in a file (`authport --sandbox --state FILE` keeps it in
//! `FILE.sandbox.json`), so every later command on that state meets the same sandbox.
//!
//! Identity: a state file is bound to its target's base URL. A durable sandbox therefore
//! listens on the same loopback address every time: the first start picks a free port outside
//! the operating systems' ephemeral ranges (so no outgoing connection can hold it) and records
//! it in the file; later starts bind that port again. Nothing else in authport knows a sandbox
//! is durable: the providers see an ordinary endpoint that does not move.
//!
//! Consistency: the file is rewritten after every request that may change data (any method but
//! GET/HEAD/OPTIONS) and before its answer is sent: a whole snapshot written to a temporary
//! file, synced, then renamed over the old one. So what a client saw acknowledged survives a
//! killed run, the file is never half-written, and a request cut short by the kill may or may
//! not be in it: the "outcome unknown" a real vendor gives, which authport's journal
//! reconciles. Each change costs one snapshot of the whole sandbox: meant for trying authport
//! on a few thousand records, not for benchmarks. The file holds the records' secrets as
//! imported (the sandbox's test data): it is created 0600.

use std::fmt;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::net::{TcpListener, TcpSocket};

use crate::{SandboxConfig, Saved, States};

/// What the file says it is, so another JSON file is never taken for sandbox data.
pub(crate) const FORMAT: &str = "authport-sandbox";
pub(crate) const VERSION: u32 = 1;

/// Ports a first start picks from: below every common ephemeral range (Linux 32768-60999,
/// BSD/macOS/Windows 49152-65535) and above most well-known services.
const PORTS: std::ops::Range<u16> = 20_000..32_000;
const PORT_TRIES: usize = 32;

/// The sandbox data file beside a state file: `FILE.sandbox.json`.
pub fn data_path(state: &Path) -> PathBuf {
    let mut name = state.as_os_str().to_owned();
    name.push(".sandbox.json");
    PathBuf::from(name)
}

/// Why a durable sandbox could not start.
#[derive(Debug)]
pub enum PersistError {
    /// The data file is not there (and the caller did not ask to create it).
    Missing(PathBuf),
    /// The file is not sandbox data of this version (or is a symbolic link).
    Invalid { path: PathBuf, why: String },
    /// The address the sandbox must listen on is taken.
    AddressInUse(SocketAddr),
    /// Reading, writing or listening failed.
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl fmt::Display for PersistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PersistError::Missing(path) => {
                write!(f, "sandbox data file {} does not exist", path.display())
            }
            PersistError::Invalid { path, why } => {
                write!(f, "{} is not sandbox data: {why}", path.display())
            }
            PersistError::AddressInUse(addr) => write!(
                f,
                "the sandbox must listen on {addr} (its address is part of the state's target), and another program holds it (perhaps another authport command on this state): stop it and run again"
            ),
            PersistError::Io { path, error } => {
                write!(
                    f,
                    "cannot use sandbox data file {}: {error}",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for PersistError {}

/// The part of the file every version keeps.
#[derive(Deserialize)]
struct Header {
    format: String,
    version: u32,
}

/// Starts a sandbox whose data lives in `path`: the data and address recorded there, or, when
/// the file does not exist and `create` is set, an empty sandbox on a newly picked port,
/// recorded before this returns (so a state bound to it can always find it again).
pub async fn start_durable(
    config: SandboxConfig,
    path: &Path,
    create: bool,
) -> Result<crate::RunningSandbox, PersistError> {
    let io = |error| PersistError::Io {
        path: path.to_owned(),
        error,
    };
    let existing = match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_symlink() => {
            return Err(PersistError::Invalid {
                path: path.to_owned(),
                why: "it is a symbolic link".to_owned(),
            });
        }
        Ok(_) => Some(load(path)?),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(io(error)),
    };
    let (listener, data) = match existing {
        Some(saved) => (listen(saved.listen).await?, Some(saved)),
        None if create => (listen_on_a_new_port().await.map_err(io)?, None),
        None => return Err(PersistError::Missing(path.to_owned())),
    };
    let listen = listener.local_addr().map_err(io)?;
    let states = States::new(config);
    if let Some(saved) = data {
        states.restore(saved);
    }
    let saver = Arc::new(Saver {
        path: path.to_owned(),
        listen,
        states: states.clone(),
        written: Mutex::new(Vec::new()),
    });
    // Written now, even when loaded: the address is durable before anyone binds a state to it,
    // and the file is this version's shape from here on.
    saver.save().map_err(io)?;
    crate::launch(listener, states, Some(saver)).map_err(io)
}

fn load(path: &Path) -> Result<Saved, PersistError> {
    let invalid = |why: String| PersistError::Invalid {
        path: path.to_owned(),
        why,
    };
    let bytes = std::fs::read(path).map_err(|error| PersistError::Io {
        path: path.to_owned(),
        error,
    })?;
    // What the file says it is comes first, so another version is named as such. serde_json's
    // messages name the line and column, never a value; the file's own words are not quoted
    // either: it is not known to be ours.
    let unreadable = |e: serde_json::Error| {
        invalid(format!(
            "not readable as {FORMAT} version {VERSION} (line {}, column {})",
            e.line(),
            e.column()
        ))
    };
    let header: Header = serde_json::from_slice(&bytes).map_err(unreadable)?;
    if header.format != FORMAT || header.version != VERSION {
        return Err(invalid(format!("not {FORMAT} data of version {VERSION}")));
    }
    let saved: Saved = serde_json::from_slice(&bytes).map_err(unreadable)?;
    if !saved.listen.ip().is_loopback() {
        return Err(invalid("its address is not a loopback address".to_owned()));
    }
    Ok(saved)
}

/// A listener on `addr` with `SO_REUSEADDR`, so connections of the previous run still in
/// TIME_WAIT do not keep the port.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn listen(addr: SocketAddr) -> Result<TcpListener, PersistError> {
    bind(addr).map_err(|error| match error.kind() {
        std::io::ErrorKind::AddrInUse => PersistError::AddressInUse(addr),
        _ => PersistError::Io {
            path: PathBuf::from(addr.to_string()),
            error,
        },
    })
}

async fn listen_on_a_new_port() -> std::io::Result<TcpListener> {
    let mut last = None;
    for _ in 0..PORT_TRIES {
        let port = rand::random_range(PORTS);
        match bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))) {
            Ok(listener) => return Ok(listener),
            Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => last = Some(error),
            Err(error) => return Err(error),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::from(std::io::ErrorKind::AddrInUse)))
}

/// Writes the sandbox's data after each change (see the module docs).
pub(crate) struct Saver {
    path: PathBuf,
    listen: SocketAddr,
    states: States,
    /// The bytes last written; held while writing, so the file ends with the latest snapshot.
    written: Mutex<Vec<u8>>,
}

impl fmt::Debug for Saver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Saver")
            .field("path", &self.path)
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

impl Saver {
    fn save(&self) -> std::io::Result<()> {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        // The snapshot is taken under the lock: a later save always holds every earlier change.
        let saved = self.states.saved(self.listen);
        let bytes = serde_json::to_vec(&saved).map_err(std::io::Error::other)?;
        if *written == bytes {
            return Ok(());
        }
        write_atomically(&self.path, &bytes)?;
        *written = bytes;
        Ok(())
    }
}

/// A temporary file beside `path` (0600), synced, then renamed over it: the file is always a
/// whole snapshot, the old or the new.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    match std::fs::remove_file(&temporary) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    // The rename itself survives a power loss only once the directory is synced (best effort:
    // not every platform can open a directory).
    if let Some(directory) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && let Ok(directory) = std::fs::File::open(directory)
    {
        let _ = directory.sync_all();
    }
    Ok(())
}

/// The layer that saves after each request that may have changed data, before answering. A
/// failed save answers 500: the client must not take an unsaved change as done.
pub(crate) async fn save_after_change(
    State(saver): State<Arc<Saver>>,
    request: Request,
    next: Next,
) -> Response {
    let reads_only = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let response = next.run(request).await;
    if reads_only {
        return response;
    }
    match saver.save() {
        Ok(()) => response,
        Err(error) => {
            tracing::error!(path = %saver.path.display(), "cannot save the sandbox data: {error}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the sandbox could not save its data",
            )
                .into_response()
        }
    }
}
