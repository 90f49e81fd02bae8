//! authport-testkit: the one set of helpers every test crate uses, and the conformance suite
//! every provider runs. A dev-dependency only; it knows no vendor crate.
//!
//! - [`sandbox()`] / [`sandbox_with`]: the bundled sandbox in-process on a random loopback port,
//!   with canary credentials, its URLs and the environment a provider needs;
//!   [`serve`] wraps any other emulator (a scaffolded provider's) in the same fault injector;
//! - [`context()`]: a `BuildContext` builder (config, env, memo, gate, timeout);
//! - [`canary`] / [`assert_no_canary`] / [`assert_no_canary_in_dir`]: planted secrets and the
//!   one check that they never show;
//! - [`CountingGate`]: a `RequestGate` that counts permits, to prove every request is paced;
//! - [`clean_command`] / [`clean_async_command`] / [`Output`]: the one environment scrub for a
//!   child process (the binary, built from every emulator's variables) and what it printed;
//! - [`record`] / [`write_jsonl`] / [`read_jsonl`] / [`scratch`]: fixtures and files;
//! - [`contract`]: `(method, path template, status, body)` tables checking an emulator
//!   against its vendor's published spec, driven by one loop;
//! - [`conformance`]: the shared guarantees every provider's `tests/conformance.rs` checks.

mod canary;
pub mod conformance;
mod context;
pub mod contract;
mod env;
mod export;
mod files;
mod gate;
mod server;

pub use canary::{
    CANARY, assert_no_canary, assert_no_canary_in_dir, assert_no_canary_in_dir_except, canary,
};
pub use context::{ContextBuilder, context};
pub use env::{
    Output, clean_async_command, clean_command, inherited_prefixes, inherited_settings,
    is_inherited_setting,
};
pub use export::{Attempts, Collected};
pub use files::{NOW, now, read_jsonl, record, record_at, scratch, write_jsonl, write_lines};
pub use gate::CountingGate;
pub use server::{Sandbox, Served, Target, sandbox, sandbox_with, serve};
