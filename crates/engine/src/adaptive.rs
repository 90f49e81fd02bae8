//! `--rate auto`, as pure policy: for vendors that publish no limit, find the rate the target
//! accepts. The limiter feeds it one window of observations at a time (about a second of
//! traffic) and applies the rate it returns; nothing here reads a clock.
//!
//! - It starts conservatively ([`AutoRate::start`]).
//! - While a window sees no 429, the latency stays flat (within [`LATENCY_TOLERANCE`] of the
//!   best window so far) and the run used the rate (the client, not the rate, may be what holds
//!   it back), the rate grows additively: by [`AutoRate::step`], and faster back up towards
//!   the level just below the last 429 ("the knee", which was accepted until then), then by
//!   small probes above it.
//! - A 429 halves it (and `Retry-After` pauses every sender, in the limiter).
//! - It never goes above [`AutoRate::ceiling`] nor below [`FLOOR`].
//!
//! Each window is also classified by what held the run back ([`Bound`]), which the summary
//! reports.

use std::time::Duration;

/// The slowest auto goes, requests/second.
pub const FLOOR: f64 = 0.5;
/// A window whose latency is above the best one by this factor is not "flat".
pub const LATENCY_TOLERANCE: f64 = 1.5;
/// Latency differences below this are noise (scheduling, a GC pause at the target).
pub const LATENCY_SLACK: Duration = Duration::from_millis(20);
/// A window that used less than this fraction of the rate was held back by the client.
pub const USED_FRACTION: f64 = 0.8;
/// Recovery aims at this fraction of the knee, then probes above it by small steps.
pub const KNEE_FRACTION: f64 = 0.9;
/// One probe near the knee, as a fraction of it.
pub const PROBE_FRACTION: f64 = 0.005;

/// The configuration of `--rate auto`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AutoRate {
    /// The first rate, requests/second.
    pub start: f64,
    /// Never above this (`[engine] rate_ceiling`, or the provider's default ceiling).
    pub ceiling: f64,
    /// The additive increase per quiet window, requests/second.
    pub step: f64,
}

impl AutoRate {
    /// Auto under `ceiling`: starts at a tenth of it (at least 1/s, at most 10/s), steps by a
    /// twentieth of it (at least 0.5/s): from the start to the ceiling in under 20 windows.
    pub fn under(ceiling: f64) -> Self {
        let ceiling = ceiling.max(FLOOR);
        Self {
            start: (ceiling / 10.0).clamp(1.0, 10.0).min(ceiling),
            ceiling,
            step: (ceiling / 20.0).max(0.5),
        }
    }
}

/// What one window saw.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Window {
    /// Requests the limiter let through.
    pub sent: u64,
    /// Answers 429.
    pub throttled: u64,
    /// Median duration of the provider calls that succeeded, if any did.
    pub latency: Option<Duration>,
    pub length: Duration,
}

/// What held a window (or the run) back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bound {
    /// The rate limit (ours, or the target's 429s).
    Rate,
    /// The target's latency: every record in flight was waiting on it.
    Latency,
    /// The client: records were not sent as fast as the rate allowed nor all waiting on the
    /// target (concurrency, CPU, the journal, the input).
    Client,
    /// `--budget-share`: the share of the vendor's rate, or its window's reserve (never an auto
    /// window's bound: those index the first three).
    Share,
}

impl Bound {
    pub fn describe(self) -> &'static str {
        match self {
            Bound::Rate => "the rate limit",
            Bound::Latency => "the target's latency (raise --concurrency)",
            Bound::Client => "the client (concurrency, CPU, journal or input)",
            Bound::Share => "the budget share (--budget-share)",
        }
    }
}

/// The policy's memory between windows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AutoState {
    pub rate: f64,
    /// The best (lowest) window latency seen: the target unloaded.
    pub best_latency: Option<Duration>,
    /// The rate at the last 429.
    pub knee: Option<f64>,
}

impl AutoState {
    pub fn new(policy: &AutoRate) -> Self {
        Self {
            rate: policy.start.clamp(FLOOR, policy.ceiling.max(FLOOR)),
            best_latency: None,
            knee: None,
        }
    }
}

/// Whether `latency` is within the tolerance of the best window's.
pub fn latency_is_flat(latency: Duration, best: Option<Duration>) -> bool {
    match best {
        None => true,
        Some(best) => latency <= best.mul_f64(LATENCY_TOLERANCE) + LATENCY_SLACK,
    }
}

/// The next state after `window`, and what bounded that window.
pub fn next(policy: &AutoRate, state: AutoState, window: &Window) -> (AutoState, Bound) {
    let mut next = state;
    if window.throttled > 0 {
        next.knee = Some(state.rate);
        next.rate = (state.rate / 2.0).max(FLOOR);
        return (next, Bound::Rate);
    }
    if let Some(latency) = window.latency {
        let flat = latency_is_flat(latency, state.best_latency);
        if state.best_latency.is_none_or(|best| latency < best) {
            next.best_latency = Some(latency);
        }
        if !flat {
            return (next, Bound::Latency);
        }
    }
    let allowed = state.rate * window.length.as_secs_f64();
    if allowed <= 0.0 || (window.sent as f64) < USED_FRACTION * allowed {
        return (next, Bound::Client);
    }
    let step = match state.knee {
        // Known-good territory: back to just below the knee in one window (at least a step).
        Some(knee) if state.rate < KNEE_FRACTION * knee => {
            (KNEE_FRACTION * knee - state.rate).max(policy.step)
        }
        // Near the knee: probe by a small step (the limit may have moved either way).
        Some(knee) => (knee * PROBE_FRACTION).max(FLOOR / 5.0).min(policy.step),
        None => policy.step,
    };
    next.rate = (state.rate + step).min(policy.ceiling);
    // The window used the rate and the target kept up: the rate is what held it back.
    (next, Bound::Rate)
}

/// The median of `latencies` (reordered), `None` when empty.
pub fn median(latencies: &mut [Duration]) -> Option<Duration> {
    if latencies.is_empty() {
        return None;
    }
    let middle = latencies.len() / 2;
    Some(*latencies.select_nth_unstable(middle).1)
}

/// What bounded a whole run, from its totals: the rate when the requests came close to what
/// it allowed, else the target's latency when the records in flight were mostly waiting on
/// provider calls (Little's law: calls' busy time ÷ elapsed ≈ calls in flight), else the client.
pub fn run_bound(
    allowed_requests: Option<f64>,
    sent: u64,
    busy: Duration,
    elapsed: Duration,
    concurrency: usize,
) -> Bound {
    if allowed_requests.is_some_and(|allowed| sent as f64 >= USED_FRACTION * allowed) {
        return Bound::Rate;
    }
    let in_flight = busy.as_secs_f64() / elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
    if in_flight >= USED_FRACTION * concurrency.max(1) as f64 {
        Bound::Latency
    } else {
        Bound::Client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    fn window(sent: u64, throttled: u64, latency: Option<Duration>) -> Window {
        Window {
            sent,
            throttled,
            latency,
            length: Duration::from_secs(1),
        }
    }

    #[test]
    fn one_window_at_a_time() {
        let policy = AutoRate {
            start: 10.0,
            ceiling: 100.0,
            step: 2.0,
        };
        let at = |rate: f64, best: Option<Duration>, knee: Option<f64>| AutoState {
            rate,
            best_latency: best,
            knee,
        };
        // (state, window) → (rate, best latency, knee, bound)
        let cases = [
            // Quiet, flat, used: additive increase; the first latency becomes the best.
            (
                at(10.0, None, None),
                window(10, 0, ms(50)),
                (12.0, ms(50), None, Bound::Rate),
            ),
            (
                at(12.0, ms(50), None),
                window(12, 0, ms(60)),
                (14.0, ms(50), None, Bound::Rate),
            ),
            // Latency above 1.5× the best (+20 ms): hold.
            (
                at(20.0, ms(50), None),
                window(20, 0, ms(200)),
                (20.0, ms(50), None, Bound::Latency),
            ),
            // A faster window lowers the best.
            (
                at(20.0, ms(50), None),
                window(20, 0, ms(30)),
                (22.0, ms(30), None, Bound::Rate),
            ),
            // The client used less than 80 % of the rate: hold.
            (
                at(40.0, ms(50), None),
                window(20, 0, ms(50)),
                (40.0, ms(50), None, Bound::Client),
            ),
            // No call answered in the window (no latency): judged by the use alone.
            (
                at(10.0, ms(50), None),
                window(10, 0, None),
                (12.0, ms(50), None, Bound::Rate),
            ),
            // A 429 halves and remembers the knee, whatever the latency.
            (
                at(40.0, ms(50), None),
                window(40, 3, ms(500)),
                (20.0, ms(50), Some(40.0), Bound::Rate),
            ),
            // Below the knee: back to 90 % of it in one window (at least a step).
            (
                at(20.0, ms(50), Some(40.0)),
                window(20, 0, ms(50)),
                (36.0, ms(50), Some(40.0), Bound::Rate),
            ),
            (
                at(35.0, ms(50), Some(40.0)),
                window(35, 0, ms(50)),
                (37.0, ms(50), Some(40.0), Bound::Rate),
            ),
            // At the knee: small probes (0.5 % of the knee).
            (
                at(37.0, ms(50), Some(40.0)),
                window(37, 0, ms(50)),
                (37.2, ms(50), Some(40.0), Bound::Rate),
            ),
            // Never above the ceiling, never below the floor.
            (
                at(99.0, ms(50), None),
                window(99, 0, ms(50)),
                (100.0, ms(50), None, Bound::Rate),
            ),
            (
                at(0.6, ms(50), Some(1.0)),
                window(1, 1, ms(50)),
                (FLOOR, ms(50), Some(0.6), Bound::Rate),
            ),
        ];
        for (index, (state, window, (rate, best, knee, bound))) in cases.into_iter().enumerate() {
            let (got, got_bound) = next(&policy, state, &window);
            assert!(
                (got.rate - rate).abs() < 1e-9,
                "case {index}: rate {} != {rate}",
                got.rate
            );
            assert_eq!(got.best_latency, best, "case {index}");
            assert_eq!(got.knee, knee, "case {index}");
            assert_eq!(got_bound, bound, "case {index}");
        }
    }

    /// A target accepting 40/s (429 beyond it): a simulated run of windows, each sending what
    /// the rate allows, settles at ≥ 90 % of the limit with 429s in few windows.
    #[test]
    fn a_hidden_limit_is_approached_and_kept() {
        let policy = AutoRate::under(100.0);
        let mut state = AutoState::new(&policy);
        let (mut sent, mut throttled_windows) = (0.0, 0);
        let windows = 300;
        for index in 0..windows {
            let throttled = u64::from(state.rate > 40.0);
            if index >= 100 {
                sent += state.rate.min(40.0);
                throttled_windows += throttled;
            }
            let seen = window(state.rate as u64, throttled, ms(50));
            state = next(&policy, state, &seen).0;
            assert!(state.rate <= policy.ceiling && state.rate >= FLOOR);
        }
        let steady = sent / f64::from(windows - 100) / 40.0;
        assert!(steady >= 0.9, "steady-state use of the limit {steady}");
        assert!(
            throttled_windows <= 20,
            "{throttled_windows} windows with 429s"
        );
    }

    #[test]
    fn a_window_latency_is_its_median() {
        let ms = Duration::from_millis;
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [ms(5)]), Some(ms(5)));
        // Two slow first look-ups do not make the window slow.
        assert_eq!(
            median(&mut [ms(900), ms(2), ms(3), ms(700), ms(2)]),
            Some(ms(3))
        );
    }

    #[test]
    fn start_and_step_follow_the_ceiling() {
        assert_eq!(
            AutoRate::under(100.0),
            AutoRate {
                start: 10.0,
                ceiling: 100.0,
                step: 5.0
            }
        );
        assert_eq!(
            AutoRate::under(5.0),
            AutoRate {
                start: 1.0,
                ceiling: 5.0,
                step: 0.5
            }
        );
        assert_eq!(AutoRate::under(0.0).ceiling, FLOOR);
        assert_eq!(AutoRate::under(0.0).start, FLOOR);
    }

    #[test]
    fn a_run_is_bounded_by_the_rate_the_latency_or_the_client() {
        let s = Duration::from_secs;
        // Sent what the rate allowed.
        assert_eq!(run_bound(Some(1000.0), 950, s(10), s(100), 8), Bound::Rate);
        // Far below the rate, 8 calls in flight on average with concurrency 8: latency.
        assert_eq!(
            run_bound(Some(1000.0), 300, s(800), s(100), 8),
            Bound::Latency
        );
        // Unlimited, calls busy only a quarter of the slots: the client.
        assert_eq!(run_bound(None, 300, s(200), s(100), 8), Bound::Client);
        assert_eq!(run_bound(None, 0, s(0), s(0), 0), Bound::Client);
    }
}
