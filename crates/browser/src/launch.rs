//! Starting Chromium and finding its DevTools websocket in its stderr.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStderr, Command};

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

#[derive(Debug)]
pub(crate) struct Launched {
    pub(crate) child: Child,
    pub(crate) profile: TempDir,
    pub(crate) devtools_address: String,
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
    let mut child = Command::new(chromium)
        .args(FLAGS)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // The launcher script execs the browser, so this kills Chromium itself; its renderers
        // exit when the browser's IPC channel closes.
        .kill_on_drop(true)
        .spawn()
        .map_err(BrowserError::Launch)?;
    let stderr = child.stderr.take().ok_or(BrowserError::NoDevToolsAddress {
        last_lines: Vec::new(),
    })?;
    let mut lines = BufReader::new(stderr).lines();
    let devtools_address = tokio::time::timeout(timeout, read_devtools_address(&mut lines))
        .await
        .map_err(|_| timed_out("chromium's DevTools line on stderr", timeout))??;
    // Chromium keeps logging (dbus, zygote); an undrained pipe would block it once full.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Launched {
        child,
        profile,
        devtools_address,
    })
}

async fn read_devtools_address(
    lines: &mut tokio::io::Lines<BufReader<ChildStderr>>,
) -> Result<String> {
    let mut last_lines = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(address) = devtools_address(&line) {
            return Ok(address.to_owned());
        }
        if last_lines.len() == KEPT_STDERR_LINES {
            last_lines.remove(0);
        }
        last_lines.push(line);
    }
    Err(BrowserError::NoDevToolsAddress { last_lines })
}
