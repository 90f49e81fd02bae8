//! This crate's integration tests, linked as one binary: each test binary of a debug build
//! is some 60 MB and a link of its own, and CI's disk and two cores pay for every one.

mod binding;
mod config;
mod conformance;
mod contract;
mod errors;
mod map;
mod map_expiry;
mod requests;
mod sandbox;
mod support;
