//! `--link-ttl`: how long a broker link stays valid, as `14d`, `36h`, `90m` or `3600s`.

use std::time::Duration;

const UNITS: &str = "s, m, h or d (e.g. 14d, 36h, 90m, 3600s)";

/// Why a TTL was refused; each message names the accepted units.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TtlError {
    #[error("link ttl is empty: give a whole number and a unit, {UNITS}")]
    Empty,
    #[error("link ttl {0:?} has no unit: use {UNITS}")]
    NoUnit(String),
    #[error("link ttl {0:?} has an unknown unit: use {UNITS}")]
    UnknownUnit(String),
    #[error("link ttl {0:?} is not a whole number followed by a unit: use {UNITS}")]
    NotANumber(String),
    #[error("link ttl {0:?} is zero: give a positive number with {UNITS}")]
    Zero(String),
    #[error("link ttl {0:?} is too long: give a smaller number with {UNITS}")]
    Overflow(String),
}

/// Parses a whole number followed by one unit (`s`, `m`, `h`, `d`). Zero, a missing or unknown
/// unit, signs, spaces, fractions and values past `i64::MAX` seconds (the link's expiry is unix
/// seconds in an `i64`; [`expiry`] adds it to now without overflow) are refused.
pub fn parse_ttl(text: &str) -> Result<Duration, TtlError> {
    if text.is_empty() {
        return Err(TtlError::Empty);
    }
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    if number.is_empty() {
        return Err(TtlError::NotANumber(text.to_owned()));
    }
    let seconds_per_unit: u64 = match unit {
        "" => return Err(TtlError::NoUnit(text.to_owned())),
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ if unit.starts_with(|c: char| c.is_ascii_alphabetic()) => {
            return Err(TtlError::UnknownUnit(text.to_owned()));
        }
        _ => return Err(TtlError::NotANumber(text.to_owned())),
    };
    // Only digits: a parse failure is a number too large for u64.
    let count: u64 = number
        .parse()
        .map_err(|_| TtlError::Overflow(text.to_owned()))?;
    if count == 0 {
        return Err(TtlError::Zero(text.to_owned()));
    }
    let seconds = count
        .checked_mul(seconds_per_unit)
        .filter(|s| i64::try_from(*s).is_ok())
        .ok_or_else(|| TtlError::Overflow(text.to_owned()))?;
    Ok(Duration::from_secs(seconds))
}

/// The unix second a link minted at `now` with `ttl` expires, or `None` when it would overflow.
pub fn expiry(now: i64, ttl: Duration) -> Option<i64> {
    i64::try_from(ttl.as_secs())
        .ok()
        .and_then(|ttl| now.checked_add(ttl))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expect: Result<u64, &str>) {
        let got = parse_ttl(text)
            .map(|d| d.as_secs())
            .map_err(|e| e.to_string());
        match expect {
            Ok(seconds) => assert_eq!(got, Ok(seconds), "{text}"),
            Err(fragment) => {
                let message = got.expect_err(text);
                assert!(message.contains(fragment), "{text}: {message}");
            }
        }
    }

    #[test]
    fn accepted_ttls() {
        check("14d", Ok(14 * 86_400));
        check("36h", Ok(36 * 3_600));
        check("90m", Ok(90 * 60));
        check("3600s", Ok(3_600));
        check("1s", Ok(1));
        check("007d", Ok(7 * 86_400));
    }

    #[test]
    fn refused_ttls_say_why() {
        check("", Err("is empty"));
        check("14", Err("has no unit"));
        check("0d", Err("is zero"));
        check("000s", Err("is zero"));
        check("14w", Err("unknown unit"));
        check("14D", Err("unknown unit"));
        check("14days", Err("unknown unit"));
        check("14ms", Err("unknown unit"));
        check("d", Err("not a whole number"));
        check("-1d", Err("not a whole number"));
        check("+1d", Err("not a whole number"));
        check("1.5h", Err("not a whole number"));
        check(" 14d", Err("not a whole number"));
        check("14 d", Err("not a whole number"));
        check("14d ", Err("unknown unit"));
        check("١٤d", Err("not a whole number"));
        check("99999999999999999999s", Err("too long"));
        check("106751991167301d", Err("too long"));
        check("9223372036854775808s", Err("too long"));
        check("9223372036854775807s", Ok(i64::MAX as u64));
    }

    #[test]
    fn every_refusal_names_the_units() {
        for text in ["", "14", "0d", "14w", "-1d", "99999999999999999999s"] {
            let message = parse_ttl(text).unwrap_err().to_string();
            assert!(message.contains("s, m, h or d"), "{message}");
        }
    }

    #[test]
    fn expiry_adds_without_overflow() {
        assert_eq!(
            expiry(1_000, Duration::from_secs(14 * 86_400)),
            Some(1_000 + 14 * 86_400)
        );
        assert_eq!(expiry(i64::MAX, Duration::from_secs(1)), None);
        assert_eq!(expiry(0, Duration::from_secs(u64::MAX)), None);
    }
}
