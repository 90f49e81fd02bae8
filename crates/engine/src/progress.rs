//! The progress bar on stderr: records done / failed / rate. The input is read once, so its
//! record count is not known in advance: for a file the bar and percentage follow the bytes
//! read, and the ETA the records the file holds (estimated from its lines); for stdin (total
//! unknown) it is a spinner with the count and rate. Without the bar, `--format json` gets the
//! same as JSON progress events. The read commands
//! (`verify`, `status`) know their total from the journal: their bar counts objects read.
//! Hidden when the runner says so (stderr is not a TTY, or `-q`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use authport_core::Status;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use serde_json::{Value, json};

/// How often a JSON progress event is written (`--format json` without the bar).
const EVENT_EVERY: Duration = Duration::from_secs(2);

/// One JSON progress event: records done and failed, the pace (records/second, one decimal)
/// and the seconds left (`null` for stdin: the total is not known).
pub fn progress_event(records: u64, failed: u64, per_second: f64, left: Option<Duration>) -> Value {
    json!({
        "type": "progress",
        "records": records,
        "failed": failed,
        "per_second": (per_second * 10.0).round() / 10.0,
        "eta_seconds": left.map(|left| left.as_secs()),
    })
}

/// Units per second over `elapsed` (zero before any time has passed).
fn pace(done: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        done as f64 / seconds
    } else {
        0.0
    }
}

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
    /// Lines read: JSON Lines' records, for the ETA.
    pub lines: Arc<AtomicU64>,
}

impl InputSize {
    /// The time left for a file after `done` records at `per_second` records: from the
    /// records it holds, estimated from the lines read and the share of its bytes read (JSON
    /// Lines); for a JSON array on one line, from its bytes at `bytes_per_second`.
    fn eta(&self, done: u64, per_second: f64, bytes_per_second: f64) -> Option<Duration> {
        let read = self.read.load(Ordering::Relaxed);
        match records_in_file(self.lines.load(Ordering::Relaxed), read, self.bytes) {
            Some(total) => eta(done, Some(total), per_second),
            None => eta(read, Some(self.bytes), bytes_per_second),
        }
    }
}

/// The records of a JSON Lines file of `bytes`, estimated from the `lines` in its first `read`
/// bytes (exact once it is all read); `None` below two lines (a JSON array).
pub fn records_in_file(lines: u64, read: u64, bytes: u64) -> Option<u64> {
    (lines > 1 && read > 0).then(|| (lines as f64 * bytes.max(read) as f64 / read as f64) as u64)
}

#[derive(Debug)]
pub(crate) struct Progress {
    bar: ProgressBar,
    failed: AtomicU64,
    records: Arc<AtomicU64>,
    size: Option<InputSize>,
    /// JSON progress events on stderr: when the run started, and when the last event was
    /// written (milliseconds since the start).
    events: Option<Events>,
}

#[derive(Debug)]
struct Events {
    started: Instant,
    last_ms: AtomicU64,
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
    /// `events`: write JSON progress events to stderr instead when the bar is hidden.
    pub(crate) fn new(visible: bool, size: Option<InputSize>, events: bool) -> Self {
        let events = (events && !visible).then(|| Events {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
        });
        let records = Arc::new(AtomicU64::new(0));
        let bar = if visible {
            let bar = ProgressBar::with_draw_target(
                size.as_ref().map(|s| s.bytes),
                ProgressDrawTarget::stderr(),
            );
            let template = match &size {
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
            // A file's time left at the records' pace (the bytes' recent pace for a JSON array).
            let (for_left, file) = (records.clone(), size.clone());
            let style = style.with_key(
                "left",
                move |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                    let done = for_left.load(Ordering::Relaxed);
                    let per_second = pace(done, state.elapsed());
                    let left = file
                        .as_ref()
                        .and_then(|f| f.eta(done, per_second, state.per_sec()));
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
            size,
            events,
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
            size: None,
            events: None,
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
        match &self.size {
            Some(size) => self.bar.set_position(size.read.load(Ordering::Relaxed)),
            None => self.bar.inc(1),
        }
        self.event();
    }

    /// Writes a JSON progress event when the last one is [`EVENT_EVERY`] old (one writer wins).
    fn event(&self) {
        let Some(events) = &self.events else {
            return;
        };
        let elapsed = events.started.elapsed();
        let now_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let last = events.last_ms.load(Ordering::Relaxed);
        if now_ms < last.saturating_add(EVENT_EVERY.as_millis() as u64)
            || events
                .last_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let done = self.records.load(Ordering::Relaxed);
        let per_second = pace(done, elapsed);
        let bytes_per_second = |size: &InputSize| pace(size.read.load(Ordering::Relaxed), elapsed);
        let left = (self.size.as_ref()).and_then(|s| s.eta(done, per_second, bytes_per_second(s)));
        let failed = self.failed.load(Ordering::Relaxed);
        let event = progress_event(done, failed, per_second, left);
        eprintln!("{event}");
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
    fn a_progress_event_has_the_pace_and_for_a_file_the_seconds_left() {
        let file = progress_event(120, 3, 12.04, Some(Duration::from_secs(30)));
        assert_eq!(
            file,
            json!({"type": "progress", "records": 120, "failed": 3, "per_second": 12.0,
                   "eta_seconds": 30})
        );
        let stdin = progress_event(7, 0, pace(7, Duration::from_secs(2)), None);
        assert_eq!(stdin["per_second"], 3.5);
        assert_eq!(stdin["eta_seconds"], Value::Null);
        assert_eq!(pace(5, Duration::ZERO), 0.0);
    }

    #[test]
    fn a_files_eta_counts_its_records_by_lines_or_else_its_bytes() {
        assert_eq!(records_in_file(10, 100, 1_000), Some(100));
        assert_eq!(
            records_in_file(24, 2_400, 2_400),
            Some(24),
            "all read: exact"
        );
        assert_eq!(records_in_file(1, 500, 1_000), None, "a JSON array");
        assert_eq!(records_in_file(0, 0, 1_000), None);
        let size = |lines: u64, read: u64| InputSize {
            bytes: 2_400,
            read: Arc::new(AtomicU64::new(read)),
            lines: Arc::new(AtomicU64::new(lines)),
        };
        // 24 records all read, 4 done at 2/s: 10 s left (not the bytes', all read).
        assert_eq!(
            size(24, 2_400).eta(4, 2.0, 1_000.0),
            Some(Duration::from_secs(10))
        );
        // A JSON array: 1,200 bytes left at 100 bytes/s.
        assert_eq!(
            size(1, 1_200).eta(4, 2.0, 100.0),
            Some(Duration::from_secs(12))
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
