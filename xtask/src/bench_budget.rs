//! The `budget` bench (issue 22): `--budget-share 0.3` against the sandbox's Nango (200
//! requests a window) while a second client spends part of every window with the same key
//! (`bench_driver budget`, see there). The scenario fails unless every record was imported,
//! no 429 came to authport and no answer to authport left less than the reserve.

use std::path::Path;

use anyhow::bail;
use serde_json::Value;

use super::driver_json;

/// One run's shape.
#[derive(Debug, Clone, Copy)]
pub struct BudgetRun {
    pub records: usize,
    /// Nango's window: its real minute, or a few seconds for a smoke run.
    pub window_secs: u32,
    /// Requests the other client spreads over each window.
    pub other_per_window: u32,
}

/// About three minutes: authport gets the share's 60 requests a window less what the other
/// client spent of it so far (about 36 a minute at the share's paced 0.975/s), and spends
/// about three requests a record.
pub const FULL: BudgetRun = BudgetRun {
    records: 36,
    window_secs: 60,
    other_per_window: 40,
};

/// A smoke run of about 25 seconds (the share's rate, not the window, bounds it).
pub const QUICK: BudgetRun = BudgetRun {
    records: 8,
    window_secs: 10,
    other_per_window: 40,
};

pub fn budget(driver: &Path, run: BudgetRun) -> anyhow::Result<Value> {
    let figure = driver_json(
        driver,
        &[
            "budget",
            &run.records.to_string(),
            &run.window_secs.to_string(),
            &run.other_per_window.to_string(),
        ],
    )?;
    check(&figure)?;
    Ok(figure)
}

/// The scenario's pass rule, on the driver's figure.
fn check(figure: &Value) -> anyhow::Result<()> {
    let number = |name: &str| figure[name].as_u64();
    let reserve = number("reserve");
    let lowest = number("authport_lowest_remaining");
    if lowest.is_none() || reserve.is_none() || lowest < reserve {
        bail!(
            "budget: an answer to authport left {lowest:?} requests, below the reserve {reserve:?}: {figure}"
        );
    }
    if number("authport_rate_limited") != Some(0) {
        bail!("budget: authport met 429s: {figure}");
    }
    if number("imported").is_none() || number("imported") != number("records") {
        bail!("budget: not every record was imported: {figure}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;
    use serde_json::json;

    #[test]
    fn the_run_fails_below_the_reserve_on_a_429_or_with_records_left() {
        let good = json!({"reserve": 140, "authport_lowest_remaining": 140,
                          "authport_rate_limited": 0, "imported": 36, "records": 36});
        assert!(check(&good).is_ok());
        for (name, value) in [
            ("authport_lowest_remaining", json!(139)),
            ("authport_lowest_remaining", json!(null)),
            ("authport_rate_limited", json!(1)),
            ("imported", json!(35)),
        ] {
            let mut bad = good.clone();
            bad[name] = value;
            assert!(check(&bad).is_err(), "{bad}");
        }
    }
}
