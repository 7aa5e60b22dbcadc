//! Where every request's outcome lands: HdrHistograms of latency (all
//! requests and successful ones) and of schedule slip, error counts, a
//! one-row-per-second series, and the per-second interval histograms a
//! shard's interval log is written from. Memory is fixed: nothing is kept
//! per request.
//!
//! Recording is per worker: each worker records into a [`Lane`] of its own,
//! whose lock nobody else takes but the once-a-second close, so a request
//! costs two or three histogram increments and no contended lock. Once a
//! second the lanes' seconds are swapped out and merged — HdrHistograms add
//! up losslessly — into the step's totals, its series row and its interval.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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

fn add(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    into.add(from).expect("histograms of one step share their bounds");
}

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// An HTTP answer other than 2xx; `code` is the error code the server
    /// named (`x-amzn-ErrorType` on SageMaker), e.g. ModelError.
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

    /// The server failed to answer, rather than answered about the request:
    /// a 5xx, or a connection that failed or broke. What an endpoint whose
    /// instance is replaced or out of service gives (and an overloaded one
    /// that sheds load with 503).
    pub fn is_server_failure(&self) -> bool {
        match self {
            Outcome::Http { status, .. } => *status >= 500,
            Outcome::Connection => true,
            Outcome::Success | Outcome::Timeout => false,
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
    /// No in-flight slot was free when it fell due.
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
    /// Of `errors`, the server's own failures: 5xx answers and broken
    /// connections ([`Outcome::is_server_failure`]). Absent from series
    /// written before perfsize counted them.
    #[serde(default)]
    pub server_errors: u64,
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
    /// Requests due in the measured window that were never sent although an
    /// in-flight slot was free: the generator was at its own maximum.
    #[serde(default)]
    pub not_sent: u64,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.sent += other.sent;
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.answered_failures += other.answered_failures;
        self.late_starts += other.late_starts;
        self.not_sent += other.not_sent;
    }
}

/// Everything recorded for the measured window.
#[derive(Debug, Clone)]
pub struct Totals {
    pub all: Histogram<u64>,
    pub success: Histogram<u64>,
    pub slip: Histogram<u64>,
    pub counts: Counts,
    pub errors_by_status: BTreeMap<String, u64>,
    pub errors_by_code: BTreeMap<String, u64>,
}

impl Default for Totals {
    fn default() -> Totals {
        Totals {
            all: new_histogram(),
            success: new_histogram(),
            slip: new_histogram(),
            counts: Counts::default(),
            errors_by_status: BTreeMap::new(),
            errors_by_code: BTreeMap::new(),
        }
    }
}

impl Totals {
    /// Records one measured request.
    fn add(&mut self, o: &Observation) {
        let latency = micros(o.latency);
        self.all.saturating_record(latency);
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

    /// Adds everything `other` recorded: histograms add up losslessly.
    pub fn merge(&mut self, other: &Totals) {
        add(&mut self.all, &other.all);
        add(&mut self.success, &other.success);
        add(&mut self.slip, &other.slip);
        self.counts.add(&other.counts);
        for (into, from) in
            [(&mut self.errors_by_status, &other.errors_by_status), (&mut self.errors_by_code, &other.errors_by_code)]
        {
            for (key, n) in from {
                *into.entry(key.clone()).or_default() += n;
            }
        }
    }

    fn clear(&mut self) {
        self.all.reset();
        self.success.reset();
        self.slip.reset();
        self.counts = Counts::default();
        self.errors_by_status.clear();
        self.errors_by_code.clear();
    }
}

/// What one lane recorded in the current second.
#[derive(Default)]
struct SecondTally {
    /// Requests due in the measured window that completed this second.
    measured: Totals,
    /// Requests of the warm-up that completed this second (for the live view only).
    warmup: Option<Histogram<u64>>,
    completed: u64,
    errors: u64,
    server_errors: u64,
}

impl SecondTally {
    fn record(&mut self, o: &Observation, measured: bool) {
        self.completed += 1;
        self.errors += (o.outcome != Outcome::Success) as u64;
        self.server_errors += o.outcome.is_server_failure() as u64;
        if measured {
            self.measured.add(o);
        } else {
            self.warmup.get_or_insert_with(new_histogram).saturating_record(micros(o.latency));
        }
    }

    fn clear(&mut self) {
        self.measured.clear();
        if let Some(h) = &mut self.warmup {
            h.reset();
        }
        self.completed = 0;
        self.errors = 0;
        self.server_errors = 0;
    }
}

/// One worker's recording. Only its worker records into it; the per-second
/// close takes its lock once a second.
pub struct Lane {
    warmup: f64,
    current: Mutex<SecondTally>,
}

impl Lane {
    pub fn record(&self, o: &Observation) {
        crate::error::lock(&self.current).record(o, o.due >= self.warmup);
    }

    /// Takes what this second recorded, leaving `spare` (cleared) in its place.
    fn swap(&self, spare: &mut SecondTally) {
        std::mem::swap(&mut *crate::error::lock(&self.current), spare);
    }
}

/// The measured requests of one second, for a shard's interval log.
#[derive(Debug, Clone)]
pub struct Interval {
    /// Seconds since the schedule started.
    pub second: u32,
    /// Latency of every measured request completed in this second, and of the successful ones.
    pub all: Histogram<u64>,
    pub success: Histogram<u64>,
    pub slip: Histogram<u64>,
}

impl Interval {
    /// Second `second` with nothing recorded yet.
    pub fn empty(second: u32) -> Interval {
        Interval { second, all: new_histogram(), success: new_histogram(), slip: new_histogram() }
    }

    /// Adds what `other` recorded: HdrHistograms add up losslessly.
    pub fn add(&mut self, other: &Interval) {
        add(&mut self.all, &other.all);
        add(&mut self.success, &other.success);
        add(&mut self.slip, &other.slip);
    }
}

/// What a finished step recorded.
#[derive(Debug, Clone)]
pub struct Recording {
    pub totals: Totals,
    pub series: Vec<SecondStats>,
    /// One per second that completed a measured request.
    pub intervals: Vec<Interval>,
}

/// What the per-second close keeps between seconds.
struct Closing {
    totals: Totals,
    series: Vec<SecondStats>,
    intervals: Vec<Interval>,
    /// Requests answered since the schedule started.
    completed: u64,
    /// Scratch tallies, reused each second so closing allocates nothing.
    second: SecondTally,
    spare: SecondTally,
}

/// Every lane of one load step, and their sum.
pub struct Recorder {
    warmup: f64,
    lanes: Mutex<Vec<Arc<Lane>>>,
    /// The lane of callers that record without one of their own.
    shared: Arc<Lane>,
    closing: Mutex<Closing>,
    /// Requests sent since the schedule started: an atomic, so that a send
    /// costs no lock.
    sent: AtomicU64,
}

impl Recorder {
    /// A recorder that leaves requests due before `warmup` out of the statistics.
    pub fn new(warmup: Duration) -> Recorder {
        let warmup = warmup.as_secs_f64();
        let shared = Arc::new(Lane { warmup, current: Mutex::new(SecondTally::default()) });
        Recorder {
            warmup,
            lanes: Mutex::new(vec![Arc::clone(&shared)]),
            shared,
            closing: Mutex::new(Closing {
                totals: Totals::default(),
                series: Vec::new(),
                intervals: Vec::new(),
                completed: 0,
                second: SecondTally::default(),
                spare: SecondTally::default(),
            }),
            sent: AtomicU64::new(0),
        }
    }

    /// A lane of its own for one worker.
    pub fn lane(&self) -> Arc<Lane> {
        let lane = Arc::new(Lane { warmup: self.warmup, current: Mutex::new(SecondTally::default()) });
        crate::error::lock(&self.lanes).push(Arc::clone(&lane));
        lane
    }

    /// A request is on its way.
    pub fn sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests sent so far, warm-up included.
    pub fn sent_so_far(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Records into the shared lane (for callers without a lane of their own).
    pub fn record(&self, o: Observation) {
        self.shared.record(&o);
    }

    /// Closes second `second` (counting from the schedule start) with `offered`
    /// requests due in it, and returns its row.
    pub fn close_second(&self, second: u32, offered: u64) -> SecondStats {
        let lanes: Vec<Arc<Lane>> = crate::error::lock(&self.lanes).clone();
        let mut guard = crate::error::lock(&self.closing);
        let closing = &mut *guard;
        closing.second.clear();
        let mut warmup = new_histogram();
        for lane in lanes {
            closing.spare.clear();
            lane.swap(&mut closing.spare);
            let tally = &closing.spare;
            closing.second.completed += tally.completed;
            closing.second.errors += tally.errors;
            closing.second.server_errors += tally.server_errors;
            closing.second.measured.merge(&tally.measured);
            if let Some(h) = &tally.warmup {
                add(&mut warmup, h);
            }
        }
        let this = &closing.second;
        closing.completed += this.completed;
        closing.totals.merge(&this.measured);
        if !this.measured.all.is_empty() {
            closing.intervals.push(Interval {
                second,
                all: this.measured.all.clone(),
                success: this.measured.success.clone(),
                slip: this.measured.slip.clone(),
            });
        }
        // The live view shows every completion, warm-up or not.
        add(&mut warmup, &this.measured.all);
        let quantile = |q: f64| (!warmup.is_empty()).then(|| warmup.value_at_quantile(q) as f64 / 1000.0);
        let row = SecondStats {
            second,
            warmup: (second as f64) < self.warmup,
            offered,
            completed: this.completed,
            errors: this.errors,
            server_errors: this.server_errors,
            in_flight: self.sent.load(Ordering::Relaxed).saturating_sub(closing.completed),
            p50_ms: quantile(0.5),
            p99_ms: quantile(0.99),
        };
        closing.series.push(row.clone());
        row
    }

    /// Everything recorded, taken out. Call after the last second is closed.
    pub fn finish(&self) -> Recording {
        let mut closing = crate::error::lock(&self.closing);
        Recording {
            totals: std::mem::take(&mut closing.totals),
            series: std::mem::take(&mut closing.series),
            intervals: std::mem::take(&mut closing.intervals),
        }
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
        assert!(row.p99_ms.unwrap() > 800.0, "the live view shows the warm-up too");
        let recording = recorder.finish();
        assert_eq!(recording.totals.counts.sent, 1);
        assert_eq!(recording.totals.all.max() / 1000, 10);
        assert_eq!(recording.series.len(), 1);
        assert_eq!(recording.intervals.len(), 1);
        assert_eq!(recording.intervals[0].all.len(), 1, "intervals hold the measured requests only");
    }

    #[test]
    fn failures_count_by_status_and_code_and_at_their_latency() {
        let recorder = Recorder::new(Duration::ZERO);
        recorder.record(observation(0.0, 5, Outcome::Http { status: 424, code: Some("ModelError".into()) }));
        recorder.record(observation(0.0, 2, Outcome::Http { status: 503, code: Some("ServiceUnavailable".into()) }));
        recorder.record(observation(0.0, 70_000, Outcome::Timeout));
        recorder.record(observation(0.0, 8, Outcome::Success));
        recorder.record(observation(0.0, 3, Outcome::Connection));
        let row = recorder.close_second(0, 5);
        assert_eq!((row.errors, row.server_errors), (4, 2), "the 503 and the broken connection are the server's");
        let totals = recorder.finish().totals;
        assert_eq!(totals.counts.failed, 4);
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

    #[test]
    fn lanes_merge_into_the_same_totals_as_one_lane_would() {
        let (one, many) = (Recorder::new(Duration::ZERO), Recorder::new(Duration::ZERO));
        let lanes: Vec<Arc<Lane>> = (0..3).map(|_| many.lane()).collect();
        for ms in 1..=300u64 {
            let o = observation(0.0, ms, if ms % 7 == 0 { Outcome::Timeout } else { Outcome::Success });
            one.record(o.clone());
            lanes[ms as usize % 3].record(&o);
        }
        let (a, b) = (one.close_second(0, 300), many.close_second(0, 300));
        assert_eq!(a, b);
        let (a, b) = (one.finish(), many.finish());
        assert_eq!(a.totals.all, b.totals.all);
        assert_eq!(a.totals.counts, b.totals.counts);
        assert_eq!(a.totals.errors_by_code, b.totals.errors_by_code);
    }
}
