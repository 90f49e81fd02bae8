//! The one trait every vendor emulator implements, so the sandbox is built from a list
//! ([`crate::emulators!`] in `lib.rs`) instead of naming each vendor wherever it is used.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A vendor emulator: its state type implements this. The sandbox builds its configuration,
/// router, environment, canary list and data file from these methods alone.
pub trait Emulator: Send + Sync + fmt::Debug + Sized + 'static {
    /// What it is configured with (a field of [`crate::SandboxConfig`]).
    type Options: Clone + Default + fmt::Debug;
    /// What a durable sandbox keeps of it ([`crate::persist`]).
    type Data: Serialize + DeserializeOwned + Default;

    /// The vendor's name, as `--provider` spells it.
    const NAME: &'static str;
    /// Every variable name prefix its [`Emulator::env`] uses (and the provider reads): what a
    /// child process's environment must be scrubbed of.
    const ENV_PREFIX: &'static str;

    fn new(options: Self::Options) -> Arc<Self>;

    /// Its routes (the vendor's API and its `/_sandbox/<name>/...` controls).
    fn router(self: Arc<Self>) -> axum::Router;

    /// The variables that point the vendor's provider at `base_url`, with the emulator's
    /// (fake) credentials.
    fn env(&self, base_url: &str) -> Vec<(String, String)>;

    /// The secret values it hands out (each also in [`Emulator::env`]): tests grep every
    /// output for them.
    fn canary_credentials(&self) -> Vec<String>;

    /// The secrets of `options`, each with a label (`tray-master-token`): a test kit swaps
    /// the ones still at their default for canaries of its own.
    fn secrets_mut(options: &mut Self::Options) -> Vec<(&'static str, &mut String)>;

    fn data(&self) -> Self::Data;

    /// Puts back what [`Emulator::data`] returned (before the server serves).
    fn restore(&self, data: Self::Data);
}

/// Replaces every secret of `options` still equal to its default with `canary(label)`.
pub(crate) fn replace_default_secrets<E: Emulator>(
    options: &mut E::Options,
    canary: &dyn Fn(&str) -> String,
) {
    let mut defaults = E::Options::default();
    let defaults: Vec<String> = E::secrets_mut(&mut defaults)
        .into_iter()
        .map(|(_, value)| value.clone())
        .collect();
    for ((label, value), default) in E::secrets_mut(options).into_iter().zip(defaults) {
        if *value == default {
            *value = canary(label);
        }
    }
}
