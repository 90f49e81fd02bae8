//! The send-rate limiter: a token bucket (the `governor` crate's GCRA) at the provider's
//! documented rate and burst, that slows down when the target answers 429 and recovers slowly.
//!
//! It starts at the documented rate with the documented burst: a target that keeps its
//! documented limit never needs a margin below it. Requests land a little closer together than
//! they were sent (network and scheduling jitter), so a run at the exact rate may meet an
//! occasional 429 at the edge of the target's bucket. Adaptation is AIMD: a 429 lowers the rate
//! by a twentieth (at most once per second, so a volley of 429s from one instant counts once)
//! and pauses every sender for the `Retry-After` when the target gave one; each quiet interval
//! then adds a hundredth of the configured rate back, up to the configured rate. A small step
//! down is enough to absorb jitter, and repeated 429s (a target slower than documented) keep
//! lowering it. The rate maths are pure functions below.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use authport_core::{RequestGate, transport::RateWindow};

use crate::adaptive::{self, AutoRate, AutoState, Bound, Window};
use crate::share::ShareGate;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// The slowest the limiter adapts down to, as a fraction of the configured rate.
const FLOOR_FRACTION: f64 = 0.05;
/// What a 429 multiplies the rate by.
const DECREASE_FACTOR: f64 = 0.95;
/// Two 429s closer than this count as one signal.
const DECREASE_INTERVAL: Duration = Duration::from_secs(1);
/// A quiet interval after which the rate grows by one step.
const INCREASE_INTERVAL: Duration = Duration::from_secs(2);
/// One recovery step, as a fraction of the configured rate.
const INCREASE_FRACTION: f64 = 0.01;

/// The longest pause a vendor can impose on every sender at once, whatever its `Retry-After` or
/// reset header says: the same cap as one record's retry wait (`RetryPolicy::max_retry_after`),
/// so a hostile or broken answer (`Retry-After: 86400`) cannot stall the whole run for a day.
pub const MAX_PAUSE: Duration = Duration::from_secs(300);

/// Pauses every sender until `now + wait` (at most [`MAX_PAUSE`]), never shortening a pause
/// already in force.
fn pause(state: &mut Adaptive, now: Instant, wait: Duration) {
    let until = now + wait.min(MAX_PAUSE);
    state.paused_until = Some(state.paused_until.map_or(until, |p| p.max(until)));
}

/// The rate after a 429.
pub fn decreased_rate(current: f64, configured: f64) -> f64 {
    (current * DECREASE_FACTOR).max(configured * FLOOR_FRACTION)
}

/// The rate after a quiet interval.
pub fn increased_rate(current: f64, configured: f64) -> f64 {
    (current + configured * INCREASE_FRACTION).min(configured)
}

/// A governor quota for `rate` requests/second with `burst` tokens.
pub fn quota(rate: f64, burst: u32) -> Quota {
    let period =
        Duration::from_secs_f64(1.0 / rate.max(f64::MIN_POSITIVE)).max(Duration::from_nanos(1));
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

/// A bucket at `rate` and `burst` that starts empty: after a 429 the target's bucket is empty
/// too, and both refill from there (the target's at least as fast), so the burst comes back
/// only as the target's does.
fn empty_bucket(rate: f64, burst: u32) -> DefaultDirectRateLimiter {
    let bucket = RateLimiter::direct(quota(rate, burst));
    if let Some(cells) = NonZeroU32::new(burst.max(1)) {
        // Cannot fail for `burst` cells of a bucket of `burst`; a refusal would leave it full,
        // which only costs one early burst.
        let _ = bucket.check_n(cells);
    }
    bucket
}

#[derive(Debug)]
struct Adaptive {
    configured_rate: f64,
    configured_burst: u32,
    current_rate: f64,
    bucket: Arc<DefaultDirectRateLimiter>,
    last_change: Instant,
    paused_until: Option<Instant>,
    /// `--rate auto`: the policy, its state and the window being observed.
    auto: Option<Auto>,
}

#[derive(Debug)]
struct Auto {
    policy: AutoRate,
    state: AutoState,
    window: Window,
    window_started: Instant,
    /// The latencies of the window's successful calls (their median is the window's latency:
    /// a few slow calls, e.g. a first look-up, are not the target slowing down).
    latencies: Vec<Duration>,
    /// Windows per bound, for the summary.
    bounds: [u64; 3],
}

tokio::task_local! {
    /// Time the current provider call spent waiting for permits (see [`timed`]).
    static GATE_WAIT: std::cell::Cell<Duration>;
}

/// Runs one provider call and returns its result with how long it took the target: its
/// duration minus the time it waited for permits of this limiter (which is ours, not the
/// target's latency).
pub(crate) async fn timed<F: std::future::Future>(call: F) -> (F::Output, Duration) {
    GATE_WAIT
        .scope(std::cell::Cell::new(Duration::ZERO), async {
            let started = Instant::now();
            let output = call.await;
            let waited = GATE_WAIT.try_with(std::cell::Cell::get).unwrap_or_default();
            (output, started.elapsed().saturating_sub(waited))
        })
        .await
}

fn add_wait(waited: Duration) {
    let _ = GATE_WAIT.try_with(|total| total.set(total.get() + waited));
}

/// One observation window of `--rate auto`.
const AUTO_WINDOW: Duration = Duration::from_secs(1);

/// The burst of `--rate auto`: a tenth of a second's worth (a target with no published limit
/// may have no burst to give).
pub(crate) fn auto_burst(rate: f64) -> u32 {
    (rate / 10.0).ceil().max(1.0) as u32
}

/// The shared limiter of one run. `None` rate: unlimited (benchmarks, `--rate 0`).
#[derive(Debug)]
pub struct SendLimiter {
    adaptive: Option<Mutex<Adaptive>>,
    clock: DefaultClock,
    /// Requests let through, for the summary's "what bounded the run".
    permits: AtomicU64,
    /// Provider calls' total duration (nanoseconds): calls in flight on average × elapsed.
    busy_nanos: AtomicU64,
    created: Instant,
    /// `--budget-share` below 1 ([`crate::share`]).
    share: Option<ShareGate>,
}

impl SendLimiter {
    /// A limiter at `rate` requests/second with `burst`; unlimited when `rate` is not a positive
    /// finite number.
    pub fn new(rate: f64, burst: u32) -> Self {
        let adaptive = (rate.is_finite() && rate > 0.0).then(|| {
            Mutex::new(Adaptive {
                configured_rate: rate,
                configured_burst: burst,
                current_rate: rate,
                bucket: Arc::new(RateLimiter::direct(quota(rate, burst))),
                last_change: Instant::now(),
                paused_until: None,
                auto: None,
            })
        });
        Self::with(adaptive)
    }

    fn with(adaptive: Option<Mutex<Adaptive>>) -> Self {
        Self {
            adaptive,
            clock: DefaultClock::default(),
            permits: AtomicU64::new(0),
            busy_nanos: AtomicU64::new(0),
            created: Instant::now(),
            share: None,
        }
    }

    /// Keeps the reserve of `share` in every window the vendor's headers describe (see
    /// [`ShareGate::new`]).
    pub fn shared(mut self, share: f64, lowered_rate: bool) -> Self {
        self.share = ShareGate::new(share, lowered_rate);
        self
    }

    /// A request let through has ended; `window`: what its answer said of the vendor's window.
    pub fn answered(&self, window: Option<RateWindow>) {
        self.share.iter().for_each(|share| share.answered(window));
    }

    /// `--rate auto` under `policy`: starts at its start rate, adapts per window.
    pub fn auto(policy: AutoRate) -> Self {
        let state = AutoState::new(&policy);
        let burst = auto_burst(state.rate);
        let now = Instant::now();
        Self::with(Some(Mutex::new(Adaptive {
            configured_rate: policy.ceiling,
            configured_burst: burst,
            current_rate: state.rate,
            bucket: Arc::new(RateLimiter::direct(quota(state.rate, burst))),
            last_change: now,
            paused_until: None,
            auto: Some(Auto {
                policy,
                state,
                window: Window::default(),
                window_started: now,
                latencies: Vec::new(),
                bounds: [0; 3],
            }),
        })))
    }

    /// Requests let through so far.
    pub fn permits(&self) -> u64 {
        self.permits.load(Ordering::Relaxed)
    }

    /// What bounded the run so far: for `--rate auto` the bound of most windows, otherwise
    /// judged from the totals (see [`adaptive::run_bound`]); or the share ([`ShareGate::bound`]).
    pub fn bound(&self, concurrency: usize) -> Bound {
        let bound = self.rate_bound(concurrency);
        self.share
            .as_ref()
            .map_or(bound, |share| share.bound(bound))
    }

    fn rate_bound(&self, concurrency: usize) -> Bound {
        let elapsed = self.created.elapsed();
        let busy = Duration::from_nanos(self.busy_nanos.load(Ordering::Relaxed));
        let allowed = match &self.adaptive {
            None => None,
            Some(adaptive) => {
                let state = lock(adaptive);
                if let Some(auto) = &state.auto {
                    let order = [Bound::Rate, Bound::Latency, Bound::Client];
                    let most = (0..3).max_by_key(|&i| (auto.bounds[i], 3 - i)).unwrap_or(0);
                    if auto.bounds[most] > 0 {
                        return order[most];
                    }
                }
                Some(state.current_rate * elapsed.as_secs_f64() + f64::from(state.configured_burst))
            }
        };
        adaptive::run_bound(allowed, self.permits(), busy, elapsed, concurrency)
    }

    pub fn unlimited() -> Self {
        Self::new(0.0, 0)
    }

    /// The rate now in force (requests/second), `None` when unlimited.
    pub fn current_rate(&self) -> Option<f64> {
        self.adaptive.as_ref().map(|a| lock(a).current_rate)
    }

    /// Waits for the right to send one request: the rate's token, then the share's reserve.
    /// The share comes last, right before the send: a token may take seconds to come, and the
    /// other traffic spends the window meanwhile, so a reserve checked first would be stale.
    pub async fn acquire(&self) {
        self.rate_permit().await;
        ShareGate::ready_if(self.share.as_ref()).await;
    }

    /// Waits for the rate's token (none to wait for when unlimited).
    async fn rate_permit(&self) {
        let Some(adaptive) = &self.adaptive else {
            self.permits.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let asked = Instant::now();
        loop {
            let (bucket, paused_until) = {
                let state = lock(adaptive);
                (state.bucket.clone(), state.paused_until)
            };
            if let Some(until) = paused_until
                && until > Instant::now()
            {
                tokio::time::sleep_until(until.into()).await;
                continue;
            }
            match bucket.check() {
                Ok(()) => {
                    add_wait(asked.elapsed());
                    self.permits.fetch_add(1, Ordering::Relaxed);
                    if let Some(auto) = &mut lock(adaptive).auto {
                        auto.window.sent += 1;
                    }
                    return;
                }
                Err(not_until) => {
                    tokio::time::sleep(not_until.wait_time_from(self.clock.now())).await;
                }
            }
        }
    }

    /// The target answered 429: slow down, and pause everyone for `retry_after` if given.
    pub fn throttled(&self, retry_after: Option<Duration>) {
        let Some(adaptive) = &self.adaptive else {
            return;
        };
        let mut state = lock(adaptive);
        let now = Instant::now();
        if let Some(retry_after) = retry_after {
            pause(&mut state, now, retry_after);
        }
        if now.duration_since(state.last_change) < DECREASE_INTERVAL {
            return;
        }
        if state.auto.is_some() {
            // Auto halves at once (the window closes early): every request sent above the
            // target's limit meanwhile would be another 429.
            if let Some(auto) = &mut state.auto {
                auto.window.throttled += 1;
            }
            close_window(&mut state, now);
            return;
        }
        state.current_rate = decreased_rate(state.current_rate, state.configured_rate);
        state.bucket = Arc::new(empty_bucket(state.current_rate, state.configured_burst));
        state.last_change = now;
        tracing::debug!(
            rate = state.current_rate,
            "target throttled us; slowing down"
        );
    }

    /// The target said its budget is spent for `wait` (rate-limit headers): pause every sender
    /// until then, without slowing the rate (nothing was refused).
    pub fn hold(&self, wait: Duration) {
        let Some(adaptive) = &self.adaptive else {
            return;
        };
        let mut state = lock(adaptive);
        pause(&mut state, Instant::now(), wait);
    }

    /// A provider call took `busy` (whatever its answer): for the summary's bound.
    pub fn called(&self, busy: Duration) {
        let nanos = u64::try_from(busy.as_nanos()).unwrap_or(u64::MAX);
        self.busy_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// A call went through without a 429 in `latency`: recover towards the configured rate
    /// (auto: record the latency, and close the window when it is over).
    pub fn succeeded(&self, latency: Duration) {
        let Some(adaptive) = &self.adaptive else {
            return;
        };
        let mut state = lock(adaptive);
        if let Some(auto) = &mut state.auto {
            auto.latencies.push(latency);
            let now = Instant::now();
            if now.duration_since(auto.window_started) >= AUTO_WINDOW {
                close_window(&mut state, now);
            }
            return;
        }
        if state.current_rate >= state.configured_rate {
            return;
        }
        let now = Instant::now();
        if now.duration_since(state.last_change) < INCREASE_INTERVAL {
            return;
        }
        state.current_rate = increased_rate(state.current_rate, state.configured_rate);
        // Empty as well: the old bucket's tokens may not be spent at the new rate, and a busy
        // run (the only one that raises the rate) has none left anyway.
        state.bucket = Arc::new(empty_bucket(state.current_rate, state.configured_burst));
        state.last_change = now;
    }
}

/// The rate limit of one run, shared by the engine and the provider's HTTP client.
///
/// The runner builds one and hands it to the provider as its [`RequestGate`] (so every request
/// the provider sends is paced: discovery, user look-ups, token mints, writes) and to the engine
/// in [`crate::ImportOptions::gate`], which sets the rate when the run starts and slows it down
/// on 429s. Until then it does not wait at all.
#[derive(Debug)]
pub struct RunGate {
    limiter: Mutex<Arc<SendLimiter>>,
}

impl RunGate {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            limiter: Mutex::new(Arc::new(SendLimiter::unlimited())),
        })
    }

    /// Sets the rate for the run starting now; returns the limiter the engine adapts.
    pub fn configure(&self, rate: f64, burst: u32) -> Arc<SendLimiter> {
        self.install(SendLimiter::new(rate, burst))
    }

    /// Lifts the rate limit for the run starting now (`--rate 0`).
    pub fn configure_unlimited(&self) -> Arc<SendLimiter> {
        self.install(SendLimiter::unlimited())
    }

    /// Sets `--rate auto` for the run starting now.
    pub fn configure_auto(&self, policy: AutoRate) -> Arc<SendLimiter> {
        self.install(SendLimiter::auto(policy))
    }

    pub(crate) fn install(&self, limiter: SendLimiter) -> Arc<SendLimiter> {
        let limiter = Arc::new(limiter);
        *self.limiter.lock().unwrap_or_else(|e| e.into_inner()) = limiter.clone();
        limiter
    }

    pub(crate) fn current(&self) -> Arc<SendLimiter> {
        self.limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[async_trait::async_trait]
impl RequestGate for RunGate {
    async fn ready(&self) {
        let limiter = self.current();
        limiter.acquire().await;
    }

    fn hold_for(&self, wait: Duration) {
        self.current().hold(wait);
    }

    fn answered(&self, window: Option<RateWindow>) {
        self.current().answered(window);
    }
}

/// Ends auto's window: the policy picks the next rate, applied to a new bucket (empty after a
/// decrease: the target's bucket is empty too).
fn close_window(state: &mut Adaptive, now: Instant) {
    let Some(auto) = &mut state.auto else {
        return;
    };
    auto.window.length = now.duration_since(auto.window_started);
    auto.window.latency = adaptive::median(&mut auto.latencies);
    let (next, bound) = adaptive::next(&auto.policy, auto.state, &auto.window);
    tracing::trace!(window = ?auto.window, rate = next.rate, ?bound, "auto rate window");
    auto.bounds[bound as usize] += 1;
    let decreased = next.rate < auto.state.rate;
    auto.state = next;
    auto.window = Window::default();
    auto.window_started = now;
    auto.latencies.clear();
    if next.rate != state.current_rate {
        let burst = auto_burst(next.rate);
        state.current_rate = next.rate;
        state.configured_burst = burst;
        // Empty either way: a full new bucket would add a burst per window on top of the rate
        // (and a busy run has no tokens left in the old one anyway).
        state.bucket = Arc::new(empty_bucket(next.rate, burst));
        if decreased {
            state.last_change = now;
            tracing::debug!(rate = next.rate, "target throttled us; auto rate halved");
        }
    }
}

fn lock(adaptive: &Mutex<Adaptive>) -> std::sync::MutexGuard<'_, Adaptive> {
    adaptive.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
#[path = "limiter_tests.rs"]
mod tests;
