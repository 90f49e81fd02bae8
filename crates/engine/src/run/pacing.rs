//! How a run is paced: the vendor's documented rate and burst, the operator's `--rate`, or
//! `--rate auto` (the default for vendors that document no limit). A pure decision, table-tested.

use std::sync::Arc;

use authport_core::{ProviderLimits, VendorRate};

use crate::adaptive::AutoRate;
use crate::limiter::{RunGate, SendLimiter, auto_burst};

/// A run's pacing with its `--budget-share` (0 < share <= 1; 1: the whole budget, as without).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    pub pacing: Pacing,
    pub share: f64,
    /// The share lowered the rate below what the operator or the vendor allowed.
    pub by_share: bool,
}

impl Pace {
    /// Sets the run's rate and share on `gate`; returns the limiter the engine adapts.
    pub fn configure(&self, gate: &RunGate) -> Arc<SendLimiter> {
        let limiter = match self.pacing {
            Pacing::Fixed { rate, burst } => SendLimiter::new(rate, burst),
            Pacing::Unlimited => SendLimiter::unlimited(),
            Pacing::Auto(policy) => SendLimiter::auto(policy),
        };
        gate.install(limiter.shared(self.share, self.by_share))
    }

    /// For the summary: the pacing's words, and the share when it is below 1.
    pub(crate) fn describe(&self, now: Option<f64>) -> String {
        let pacing = self.pacing.describe(now);
        if self.share < 1.0 {
            format!("{pacing}, budget share {}", self.share)
        } else {
            pacing
        }
    }
}

/// `burst` scaled by the share, at least 1.
fn shared_burst(burst: u32, share: f64) -> u32 {
    ((f64::from(burst) * share).ceil() as u32).max(1)
}

/// The run's pacing under a budget share: the share applies to the vendor's budget, so a
/// documented rate (and burst, at least 1) is scaled by it, auto's ceiling is at most the share
/// of the vendor's, and an operator's `--rate N` is at most the share of the vendor's rate.
/// `--rate 0` stays unlimited (the window reserve of a vendor that sends its budget still
/// holds, see [`crate::share`]).
pub fn pace(limits: &ProviderLimits, choice: RateChoice, ceiling: Option<f64>, share: f64) -> Pace {
    let pacing = pacing(limits, choice, ceiling);
    let share = if share > 0.0 && share < 1.0 {
        share
    } else {
        1.0
    };
    let unshared = Pace {
        pacing,
        share,
        by_share: false,
    };
    if share >= 1.0 {
        return unshared;
    }
    let vendor = limits.rate.ceiling() * share;
    match (choice, pacing) {
        (_, Pacing::Unlimited) => unshared,
        (RateChoice::VendorDefault, Pacing::Fixed { rate, burst }) => Pace {
            pacing: Pacing::Fixed {
                rate: rate * share,
                burst: shared_burst(burst, share),
            },
            by_share: true,
            ..unshared
        },
        (_, Pacing::Fixed { rate, burst }) if rate > vendor => Pace {
            pacing: Pacing::Fixed {
                rate: vendor,
                burst: burst.min(shared_burst(limits.rate.burst().unwrap_or(burst), share)),
            },
            by_share: true,
            ..unshared
        },
        (_, Pacing::Auto(policy)) if policy.ceiling > vendor => Pace {
            pacing: Pacing::Auto(AutoRate::under(vendor)),
            by_share: true,
            ..unshared
        },
        _ => unshared,
    }
}

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
pub(crate) mod tests {
    use super::*;

    /// A vendor documenting 30/s with a burst of 50, and one publishing no limit (ceiling 100/s).
    pub(crate) fn vendor_limits() -> (ProviderLimits, ProviderLimits) {
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
        (documented, undocumented)
    }

    #[test]
    fn default_send_rate_is_the_documented_rate_and_burst() {
        assert_eq!(default_send_rate(30.0, 50), (30.0, 50));
        assert_eq!(default_send_rate(10.0, 10), (10.0, 10));
        assert_eq!(default_send_rate(100.0, 0), (100.0, 1));
    }

    #[test]
    fn pacing_is_auto_for_undocumented_vendors_and_when_asked() {
        let (documented, undocumented) = vendor_limits();
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
            let whole = pace(&limits, choice, ceiling, 1.0);
            assert_eq!(
                (whole.pacing, whole.by_share),
                (expect, false),
                "case {index}"
            );
        }
    }

    #[test]
    fn a_share_scales_the_vendors_budget_never_the_operators_lower_rate() {
        let (documented, undocumented) = vendor_limits();
        let fixed = |rate, burst| Pacing::Fixed { rate, burst };
        let auto = |ceiling| Pacing::Auto(AutoRate::under(ceiling));
        let at = |per_second, burst| RateChoice::Fixed { per_second, burst };
        let asked = |ceiling| RateChoice::Auto { ceiling };
        use RateChoice::{Unlimited, VendorDefault};
        // (limits, choice, [engine] rate_ceiling, share) → (pacing, the share lowered it)
        let cases = [
            // Documented: the rate and burst scaled.
            (documented, VendorDefault, None, 0.3, fixed(9.0, 15), true),
            (documented, VendorDefault, None, 0.01, fixed(0.3, 1), true),
            // Undocumented (auto): the ceiling scaled.
            (undocumented, VendorDefault, None, 0.3, auto(30.0), true),
            (
                undocumented,
                VendorDefault,
                Some(20.0),
                0.3,
                auto(20.0),
                false,
            ),
            (
                undocumented,
                VendorDefault,
                Some(50.0),
                0.3,
                auto(30.0),
                true,
            ),
            (documented, asked(None), None, 0.5, auto(15.0), true),
            (documented, asked(Some(5.0)), None, 0.5, auto(5.0), false),
            // Fixed: min(N, share × vendor rate), the burst at most the shared burst.
            (documented, at(5.0, None), None, 0.5, fixed(5.0, 50), false),
            (documented, at(20.0, None), None, 0.5, fixed(15.0, 25), true),
            (
                documented,
                at(20.0, Some(4)),
                None,
                0.5,
                fixed(15.0, 4),
                true,
            ),
            (
                undocumented,
                at(80.0, None),
                None,
                0.5,
                fixed(50.0, 5),
                true,
            ),
            // No limit stays none (a window reserve still holds).
            (documented, Unlimited, None, 0.3, Pacing::Unlimited, false),
            (
                undocumented,
                at(0.0, None),
                None,
                0.3,
                Pacing::Unlimited,
                false,
            ),
            // 1 (or a value out of range, refused by the runner) is the whole budget.
            (documented, VendorDefault, None, 1.0, fixed(30.0, 50), false),
        ];
        let shared = pace(&documented, VendorDefault, None, 0.3);
        assert_eq!(
            shared.describe(Some(9.0)),
            "9/s, burst 15, budget share 0.3"
        );
        let whole = pace(&documented, VendorDefault, None, 1.0);
        assert_eq!(whole.describe(Some(30.0)), "30/s, burst 50");
        for (index, (limits, choice, ceiling, share, expect, by_share)) in
            cases.into_iter().enumerate()
        {
            let pace = pace(&limits, choice, ceiling, share);
            let close = match (pace.pacing, expect) {
                (Pacing::Fixed { rate, burst }, Pacing::Fixed { rate: r, burst: b }) => {
                    (rate - r).abs() < 1e-9 && burst == b
                }
                (Pacing::Auto(got), Pacing::Auto(want)) => {
                    (got.ceiling - want.ceiling).abs() < 1e-9
                }
                (got, want) => got == want,
            };
            assert!(close, "case {index}: {:?} != {expect:?}", pace.pacing);
            assert_eq!(pace.by_share, by_share, "case {index}");
        }
    }
}
