//! A shard's HdrHistogram interval log (`shard-i-of-N.hlog`): the latency of
//! its measured requests, one interval per second of the schedule, in the
//! standard format HdrHistogram's own tools read. Each second carries three
//! histograms of microseconds: every measured request completed in it
//! (untagged), the successful ones (`Tag=success`) and their schedule slip
//! (`Tag=slip`). BaseTime is the schedule's start, so an interval's
//! timestamp is its second; HdrHistograms add up losslessly, so the
//! intervals of every shard sum to the whole step's.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};

use crate::load::{Interval, LoadRun};

pub const EXTENSION: &str = "hlog";
const SUCCESS: &str = "success";
const SLIP: &str = "slip";

/// Why an interval log could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: not a perfsize interval log: {reason}")]
pub struct IntervalLogError {
    pub path: String,
    pub reason: String,
}

/// Writes the measured intervals of `run`, whose schedule had `warmup` before its measured window.
pub fn write(path: &Path, run: &LoadRun, warmup: Duration) -> std::io::Result<()> {
    let mut text = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    let schedule_start = run.measured_from.checked_sub(warmup).unwrap_or(run.measured_from);
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let mut builder = IntervalLogWriterBuilder::new();
    builder
        .add_comment("perfsize: latency (µs) of the measured requests completed in each second of the schedule")
        .add_comment("untagged: every request; Tag=success: successful ones; Tag=slip: send time minus due time")
        .with_start_time(run.measured_from)
        .with_base_time(schedule_start)
        .with_max_value_divisor(1000.0);
    {
        let mut log = builder.begin_log_with(&mut text, &mut serializer)?;
        for interval in &run.intervals {
            let start = Duration::from_secs(interval.second as u64);
            for (histogram, tag) in
                [(&interval.all, None), (&interval.success, Tag::new(SUCCESS)), (&interval.slip, Tag::new(SLIP))]
            {
                log.write_histogram(histogram, start, Duration::from_secs(1), tag).map_err(|e| invalid(format!("{e:?}")))?;
            }
        }
    }
    super::write_atomic(path, &text)
}

/// The intervals of a log written by [`write`], in second order, and the
/// wall-clock start of its schedule.
pub fn read(path: &Path) -> Result<(Vec<Interval>, Option<SystemTime>), IntervalLogError> {
    let fail = |reason: String| IntervalLogError { path: path.display().to_string(), reason };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let mut seconds: BTreeMap<u32, Interval> = BTreeMap::new();
    let mut base = None;
    for entry in IntervalLogIterator::new(&bytes) {
        match entry.map_err(|e| fail(format!("{e:?}")))? {
            LogEntry::BaseTime(t) => base = Some(SystemTime::UNIX_EPOCH + t),
            LogEntry::StartTime(_) => {}
            LogEntry::Interval(interval) => {
                let second = interval.start_timestamp().as_secs() as u32;
                let histogram = decode(interval.encoded_histogram()).map_err(fail)?;
                let row = seconds.entry(second).or_insert_with(|| Interval::empty(second));
                let into = match interval.tag().map(|t| t.as_str()) {
                    None => &mut row.all,
                    Some(SUCCESS) => &mut row.success,
                    Some(SLIP) => &mut row.slip,
                    Some(other) => return Err(fail(format!("unknown tag {other}"))),
                };
                into.add(&histogram).map_err(|e| fail(format!("{e:?}")))?;
            }
        }
    }
    Ok((seconds.into_values().collect(), base))
}

fn decode(base64: &str) -> Result<Histogram<u64>, String> {
    let bytes = STANDARD.decode(base64).map_err(|e| e.to_string())?;
    Deserializer::new().deserialize(&mut bytes.as_slice()).map_err(|e| format!("{e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(second: u32, micros: &[u64]) -> Interval {
        let mut i = Interval::empty(second);
        for &us in micros {
            i.all.record(us).unwrap();
            i.success.record(us).unwrap();
            i.slip.record(1).unwrap();
        }
        i
    }

    #[test]
    fn a_log_reads_back_the_intervals_it_was_written_from() {
        let now = SystemTime::now();
        let run = LoadRun {
            started_at: chrono::Utc::now(),
            ended_at: chrono::Utc::now(),
            measured_from: now,
            measured_to: now + Duration::from_secs(3),
            offered: 4,
            measured_seconds: 3.0,
            totals: Default::default(),
            series: Vec::new(),
            intervals: vec![interval(1, &[1_000, 2_000]), interval(3, &[70_000_000, 5])],
            max_in_flight: 1,
            model: Default::default(),
            shard: None,
            cancelled: false,
            asynchronous: None,
            streaming: None,
        };
        let path = std::env::temp_dir().join(format!("perfsize-interval-log-{}.hlog", std::process::id()));
        write(&path, &run, Duration::from_secs(1)).unwrap();
        let (back, base) = read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(back.iter().map(|i| i.second).collect::<Vec<_>>(), [1, 3]);
        for (a, b) in back.iter().zip(&run.intervals) {
            assert_eq!((&a.all, &a.success, &a.slip), (&b.all, &b.success, &b.slip));
        }
        let base = base.unwrap();
        assert!(
            base <= now && now.duration_since(base).unwrap() < Duration::from_millis(1001),
            "BaseTime is the schedule's start"
        );
    }
}
