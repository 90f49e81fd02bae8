//! The progress bar on stderr: records done / failed / rate. The input is read once, so its
//! record count is not known in advance: for a file the bar, percentage and ETA follow the bytes
//! read; for stdin (total unknown) it is a spinner with the count and rate. The read commands
//! (`verify`, `status`) know their total from the journal: their bar counts objects read.
//! Hidden when the runner says so (stderr is not a TTY, or `-q`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use authport_core::Status;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// The time left at `per_second` (the recent pace) for what remains of `total` after `done`;
/// `None` when the total is unknown (stdin: the bar shows the pace only) or there is no pace
/// yet.
pub fn eta(done: u64, total: Option<u64>, per_second: f64) -> Option<Duration> {
    let left = total?.saturating_sub(done);
    if left == 0 {
        return Some(Duration::ZERO);
    }
    if !(per_second.is_finite() && per_second > 0.0) {
        return None;
    }
    Duration::try_from_secs_f64(left as f64 / per_second).ok()
}

/// An ETA for the bar: `1h 02m`, `3m 05s`, `42s`; `-` when unknown.
fn eta_text(eta: Option<Duration>) -> String {
    let Some(eta) = eta else {
        return "-".to_owned();
    };
    let seconds = eta.as_secs();
    match (seconds / 3600, seconds / 60 % 60, seconds % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s:02}s"),
        (h, m, _) => format!("{h}h {m:02}m"),
    }
}

/// A file input's size and the bytes its reader has consumed so far: the bar's length and
/// position (the record count of a file is not known before it is read).
#[derive(Debug, Clone)]
pub(crate) struct InputSize {
    pub bytes: u64,
    pub read: Arc<AtomicU64>,
}

#[derive(Debug)]
pub(crate) struct Progress {
    bar: ProgressBar,
    failed: AtomicU64,
    records: Arc<AtomicU64>,
    read: Option<Arc<AtomicU64>>,
}

/// A visible bar in `style`, starting with `message`, redrawn even while a slow target holds
/// every request in flight.
fn shown(bar: ProgressBar, style: ProgressStyle, message: &'static str) -> ProgressBar {
    bar.set_style(style);
    bar.set_message(message);
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

impl Progress {
    /// `size`: a file's (bar, percent and ETA by bytes); `None` for stdin (a spinner).
    pub(crate) fn new(visible: bool, size: Option<InputSize>) -> Self {
        let records = Arc::new(AtomicU64::new(0));
        let bar = if visible {
            let bar = ProgressBar::with_draw_target(
                size.as_ref().map(|s| s.bytes),
                ProgressDrawTarget::stderr(),
            );
            let template = match size {
                Some(_) => {
                    "{elapsed_precise} [{wide_bar}] {percent}% {records} records {rate} eta {left} {msg}"
                }
                None => "{spinner} {elapsed_precise} {records} records {rate} {msg}",
            };
            let (for_count, for_rate) = (records.clone(), records.clone());
            let style = ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .with_key(
                    "records",
                    move |_: &ProgressState, out: &mut dyn std::fmt::Write| {
                        let _ = write!(out, "{}", for_count.load(Ordering::Relaxed));
                    },
                )
                // Records per second (the bar's own position may count bytes); whole numbers.
                .with_key(
                    "rate",
                    move |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                        let seconds = state.elapsed().as_secs_f64().max(1e-3);
                        let _ = write!(
                            out,
                            "{:.0}/s",
                            for_rate.load(Ordering::Relaxed) as f64 / seconds
                        );
                    },
                );
            // The time left at the recent pace of the bar's position (bytes of a file).
            let style = style.with_key(
                "left",
                |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                    let left = eta(state.pos(), state.len(), state.per_sec());
                    let _ = write!(out, "{}", eta_text(left));
                },
            );
            shown(bar, style, "failed 0")
        } else {
            ProgressBar::hidden()
        };
        Self {
            bar,
            failed: AtomicU64::new(0),
            records,
            read: size.map(|s| s.read),
        }
    }

    /// A bar over `total` journalled objects read back (`verify`, `status`), with the count of
    /// problems found so far.
    pub(crate) fn reads(visible: bool, total: u64) -> Self {
        let records = Arc::new(AtomicU64::new(0));
        let bar = if visible {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{elapsed_precise} [{wide_bar}] {pos}/{len} read {per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            shown(bar, style, "problems 0")
        } else {
            ProgressBar::hidden()
        };
        Self {
            bar,
            failed: AtomicU64::new(0),
            records,
            read: None,
        }
    }

    /// One object read back; `problem`: not usable, or the read failed.
    pub(crate) fn read_one(&self, problem: bool) {
        if problem {
            let problems = self.failed.fetch_add(1, Ordering::Relaxed) + 1;
            self.bar.set_message(format!("problems {problems}"));
        }
        self.records.fetch_add(1, Ordering::Relaxed);
        self.bar.inc(1);
    }

    pub(crate) fn record(&self, status: Status) {
        if status.is_failure() {
            let failed = self.failed.fetch_add(1, Ordering::Relaxed) + 1;
            self.bar.set_message(format!("failed {failed}"));
        }
        self.records.fetch_add(1, Ordering::Relaxed);
        match &self.read {
            Some(read) => self.bar.set_position(read.load(Ordering::Relaxed)),
            None => self.bar.inc(1),
        }
    }

    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_is_what_is_left_at_the_pace_and_unknown_without_a_total_or_a_pace() {
        let secs = |s: u64| Some(Duration::from_secs(s));
        assert_eq!(eta(100, Some(1_000), 30.0), secs(30));
        assert_eq!(eta(0, Some(60), 2.0), secs(30));
        assert_eq!(eta(1_000, Some(1_000), 0.0), secs(0));
        assert_eq!(
            eta(1_200, Some(1_000), 5.0),
            secs(0),
            "read ahead of the total"
        );
        assert_eq!(eta(100, None, 30.0), None, "stdin: the pace only");
        assert_eq!(eta(100, Some(1_000), 0.0), None, "no pace yet");
        assert_eq!(eta(100, Some(1_000), f64::NAN), None);
        assert_eq!(
            eta(0, Some(u64::MAX), f64::MIN_POSITIVE),
            None,
            "beyond a Duration"
        );
    }

    #[test]
    fn eta_text_is_short() {
        let text = |s: u64| eta_text(Some(Duration::from_secs(s)));
        assert_eq!(text(42), "42s");
        assert_eq!(text(185), "3m 05s");
        assert_eq!(text(3_720), "1h 02m");
        assert_eq!(eta_text(None), "-");
    }
}
