//! Health over time as an inline SVG: stacked bars, one per point, with a title and a
//! description that say in words what the bars show (the table after it gives every number).

use std::fmt::Write as _;

use authport_core::Health;

use crate::model::{HistoryPoint, StatusPage, label, sum};
use crate::text::{count, escape};

/// One colour per health, each at least 4.5:1 against white (a test computes the ratios), so
/// the swatches and bars read on screen and in print; the legend and the table carry the
/// words, so colour is never the only cue.
pub(crate) fn colour(health: Health) -> &'static str {
    match health {
        Health::Healthy => "#1a7f37",
        Health::PendingRefresh => "#7a5c00",
        Health::RefreshFailed => "#b42318",
        Health::Revoked => "#8f1d5c",
        Health::Deleted => "#5a32a3",
        Health::Missing => "#57606a",
        Health::NotImported => "#a04100",
        Health::RolledBack => "#0b5394",
    }
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 36.0;
/// More x labels than this would overlap: every n-th is shown.
const MOST_X_LABELS: usize = 12;

/// The chart's description: the span, then the last point's numbers in words.
pub(crate) fn description(history: &[HistoryPoint]) -> String {
    let (Some(first), Some(last)) = (history.first(), history.last()) else {
        return "No history yet.".to_owned();
    };
    let parts: Vec<String> = last
        .counts
        .iter()
        .filter(|(_, number)| **number > 0)
        .map(|(health, number)| format!("{} {}", count(*number), label(*health).to_lowercase()))
        .collect();
    let last_counts = if parts.is_empty() {
        "no connections".to_owned()
    } else {
        parts.join(", ")
    };
    format!(
        "One bar for each of {} points in time, from {} to {}; each bar is split by status. At {}: {}.",
        history.len(),
        first.label,
        last.label,
        last.label,
        last_counts
    )
}

/// The SVG (empty history: none; the section says so in words).
pub(crate) fn svg(history: &[HistoryPoint]) -> String {
    if history.is_empty() {
        return String::new();
    }
    let highest = history
        .iter()
        .map(|point| sum(&point.counts))
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let slot = plot_width / history.len() as f64;
    let bar_width = (slot * 0.6).min(64.0);
    let label_every = history.len().div_ceil(MOST_X_LABELS);
    let y_of = |value: u64| TOP + plot_height - plot_height * value as f64 / highest as f64;

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title chart-desc"><title id="chart-title">Connections by status over time</title><desc id="chart-desc">{}</desc>"#,
        escape(&description(history))
    );
    // The axes: zero, half and the highest total, with grid lines.
    for value in [0, highest / 2, highest] {
        let y = y_of(value);
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}"/><text class="axis" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            WIDTH - RIGHT,
            LEFT - 8.0,
            y + 4.0,
            count(value)
        );
    }
    for (index, point) in history.iter().enumerate() {
        let x = LEFT + slot * index as f64 + (slot - bar_width) / 2.0;
        let mut below = 0;
        for health in Health::ALL {
            let number = point.counts.get(&health).copied().unwrap_or(0);
            if number == 0 {
                continue;
            }
            let (top, bottom) = (y_of(below + number), y_of(below));
            let _ = write!(
                svg,
                r#"<rect class="h-{}" x="{x:.1}" y="{top:.1}" width="{bar_width:.1}" height="{:.1}"/>"#,
                health.as_str(),
                bottom - top
            );
            below += number;
        }
        if index.is_multiple_of(label_every) {
            let _ = write!(
                svg,
                r#"<text class="axis" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                x + bar_width / 2.0,
                HEIGHT - BOTTOM + 20.0,
                escape(&point.label)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// The legend: the healths the chart uses, in words, beside their colour.
pub(crate) fn legend(page: &StatusPage) -> String {
    let mut legend = String::from(r#"<ul class="legend">"#);
    for health in StatusPage::columns(page.history.iter().map(|point| &point.counts)) {
        let _ = write!(
            legend,
            r#"<li><span class="swatch h-{}" aria-hidden="true"></span>{}</li>"#,
            health.as_str(),
            label(health)
        );
    }
    legend.push_str("</ul>");
    legend
}
