//! Ordering of unit codes and village ids: kept verbatim as strings, but two
//! all-digit values compare as numbers (`"0405" < "1000"`, `"9" < "10"`).

use std::cmp::Ordering;

/// Compares two codes: numerically when both are all digits, else as strings.
/// Equal numbers with different padding fall back to string order, so the
/// order stays total and deterministic.
#[must_use]
pub fn cmp_codes(a: &str, b: &str) -> Ordering {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if digits(a) && digits(b) {
        let ta = a.trim_start_matches('0');
        let tb = b.trim_start_matches('0');
        ta.len()
            .cmp(&tb.len())
            .then_with(|| ta.cmp(tb))
            .then_with(|| a.cmp(b))
    } else {
        a.cmp(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_compare_as_numbers() {
        assert_eq!(cmp_codes("9", "10"), Ordering::Less);
        assert_eq!(cmp_codes("04051355", "4051356"), Ordering::Less);
        assert_eq!(
            cmp_codes("123456789012345678901234", "99"),
            Ordering::Greater
        );
    }

    #[test]
    fn padding_breaks_ties_deterministically() {
        assert_eq!(cmp_codes("007", "7"), Ordering::Less);
        assert_eq!(cmp_codes("7", "007"), Ordering::Greater);
        assert_eq!(cmp_codes("7", "7"), Ordering::Equal);
    }

    #[test]
    fn mixed_values_compare_as_strings() {
        assert_eq!(cmp_codes("10", "9a"), Ordering::Less);
        assert_eq!(cmp_codes("abc", "abd"), Ordering::Less);
        assert_eq!(cmp_codes("", "0"), Ordering::Less);
    }
}
