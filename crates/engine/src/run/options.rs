//! What an import run is configured with ([`ImportOptions`]) and where its records come from
//! ([`Input`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authport_core::{ProviderLimits, TargetRef};

use super::is_stdin;
use super::pacing::RateChoice;
use crate::limiter::RunGate;
use crate::retry::RetryPolicy;

/// Everything an import run is configured with. Build with [`ImportOptions::new`] and set
/// fields; `None` means the provider's documented default.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub provider: String,
    /// The provider's documented limits (from its plugin): the defaults for rate, burst and
    /// concurrency.
    pub limits: ProviderLimits,
    /// Where the records come from: a file, stdin, or an in-memory reader (`migrate`).
    pub input: Input,
    pub report: Option<PathBuf>,
    /// Records in flight at once (default: the provider's `default_concurrency`).
    pub concurrency: Option<usize>,
    /// The pace of provider calls (default: the vendor's documented rate, or `--rate auto`
    /// — see [`crate::adaptive`] — for a vendor that documents none).
    pub rate: RateChoice,
    /// `[engine] rate_ceiling`: the ceiling wherever the pace is auto (default: the vendor's
    /// ceiling or documented rate).
    pub rate_ceiling: Option<f64>,
    /// `--budget-share`: the share of the vendor's budget the run may spend, 0 < share <= 1
    /// (1: all of it). See [`super::pacing::pace`] and [`crate::share`].
    pub budget_share: f64,
    pub dry_run: bool,
    /// Draw a progress bar on stderr (the runner decides: TTY and not `-q`).
    pub progress: bool,
    /// Without the bar, write a JSON progress event (records, pace, ETA) to stderr every
    /// couple of seconds (the runner: `--format json`, not `-q`).
    pub progress_events: bool,
    /// Calls of one kind per record, the first included.
    pub max_attempts: u32,
    /// The whole run's time budget; when it runs out the run stops (exit 3) and the rest is
    /// reported `skipped`/`not_attempted`.
    pub deadline: Option<Duration>,
    /// How long in-flight calls may still run after Ctrl-C or a fatal error.
    pub stop_grace: Duration,
    /// The first backoff ceiling (doubled per attempt, full jitter).
    pub retry_base_delay: Duration,
    /// The largest backoff ceiling.
    pub retry_max_delay: Duration,
    /// Rebind a state made for another target to this one (`--allow-target-change`) instead of
    /// refusing the run.
    pub allow_target_change: bool,
    /// `--allow-shared-grants`: import every record even when several hold one OAuth grant
    /// (safe only where the provider does not rotate refresh tokens).
    pub allow_shared_grants: bool,
    /// `--require-scopes`: a record whose grant lacks scopes the target asks for fails
    /// instead of being imported with the `scope_deficit` warning.
    pub require_scopes: bool,
    /// The run's rate limit. Build the provider with it (`BuildContext::gate`), so the limit
    /// applies to every HTTP request the provider sends; the engine configures it once when the
    /// run starts and slows it down on 429s.
    pub gate: Arc<RunGate>,
    /// Called after each record's outcome is committed with the object it wrote (e.g. to tell
    /// the webhook receiver that this connection is now the migration's, while the run holds
    /// the journal's lock).
    pub on_applied: Option<AppliedHook>,
}

/// See [`ImportOptions::on_applied`]: `(record id, target)`. Must not block for long.
#[derive(Clone)]
pub struct AppliedHook(pub Arc<AppliedFn>);

/// `(record id, target)` of one committed outcome.
pub type AppliedFn = dyn Fn(&str, &TargetRef) + Send + Sync;

impl std::fmt::Debug for AppliedHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppliedHook")
    }
}

impl ImportOptions {
    pub fn new(
        provider: impl Into<String>,
        limits: ProviderLimits,
        input: impl Into<Input>,
    ) -> Self {
        let policy = RetryPolicy::default();
        Self {
            provider: provider.into(),
            limits,
            input: input.into(),
            report: None,
            concurrency: None,
            rate: RateChoice::VendorDefault,
            rate_ceiling: None,
            budget_share: 1.0,
            dry_run: false,
            progress: false,
            progress_events: false,
            max_attempts: policy.max_attempts,
            deadline: None,
            stop_grace: Duration::from_secs(30),
            retry_base_delay: policy.base_delay,
            retry_max_delay: policy.max_delay,
            allow_target_change: false,
            allow_shared_grants: false,
            require_scopes: false,
            gate: RunGate::new(),
            on_applied: None,
        }
    }

    pub(super) fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts.max(1),
            base_delay: self.retry_base_delay,
            max_delay: self.retry_max_delay.max(self.retry_base_delay),
            ..RetryPolicy::default()
        }
    }
}

/// Where an import's records come from.
#[derive(Clone)]
pub enum Input {
    /// A file of JSON Lines or a JSON array.
    File(PathBuf),
    /// The process's stdin (`--input -`).
    Stdin,
    /// Any byte stream, read once: e.g. an exporter writing into an in-memory pipe, so records
    /// with secrets never touch the disk. `name` locates errors (`<name>:<line>`).
    Reader { name: String, source: ReaderSource },
}

/// A reader the run takes once (behind a lock so that [`ImportOptions`] stays `Clone`).
#[derive(Clone)]
pub struct ReaderSource(pub(super) Arc<Mutex<Option<Box<dyn std::io::Read + Send>>>>);

impl std::fmt::Debug for ReaderSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReaderSource")
    }
}

impl Input {
    /// An input read from `source`, located as `name` in error messages.
    pub fn reader(name: impl Into<String>, source: impl std::io::Read + Send + 'static) -> Self {
        Self::Reader {
            name: name.into(),
            source: ReaderSource(Arc::new(Mutex::new(Some(Box::new(source))))),
        }
    }

    /// The file whose contents are the input, for the same-file refusals (stdin's own file
    /// when it is redirected); none for an in-memory reader.
    pub fn identity(&self) -> Option<&Path> {
        match self {
            Self::File(path) => Some(path),
            Self::Stdin => Some(Path::new("/dev/stdin")),
            Self::Reader { .. } => None,
        }
    }
}

impl std::fmt::Display for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Stdin => f.write_str("<stdin>"),
            Self::Reader { name, .. } => f.write_str(name),
        }
    }
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Input({self})")
    }
}

impl From<&Path> for Input {
    fn from(path: &Path) -> Self {
        if is_stdin(path) {
            Self::Stdin
        } else {
            Self::File(path.to_owned())
        }
    }
}

impl From<PathBuf> for Input {
    fn from(path: PathBuf) -> Self {
        Self::from(path.as_path())
    }
}

impl From<&PathBuf> for Input {
    fn from(path: &PathBuf) -> Self {
        Self::from(path.as_path())
    }
}

impl From<&str> for Input {
    fn from(path: &str) -> Self {
        Self::from(Path::new(path))
    }
}
