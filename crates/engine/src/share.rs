//! `--budget-share F` on a vendor that sends its window's budget (Nango's `X-RateLimit-Limit`,
//! `-Remaining`, `-Reset`): keep a reserve of `ceil((1 - F) × limit)` requests of every window
//! for the account's other traffic, and hold sending until the window resets when the next
//! request would cross it. A pure state machine ([`WindowBudget`]); the limiter does the waiting.
//!
//! The headers of an answer count what the vendor had seen when it answered: this run's requests
//! still in flight are not in them, so the estimate subtracts them (those the vendor did count
//! are then subtracted twice, which only makes the run more careful). Within a window the
//! estimate only goes down (answers may arrive out of order). When a window has reset, what is
//! left of the new one is unknown (the other traffic may have spent it): one request goes alone
//! and its answer tells.
//!
//! Between answers the other traffic goes on spending: its pace is what the drop in `remaining`
//! between two answers of one window shows beyond this run's own requests answered meanwhile,
//! and a sender counts that pace over the time since the last answer before it goes.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use authport_core::transport::RateWindow;

use crate::adaptive::Bound;

/// With no answer for this long, requests counted in flight are taken as lost (a cancelled
/// call never reports its end), so a run cannot wait for them forever.
const LOST_AFTER: Duration = Duration::from_secs(30);

/// The shortest time between two answers the other traffic's pace is measured over.
const PACE_SPAN: Duration = Duration::from_secs(1);

/// The requests kept for the account's other traffic out of a window of `limit`.
pub fn reserve(share: f64, limit: u64) -> u64 {
    ((1.0 - share).max(0.0) * limit as f64).ceil() as u64
}

/// What a sender may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Send (the request is counted in flight).
    Go,
    /// The share of this window is spent: wait until it resets.
    Until(Instant),
    /// A new window's budget is being probed: wait for an answer.
    Answer,
}

/// The share's view of the vendor's current window.
#[derive(Debug, Clone)]
pub struct WindowBudget {
    share: f64,
    in_flight: u64,
    /// Requests this run may still send before `reset_at`; `None` until an answer tells.
    left: Option<(i64, Instant)>,
    /// A window reset: the next request goes alone.
    probing: bool,
    last_answer: Option<Instant>,
    /// Times a sender waited for the reserve: the share bounded the run.
    held: u64,
    /// Answers with a window so far (this run's requests the vendor has counted).
    answers: u64,
    /// The answer the other traffic's pace is measured from: what it said, when, and
    /// `answers` then.
    seen: Option<Seen>,
    /// When the last answer with a window came: the estimate `left` is as of then.
    window_at: Option<Instant>,
    /// The other traffic's pace in requests a second, from the last two answers of a window.
    other_per_sec: f64,
}

/// One answer's view of the window, to tell the other traffic's pace from the next one.
#[derive(Debug, Clone, Copy)]
struct Seen {
    remaining: u64,
    at: Instant,
    reset_at: Instant,
    answers: u64,
}

/// The other traffic's pace between two answers of one window: the drop in `remaining` that
/// this run's `ours` answered requests do not explain, per second. `None` when the two do not
/// tell (out of order, or no time between them).
pub fn other_pace(before: u64, after: u64, ours: u64, seconds: f64) -> Option<f64> {
    if after > before || seconds <= 0.0 {
        return None;
    }
    Some((before - after).saturating_sub(ours) as f64 / seconds)
}

impl WindowBudget {
    pub fn new(share: f64) -> Self {
        Self {
            share,
            in_flight: 0,
            left: None,
            probing: false,
            last_answer: None,
            held: 0,
            answers: 0,
            seen: None,
            window_at: None,
            other_per_sec: 0.0,
        }
    }

    /// What the other traffic has likely spent since the last answer with a window, at `now`.
    fn others_since(&self, now: Instant) -> i64 {
        self.window_at.map_or(0, |at| {
            (self.other_per_sec * now.saturating_duration_since(at).as_secs_f64()).ceil() as i64
        })
    }

    /// Times a sender was held for the reserve.
    pub fn held(&self) -> u64 {
        self.held
    }

    /// One sender asks to send at `now`.
    pub fn admit(&mut self, now: Instant) -> Admit {
        if self.in_flight > 0
            && self
                .last_answer
                .is_some_and(|at| now.duration_since(at) >= LOST_AFTER)
        {
            self.in_flight = 0;
        }
        match self.left {
            // No window seen (yet): a vendor without the headers is paced by the rate alone.
            None => {}
            Some((_, reset_at)) if now >= reset_at => {
                if self.in_flight > 0 {
                    return Admit::Answer;
                }
                // Alone: its answer sets the new window's budget.
                self.left = None;
                self.probing = true;
            }
            Some((left, reset_at)) => {
                if left - self.others_since(now) <= 0 {
                    self.held += 1;
                    return Admit::Until(reset_at);
                }
                self.left = Some((left - 1, reset_at));
            }
        }
        if self.probing && self.in_flight > 0 {
            return Admit::Answer;
        }
        self.in_flight += 1;
        Admit::Go
    }

    /// A request let through ended at `now`, with what its answer said of the window.
    pub fn answered(&mut self, window: Option<RateWindow>, now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.last_answer = Some(now);
        let Some(window) = window else {
            return;
        };
        self.probing = false;
        self.answers += 1;
        let spendable = window.remaining as i64
            - reserve(self.share, window.limit) as i64
            - self.in_flight as i64;
        let reset_at = now + window.reset;
        self.window_at = Some(now);
        let anchor = Seen {
            remaining: window.remaining,
            at: now,
            reset_at,
            answers: self.answers,
        };
        match self.seen {
            // The same window: its drop beyond this run's answered requests is the others'.
            // Answers closer than `PACE_SPAN` keep the older anchor: one request of theirs
            // within a millisecond is not a pace.
            Some(seen) if now < seen.reset_at => {
                let seconds = now.saturating_duration_since(seen.at).as_secs_f64();
                if seconds >= PACE_SPAN.as_secs_f64() {
                    let ours = self.answers - seen.answers;
                    if let Some(pace) = other_pace(seen.remaining, window.remaining, ours, seconds)
                    {
                        self.other_per_sec = pace;
                    }
                    self.seen = Some(anchor);
                }
            }
            // A new window: the pace seen in the last one is the best guess until this one's
            // answers tell.
            _ => self.seen = Some(anchor),
        }
        self.left = Some(match self.left {
            // The same window: only ever lower (answers may arrive out of order).
            Some((left, known)) if now < known => (left.min(spendable), known.min(reset_at)),
            _ => (spendable, reset_at),
        });
    }
}

/// A run's share: its window budget, and the wake-up of senders waiting for an answer.
#[derive(Debug)]
pub(crate) struct ShareGate {
    budget: Mutex<WindowBudget>,
    answered: tokio::sync::Notify,
    /// The share also lowered the rate (for the summary's bound).
    lowered_rate: bool,
}

impl ShareGate {
    /// `None` for a share of 1 (or more): the whole budget, nothing to keep. `lowered_rate`:
    /// the share also lowered the rate (for the summary's bound).
    pub(crate) fn new(share: f64, lowered_rate: bool) -> Option<Self> {
        (share < 1.0).then(|| Self {
            budget: Mutex::new(WindowBudget::new(share)),
            answered: tokio::sync::Notify::new(),
            lowered_rate,
        })
    }

    fn budget(&self) -> std::sync::MutexGuard<'_, WindowBudget> {
        self.budget.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// [`Self::ready`] when there is a share.
    pub(crate) async fn ready_if(share: Option<&Self>) {
        if let Some(share) = share {
            share.ready().await;
        }
    }

    /// Waits until the reserve allows one more request.
    pub(crate) async fn ready(&self) {
        loop {
            // Created before the check: an answer between the check and the wait still wakes it.
            let answered = self.answered.notified();
            let admit = self.budget().admit(Instant::now());
            match admit {
                Admit::Go => return,
                Admit::Until(at) => tokio::time::sleep_until(at.into()).await,
                Admit::Answer => {
                    // Bounded: a request that never reports its end must not stall the run.
                    let _ = tokio::time::timeout(Duration::from_secs(1), answered).await;
                }
            }
        }
    }

    /// A request ended; `window`: what its answer said of the vendor's window.
    pub(crate) fn answered(&self, window: Option<RateWindow>) {
        self.budget().answered(window, Instant::now());
        self.answered.notify_waiters();
    }

    /// The run's bound given the rate's: the share when a sender waited for the reserve, or
    /// when the rate bounded the run and the share had lowered it.
    pub(crate) fn bound(&self, rate_bound: Bound) -> Bound {
        let held = self.budget().held() > 0;
        if held || (rate_bound == Bound::Rate && self.lowered_rate) {
            Bound::Share
        } else {
            rate_bound
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(limit: u64, remaining: u64, reset_secs: u64) -> Option<RateWindow> {
        Some(RateWindow {
            limit,
            remaining,
            reset: Duration::from_secs(reset_secs),
        })
    }

    #[test]
    fn the_reserve_is_the_rest_of_the_share_rounded_up() {
        assert_eq!(reserve(0.3, 200), 140);
        assert_eq!(reserve(1.0, 200), 0);
        assert_eq!(reserve(0.25, 10), 8);
        assert_eq!(reserve(0.5, 3), 2);
    }

    #[test]
    fn without_headers_every_request_goes() {
        let mut budget = WindowBudget::new(0.3);
        let now = Instant::now();
        for _ in 0..100 {
            assert_eq!(budget.admit(now), Admit::Go);
            budget.answered(None, now);
        }
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn spends_down_to_the_reserve_counting_requests_in_flight_then_holds_until_the_reset() {
        let mut budget = WindowBudget::new(0.3);
        let now = Instant::now();
        // First answer: 20 of 20 minus one (ours) left; reserve 14 → 5 more may go.
        assert_eq!(budget.admit(now), Admit::Go);
        budget.answered(window(20, 19, 2), now);
        for _ in 0..5 {
            assert_eq!(budget.admit(now), Admit::Go);
        }
        let reset_at = now + Duration::from_secs(2);
        assert_eq!(budget.admit(now), Admit::Until(reset_at));
        // An answer that does not count the four still in flight cannot raise the estimate.
        budget.answered(window(20, 18, 2), now);
        assert_eq!(budget.admit(now), Admit::Until(reset_at));
        assert_eq!(budget.held(), 2);
    }

    #[test]
    fn other_traffic_in_the_window_lowers_what_is_left() {
        let mut budget = WindowBudget::new(0.5);
        let now = Instant::now();
        assert_eq!(budget.admit(now), Admit::Go);
        budget.answered(window(10, 9, 5), now);
        // 4 may go; another client then spends 3 (the next answer says 9 - 1 - 3 = 5).
        assert_eq!(budget.admit(now), Admit::Go);
        budget.answered(window(10, 5, 5), now);
        assert!(matches!(budget.admit(now), Admit::Until(_)));
    }

    #[test]
    fn the_other_traffics_pace_is_the_drop_our_answered_requests_do_not_explain() {
        assert_eq!(other_pace(100, 90, 4, 2.0), Some(3.0));
        assert_eq!(other_pace(100, 96, 4, 2.0), Some(0.0));
        assert_eq!(other_pace(100, 99, 4, 2.0), Some(0.0));
        // Out of order (a later answer with more left), or no time between: nothing to tell.
        assert_eq!(other_pace(90, 100, 0, 2.0), None);
        assert_eq!(other_pace(100, 90, 0, 0.0), None);
    }

    #[test]
    fn a_sender_counts_what_the_other_traffic_spent_since_the_last_answer() {
        // Limit 100, share 0.5: reserve 50.
        let mut budget = WindowBudget::new(0.5);
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        assert_eq!(budget.admit(start), Admit::Go);
        budget.answered(window(100, 99, 60), start);
        // Two seconds on, one more of ours answered and 10 of theirs: 5 a second.
        assert_eq!(budget.admit(at(1)), Admit::Go);
        budget.answered(window(100, 88, 58), at(2));
        // 38 were spendable then; four seconds later the others have likely spent 20 more.
        for _ in 0..18 {
            assert_eq!(budget.admit(at(6)), Admit::Go);
        }
        assert!(matches!(budget.admit(at(6)), Admit::Until(_)));
        // Without their pace the same answers would have let 38 go.
        let mut blind = WindowBudget::new(0.5);
        blind.answered(window(100, 88, 58), at(2));
        for _ in 0..38 {
            assert_eq!(blind.admit(at(6)), Admit::Go);
        }
        assert!(matches!(blind.admit(at(6)), Admit::Until(_)));
    }

    #[test]
    fn answers_within_a_moment_of_each_other_do_not_make_a_pace() {
        let mut budget = WindowBudget::new(0.5);
        let start = Instant::now();
        budget.answered(window(100, 99, 60), start);
        // One of theirs between two answers a millisecond apart is not 1,000 a second.
        budget.answered(window(100, 97, 60), start + Duration::from_millis(1));
        assert_eq!(budget.other_per_sec, 0.0);
        for _ in 0..47 {
            assert_eq!(budget.admit(start + Duration::from_secs(1)), Admit::Go);
        }
    }

    #[test]
    fn after_a_reset_one_request_probes_the_new_window_alone() {
        let mut budget = WindowBudget::new(0.5);
        let start = Instant::now();
        assert_eq!(budget.admit(start), Admit::Go);
        assert_eq!(budget.admit(start), Admit::Go);
        budget.answered(window(10, 8, 1), start);
        let later = start + Duration::from_secs(2);
        // One still in flight: wait for its answer before probing.
        assert_eq!(budget.admit(later), Admit::Answer);
        budget.answered(None, later);
        assert_eq!(budget.admit(later), Admit::Go);
        assert_eq!(budget.admit(later), Admit::Answer);
        budget.answered(window(10, 9, 1), later);
        // 9 - 5 reserve - 0 in flight.
        for _ in 0..4 {
            assert_eq!(budget.admit(later), Admit::Go);
        }
        assert!(matches!(budget.admit(later), Admit::Until(_)));
    }

    #[test]
    fn the_share_bounds_the_run_when_it_held_a_sender_or_lowered_a_binding_rate() {
        assert!(ShareGate::new(1.0, true).is_none());
        let lowered = ShareGate::new(0.5, true).unwrap();
        assert_eq!(lowered.bound(Bound::Rate), Bound::Share);
        assert_eq!(lowered.bound(Bound::Client), Bound::Client);
        let held = ShareGate::new(0.5, false).unwrap();
        assert_eq!(held.bound(Bound::Rate), Bound::Rate);
        held.answered(window(10, 5, 30));
        assert!(matches!(
            held.budget().admit(Instant::now()),
            Admit::Until(_)
        ));
        assert_eq!(held.bound(Bound::Latency), Bound::Share);
    }

    #[test]
    fn a_lost_request_does_not_block_the_probe_forever() {
        let mut budget = WindowBudget::new(0.5);
        let start = Instant::now();
        assert_eq!(budget.admit(start), Admit::Go);
        assert_eq!(budget.admit(start), Admit::Go);
        budget.answered(window(10, 8, 1), start);
        assert_eq!(budget.admit(start + LOST_AFTER), Admit::Go);
    }
}
