//! What the benchmarks that drive the `authport` binary share: building it, and starting
//! `authport sandbox` on a free port with the environment it prints.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};

/// Builds the `authport` binary (release unless `debug`) and returns its path.
pub fn build_authport(root: &Path, debug: bool) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(root).args(["build", "-p", "authport"]);
    if !debug {
        command.arg("--release");
    }
    if !command
        .status()
        .context("cannot run cargo build")?
        .success()
    {
        bail!("building authport failed");
    }
    let profile = if debug { "debug" } else { "release" };
    Ok(root.join("target").join(profile).join("authport"))
}

/// `authport sandbox` on a free port, and the `export NAME=VALUE` lines it prints, read until
/// every name in `wanted` is there.
pub fn start_sandbox(
    binary: &Path,
    wanted: &[&str],
) -> anyhow::Result<(Child, Vec<(String, String)>)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = Command::new(binary)
        .args(["-q", "sandbox", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start authport sandbox")?;
    let mut env: Vec<(String, String)> = Vec::new();
    let has_all =
        |env: &[(String, String)]| wanted.iter().all(|name| env.iter().any(|(k, _)| k == name));
    let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
    for line in lines.by_ref() {
        let line = line?;
        if let Some((name, value)) = line.strip_prefix("export ").and_then(|l| l.split_once('=')) {
            env.push((name.to_owned(), value.to_owned()));
        }
        if has_all(&env) {
            break;
        }
    }
    // The sandbox prints more; its stdout stays read so it never meets a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    if !has_all(&env) {
        bail!("the sandbox did not print {}", wanted.join(", "));
    }
    Ok((child, env))
}
