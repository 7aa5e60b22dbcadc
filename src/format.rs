//! How numbers read, in the terminal and in the reports alike: rates,
//! milliseconds, dollars, percentages, durations — and text made safe for
//! XML. One place, so the outputs never disagree. A leaf: it imports nothing
//! from the crate.

/// 12.5 → "12.5", 100.0 → "100": at most three decimals, no trailing zeros.
pub fn trim_number(x: f64) -> String {
    let text = format!("{x:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Dollars as the terminal and the reports show them: cents for whole amounts, up to four
/// decimals (trailing zeros dropped) for the small prices of an hour or a
/// million inferences, thousands grouped from $1,000.
pub fn money(v: f64) -> String {
    if v >= 1000.0 {
        format!("${}", thousands(v.round()))
    } else if v >= 1.0 {
        format!("${v:.2}")
    } else if v > 0.0 && v < 0.0001 {
        // A millionth of a cent is still a part of a sum (S3 storage held for
        // seconds): two significant digits, never a bare $0.
        let digits = (-v.log10()).ceil() as usize + 1;
        let text = format!("{v:.digits$}");
        format!("${}", text.trim_end_matches('0').trim_end_matches('.'))
    } else {
        let text = format!("{v:.4}");
        format!("${}", text.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// 12345 → "12,345" (the integer part, grouped by thousands).
pub fn thousands(v: f64) -> String {
    let digits = format!("{}", v.abs() as u64);
    let grouped: Vec<&str> = digits.as_bytes().rchunks(3).rev().map(|c| std::str::from_utf8(c).expect("ASCII digits")).collect();
    format!("{}{}", if v < 0.0 { "-" } else { "" }, grouped.join(","))
}

/// Milliseconds: three decimals under 1 ms (server overheads), one above,
/// whole and grouped from 10,000 ms.
pub fn ms(v: f64) -> String {
    if v.abs() < 1.0 {
        format!("{v:.3}")
    } else if v.abs() < 10_000.0 {
        format!("{v:.1}")
    } else {
        thousands(v.round())
    }
}

/// A rate: to a tenth, or to three decimals for the small rates of a search
/// that went down to find any capacity at all.
pub fn tps(v: f64) -> String {
    if v.abs() < 10.0 { trim_number(v) } else { trim_number((v * 10.0).round() / 10.0) }
}

/// 0.1 → "0.1%", 50.0 → "50%".
pub fn percent(v: f64) -> String {
    format!("{}%", trim_number(v))
}

/// A change in percent, signed, to a tenth: 50.0 → "+50.0%", -3.25 → "-3.2%".
pub fn signed_percent(v: f64) -> String {
    format!("{v:+.1}%")
}

/// 115.3 → "1 m 55 s"; 20.0 → "20 s"; 3725.0 → "1 h 02 m".
pub fn duration(seconds: f64) -> String {
    let total = seconds.round() as u64;
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    match (h, m) {
        (0, 0) => format!("{s} s"),
        (0, _) => format!("{m} m {s:02} s"),
        _ => format!("{h} h {m:02} m"),
    }
}

/// As short as the value allows, for chart ticks (milliseconds, rates,
/// counts): two decimals at most, thousands as "k" from 10,000.
pub fn compact(v: f64) -> String {
    if v >= 10_000.0 { format!("{}k", trim_number(v / 1000.0)) } else { trim_number((v * 100.0).round() / 100.0) }
}

/// Dollars as short as the value allows, for chart ticks: 0.25 → "$0.25".
pub fn compact_dollars(v: f64) -> String {
    format!("${}", trim_number(v))
}

/// Escapes text for XML attributes and content.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters even escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// Durations in files read as "90s", "3m" (serde `with`).
pub mod humantime_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
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
    fn money_reads_naturally() {
        assert_eq!(money(0.102), "$0.102");
        assert_eq!(money(0.2833), "$0.2833");
        assert_eq!(money(0.0), "$0");
        assert_eq!(money(0.000_000_174), "$0.00000017", "tiny sums keep two significant digits");
        assert_eq!(money(74.46), "$74.46");
        assert_eq!(money(16790.0), "$16,790");
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(12345.0), "12,345");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1234567.0), "1,234,567");
        assert_eq!(thousands(-12345.0), "-12,345");
    }

    #[test]
    fn milliseconds_keep_the_digits_that_matter() {
        assert_eq!(ms(0.019), "0.019");
        assert_eq!(ms(424.447), "424.4");
        assert_eq!(ms(-0.5), "-0.500");
        assert_eq!(ms(12345.6), "12,346");
    }

    #[test]
    fn rates_read_to_a_tenth_or_finer_when_small() {
        assert_eq!(tps(97.46), "97.5");
        assert_eq!(tps(100.0), "100");
        assert_eq!(tps(0.15625), "0.156");
    }

    #[test]
    fn percentages() {
        assert_eq!(percent(0.1), "0.1%");
        assert_eq!(percent(50.0), "50%");
        assert_eq!(signed_percent(50.0), "+50.0%");
        assert_eq!(signed_percent(-3.26), "-3.3%");
        assert_eq!(signed_percent(0.0), "+0.0%");
    }

    #[test]
    fn durations_read_in_units() {
        assert_eq!(duration(115.3), "1 m 55 s");
        assert_eq!(duration(20.0), "20 s");
        assert_eq!(duration(3725.0), "1 h 02 m");
    }

    #[test]
    fn ticks_are_compact() {
        assert_eq!(compact(12.345), "12.35");
        assert_eq!(compact(100.0), "100");
        assert_eq!(compact(25_000.0), "25k");
        assert_eq!(compact_dollars(0.25), "$0.25");
        assert_eq!(compact_dollars(1.0), "$1");
    }
}
