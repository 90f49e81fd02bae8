//! Retry policy: what to do after a provider call fails. Pure functions, so every branch is
//! unit-tested without a clock or a network.

use std::time::Duration;

use authport_core::ProviderError;

/// Bounds on retrying one record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Calls of one kind (import, reconcile) per record, the first included.
    pub max_attempts: u32,
    /// The first backoff ceiling; doubled per failed attempt.
    pub base_delay: Duration,
    /// The largest backoff ceiling.
    pub max_delay: Duration,
    /// The longest `Retry-After` honoured as given; longer ones are capped (a vendor asking for
    /// an hour is better reported than waited for).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

/// The next step after a failed call.
#[derive(Debug, Clone, PartialEq)]
pub enum NextStep {
    /// Send the same call again after this delay (the call was not applied).
    RetryAfter(Duration),
    /// The write may have been applied: ask the provider before any retry.
    Reconcile,
    /// Give up on this record; the other records go on.
    GiveUp,
    /// Stop the run: nothing more can succeed.
    StopRun,
}

/// Full-jitter exponential backoff: a uniform draw in `[0, min(max, base * 2^(attempt-1))]`.
/// `attempt` counts failed attempts (1 after the first failure); `unit` is a uniform draw in
/// `[0, 1)` supplied by the caller so the function stays pure.
pub fn backoff_delay(policy: &RetryPolicy, attempt: u32, unit: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    let ceiling = policy
        .base_delay
        .saturating_mul(1u32 << exponent)
        .min(policy.max_delay);
    ceiling.mul_f64(unit.clamp(0.0, 1.0))
}

/// Decides what follows a failed call. `attempt` is the number of calls made so far (1 after the
/// first); `time_left` is what remains of the run's deadline, if it has one.
pub fn next_step(
    error: &ProviderError,
    policy: &RetryPolicy,
    attempt: u32,
    time_left: Option<Duration>,
    unit: f64,
) -> NextStep {
    let delay = match error {
        ProviderError::Fatal { .. } => return NextStep::StopRun,
        ProviderError::Rejected { .. } => return NextStep::GiveUp,
        ProviderError::OutcomeUnknown { .. } => return NextStep::Reconcile,
        ProviderError::RateLimited {
            retry_after: Some(retry_after),
            ..
        } => (*retry_after).min(policy.max_retry_after),
        ProviderError::RateLimited {
            retry_after: None, ..
        }
        | ProviderError::Transient { .. } => backoff_delay(policy, attempt, unit),
    };
    if attempt >= policy.max_attempts {
        return NextStep::GiveUp;
    }
    if time_left.is_some_and(|left| delay >= left) {
        return NextStep::GiveUp;
    }
    NextStep::RetryAfter(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(60),
        }
    }

    #[test]
    fn backoff_grows_exponentially_up_to_the_cap_and_is_jittered() {
        let check = |attempt: u32, unit: f64, expect_ms: u64| {
            assert_eq!(
                backoff_delay(&policy(), attempt, unit),
                Duration::from_millis(expect_ms),
                "attempt {attempt}, unit {unit}"
            );
        };
        check(1, 1.0, 100);
        check(2, 1.0, 200);
        check(3, 1.0, 400);
        check(4, 1.0, 800);
        check(5, 1.0, 1000);
        check(40, 1.0, 1000);
        check(3, 0.5, 200);
        check(3, 0.0, 0);
        check(0, 1.0, 100);
        check(2, 7.0, 200);
    }

    #[test]
    fn each_error_class_leads_to_its_step() {
        let check =
            |error: ProviderError, attempt: u32, time_left: Option<Duration>, expect: NextStep| {
                assert_eq!(
                    next_step(&error, &policy(), attempt, time_left, 1.0),
                    expect,
                    "{error} at attempt {attempt}"
                );
            };
        let ms = Duration::from_millis;
        check(
            ProviderError::transient("503"),
            1,
            None,
            NextStep::RetryAfter(ms(100)),
        );
        check(
            ProviderError::transient("503"),
            3,
            None,
            NextStep::RetryAfter(ms(400)),
        );
        check(ProviderError::transient("503"), 4, None, NextStep::GiveUp);
        check(
            ProviderError::rate_limited(None, "429"),
            2,
            None,
            NextStep::RetryAfter(ms(200)),
        );
        check(
            ProviderError::rate_limited(Some(Duration::from_secs(7)), "429"),
            1,
            None,
            NextStep::RetryAfter(Duration::from_secs(7)),
        );
        check(
            ProviderError::rate_limited(Some(Duration::from_secs(3600)), "429"),
            1,
            None,
            NextStep::RetryAfter(Duration::from_secs(60)),
        );
        check(ProviderError::rejected("400"), 1, None, NextStep::GiveUp);
        check(
            ProviderError::outcome_unknown("reset"),
            1,
            None,
            NextStep::Reconcile,
        );
        check(
            ProviderError::outcome_unknown("reset"),
            9,
            None,
            NextStep::Reconcile,
        );
        check(ProviderError::fatal("401"), 1, None, NextStep::StopRun);
        check(
            ProviderError::transient("503"),
            1,
            Some(ms(50)),
            NextStep::GiveUp,
        );
        check(
            ProviderError::transient("503"),
            1,
            Some(ms(500)),
            NextStep::RetryAfter(ms(100)),
        );
    }
}
