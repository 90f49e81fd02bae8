//! authport's status page: one self-contained HTML page that the people who follow a migration
//! (customer success, account managers) can read, print on A4 and forward.
//!
//! [`render`] is pure: a [`StatusPage`] in, the HTML out; the runner reads the journal and the
//! event store and writes the file. The page has no script and no external asset (a CSP in the
//! page forbids both); its tables have captions and header scopes, its chart an SVG title,
//! description and a table of the same numbers; every text from the model is escaped.

mod chart;
mod model;
mod render;
mod text;

#[cfg(test)]
mod tests;

pub use model::{
    HealthCounts, HistoryPoint, ReasonCount, ReconnectRow, ServiceRow, StatusPage, example, label,
};
pub use render::render;
