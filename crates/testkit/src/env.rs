//! The one environment scrub for child processes: a test that starts the binary removes every
//! variable of the machine that would change what the binary does, so a developer's own
//! account, config or log filter never reaches a test run.

/// Prefixes of the variables a provider, or authport itself, reads.
pub const INHERITED_PREFIXES: &[&str] = &["TRAY_", "APIDECK_", "NANGO_", "AUTHPORT_"];

/// Whether `name` is such a variable (the log filter included).
pub fn is_inherited_setting(name: &str) -> bool {
    INHERITED_PREFIXES
        .iter()
        .any(|prefix| name.starts_with(prefix))
        || name == "RUST_LOG"
}

/// The names of this process's variables a child must not inherit.
pub fn inherited_settings() -> Vec<String> {
    std::env::vars()
        .map(|(name, _)| name)
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
}
