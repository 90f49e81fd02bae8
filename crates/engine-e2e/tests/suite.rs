//! This crate's integration tests, linked as one binary: each test binary of a debug build
//! is some 60 MB and a link of its own, and CI's disk and two cores pay for every one.

mod common;
mod crash;
mod faults;
mod grants;
mod hardening;
mod import;
mod maintenance;
mod pacing;
