//! Where every request's outcome lands: HdrHistograms of latency (all
//! requests and successful ones) and of schedule slip, error counts, and a
//! one-row-per-second series. Memory is fixed: nothing is kept per request.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latencies are recorded in microseconds from 1 µs to 120 s, to 3 significant digits.
pub const HIGHEST_MICROS: u64 = 120_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_MICROS, SIGNIFICANT_DIGITS).expect("valid histogram bounds")
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, HIGHEST_MICROS)
}

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// An HTTP answer other than 200; `code` is the AWS error code when the
    /// service named one (`x-amzn-ErrorType`), e.g. ModelError.
    Http {
        status: u16,
        code: Option<String>,
    },
    /// No answer within the request timeout.
    Timeout,
    /// The connection failed or broke.
    Connection,
}

impl Outcome {
    /// The key under which the result counts this failure by HTTP status.
    pub fn status_key(&self) -> Option<String> {
        match self {
            Outcome::Success => None,
            Outcome::Http { status, .. } => Some(status.to_string()),
            Outcome::Timeout => Some("timeout".into()),
            Outcome::Connection => Some("connection".into()),
        }
    }

    /// The key under which the result counts this failure by error code.
    pub fn code_key(&self) -> Option<String> {
        match self {
            Outcome::Success => None,
            Outcome::Http { code: Some(code), .. } => Some(code.clone()),
            Outcome::Http { status, code: None } => Some(format!("HTTP {status}")),
            Outcome::Timeout => Some("timeout".into()),
            Outcome::Connection => Some("connection".into()),
        }
    }
}

/// One request as the load manager saw it.
#[derive(Debug, Clone)]
pub struct Observation {
    /// Seconds from the schedule's start at which it was due.
    pub due: f64,
    /// Completion − intended start, or − actual start when sent early: the earlier of the two.
    pub latency: Duration,
    /// Actual send − intended send, zero when on time or early.
    pub slip: Duration,
    /// No user was free when it fell due: every in-flight slot was busy.
    pub late_start: bool,
    pub outcome: Outcome,
}

/// One second of the run, for charts and the live display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondStats {
    /// Seconds since the schedule started.
    pub second: u32,
    /// Part of the warm-up, excluded from the step's statistics.
    pub warmup: bool,
    /// Requests due in this second.
    pub offered: u64,
    /// Requests completed in this second (any outcome).
    pub completed: u64,
    pub errors: u64,
    /// Requests sent and not yet answered at the end of this second.
    #[serde(default)]
    pub in_flight: u64,
    /// Latency of the requests completed in this second, milliseconds.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Counts over the measured window (after warm-up).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Requests due in the measured window and sent.
    pub sent: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Failed requests that still got an HTTP answer.
    pub answered_failures: u64,
    /// Requests that started late because no in-flight slot was free.
    pub late_starts: u64,
}

/// Everything recorded for the measured window.
#[derive(Debug, Clone)]
pub struct Totals {
    pub all: Histogram<u64>,
    /// Completion − actual send: what a closed-loop tool would report. Kept
    /// to show how much coordinated omission would hide.
    pub response: Histogram<u64>,
    pub success: Histogram<u64>,
    pub slip: Histogram<u64>,
    pub counts: Counts,
    pub errors_by_status: BTreeMap<String, u64>,
    pub errors_by_code: BTreeMap<String, u64>,
}

impl Totals {
    fn new() -> Totals {
        Totals {
            all: new_histogram(),
            response: new_histogram(),
            success: new_histogram(),
            slip: new_histogram(),
            counts: Counts::default(),
            errors_by_status: BTreeMap::new(),
            errors_by_code: BTreeMap::new(),
        }
    }

    fn add(&mut self, o: &Observation) {
        let latency = micros(o.latency);
        self.all.saturating_record(latency);
        self.response.saturating_record(micros(o.latency.saturating_sub(o.slip)));
        self.slip.saturating_record(micros(o.slip));
        self.counts.sent += 1;
        self.counts.late_starts += o.late_start as u64;
        match (&o.outcome, o.outcome.status_key(), o.outcome.code_key()) {
            (Outcome::Success, _, _) => {
                self.counts.succeeded += 1;
                self.success.saturating_record(latency);
            }
            (outcome, Some(status), Some(code)) => {
                self.counts.failed += 1;
                self.counts.answered_failures += matches!(outcome, Outcome::Http { .. }) as u64;
                *self.errors_by_status.entry(status).or_default() += 1;
                *self.errors_by_code.entry(code).or_default() += 1;
            }
            _ => unreachable!("every failure has a status key and a code key"),
        }
    }
}

struct CurrentSecond {
    completed: u64,
    errors: u64,
    latency: Histogram<u64>,
}

struct Inner {
    totals: Totals,
    current: CurrentSecond,
    series: Vec<SecondStats>,
    /// Requests answered since the schedule started.
    completed: u64,
}

/// Shared by every goose user of one load step.
pub struct Recorder {
    warmup: f64,
    inner: Mutex<Inner>,
    /// Requests sent since the schedule started: an atomic, so that a send
    /// costs no lock.
    sent: AtomicU64,
}

impl Recorder {
    /// A recorder that leaves requests due before `warmup` out of the statistics.
    pub fn new(warmup: Duration) -> Recorder {
        Recorder {
            warmup: warmup.as_secs_f64(),
            inner: Mutex::new(Inner {
                totals: Totals::new(),
                current: CurrentSecond { completed: 0, errors: 0, latency: new_histogram() },
                series: Vec::new(),
                completed: 0,
            }),
            sent: AtomicU64::new(0),
        }
    }

    /// A request is on its way.
    pub fn sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests sent so far, warm-up included.
    pub fn sent_so_far(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    pub fn record(&self, o: Observation) {
        let mut inner = self.inner.lock().expect("recorder lock");
        inner.current.completed += 1;
        inner.current.errors += (o.outcome != Outcome::Success) as u64;
        inner.current.latency.saturating_record(micros(o.latency));
        if o.due >= self.warmup {
            inner.totals.add(&o);
        }
    }

    /// Closes second `second` (counting from the schedule start) with `offered`
    /// requests due in it, and returns its row.
    pub fn close_second(&self, second: u32, offered: u64) -> SecondStats {
        let mut inner = self.inner.lock().expect("recorder lock");
        inner.completed += inner.current.completed;
        let in_flight = self.sent.load(Ordering::Relaxed).saturating_sub(inner.completed);
        let current = &mut inner.current;
        let quantile = |q: f64| (!current.latency.is_empty()).then(|| current.latency.value_at_quantile(q) as f64 / 1000.0);
        let row = SecondStats {
            second,
            warmup: (second as f64) < self.warmup,
            offered,
            completed: current.completed,
            errors: current.errors,
            in_flight,
            p50_ms: quantile(0.5),
            p99_ms: quantile(0.99),
        };
        current.completed = 0;
        current.errors = 0;
        current.latency.reset();
        inner.series.push(row.clone());
        row
    }

    /// The measured-window totals and the per-second series, taken out.
    pub fn finish(&self) -> (Totals, Vec<SecondStats>) {
        let mut inner = self.inner.lock().expect("recorder lock");
        (std::mem::replace(&mut inner.totals, Totals::new()), std::mem::take(&mut inner.series))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observation(due: f64, ms: u64, outcome: Outcome) -> Observation {
        Observation { due, latency: Duration::from_millis(ms), slip: Duration::ZERO, late_start: false, outcome }
    }

    #[test]
    fn warmup_requests_stay_out_of_the_totals_but_not_the_series() {
        let recorder = Recorder::new(Duration::from_secs(2));
        recorder.record(observation(0.5, 900, Outcome::Success));
        recorder.record(observation(2.5, 10, Outcome::Success));
        let row = recorder.close_second(0, 2);
        assert_eq!(row.completed, 2);
        assert!(row.warmup);
        let (totals, series) = recorder.finish();
        assert_eq!(totals.counts.sent, 1);
        assert_eq!(totals.all.max() / 1000, 10);
        assert_eq!(series.len(), 1);
    }

    #[test]
    fn failures_count_by_status_and_code_and_at_their_latency() {
        let recorder = Recorder::new(Duration::ZERO);
        recorder.record(observation(0.0, 5, Outcome::Http { status: 424, code: Some("ModelError".into()) }));
        recorder.record(observation(0.0, 2, Outcome::Http { status: 503, code: Some("ServiceUnavailable".into()) }));
        recorder.record(observation(0.0, 70_000, Outcome::Timeout));
        recorder.record(observation(0.0, 8, Outcome::Success));
        let (totals, _) = recorder.finish();
        assert_eq!(totals.counts.failed, 3);
        assert_eq!(totals.counts.answered_failures, 2);
        assert_eq!(totals.errors_by_status.get("424"), Some(&1));
        assert_eq!(totals.errors_by_status.get("timeout"), Some(&1));
        assert_eq!(totals.errors_by_code.get("ServiceUnavailable"), Some(&1));
        assert!(totals.all.max() >= 69_000_000, "a timeout counts at its latency");
        assert_eq!(totals.success.len(), 1);
    }

    #[test]
    fn each_second_reports_its_own_percentiles() {
        let recorder = Recorder::new(Duration::ZERO);
        for ms in 1..=100 {
            recorder.record(observation(0.0, ms, Outcome::Success));
        }
        let first = recorder.close_second(0, 100);
        assert_eq!(first.p50_ms.map(f64::round), Some(50.0));
        assert_eq!(first.p99_ms.map(f64::round), Some(99.0));
        let quiet = recorder.close_second(1, 100);
        assert_eq!((quiet.completed, quiet.p99_ms), (0, None), "a second with no completions has no percentile");
    }
}
