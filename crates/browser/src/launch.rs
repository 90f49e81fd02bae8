//! Starting Chromium and finding its DevTools websocket in its stderr.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;
use tokio::sync::oneshot;

use crate::connection::timed_out;
use crate::error::{BrowserError, Result};
use crate::protocol::devtools_address;

/// Flags this machine's closed network needs: no GPU, no sandbox (root in a container), and
/// nothing that phones home (QUIC, component updates, sync, background fetches), so a test never
/// waits on a network it cannot reach. Port 0: Chromium picks a free port and prints it.
const FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
];

/// Stderr lines kept for the error when Chromium exits without its DevTools line.
const KEPT_STDERR_LINES: usize = 5;

/// A running Chromium. Dropping it kills its processes and reaps the browser (a blocking wait
/// of a few milliseconds after SIGKILL), then removes its profile, which nothing writes any more.
#[derive(Debug)]
pub(crate) struct Launched {
    child: Child,
    pub(crate) devtools_address: String,
    /// Taken and removed by `Drop`, after the processes are gone.
    profile: Option<TempDir>,
}

impl Drop for Launched {
    fn drop(&mut self) {
        // The whole process group (Chromium leads it): its zygote, renderers and network
        // service would otherwise outlive the browser for a moment and write into the profile
        // while it is being removed. `kill(1)` because the workspace forbids the unsafe
        // `libc::kill`; the browser itself is killed and reaped below in any case.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        drop(self.profile.take());
    }
}

pub(crate) async fn launch(chromium: &Path, timeout: Duration) -> Result<Launched> {
    if !chromium.exists() {
        return Err(BrowserError::ChromiumMissing {
            path: chromium.to_owned(),
        });
    }
    let profile = tempfile::Builder::new()
        .prefix("authport-chromium-")
        .tempdir()
        .map_err(BrowserError::Launch)?;
    // Chromium's own temporary files (its singleton socket directory, which a killed
    // Chromium leaves behind) go inside the profile, which the drop removes.
    let temporary = profile.path().join("tmp");
    std::fs::create_dir(&temporary).map_err(BrowserError::Launch)?;
    let mut child = Command::new(chromium)
        .env("TMPDIR", &temporary)
        .args(FLAGS)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(BrowserError::Launch)?;
    let stderr = child.stderr.take();
    // From here on, an early return kills the process (`Launched`'s drop).
    let mut launched = Launched {
        child,
        devtools_address: String::new(),
        profile: Some(profile),
    };
    let Some(stderr) = stderr else {
        return Err(BrowserError::NoDevToolsAddress {
            last_lines: Vec::new(),
        });
    };
    // A thread reads stderr: it hands over the DevTools line, then drains the rest, since
    // Chromium keeps logging (dbus, zygote) and would block on a full pipe.
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || read_stderr(stderr, sender));
    launched.devtools_address = tokio::time::timeout(timeout, receiver)
        .await
        .map_err(|_| timed_out("chromium's DevTools line on stderr", timeout))?
        .unwrap_or(Err(BrowserError::NoDevToolsAddress {
            last_lines: Vec::new(),
        }))?;
    Ok(launched)
}

fn read_stderr(stderr: ChildStderr, sender: oneshot::Sender<Result<String>>) {
    let mut lines = BufReader::new(stderr).lines();
    let mut last_lines = Vec::new();
    for line in lines.by_ref() {
        let Ok(line) = line else { break };
        if let Some(address) = devtools_address(&line) {
            let _ = sender.send(Ok(address.to_owned()));
            lines.for_each(drop);
            return;
        }
        if last_lines.len() == KEPT_STDERR_LINES {
            last_lines.remove(0);
        }
        last_lines.push(line);
    }
    let _ = sender.send(Err(BrowserError::NoDevToolsAddress { last_lines }));
}
