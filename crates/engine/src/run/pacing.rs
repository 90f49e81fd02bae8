//! How a run is paced: the vendor's documented rate and burst, the operator's `--rate`, or
//! `--rate auto` (the default for vendors that document no limit). A pure decision, table-tested.

use std::sync::Arc;

use authport_core::ProviderLimits;

use crate::adaptive::AutoRate;
use crate::limiter::{RunGate, SendLimiter};

/// The send rate and burst used when the operator gives no `--rate`: the vendor's documented
/// rate and burst. Every request the provider sends passes the run's gate (Tray's user
/// look-ups and token mints included), so the gate sees all the traffic the vendor counts;
/// the limiter steps down on a 429 instead of keeping a fixed margin (see [`crate::limiter`]).
pub fn default_send_rate(limits: &ProviderLimits) -> (f64, u32) {
    (limits.requests_per_second, limits.burst.max(1))
}

/// How a run is paced: a fixed rate (and burst), or `--rate auto` under a ceiling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    Fixed { rate: f64, burst: u32 },
    Auto(AutoRate),
}

impl Pacing {
    pub fn configure(&self, gate: &RunGate) -> Arc<SendLimiter> {
        match *self {
            Pacing::Fixed { rate, burst } => gate.configure(rate, burst),
            Pacing::Auto(policy) => gate.configure_auto(policy),
        }
    }

    /// For the summary: the mode and, for auto, where it ended.
    pub(super) fn describe(&self, now: Option<f64>) -> String {
        match (self, now) {
            (Pacing::Fixed { .. }, None) => "no rate limit".to_owned(),
            (Pacing::Fixed { rate, burst }, Some(_)) => format!("{rate}/s, burst {burst}"),
            (Pacing::Auto(policy), now) => format!(
                "auto (ceiling {}/s), ended at {:.1}/s",
                policy.ceiling,
                now.unwrap_or(policy.ceiling)
            ),
        }
    }
}

/// The words of the run's starting log line (`pacing=3.25/s, burst 5`), never Rust's `Debug`.
impl std::fmt::Display for Pacing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pacing::Fixed { rate, .. } if !(rate.is_finite() && *rate > 0.0) => {
                f.write_str("no rate limit")
            }
            Pacing::Fixed { rate, burst } => write!(f, "{rate}/s, burst {burst}"),
            Pacing::Auto(policy) => write!(f, "auto (ceiling {}/s)", policy.ceiling),
        }
    }
}

/// The run's pacing: `--rate auto` when asked, else the operator's rate, else the vendor's
/// documented rate and burst, else (no documented limit) auto under the provider's ceiling.
/// `ceiling` (`[engine] rate_ceiling`) replaces the provider's ceiling.
pub fn pacing(
    limits: &ProviderLimits,
    rate: Option<f64>,
    burst: Option<u32>,
    auto: bool,
    ceiling: Option<f64>,
) -> Pacing {
    let auto_rate = || {
        Pacing::Auto(AutoRate::under(
            ceiling.unwrap_or(limits.requests_per_second),
        ))
    };
    match rate {
        _ if auto => auto_rate(),
        Some(rate) => Pacing::Fixed {
            rate,
            burst: burst.unwrap_or(limits.burst).max(1),
        },
        None if limits.documented => {
            let (rate, default_burst) = default_send_rate(limits);
            Pacing::Fixed {
                rate,
                burst: burst.unwrap_or(default_burst),
            }
        }
        None => auto_rate(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_send_rate_is_the_documented_rate_and_burst() {
        let limits = |requests_per_second: f64, burst: u32| ProviderLimits {
            requests_per_second,
            documented: true,
            burst,
            default_concurrency: 8,
        };
        assert_eq!(default_send_rate(&limits(30.0, 50)), (30.0, 50));
        assert_eq!(default_send_rate(&limits(10.0, 10)), (10.0, 10));
        assert_eq!(default_send_rate(&limits(100.0, 0)), (100.0, 1));
    }

    #[test]
    fn pacing_is_auto_for_undocumented_vendors_and_when_asked() {
        let documented = ProviderLimits {
            requests_per_second: 30.0,
            documented: true,
            burst: 50,
            default_concurrency: 8,
        };
        let undocumented = ProviderLimits {
            requests_per_second: 100.0,
            documented: false,
            ..documented
        };
        let fixed = |rate, burst| Pacing::Fixed { rate, burst };
        let auto = |ceiling| Pacing::Auto(AutoRate::under(ceiling));
        // (limits, --rate, burst, --rate auto, [engine] rate_ceiling) → pacing
        let cases = [
            (documented, None, None, false, None, fixed(30.0, 50)),
            (documented, Some(5.0), None, false, None, fixed(5.0, 50)),
            (documented, Some(0.0), None, false, None, fixed(0.0, 50)),
            (documented, None, None, true, None, auto(30.0)),
            (documented, None, None, true, Some(60.0), auto(60.0)),
            (undocumented, None, None, false, None, auto(100.0)),
            (undocumented, None, None, false, Some(40.0), auto(40.0)),
            (
                undocumented,
                Some(20.0),
                Some(4),
                false,
                None,
                fixed(20.0, 4),
            ),
            (undocumented, Some(20.0), None, true, None, auto(100.0)),
        ];
        for (index, (limits, rate, burst, asked, ceiling, expect)) in cases.into_iter().enumerate()
        {
            assert_eq!(
                pacing(&limits, rate, burst, asked, ceiling),
                expect,
                "case {index}"
            );
        }
    }
}
