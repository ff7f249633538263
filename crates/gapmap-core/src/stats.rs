//! Order statistics and the sign test. Definitions are the ones a planner can
//! check by hand: the median of an even count is the mean of the two middle
//! values; percentiles interpolate linearly between closest ranks
//! (Hyndman–Fan type 7, numpy's default).

/// The `p`-quantile (0 ≤ p ≤ 1) of sorted values, type 7; `None` when empty.
#[must_use]
pub fn quantile_sorted(sorted: &[f64], p: f64) -> Option<f64> {
    quantile_at(sorted.len(), p, |i| sorted[i])
}

/// The two ranks (0-based, in sorted order) the type-7 `p`-quantile of `n`
/// values interpolates between (`n` > 0).
#[must_use]
pub fn quantile_ranks(n: usize, p: f64) -> (usize, usize) {
    #[allow(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
    let h = (n - 1) as f64 * p.clamp(0.0, 1.0);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "0 ≤ h < n"
    )]
    let lo = h.floor() as usize;
    (lo, (lo + 1).min(n - 1))
}

/// The type-7 `p`-quantile of `n` values, `at(i)` being the value of rank
/// `i` (only the two ranks of [`quantile_ranks`] are read); `None` when `n` is 0.
#[must_use]
pub fn quantile_at(n: usize, p: f64, at: impl Fn(usize) -> f64) -> Option<f64> {
    if n == 0 {
        return None;
    }
    let (lo, hi) = quantile_ranks(n, p);
    #[allow(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
    let h = (n - 1) as f64 * p.clamp(0.0, 1.0);
    let frac = h - h.floor();
    Some(if frac == 0.0 {
        at(lo)
    } else {
        at(lo) + frac * (at(hi) - at(lo))
    })
}

/// The median of sorted values; the mean of the two middle ones for an even count.
#[must_use]
pub fn median_sorted(sorted: &[f64]) -> Option<f64> {
    median_at(sorted.len(), |i| sorted[i])
}

/// The ranks (0-based, in sorted order) the median of `n` values reads (`n` > 0).
#[must_use]
pub const fn median_ranks(n: usize) -> (usize, usize) {
    if n % 2 == 1 {
        (n / 2, n / 2)
    } else {
        (n / 2 - 1, n / 2)
    }
}

/// The median of `n` values, `at(i)` being the value of rank `i` (only the
/// ranks of [`median_ranks`] are read); `None` when `n` is 0.
#[must_use]
pub fn median_at(n: usize, at: impl Fn(usize) -> f64) -> Option<f64> {
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(at(n / 2)),
        _ => Some((at(n / 2 - 1) + at(n / 2)) / 2.0),
    }
}

/// Puts the values of the given ranks (ascending) where a sort would put
/// them, by selection: O(n) per rank instead of a full O(n log n) sort.
/// Other positions hold the rest of the values in no particular order.
pub fn select_ranks(values: &mut [f64], ranks: &[usize]) {
    let mut from = 0;
    for &r in ranks {
        if r >= from && r < values.len() {
            values[from..].select_nth_unstable_by(r - from, f64::total_cmp);
            from = r + 1;
        }
    }
}

/// Sorts values (total order; callers never pass NaN).
pub fn sort_values(values: &mut [f64]) {
    values.sort_unstable_by(f64::total_cmp);
}

/// Median, 10th and 90th percentiles (type 7) of values, by selection of the
/// ranks they read rather than a full sort: the same values as
/// [`median_sorted`] and [`quantile_sorted`] on sorted input. The values are
/// left reordered.
#[must_use]
pub fn median_p10_p90(values: &mut [f64]) -> [Option<f64>; 3] {
    let n = values.len();
    // Small groups (most units) sort faster than they select.
    if n <= 64 {
        sort_values(values);
        return [
            median_sorted(values),
            quantile_sorted(values, 0.1),
            quantile_sorted(values, 0.9),
        ];
    }
    let (m0, m1) = median_ranks(n);
    let (a0, a1) = quantile_ranks(n, 0.1);
    let (b0, b1) = quantile_ranks(n, 0.9);
    let mut ranks = [m0, m1, a0, a1, b0, b1];
    ranks.sort_unstable();
    select_ranks(values, &ranks);
    [
        median_at(n, |i| values[i]),
        quantile_at(n, 0.1, |i| values[i]),
        quantile_at(n, 0.9, |i| values[i]),
    ]
}

/// The median of values, by selection (see [`median_p10_p90`]).
#[must_use]
pub fn median(values: &mut [f64]) -> Option<f64> {
    let n = values.len();
    if n <= 64 {
        sort_values(values);
        return median_sorted(values);
    }
    let (m0, m1) = median_ranks(n);
    select_ranks(values, &[m0, m1]);
    median_at(n, |i| values[i])
}

/// Upper tail of the fair binomial: `P[Binomial(n, 0.5) ≥ k]`.
///
/// This is the one-sided sign test's p-value for "the median is below the
/// threshold" when `k` of `n` samples are below it. Exact (one rounding)
/// for n ≤ 120 (the largest intermediate, C(n, i)·(n − i), stays below
/// 2^128), log-space summation beyond.
#[must_use]
pub fn binomial_upper_tail_half(n: u64, k: u64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n {
        return 0.0;
    }
    if n <= EXACT_MAX_N {
        // Tens of thousands of cells and units ask for the same few (n, k):
        // each is computed once, by the exact sum below.
        static TABLE: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
        let table = TABLE.get_or_init(|| {
            (0..=EXACT_MAX_N)
                .flat_map(|n| (0..=n).map(move |k| exact_upper_tail_half(n, k)))
                .collect()
        });
        #[allow(clippy::cast_possible_truncation, reason = "n ≤ 120")]
        let at = (n * (n + 1) / 2 + k) as usize;
        return table[at];
    }
    log_upper_tail_half(n, k)
}

/// The largest `n` whose tail is summed exactly (see [`binomial_upper_tail_half`]).
const EXACT_MAX_N: u64 = 120;

/// `P[Binomial(n, 0.5) ≥ k]` for `n ≤ EXACT_MAX_N`, as an exact sum with one rounding.
fn exact_upper_tail_half(n: u64, k: u64) -> f64 {
    let mut c: u128 = 1; // C(n, 0)
    let mut tail: u128 = 0;
    for i in 0..=n {
        if i >= k {
            tail += c;
        }
        if i < n {
            c = c * u128::from(n - i) / u128::from(i + 1);
        }
    }
    #[allow(clippy::cast_precision_loss, reason = "one rounding, documented")]
    let tail = tail as f64;
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_possible_wrap,
        reason = "n ≤ 120"
    )]
    let n = n as i32;
    tail * 2f64.powi(-n)
}

/// `P[Binomial(n, 0.5) ≥ k]` for `0 < k ≤ n`, summed in log space.
fn log_upper_tail_half(n: u64, k: u64) -> f64 {
    // log C(n, i) built incrementally, summed with log-sum-exp from the mode outward.
    #[allow(clippy::cast_precision_loss, reason = "n is a sample count")]
    let nf = n as f64;
    let mut log_c = 0.0;
    for i in 1..=k {
        #[allow(clippy::cast_precision_loss, reason = "i ≤ n")]
        let f = i as f64;
        log_c += (nf - f + 1.0).ln() - f.ln();
    }
    let mut terms = vec![log_c];
    for i in (k + 1)..=n {
        #[allow(clippy::cast_precision_loss, reason = "i ≤ n")]
        let f = i as f64;
        log_c += (nf - f + 1.0).ln() - f.ln();
        terms.push(log_c);
    }
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = terms.iter().map(|t| (t - max).exp()).sum();
    (max + sum.ln() - nf * std::f64::consts::LN_2)
        .exp()
        .min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_type7_against_numpy_by_hand() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(median_sorted(&v), Some(2.5));
        assert_eq!(median_sorted(&[5.0]), Some(5.0));
        assert_eq!(median_sorted(&[]), None);
        // numpy.percentile([1,2,3,4], 10) = 1.3; 90 → 3.7
        assert!((quantile_sorted(&v, 0.1).expect("non-empty") - 1.3).abs() < 1e-12);
        assert!((quantile_sorted(&v, 0.9).expect("non-empty") - 3.7).abs() < 1e-12);
        // numpy.percentile([0, 10], 10) = 1.0
        assert!((quantile_sorted(&[0.0, 10.0], 0.1).expect("non-empty") - 1.0).abs() < 1e-12);
        assert_eq!(quantile_sorted(&[7.0], 0.9), Some(7.0));
    }

    #[test]
    fn binomial_tail_hand_values() {
        assert_eq!(binomial_upper_tail_half(5, 5), 1.0 / 32.0);
        assert_eq!(binomial_upper_tail_half(5, 4), 6.0 / 32.0);
        assert_eq!(binomial_upper_tail_half(10, 9), 11.0 / 1024.0);
        assert_eq!(binomial_upper_tail_half(10, 8), 56.0 / 1024.0);
        assert_eq!(binomial_upper_tail_half(4, 0), 1.0);
        assert_eq!(binomial_upper_tail_half(0, 0), 1.0);
        assert_eq!(binomial_upper_tail_half(3, 4), 0.0);
    }

    #[test]
    fn binomial_tail_every_n_and_k_up_to_300() {
        // Naive f64 pmf recurrence as the oracle; covers both paths and the
        // switch at n = 120 (n = 126 used to overflow).
        for n in 0..=300u64 {
            let mut pmf = vec![0.5f64.powi(n as i32)];
            for i in 0..n {
                let next = pmf[i as usize] * (n - i) as f64 / (i + 1) as f64;
                pmf.push(next);
            }
            for k in 0..=n {
                let want: f64 = pmf[k as usize..].iter().sum::<f64>().min(1.0);
                let got = binomial_upper_tail_half(n, k);
                assert!(
                    (got - want).abs() <= 1e-9 * want + 1e-300,
                    "n={n} k={k}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn the_table_of_exact_tails_holds_each_sum_at_its_place() {
        // Bit for bit what the sum gives, so results do not change with the
        // table; a misplaced entry would return another (n, k)'s tail.
        for n in 0..=EXACT_MAX_N {
            for k in 1..=n {
                assert_eq!(
                    binomial_upper_tail_half(n, k).to_bits(),
                    exact_upper_tail_half(n, k).to_bits(),
                    "n={n} k={k}"
                );
            }
        }
    }

    #[test]
    fn binomial_tail_exact_and_log_paths_agree() {
        // Symmetry: P[X ≥ n/2+1] + P[X ≥ n/2] ... check P[X ≥ 0] = 1 and a
        // naive f64 pmf recurrence for n = 200 (no underflow at that size).
        for (n, k) in [
            (200u64, 90u64),
            (200, 100),
            (200, 120),
            (127, 64),
            (500, 260),
        ] {
            let mut pmf = 0.5f64.powi(n as i32);
            let mut tail = 0.0;
            for i in 0..=n {
                if i >= k {
                    tail += pmf;
                }
                pmf = pmf * (n - i) as f64 / (i + 1) as f64;
            }
            let got = binomial_upper_tail_half(n, k);
            assert!(
                (got - tail).abs() < 1e-10 * tail.max(1e-300) + 1e-15,
                "{n},{k}: {got} vs {tail}"
            );
        }
    }
}
