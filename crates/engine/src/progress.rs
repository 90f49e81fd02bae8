//! The progress bar on stderr: records done / failed / rate, with a bar and ETA when the total
//! is known, a spinner otherwise (the input is read once, so a file's or stdin's record count
//! is not known in advance). Hidden when the runner says so (stderr is not a TTY, or `-q`).

use std::sync::atomic::{AtomicU64, Ordering};

use authport_core::Status;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug)]
pub(crate) struct Progress {
    bar: ProgressBar,
    failed: AtomicU64,
}

impl Progress {
    pub(crate) fn new(visible: bool, total: Option<u64>) -> Self {
        let bar = if visible {
            let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
            let template = match total {
                Some(_) => {
                    "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} {rate} eta {eta} {msg}"
                }
                None => "{spinner} {elapsed_precise} {human_pos} records {rate} {msg}",
            };
            let style = ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                // indicatif's own `{per_sec}` prints four decimals; a whole number reads better.
                .with_key(
                    "rate",
                    |state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                        let _ = write!(out, "{:.0}/s", state.per_sec());
                    },
                );
            bar.set_style(style);
            bar.set_message("failed 0");
            if total.is_none() {
                // The spinner turns even while a slow target holds every record in flight.
                bar.enable_steady_tick(std::time::Duration::from_millis(200));
            }
            bar
        } else {
            ProgressBar::hidden()
        };
        Self {
            bar,
            failed: AtomicU64::new(0),
        }
    }

    pub(crate) fn record(&self, status: Status) {
        if status.is_failure() {
            let failed = self.failed.fetch_add(1, Ordering::Relaxed) + 1;
            self.bar.set_message(format!("failed {failed}"));
        }
        self.bar.inc(1);
    }

    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
