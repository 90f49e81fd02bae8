//! [`EngineError`]: why a command could not run, typed by what the operator does next, so the
//! exit code is [`EngineError::exit`] and never found by inspecting an error's text or type at
//! the top of the binary.

use authport_core::{ConfigError, Lacks, UnknownProvider};

use crate::files::Refusal;
use crate::summary::Exit;

/// A command that could not run (as opposed to a run whose records failed, which is a summary).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Bad flags, config or environment, or a refused file: nothing was sent (exit 2). The
    /// message says what to change.
    #[error("{0:#}")]
    Usage(anyhow::Error),
    /// The run could not start or finish: the input, state or report is unreadable or
    /// unwritable (exit 4).
    #[error("{0:#}")]
    Io(anyhow::Error),
}

impl EngineError {
    /// A usage error with this message.
    pub fn usage(message: impl std::fmt::Display) -> Self {
        Self::Usage(anyhow::anyhow!("{message}"))
    }

    /// A provider's configuration refused while building it (`provider `tray`: ...`).
    pub fn config(provider: &str, error: &ConfigError) -> Self {
        Self::usage(format!("provider `{provider}`: {error}"))
    }

    /// The process's exit code for this error.
    pub fn exit(&self) -> Exit {
        match self {
            Self::Usage(_) => Exit::Usage,
            Self::Io(_) => Exit::Io,
        }
    }
}

impl From<Refusal> for EngineError {
    fn from(refusal: Refusal) -> Self {
        Self::Usage(refusal.into())
    }
}

impl From<UnknownProvider> for EngineError {
    fn from(error: UnknownProvider) -> Self {
        Self::Usage(error.into())
    }
}

impl From<Lacks> for EngineError {
    fn from(error: Lacks) -> Self {
        Self::Usage(error.into())
    }
}

/// The engine's own layers (the state store, the event store) still report with `anyhow`; the
/// refusals among them are [`Refusal`]s, told apart here, at the one boundary, so no caller
/// inspects an error to find its exit code.
impl From<anyhow::Error> for EngineError {
    fn from(error: anyhow::Error) -> Self {
        match error.downcast::<EngineError>() {
            Ok(typed) => typed,
            Err(error) if error.downcast_ref::<Refusal>().is_some() => Self::Usage(error),
            Err(error) => Self::Io(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_exit_code_and_keeps_its_message() {
        let usage = EngineError::usage("--from and --to name the same provider");
        assert_eq!(usage.exit(), Exit::Usage);
        assert_eq!(usage.to_string(), "--from and --to name the same provider");
        let refused = EngineError::from(Refusal("the report is the input".into()));
        assert_eq!(refused.exit(), Exit::Usage);
        // A refusal under context keeps both, and stays a refusal.
        let wrapped = anyhow::Error::new(Refusal("a symlink".into())).context("cannot create");
        let wrapped = EngineError::from(wrapped);
        assert_eq!(wrapped.exit(), Exit::Usage);
        let io = EngineError::from(anyhow::anyhow!("disk full").context("cannot write report"));
        assert_eq!(io.exit(), Exit::Io);
        assert_eq!(io.to_string(), "cannot write report: disk full");
        // Through `anyhow` and back: the same error.
        let round = EngineError::from(anyhow::Error::new(EngineError::usage("bad flag")));
        assert_eq!(round.exit(), Exit::Usage);
        assert_eq!(round.to_string(), "bad flag");
    }
}
