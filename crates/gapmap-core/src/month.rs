//! Calendar months (`YYYY-MM`).

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

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
}
