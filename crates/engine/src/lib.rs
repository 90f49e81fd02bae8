//! authport-engine: the migration run.
//!
//! A thin runner calls one entry point per command: [`import`], [`verify`], [`rollback`],
//! [`validate`], [`export::export`] and [`migrate()`]; a command that cannot run is an
//! [`EngineError`], whose `exit()` is the process's exit code. The engine streams records from the input through the provider's mapping to its
//! `import`, within a rate limit ([`limiter`]), retrying what may be retried ([`retry`]),
//! journalling intent and outcome of every write in the `--state` file ([`state`]) so a run
//! killed at any instant resumes without duplicates, and writes one report line per input record
//! ([`summary`]).
//!
//! Deliberately absent: any vendor knowledge (providers classify their errors; the engine only
//! acts on the classification), and any secret in state, report or logs (the engine fingerprints
//! request bodies with a salt and never prints them).

pub mod adaptive;
mod control;
mod dedupe;
mod error;
pub mod events;
pub mod export;
pub mod files;
mod group_commit;
pub mod health;
pub mod limiter;
pub mod links_store;
mod maintenance;
pub mod migrate;
mod progress;
pub mod reconnect;
mod retrier;
pub mod retry;
mod run;
pub mod share;
pub mod state;
pub mod status;
pub mod summary;

pub use error::EngineError;
pub use events::{
    ConnectionLatest, Delivery, EventStore, OwnedConnection, Recorded, StoredEvent, events_path,
    owned_in_journal, publish_owned,
};
pub use files::Refusal;
pub use limiter::RunGate;
pub use maintenance::{MaintenanceOptions, rollback, verify};
pub use migrate::{Cutover, Handover, Migration, migrate};
pub use run::{
    AppliedHook, ImportOptions, Input, Pace, Pacing, RateChoice, default_send_rate, import,
    input_identity, is_stdin, pace, pacing, validate, validate_input,
};
pub use state::StateStore;
pub use summary::{
    Exit, MaintenanceSummary, ReportWriter, RunSummary, SUMMARY_SCHEMA, json_summary,
};
