//! This crate's integration tests, linked as one binary: each test binary of a debug build
//! is some 60 MB and a link of its own, and CI's disk and two cores pay for every one.

mod binding;
mod config;
mod conformance;
mod contract;
mod export;
mod links;
mod map;
mod sandbox;
