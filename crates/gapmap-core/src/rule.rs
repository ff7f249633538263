//! The status rule for a place (village or H3 cell) and a carrier.
//!
//! With n samples, d distinct devices and k samples whose download is below
//! the weak threshold T:
//! - `no_data` when n = 0;
//! - `insufficient` when n < min_samples or d < min_devices;
//! - `weak` when the one-sided sign test rejects "median ≥ T":
//!   `weak_p = P[Binomial(n, ½) ≥ k] ≤ alpha`;
//! - `ok` otherwise.

use crate::stats::{binomial_upper_tail_half, median};

/// Status of a place for a carrier, ordered by severity for styling:
/// weak > no_data > insufficient > ok.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Enough samples and no evidence of weakness.
    Ok,
    /// Some samples, too few (or too few devices) to judge.
    Insufficient,
    /// No samples at all.
    NoData,
    /// Enough samples, and the median download is significantly below T.
    Weak,
}

impl Status {
    /// All statuses, in reporting order.
    pub const ALL: [Self; 4] = [Self::NoData, Self::Insufficient, Self::Weak, Self::Ok];

    /// The name in outputs.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Insufficient => "insufficient",
            Self::NoData => "no_data",
            Self::Weak => "weak",
        }
    }

    /// Severity for `worst_status`: weak 3, no_data 2, insufficient 1, ok 0.
    #[must_use]
    pub const fn severity(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Insufficient => 1,
            Self::NoData => 2,
            Self::Weak => 3,
        }
    }
}

/// Parameters of the rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    /// T: a download below this (Mbps) counts as a weak test (default 5,
    /// the operator-declared 4G floor under QCVN 81:2019).
    pub weak_below_mbps: f64,
    /// Minimum samples to judge (default 5).
    pub min_samples: u64,
    /// Minimum distinct devices to judge (default 2).
    pub min_devices: u64,
    /// Significance level of the sign test (default 0.05).
    pub alpha: f64,
    /// The national target for `below_target` (default 40 Mbps, Decision 36/QĐ-TTg for 4G in 2025).
    pub target_mbps: f64,
}

impl Default for Rule {
    fn default() -> Self {
        Self {
            weak_below_mbps: 5.0,
            min_samples: 5,
            min_devices: 2,
            alpha: 0.05,
            target_mbps: 40.0,
        }
    }
}

/// The verdict for one place and carrier.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// n.
    pub samples: u64,
    /// d.
    pub devices: u64,
    /// k: samples below T.
    pub below: u64,
    /// Median download.
    pub median: Option<f64>,
    /// k / n.
    pub share_below: Option<f64>,
    /// Sign-test p-value, when n ≥ 1.
    pub weak_p: Option<f64>,
    /// The status.
    pub status: Status,
    /// Median below the national target (empty when n = 0).
    pub below_target: Option<bool>,
}

impl Rule {
    /// Judges a place from its downloads (any order) and its distinct device count.
    #[must_use]
    pub fn judge(&self, downloads: &mut [f64], devices: u64) -> Verdict {
        let n = downloads.len() as u64;
        // Counted and selected, not sorted: the same count and median as on
        // sorted values, in linear time.
        let k = downloads
            .iter()
            .filter(|d| **d < self.weak_below_mbps)
            .count() as u64;
        let median = median(downloads);
        let weak_p = (n > 0).then(|| binomial_upper_tail_half(n, k));
        let status = if n == 0 {
            Status::NoData
        } else if n < self.min_samples || devices < self.min_devices {
            Status::Insufficient
        } else if weak_p.is_some_and(|p| p <= self.alpha) {
            Status::Weak
        } else {
            Status::Ok
        };
        #[allow(
            clippy::cast_precision_loss,
            reason = "sample counts are far below 2^52"
        )]
        let share_below = (n > 0).then(|| k as f64 / n as f64);
        Verdict {
            samples: n,
            devices,
            below: k,
            median,
            share_below,
            weak_p,
            status,
            below_target: median.map(|m| m < self.target_mbps),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(dl: &[f64], devices: u64) -> Verdict {
        Rule::default().judge(&mut dl.to_vec(), devices)
    }

    #[test]
    fn large_groups_judge_as_their_sorted_values_say() {
        // Oracle: the values sorted, the median read off the middle, the
        // weak ones counted one by one. Sizes on both sides of the selection
        // threshold (64), odd and even, with ties in 0.5 Mbps steps.
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let rule = Rule::default();
        for n in [1usize, 2, 63, 64, 65, 66, 500, 501, 4_096] {
            let values: Vec<f64> = (0..n)
                .map(|_| f64::from(rng.random_range(0u32..40)) / 2.0)
                .collect();
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            let median = if n % 2 == 1 {
                sorted[n / 2]
            } else {
                (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
            };
            let below = sorted.iter().filter(|d| **d < rule.weak_below_mbps).count() as u64;
            let v = rule.judge(&mut values.clone(), 10);
            assert_eq!(
                (v.median, v.below, v.samples),
                (Some(median), below, n as u64),
                "n = {n}"
            );
        }
    }

    #[test]
    fn no_samples_is_no_data_with_empty_p() {
        let v = judge(&[], 0);
        assert_eq!(v.status, Status::NoData);
        assert_eq!(
            (v.weak_p, v.share_below, v.median, v.below_target),
            (None, None, None, None)
        );
    }

    #[test]
    fn four_samples_insufficient_five_judged() {
        // All below T: with n = 4 the rule may not judge; with n = 5,
        // p = P[Bin(5, ½) ≥ 5] = 1/32 = 0.03125 ≤ 0.05 → weak.
        let four = judge(&[1.0, 1.0, 1.0, 1.0], 3);
        assert_eq!(four.status, Status::Insufficient);
        assert_eq!(
            four.weak_p,
            Some(1.0 / 16.0),
            "p is still reported for n ≥ 1"
        );
        let five = judge(&[1.0, 1.0, 1.0, 1.0, 1.0], 3);
        assert_eq!(five.status, Status::Weak);
        assert_eq!(five.weak_p, Some(1.0 / 32.0));
    }

    #[test]
    fn one_device_is_insufficient_however_many_samples() {
        assert_eq!(judge(&[1.0; 20], 1).status, Status::Insufficient);
        assert_eq!(judge(&[1.0; 20], 2).status, Status::Weak);
    }

    #[test]
    fn all_failed_tests_are_weak_and_stay_in_the_median() {
        let v = judge(&[0.0; 6], 2);
        assert_eq!(v.status, Status::Weak);
        assert_eq!(v.median, Some(0.0));
        assert_eq!(v.share_below, Some(1.0));
        assert_eq!(v.below_target, Some(true));
    }

    #[test]
    fn significance_boundary() {
        // n = 10: P[≥ 9] = 11/1024 = 0.0107 (weak); P[≥ 8] = 56/1024 = 0.0547 (ok at 0.05).
        let mut nine = vec![1.0; 9];
        nine.push(50.0);
        let v = judge(&nine, 4);
        assert_eq!((v.below, v.status), (9, Status::Weak));
        let mut eight = vec![1.0; 8];
        eight.extend([50.0, 60.0]);
        let v = judge(&eight, 4);
        assert_eq!((v.below, v.status), (8, Status::Ok));
        // alpha exactly at p: p ≤ alpha is weak.
        let rule = Rule {
            alpha: 56.0 / 1024.0,
            ..Rule::default()
        };
        assert_eq!(rule.judge(&mut eight.clone(), 4).status, Status::Weak);
    }

    #[test]
    fn threshold_is_strict() {
        // A download exactly at T is not below T.
        let v = judge(&[5.0; 6], 3);
        assert_eq!((v.below, v.status), (0, Status::Ok));
        assert_eq!(v.weak_p, Some(1.0));
        assert_eq!(v.below_target, Some(true));
    }

    #[test]
    fn worst_status_order() {
        let mut s = Status::ALL.to_vec();
        s.sort_by_key(|x| std::cmp::Reverse(x.severity()));
        assert_eq!(
            s,
            [
                Status::Weak,
                Status::NoData,
                Status::Insufficient,
                Status::Ok
            ]
        );
    }
}
