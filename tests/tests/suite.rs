//! This crate's integration tests, linked as one binary: each test binary of a debug build
//! is some 60 MB and a link of its own, and CI's disk and two cores pay for every one.

mod after_import;
mod apideck;
mod apideck_requests;
mod binding;
mod broker;
mod broker_browser;
mod budget;
mod canary;
mod common;
mod cutover;
mod dry_run;
mod export;
mod grants;
mod migrate;
mod migrate_edges;
mod nango_links;
mod nango_second;
mod nango_webhooks;
mod outputs;
mod quick_start;
mod read_commands;
mod reconnect_security;
mod rollback_target;
mod signals;
mod status_html;
mod summaries;
mod transport;
mod tray;
mod tray_adoption;
mod tray_solution;
mod validate;
mod webhooks;
mod webhooks_security;
mod webhooks_upgrade;
mod worklists;
