//! [`ReadFiles`]: every file a command reads, gathered for the one output check
//! ([`refuse_outputs_over_inputs`]) each command makes before it opens an output.

use std::path::{Path, PathBuf};

use authport_engine::EngineError;
use authport_engine::files::{NamedFile, refuse_outputs_over_inputs};

use crate::config::ConfigFile;

/// Every file a command reads, for the one output check ([`refuse_outputs_over_inputs`]):
/// its flags' files, a state's event store and the config file.
#[derive(Default)]
pub(crate) struct ReadFiles {
    files: Vec<(String, PathBuf)>,
}

impl ReadFiles {
    /// A file the command reads through `flag` (`--input`, `--import-report`...).
    pub(crate) fn file(mut self, flag: &str, path: Option<&Path>) -> Self {
        if let Some(path) = path {
            self.files.push((flag.to_owned(), path.to_path_buf()));
        }
        self
    }

    /// `--state` and the files beside it: the webhook event store (`<state>.events`) and the
    /// sandbox's data (`<state>.sandbox.json`).
    pub(crate) fn state(self, path: Option<&Path>) -> Self {
        let events = path.map(authport_engine::events_path);
        // `--sandbox` rewrites this file by rename: an output there would be lost.
        let sandbox = path.and_then(crate::sandbox_mode::data_path);
        self.file("--state", path)
            .file("the event store of --state", events.as_deref())
            .file("the sandbox data of --state", sandbox.as_deref())
    }

    /// The `--config` file the configuration was read from.
    pub(crate) fn config(self, config: &ConfigFile) -> Self {
        self.file("--config", config.path())
    }

    /// Refuses (exit 2, nothing changed) an output that is one of these files, or another
    /// output. Called before any output is opened.
    pub(crate) fn refuse_outputs(
        &self,
        outputs: &[(&str, Option<&Path>)],
    ) -> Result<(), EngineError> {
        let inputs: Vec<NamedFile<'_>> = self
            .files
            .iter()
            .map(|(flag, path)| NamedFile::new(flag, path))
            .collect();
        let outputs: Vec<NamedFile<'_>> = outputs
            .iter()
            .filter_map(|(flag, path)| Some(NamedFile::new(flag, (*path)?)))
            .collect();
        Ok(refuse_outputs_over_inputs(&inputs, &outputs)?)
    }
}
