//! Calendar months (`YYYY-MM`).

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// Days from 1970-01-01 to 2200-01-01: [`Month::of_day`]'s table (328 KiB).
const TABLE_DAYS: i64 = 84_006;

/// A calendar month, ordered; stored as `year * 12 + (month - 1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month(i32);

impl Month {
    /// From a year and a 1-based month.
    #[must_use]
    pub fn from_year_month(year: i32, month: u32) -> Option<Self> {
        let m = i32::try_from(month).ok()?;
        ((1..=12).contains(&m) && (0..=9999).contains(&year)).then(|| Self(year * 12 + m - 1))
    }

    /// The month of a day counted from 1970-01-01 (proleptic Gregorian);
    /// `None` outside years 0–9999.
    #[must_use]
    pub fn of_day(days: i64) -> Option<Self> {
        // Samples are held without their month, so it is asked for tens of
        // millions of times: a table answers for 1970–2199 in one read.
        static TABLE: std::sync::LazyLock<Vec<Month>> = std::sync::LazyLock::new(|| {
            (0..TABLE_DAYS)
                .map(|d| Month::of_day_computed(d).unwrap_or(Month(0)))
                .collect()
        });
        match usize::try_from(days) {
            Ok(d) if d < TABLE.len() => Some(TABLE[d]),
            _ => Self::of_day_computed(days),
        }
    }

    /// [`Month::of_day`] by Howard Hinnant's `civil_from_days`.
    fn of_day_computed(days: i64) -> Option<Self> {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        Self::from_year_month(i32::try_from(y).ok()?, u32::try_from(m).ok()?)
    }

    /// The next month.
    #[must_use]
    pub const fn next(self) -> Self {
        Self(self.0 + 1)
    }

    /// Every month from `self` to `last`, inclusive.
    pub fn through(self, last: Self) -> impl Iterator<Item = Self> {
        (self.0..=last.0).map(Self)
    }

    /// The calendar year.
    #[must_use]
    pub const fn year(self) -> i32 {
        self.0.div_euclid(12)
    }

    /// The month of the year, 1–12.
    #[must_use]
    #[allow(clippy::cast_sign_loss, reason = "rem_euclid(12) + 1 is 1..=12")]
    pub const fn month(self) -> u32 {
        (self.0.rem_euclid(12) + 1) as u32
    }

    /// A dense index usable as a key.
    #[must_use]
    pub const fn index(self) -> i32 {
        self.0
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}",
            self.0.div_euclid(12),
            self.0.rem_euclid(12) + 1
        )
    }
}

impl FromStr for Month {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::Config(format!("'{s}' is not a month; write YYYY-MM, e.g. 2025-03"));
        let (y, m) = s.trim().split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        let year = y.parse().map_err(|_| bad())?;
        let month = m.parse().map_err(|_| bad())?;
        Self::from_year_month(year, month).ok_or_else(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_order() {
        let a: Month = "2024-12".parse().expect("valid");
        assert_eq!(a.next().to_string(), "2025-01");
        assert!(a < a.next());
        assert_eq!((a.year(), a.month()), (2024, 12));
        assert_eq!(a.through("2025-02".parse().expect("valid")).count(), 3);
        for bad in ["2024-13", "2024-1", "24-01", "2024/01", "", "2024-00"] {
            assert!(bad.parse::<Month>().is_err(), "{bad}");
        }
    }

    /// Against chrono's calendar, on every day from year 0 to 9999 (the
    /// months a timestamp may carry) and just outside.
    #[test]
    fn month_of_a_day_is_chronos() {
        use chrono::Datelike;
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("date");
        let first = chrono::NaiveDate::from_ymd_opt(0, 1, 1).expect("date");
        let last = chrono::NaiveDate::from_ymd_opt(9999, 12, 31).expect("date");
        let mut date = first;
        while date <= last {
            let days = (date - epoch).num_days();
            let expected = Month::from_year_month(date.year(), date.month());
            assert_eq!(Month::of_day(days), expected, "{date}");
            date = date.succ_opt().expect("date");
        }
        assert_eq!(Month::of_day((first - epoch).num_days() - 1), None);
        assert_eq!(Month::of_day((last - epoch).num_days() + 1), None);
    }
}
