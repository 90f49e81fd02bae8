//! The one retry loop. Discovery, the import's writes and reconciles, verify and rollback all
//! call the provider through [`Retrier::call`]: attempt, classify the failure ([`next_step`]),
//! tell the rate limiter about 429s, wait and try again, or hand the decision back. What differs
//! between them is a parameter: the call's [`WriteEffect`], whether the run can stop it (a
//! [`Control`]) and its deadline.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use authport_core::ProviderError;

use crate::control::Control;
use crate::limiter::{SendLimiter, timed};
use crate::retry::{NextStep, RetryPolicy, backoff_delay, next_step};

/// What a call may have written at the target, which decides what an ambiguous failure means.
/// (Its own name: the kit's `transport::Effect` classifies HTTP failures, this one the engine's
/// retries of a whole provider call.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteEffect {
    /// Reads and deletes: repeating them is harmless, so a lost answer is retried like a
    /// transient failure.
    Idempotent,
    /// An overwrite of an object the journal names: a lost answer is retried, with backoff.
    Update,
    /// A create: a lost answer may have created the object, so the caller must reconcile
    /// ([`NextStep::Reconcile`]) before any retry.
    Create,
}

/// How a call through the retrier ended.
#[derive(Debug)]
pub(crate) enum Attempted<T> {
    Done(T),
    /// The retries ended on `error`; `step` says how (`GiveUp`, `StopRun` or, for a create,
    /// `Reconcile`). `attempts` counts the calls made, the retrier's starting count included.
    Failed {
        error: ProviderError,
        step: NextStep,
        attempts: u32,
    },
    /// The run stopped before the next call was sent; `last` is the failure before it, if any.
    Stopped {
        last: Option<ProviderError>,
    },
    /// The run stopped and the grace period ended while a call was in flight.
    Abandoned,
}

/// Counts what the retrier did, for the run's summary.
#[derive(Debug, Default)]
pub(crate) struct RetryCounters {
    pub retries: AtomicU64,
    pub throttled: AtomicU64,
}

impl RetryCounters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The retry loop's settings, shared by every call of a run.
#[derive(Debug)]
pub(crate) struct Retrier<'a> {
    pub policy: RetryPolicy,
    /// Told about every 429 (it slows down) and every success (it recovers).
    pub limiter: &'a SendLimiter,
    /// The run's stop signal: no new call once it is stopped, in-flight calls get the grace
    /// period. `None`: the calls are neither stopped nor bounded.
    pub control: Option<&'a Control>,
    /// The run's deadline `(started, budget)`: no retry is scheduled past it.
    pub deadline: Option<(Instant, Duration)>,
    pub counters: Option<&'a RetryCounters>,
}

impl Retrier<'_> {
    /// Calls `call` until it succeeds or the policy says stop. `already` is the number of calls
    /// of this kind the caller made before (a write retried after a reconcile continues its
    /// count).
    pub(crate) async fn call<T, F, Fut>(
        &self,
        effect: WriteEffect,
        already: u32,
        mut call: F,
    ) -> Attempted<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let mut attempt = already;
        let mut last = None;
        loop {
            if self.control.is_some_and(Control::is_stopped) {
                return Attempted::Stopped { last };
            }
            attempt += 1;
            if attempt > 1 {
                self.count(|c| &c.retries);
            }
            // The call's own time, without its waits for permits: the target's latency.
            let (result, latency) = match self.control {
                Some(control) => match control.bounded(timed(call())).await {
                    Some(result) => result,
                    None => return Attempted::Abandoned,
                },
                None => timed(call()).await,
            };
            self.limiter.called(latency);
            let error = match result {
                Ok(value) => {
                    self.limiter.succeeded(latency);
                    return Attempted::Done(value);
                }
                Err(error) => error,
            };
            if let ProviderError::RateLimited { retry_after, .. } = &error {
                self.count(|c| &c.throttled);
                self.limiter.throttled(*retry_after);
            }
            let (error, step) = self.step(effect, error, attempt);
            let NextStep::RetryAfter(delay) = step else {
                return Attempted::Failed {
                    error,
                    step,
                    attempts: attempt,
                };
            };
            let waited = match self.control {
                Some(control) => control.sleep_unless_stopped(delay).await,
                None => {
                    tokio::time::sleep(delay).await;
                    true
                }
            };
            if !waited {
                return Attempted::Stopped { last: Some(error) };
            }
            last = Some(error);
        }
    }

    /// What follows `error` on the `attempt`-th call of this effect.
    fn step(
        &self,
        effect: WriteEffect,
        error: ProviderError,
        attempt: u32,
    ) -> (ProviderError, NextStep) {
        let error = match (effect, error) {
            // Nothing can have been applied twice by repeating it: as good as transient.
            (WriteEffect::Idempotent, ProviderError::OutcomeUnknown { message }) => {
                ProviderError::Transient { message }
            }
            (_, error) => error,
        };
        let step = match (effect, &error) {
            // An ambiguous update: the object is ours and an update overwrites it, so retrying
            // is safe where a create would need a reconcile.
            (WriteEffect::Update, ProviderError::OutcomeUnknown { .. }) => {
                if attempt >= self.policy.max_attempts {
                    NextStep::GiveUp
                } else {
                    NextStep::RetryAfter(backoff_delay(&self.policy, attempt, rand::random()))
                }
            }
            _ => next_step(
                &error,
                &self.policy,
                attempt,
                self.time_left(),
                rand::random(),
            ),
        };
        (error, step)
    }

    /// What remains of the run's deadline, if it has one.
    pub(crate) fn time_left(&self) -> Option<Duration> {
        self.deadline
            .map(|(started, budget)| budget.saturating_sub(started.elapsed()))
    }

    fn count(&self, counter: impl Fn(&RetryCounters) -> &AtomicU64) {
        if let Some(counters) = self.counters {
            RetryCounters::bump(counter(counters));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn retrier(limiter: &SendLimiter) -> Retrier<'_> {
        Retrier {
            policy: RetryPolicy {
                max_attempts: 3,
                base_delay: Duration::ZERO,
                max_delay: Duration::ZERO,
                max_retry_after: Duration::ZERO,
            },
            limiter,
            control: None,
            deadline: None,
            counters: None,
        }
    }

    /// Answers with `script` in order, then succeeds; records the calls.
    async fn scripted(
        effect: WriteEffect,
        script: Vec<ProviderError>,
    ) -> (Attempted<&'static str>, usize) {
        let limiter = SendLimiter::unlimited();
        let retrier = retrier(&limiter);
        let script = Mutex::new(script.into_iter());
        let calls = Mutex::new(0);
        let outcome = retrier
            .call(effect, 0, || {
                *calls.lock().unwrap() += 1;
                let next = script.lock().unwrap().next();
                async move { next.map_or(Ok("done"), Err) }
            })
            .await;
        let calls = *calls.lock().unwrap();
        (outcome, calls)
    }

    #[tokio::test]
    async fn the_effect_decides_what_a_lost_answer_means() {
        let lost = || ProviderError::outcome_unknown("reset");
        let (outcome, calls) = scripted(WriteEffect::Idempotent, vec![lost(), lost()]).await;
        assert!(matches!(outcome, Attempted::Done("done")), "{outcome:?}");
        assert_eq!(calls, 3);

        let (outcome, calls) = scripted(WriteEffect::Update, vec![lost()]).await;
        assert!(matches!(outcome, Attempted::Done("done")), "{outcome:?}");
        assert_eq!(calls, 2);
        let (outcome, _) = scripted(WriteEffect::Update, vec![lost(), lost(), lost()]).await;
        assert!(
            matches!(
                outcome,
                Attempted::Failed {
                    step: NextStep::GiveUp,
                    attempts: 3,
                    ..
                }
            ),
            "{outcome:?}"
        );

        let (outcome, calls) = scripted(WriteEffect::Create, vec![lost()]).await;
        assert!(
            matches!(
                outcome,
                Attempted::Failed {
                    step: NextStep::Reconcile,
                    attempts: 1,
                    ..
                }
            ),
            "{outcome:?}"
        );
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn failures_are_retried_within_the_policy_then_handed_back() {
        let (outcome, calls) = scripted(
            WriteEffect::Create,
            vec![
                ProviderError::transient("503"),
                ProviderError::rate_limited(None, "429"),
            ],
        )
        .await;
        assert!(matches!(outcome, Attempted::Done("done")), "{outcome:?}");
        assert_eq!(calls, 3);
        let (outcome, calls) = scripted(
            WriteEffect::Idempotent,
            vec![ProviderError::transient("503"); 5],
        )
        .await;
        assert!(
            matches!(
                outcome,
                Attempted::Failed {
                    step: NextStep::GiveUp,
                    attempts: 3,
                    ..
                }
            ),
            "{outcome:?}"
        );
        assert_eq!(calls, 3);
        let (outcome, calls) =
            scripted(WriteEffect::Create, vec![ProviderError::rejected("400")]).await;
        assert!(matches!(
            outcome,
            Attempted::Failed {
                step: NextStep::GiveUp,
                ..
            }
        ));
        assert_eq!(calls, 1);
        let (outcome, _) =
            scripted(WriteEffect::Idempotent, vec![ProviderError::fatal("401")]).await;
        assert!(matches!(
            outcome,
            Attempted::Failed {
                step: NextStep::StopRun,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn a_stopped_run_sends_nothing_more() {
        let limiter = SendLimiter::unlimited();
        let control = Control::new(Duration::ZERO);
        control.stop("test");
        let retrier = Retrier {
            control: Some(&control),
            ..retrier(&limiter)
        };
        let outcome: Attempted<()> = retrier
            .call(WriteEffect::Create, 0, || async {
                panic!("no call after a stop")
            })
            .await;
        assert!(matches!(outcome, Attempted::Stopped { last: None }));
    }
}
