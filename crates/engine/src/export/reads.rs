//! [`ExportReads`]: the engine's retry loop ([`Retrier`]) for an exporter's reads, handed to
//! the provider through its sink (`ExportSink::reads`), so exporters keep no loop of their own.

use std::sync::Arc;
use std::time::Duration;

use authport_core::{ProviderError, ReadFuture, ReadRetry};

use crate::limiter::{RunGate, SendLimiter};
use crate::retrier::{Attempted, Retrier, WriteEffect};
use crate::retry::RetryPolicy;

/// How an export read is retried: 5 tries, backoff from 0.5 s up to 30 s, a source's
/// `Retry-After` honoured up to 300 s (a source asking for hours, or a wrong clock behind an
/// HTTP-date, must not stall an export or a `migrate`).
pub const READ_POLICY: RetryPolicy = RetryPolicy {
    max_attempts: 5,
    base_delay: Duration::from_millis(500),
    max_delay: Duration::from_secs(30),
    max_retry_after: Duration::from_secs(300),
};

/// The retry loop of one export: reads change nothing at the source, so every failure that
/// may pass is tried again (a lost answer as a transient one); 429s slow the source's gate.
#[derive(Debug, Clone)]
pub struct ExportReads {
    limiter: Arc<SendLimiter>,
    policy: RetryPolicy,
}

impl ExportReads {
    /// Reads paced by `gate` (the one the exporter was built with), told about every 429.
    pub fn new(gate: &RunGate) -> Self {
        Self {
            limiter: gate.current(),
            policy: READ_POLICY,
        }
    }
}

impl Default for ExportReads {
    /// No rate limit of its own (tests, whose exporter has its own gate).
    fn default() -> Self {
        Self {
            limiter: Arc::new(SendLimiter::unlimited()),
            policy: READ_POLICY,
        }
    }
}

/// Logs a `Retry-After` longer than the policy honours, when another try follows, so the
/// operator sees why the export pauses.
fn warn_if_capped(result: &Result<(), ProviderError>, attempt: u32, policy: &RetryPolicy) {
    if let Err(ProviderError::RateLimited {
        retry_after: Some(asked),
        ..
    }) = result
        && *asked > policy.max_retry_after
        && attempt < policy.max_attempts
    {
        tracing::warn!(
            "the source asked to wait {}s before the next read (Retry-After); waiting {}s, the longest wait authport honours",
            asked.as_secs(),
            policy.max_retry_after.as_secs()
        );
    }
}

impl ReadRetry for ExportReads {
    fn read<'a>(
        &'a self,
        call: &'a mut (dyn FnMut() -> ReadFuture<'a> + Send + 'a),
    ) -> ReadFuture<'a> {
        Box::pin(async move {
            let retrier = Retrier {
                policy: self.policy,
                limiter: &self.limiter,
                control: None,
                deadline: None,
                counters: None,
            };
            let policy = self.policy;
            let mut attempt = 0;
            let attempted = retrier
                .call(WriteEffect::Idempotent, 0, || {
                    attempt += 1;
                    let this = attempt;
                    let read = call();
                    async move {
                        let result = read.await;
                        warn_if_capped(&result, this, &policy);
                        result
                    }
                })
                .await;
            match attempted {
                Attempted::Done(()) => Ok(()),
                Attempted::Failed { error, .. } => Err(error),
                // Without a control the retrier neither stops nor abandons a call.
                Attempted::Stopped { last } => {
                    Err(last.unwrap_or_else(|| ProviderError::fatal("the export stopped")))
                }
                Attempted::Abandoned => Err(ProviderError::fatal("the export stopped")),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use authport_core::retry_read;

    use super::*;

    fn instant() -> ExportReads {
        ExportReads {
            limiter: Arc::new(SendLimiter::unlimited()),
            policy: RetryPolicy {
                base_delay: Duration::ZERO,
                max_delay: Duration::ZERO,
                ..READ_POLICY
            },
        }
    }

    #[tokio::test]
    async fn reads_are_retried_while_they_may_pass_and_no_longer() {
        let reads = instant();
        // (failure, tries until it is given up)
        let cases = [
            (ProviderError::transient("503"), 5),
            (ProviderError::outcome_unknown("timeout"), 5),
            (ProviderError::rate_limited(Some(Duration::ZERO), "429"), 5),
            (ProviderError::rejected("404"), 1),
            (ProviderError::fatal("401"), 1),
        ];
        for (failure, expect) in cases {
            let tries = AtomicU32::new(0);
            let answer: Result<(), _> = retry_read(&reads, || async {
                tries.fetch_add(1, Ordering::Relaxed);
                Err(failure.clone())
            })
            .await;
            assert!(answer.is_err(), "{failure}");
            assert_eq!(tries.load(Ordering::Relaxed), expect, "{failure}");
        }
        let tries = AtomicU32::new(0);
        let answer = retry_read(&reads, || async {
            match tries.fetch_add(1, Ordering::Relaxed) {
                0..3 => Err(ProviderError::transient("503")),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(answer, Ok(3));
    }
}
