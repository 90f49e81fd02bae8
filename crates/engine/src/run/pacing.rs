//! How a run is paced: the vendor's documented rate and burst, the operator's `--rate`, or
//! `--rate auto` (the default for vendors that document no limit). A pure decision, table-tested.

use std::sync::Arc;

use authport_core::{ProviderLimits, VendorRate};

use crate::adaptive::AutoRate;
use crate::limiter::{RunGate, SendLimiter, auto_burst};

/// The operator's choice of pace (`--rate N|0|auto`, `[engine] rate`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum RateChoice {
    /// No choice: the vendor's documented rate, or `auto` when it documents none.
    #[default]
    VendorDefault,
    /// This many requests per second; `burst` above it (default: the vendor's documented
    /// burst, else a tenth of a second's worth at the vendor's ceiling).
    Fixed { per_second: f64, burst: Option<u32> },
    /// No limit (`--rate 0`).
    Unlimited,
    /// Find the rate the target accepts, never above `ceiling` (default: `[engine]
    /// rate_ceiling`, else the vendor's ceiling or documented rate).
    Auto { ceiling: Option<f64> },
}

/// The send rate and burst used when the operator gives no `--rate` to a vendor that documents
/// its limit. Every request the provider sends passes the run's gate (Tray's user look-ups and
/// token mints included), so the gate sees all the traffic the vendor counts; the limiter steps
/// down on a 429 instead of keeping a fixed margin (see [`crate::limiter`]).
pub fn default_send_rate(per_second: f64, burst: u32) -> (f64, u32) {
    (per_second, burst.max(1))
}

/// How a run is paced: a fixed rate (and burst), no limit, or `--rate auto` under a ceiling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    Fixed { rate: f64, burst: u32 },
    Unlimited,
    Auto(AutoRate),
}

impl Pacing {
    pub fn configure(&self, gate: &RunGate) -> Arc<SendLimiter> {
        match *self {
            Pacing::Fixed { rate, burst } => gate.configure(rate, burst),
            Pacing::Unlimited => gate.configure_unlimited(),
            Pacing::Auto(policy) => gate.configure_auto(policy),
        }
    }

    /// For the summary: the mode and, for auto, where it ended.
    pub(crate) fn describe(&self, now: Option<f64>) -> String {
        match (self, now) {
            (Pacing::Unlimited, _) | (Pacing::Fixed { .. }, None) => "no rate limit".to_owned(),
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
            Pacing::Unlimited => f.write_str("no rate limit"),
            Pacing::Fixed { rate, .. } if !(rate.is_finite() && *rate > 0.0) => {
                f.write_str("no rate limit")
            }
            Pacing::Fixed { rate, burst } => write!(f, "{rate}/s, burst {burst}"),
            Pacing::Auto(policy) => write!(f, "auto (ceiling {}/s)", policy.ceiling),
        }
    }
}

/// The run's pacing: the operator's choice, else the vendor's documented rate and burst, else
/// (no documented limit) auto under the vendor's ceiling. `ceiling` (`[engine] rate_ceiling`)
/// replaces the vendor's ceiling wherever the pace is auto.
pub fn pacing(limits: &ProviderLimits, choice: RateChoice, ceiling: Option<f64>) -> Pacing {
    let auto = |asked: Option<f64>| {
        Pacing::Auto(AutoRate::under(
            asked.or(ceiling).unwrap_or(limits.rate.ceiling()),
        ))
    };
    match (choice, limits.rate) {
        (RateChoice::Auto { ceiling: asked }, _) => auto(asked),
        (RateChoice::Unlimited, _) => Pacing::Unlimited,
        // A rate that is not a positive number limits nothing (the limiter's own rule).
        (RateChoice::Fixed { per_second, .. }, _)
            if !(per_second.is_finite() && per_second > 0.0) =>
        {
            Pacing::Unlimited
        }
        (RateChoice::Fixed { per_second, burst }, vendor) => Pacing::Fixed {
            rate: per_second,
            // No documented burst: the auto rate's rule, a tenth of a second at the ceiling.
            burst: burst
                .or(vendor.burst())
                .unwrap_or_else(|| auto_burst(vendor.ceiling()))
                .max(1),
        },
        (RateChoice::VendorDefault, VendorRate::Documented { per_second, burst }) => {
            let (rate, burst) = default_send_rate(per_second, burst);
            Pacing::Fixed { rate, burst }
        }
        (RateChoice::VendorDefault, VendorRate::Undocumented { .. }) => auto(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_send_rate_is_the_documented_rate_and_burst() {
        assert_eq!(default_send_rate(30.0, 50), (30.0, 50));
        assert_eq!(default_send_rate(10.0, 10), (10.0, 10));
        assert_eq!(default_send_rate(100.0, 0), (100.0, 1));
    }

    #[test]
    fn pacing_is_auto_for_undocumented_vendors_and_when_asked() {
        let documented = ProviderLimits {
            rate: VendorRate::Documented {
                per_second: 30.0,
                burst: 50,
            },
            default_concurrency: 8,
        };
        let undocumented = ProviderLimits {
            rate: VendorRate::Undocumented { ceiling: 100.0 },
            ..documented
        };
        let fixed = |rate, burst| Pacing::Fixed { rate, burst };
        let auto = |ceiling| Pacing::Auto(AutoRate::under(ceiling));
        let at = |per_second, burst| RateChoice::Fixed { per_second, burst };
        let asked = |ceiling| RateChoice::Auto { ceiling };
        use RateChoice::{Unlimited, VendorDefault};
        // (limits, choice, [engine] rate_ceiling) → pacing
        let cases = [
            (documented, VendorDefault, None, fixed(30.0, 50)),
            (documented, at(5.0, None), None, fixed(5.0, 50)),
            (documented, Unlimited, None, Pacing::Unlimited),
            (documented, at(0.0, None), None, Pacing::Unlimited),
            (documented, asked(None), None, auto(30.0)),
            (documented, asked(None), Some(60.0), auto(60.0)),
            (documented, asked(Some(70.0)), Some(60.0), auto(70.0)),
            (undocumented, VendorDefault, None, auto(100.0)),
            (undocumented, VendorDefault, Some(40.0), auto(40.0)),
            (undocumented, at(20.0, Some(4)), None, fixed(20.0, 4)),
            (undocumented, at(20.0, None), None, fixed(20.0, 10)),
            (undocumented, Unlimited, Some(40.0), Pacing::Unlimited),
            (undocumented, asked(None), None, auto(100.0)),
        ];
        for (index, (limits, choice, ceiling, expect)) in cases.into_iter().enumerate() {
            assert_eq!(pacing(&limits, choice, ceiling), expect, "case {index}");
        }
    }
}
