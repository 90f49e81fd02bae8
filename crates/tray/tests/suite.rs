//! This crate's integration tests, linked as one binary: each test binary of a debug build
//! is some 60 MB and a link of its own, and CI's disk and two cores pay for every one.

mod binding;
mod common;
mod config;
mod conformance;
mod export;
mod lookup;
mod mapping;
mod sandbox;
mod solution;
mod solution_slots;
