//! HdrHistograms as results carry them: percentile summaries, the encoded
//! histogram (base64 of the V2-deflate format, mergeable across machines) and
//! the `.hgrm` percentile distribution the standard HdrHistogram plotter reads.

use std::fmt::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
    pub mean: f64,
    pub count: u64,
}

/// Microseconds as milliseconds, to the microsecond.
fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

impl Percentiles {
    /// The summary of a histogram of microseconds; None when it is empty.
    pub fn of(h: &Histogram<u64>) -> Option<Percentiles> {
        (!h.is_empty()).then(|| Percentiles {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            p99_9: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: (h.mean()).round() / 1000.0,
            count: h.len(),
        })
    }
}

/// Latency at `percentile` (0–100) in milliseconds.
pub fn at_percentile(h: &Histogram<u64>, percentile: f64) -> Option<f64> {
    (!h.is_empty()).then(|| ms(h.value_at_percentile(percentile)))
}

#[derive(Debug, thiserror::Error)]
#[error("not an encoded HdrHistogram: {0}")]
pub struct DecodeError(String);

/// base64 of the V2-deflate serialization.
pub fn encode(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new().serialize(h, &mut bytes).expect("serializing to memory cannot fail");
    STANDARD.encode(bytes)
}

pub fn decode(text: &str) -> Result<Histogram<u64>, DecodeError> {
    let bytes = STANDARD.decode(text.trim()).map_err(|e| DecodeError(e.to_string()))?;
    Deserializer::new().deserialize(&mut bytes.as_slice()).map_err(|e| DecodeError(format!("{e:?}")))
}

/// The percentile distribution in HdrHistogram's text format (values in
/// milliseconds, five ticks per half-distance), as Java's
/// `outputPercentileDistribution(out, 1000.0)` writes it.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:>12} {:>14} {:>10} {:>14}\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    // The text format prints the running total of counts up to each value.
    let mut total = 0;
    for v in h.iter_quantiles(5).filter(|_| !h.is_empty()) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let value = v.value_iterated_to() as f64 / 1000.0;
        if q < 1.0 {
            let _ = writeln!(out, "{value:12.3} {q:2.12} {total:10} {:14.2}", 1.0 / (1.0 - q));
        } else {
            let _ = writeln!(out, "{value:12.3} {q:2.12} {total:10}");
        }
    }
    let _ = writeln!(out, "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]", h.mean() / 1000.0, h.stdev() / 1000.0);
    let _ = writeln!(out, "#[Max     = {:12.3}, Total count    = {:12}]", h.max() as f64 / 1000.0, h.len());
    let _ = writeln!(out, "#[Buckets = {:12}, SubBuckets     = {:12}]", h.buckets(), sub_buckets(h.sigfig()));
    out
}

/// HdrHistogram's sub-bucket count for a precision: 2^⌈log2(2·10^digits)⌉.
fn sub_buckets(significant_digits: u8) -> u64 {
    (2 * 10u64.pow(significant_digits as u32)).next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::recorder::new_histogram;

    fn sample() -> Histogram<u64> {
        let mut h = new_histogram();
        for us in 1..=10_000u64 {
            h.record(us * 10).unwrap();
        }
        h
    }

    #[test]
    fn percentiles_are_in_milliseconds() {
        let p = Percentiles::of(&sample()).unwrap();
        assert!((p.p50 - 50.0).abs() < 0.1, "{p:?}");
        assert!((p.p99 - 99.0).abs() < 0.1, "{p:?}");
        assert!((p.max - 100.0).abs() < 0.1, "{p:?}");
        assert_eq!(p.count, 10_000);
        assert!(Percentiles::of(&new_histogram()).is_none());
    }

    #[test]
    fn encoding_round_trips_and_merges() {
        let h = sample();
        let decoded = decode(&encode(&h)).unwrap();
        assert_eq!(decoded.len(), h.len());
        assert_eq!(decoded.value_at_quantile(0.99), h.value_at_quantile(0.99));
        let mut merged = decoded.clone();
        merged.add(&h).unwrap();
        assert_eq!(merged.len(), 20_000);
        assert!(decode("not base64!").is_err());
    }

    #[test]
    fn hgrm_has_the_standard_columns_and_footer() {
        let text = hgrm(&sample());
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
            ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
        );
        let first = text.lines().nth(2).unwrap();
        assert_eq!(first.split_whitespace().count(), 4, "{first}");
        assert!(text.contains("Total count    =        10000]"), "{text}");
        assert!(text.contains("SubBuckets     =         2048]"), "{text}");
        let last_data = text.lines().rfind(|l| !l.starts_with('#') && !l.trim().is_empty()).unwrap();
        assert!(last_data.contains("1.000000000000"), "{last_data}");
    }
}
