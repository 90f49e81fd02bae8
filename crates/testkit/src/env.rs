//! The one environment scrub for child processes: a test that starts the binary removes every
//! variable of the machine that would change what the binary does, so a developer's own
//! account, config or log filter never reaches a test run.

/// Prefixes of authport's own variables (config path, settings); the log filter is a name.
const AUTHPORT_PREFIX: &str = "AUTHPORT_";
const LOG_FILTER: &str = "RUST_LOG";

/// Prefixes of the variables a provider, or authport itself, reads: every emulator's (from the
/// sandbox's one list, so a new vendor is scrubbed the day its emulator is added) and
/// authport's.
pub fn inherited_prefixes() -> Vec<&'static str> {
    let mut prefixes = authport_sandbox::env_prefixes();
    prefixes.push(AUTHPORT_PREFIX);
    prefixes
}

/// Whether `name` is such a variable (the log filter included).
pub fn is_inherited_setting(name: &str) -> bool {
    name == LOG_FILTER
        || inherited_prefixes()
            .iter()
            .any(|prefix| name.starts_with(prefix))
}

/// The names of this process's variables a child must not inherit.
pub fn inherited_settings() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| is_inherited_setting(name))
        .collect()
}

/// `program` (the binary under test) as a command whose environment is this process's without
/// [`inherited_settings`]: for tests that run it with `std::process`.
pub fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    let mut command = std::process::Command::new(program);
    for name in inherited_settings() {
        command.env_remove(name);
    }
    command
}

/// Like [`clean_command`], for tests that run the binary with tokio; the child is killed when
/// the command's handle is dropped, so a failing test leaves no process behind.
pub fn clean_async_command(program: impl AsRef<std::ffi::OsStr>) -> tokio::process::Command {
    let mut command = tokio::process::Command::from(clean_command(program));
    command.kill_on_drop(true);
    command
}

/// What one run of a child printed, and how it ended (`code` is `None` when a signal ended it).
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Everything the run printed, for leak checks.
    pub fn printed(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl From<std::process::Output> for Output {
    fn from(output: std::process::Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vendor_and_authport_variable_is_scrubbed() {
        for name in [
            "TRAY_MASTER_TOKEN",
            "APIDECK_API_KEY",
            "NANGO_SECRET_KEY",
            "NANGO_WEBHOOK_SECRET",
            "AUTHPORT_CONFIG",
            "RUST_LOG",
        ] {
            assert!(is_inherited_setting(name), "{name}");
        }
        for name in ["PATH", "HOME", "TMPDIR"] {
            assert!(!is_inherited_setting(name), "{name}");
        }
    }

    #[test]
    fn every_emulator_prefix_is_scrubbed() {
        for prefix in authport_sandbox::env_prefixes() {
            assert!(
                is_inherited_setting(&format!("{prefix}ANYTHING")),
                "{prefix}"
            );
        }
    }
}
