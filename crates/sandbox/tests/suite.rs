//! This crate's integration tests, linked as one binary: each test binary of a debug build
//! is some 60 MB and a link of its own, and CI's disk and two cores pay for every one.

mod apideck_consumers;
mod apideck_contract;
mod apideck_sessions;
mod apideck_vault;
mod apideck_webhooks;
mod common;
mod nango_connect;
mod nango_contract;
mod persist;
mod spec_copies;
mod tray_contract;
mod tray_export;
mod tray_graphql_json;
mod tray_graphql_schema;
mod tray_links;
mod tray_rate_limit;
mod tray_solution;
