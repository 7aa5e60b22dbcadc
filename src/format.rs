//! How numbers read, in the terminal and in the reports alike: rates,
//! milliseconds, dollars. One place, so the two never disagree.

/// 12.5 → "12.5", 100.0 → "100": at most three decimals, no trailing zeros.
pub fn trim_number(x: f64) -> String {
    let text = format!("{x:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Dollars with cents, or with four decimals when under a dollar.
pub fn dollars(x: f64) -> String {
    if x < 1.0 { format!("${x:.4}") } else { format!("${x:.2}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_lose_trailing_zeros() {
        assert_eq!(trim_number(12.5), "12.5");
        assert_eq!(trim_number(100.0), "100");
        assert_eq!(trim_number(0.12345), "0.123");
    }

    #[test]
    fn small_sums_keep_four_decimals() {
        assert_eq!(dollars(0.01234), "$0.0123");
        assert_eq!(dollars(12.345), "$12.35");
    }
}
