//! What the simulator really served, per second: the ground truth behind its
//! CloudWatch answers. A series belongs to an endpoint variant (its requests,
//! real-time or asynchronous) or to an asynchronous endpoint as a whole (its
//! backlog, looked at a few times a second) — the two sets of dimensions
//! SageMaker publishes under.
//!
//! - `names`: which metrics exist, their namespace, unit and dimensions;
//! - `second`: one second's record and the samples of each metric in it;
//! - `stream`: a second's response streams and looks at the LLM engines.
//!
//! Latencies are kept per request (microseconds) so percentiles are exact;
//! counters and utilisation are kept per second. Series outlive their endpoint,
//! as CloudWatch metrics do, until the profile's retention drops them.

mod names;
mod second;
mod stream;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use names::{MetricName, Scope};
use second::Second;
pub use second::{AsyncFailure, AsyncServed, Backlog, Capacity, Outcome, Served};
pub use stream::{EngineLook, StreamServed};

/// A CloudWatch statistic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    Sum,
    Average,
    SampleCount,
    Minimum,
    Maximum,
    /// pNN: the percentile, 0–100.
    Percentile(f64),
}

impl Stat {
    pub fn parse(text: &str) -> Option<Stat> {
        match text {
            "Sum" => Some(Stat::Sum),
            "Average" => Some(Stat::Average),
            "SampleCount" => Some(Stat::SampleCount),
            "Minimum" => Some(Stat::Minimum),
            "Maximum" => Some(Stat::Maximum),
            _ => {
                let p: f64 = text.strip_prefix('p')?.parse().ok()?;
                (0.0..=100.0).contains(&p).then_some(Stat::Percentile(p))
            }
        }
    }

    /// Applies the statistic to a period's samples (never empty).
    fn apply(self, samples: &mut [f64]) -> f64 {
        let n = samples.len() as f64;
        match self {
            Stat::Sum => samples.iter().sum(),
            Stat::Average => samples.iter().sum::<f64>() / n,
            Stat::SampleCount => n,
            Stat::Minimum => samples.iter().copied().fold(f64::INFINITY, f64::min),
            Stat::Maximum => samples.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Stat::Percentile(p) => {
                samples.sort_by(f64::total_cmp);
                // Nearest rank, as CloudWatch computes percentiles of raw samples.
                let rank = ((p / 100.0) * n).ceil().max(1.0) as usize;
                samples[rank.min(samples.len()) - 1]
            }
        }
    }
}

/// Whose series: a variant of an endpoint, or an endpoint as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    pub endpoint: String,
    pub variant: Option<String>,
}

impl SeriesKey {
    pub fn variant(endpoint: &str, variant: &str) -> SeriesKey {
        SeriesKey { endpoint: endpoint.to_string(), variant: Some(variant.to_string()) }
    }

    pub fn endpoint(endpoint: &str) -> SeriesKey {
        SeriesKey { endpoint: endpoint.to_string(), variant: None }
    }

    pub fn scope(&self) -> Scope {
        if self.variant.is_some() { Scope::Variant } else { Scope::Endpoint }
    }

    /// The dimensions SageMaker publishes this series' metrics under.
    pub fn dimensions(&self) -> Vec<(String, String)> {
        let mut dimensions = vec![("EndpointName".to_string(), self.endpoint.clone())];
        if let Some(variant) = &self.variant {
            dimensions.push(("VariantName".to_string(), variant.clone()));
        }
        dimensions
    }

    /// The series a set of dimensions names: exactly EndpointName, or exactly
    /// EndpointName and VariantName, in any order. CloudWatch treats every
    /// other combination as a metric of its own, which nobody published.
    pub fn of_dimensions(dimensions: &[(String, String)]) -> Option<SeriesKey> {
        let dimension = |wanted: &str| dimensions.iter().find(|(n, _)| n == wanted).map(|(_, v)| v.as_str());
        let endpoint = dimension("EndpointName")?;
        match (dimension("VariantName"), dimensions.len()) {
            (None, 1) => Some(SeriesKey::endpoint(endpoint)),
            (Some(variant), 2) => Some(SeriesKey::variant(endpoint, variant)),
            _ => None,
        }
    }
}

/// The per-second record of one series.
#[derive(Debug)]
pub struct Series {
    seconds: Mutex<BTreeMap<i64, Second>>,
    retention_secs: i64,
}

pub fn epoch_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

impl Series {
    fn new(retention: Duration) -> Series {
        Series { seconds: Mutex::new(BTreeMap::new()), retention_secs: retention.as_secs() as i64 }
    }

    /// Applies `change` to the current second, dropping seconds past retention.
    fn now(&self, change: impl FnOnce(&mut Second)) {
        let second = epoch_seconds(SystemTime::now()) as i64;
        let mut seconds = self.seconds.lock().unwrap_or_else(PoisonError::into_inner);
        if !seconds.contains_key(&second) {
            let horizon = second - self.retention_secs;
            while seconds.first_key_value().is_some_and(|(&s, _)| s < horizon) {
                seconds.pop_first();
            }
        }
        change(seconds.entry(second).or_default());
    }

    /// Records one real-time request that ended now.
    pub fn record(&self, served: Served, capacity: Capacity) {
        self.now(|second| second.record(served, capacity));
    }

    /// Records one request to a serverless variant that ended now, and the
    /// cold start it paid, if any.
    pub fn record_serverless(&self, served: Served, setup: Option<Duration>, capacity: Capacity) {
        self.now(|second| second.record_serverless(served, setup, capacity));
    }

    /// Marks the current second as one a serverless variant was in service.
    pub fn serverless_in_service(&self, capacity: Capacity) {
        self.now(|second| {
            second.serverless = true;
            second.in_service(capacity);
        });
    }

    /// Records one response stream that ended now.
    pub fn record_stream(&self, served: StreamServed, capacity: Capacity) {
        self.now(|second| second.record_stream(served, capacity));
    }

    /// Records a look at a variant's LLM engines.
    pub fn record_engine_look(&self, look: EngineLook) {
        self.now(|second| second.stream.look(look));
    }

    /// Records one asynchronous request that ended now.
    pub fn record_async(&self, served: AsyncServed, capacity: Capacity) {
        self.now(|second| second.record_async(served, capacity));
    }

    /// Marks the current second as one a real-time variant was in service.
    pub fn in_service(&self, capacity: Capacity) {
        self.now(|second| second.in_service(capacity));
    }

    /// Records a look at an asynchronous endpoint's backlog.
    pub fn record_backlog(&self, backlog: Backlog) {
        self.now(|second| second.backlog.push(backlog));
    }

    /// The metrics of `candidates` with at least one sample at or after
    /// `since`: what ListMetrics lists for this series.
    pub fn sampled_since(&self, since: i64, candidates: &[MetricName]) -> Vec<MetricName> {
        let seconds = self.seconds.lock().unwrap_or_else(PoisonError::into_inner);
        let mut scratch = Vec::new();
        let mut has_samples = |metric: MetricName| {
            seconds.range(since..).any(|(_, second)| {
                scratch.clear();
                second.samples(metric, &mut scratch);
                !scratch.is_empty()
            })
        };
        candidates.iter().copied().filter(|&metric| has_samples(metric)).collect()
    }

    /// Datapoints of `metric` for `stat` over whole periods of `period`
    /// seconds, aligned to multiples of the period, from the one holding
    /// `start` up to `end` (exclusive) — as CloudWatch rounds its window.
    /// Periods without samples are absent, as in CloudWatch.
    pub fn datapoints(&self, metric: MetricName, stat: Stat, period: i64, start: i64, end: i64) -> Vec<(i64, f64)> {
        let period = period.max(1);
        let first = start.div_euclid(period) * period;
        // Copy the samples out so requests being served never wait on the
        // sorting a percentile needs.
        let by_period: Vec<(i64, Vec<f64>)> = {
            let seconds = self.seconds.lock().unwrap_or_else(PoisonError::into_inner);
            let mut by_period = Vec::new();
            let mut period_start = first;
            while period_start < end {
                let mut samples = Vec::new();
                for (_, second) in seconds.range(period_start..period_start.saturating_add(period)) {
                    second.samples(metric, &mut samples);
                }
                if !samples.is_empty() {
                    by_period.push((period_start, samples));
                }
                period_start = period_start.saturating_add(period);
            }
            by_period
        };
        by_period.into_iter().map(|(at, mut samples)| (at, stat.apply(&mut samples))).collect()
    }
}

/// Every series the simulator has recorded.
#[derive(Debug)]
pub struct MetricStore {
    series: Mutex<HashMap<SeriesKey, Arc<Series>>>,
    retention: Duration,
}

impl MetricStore {
    pub fn new(retention: Duration) -> Self {
        MetricStore { series: Mutex::new(HashMap::new()), retention }
    }

    /// The series of `key`, created on first use. An endpoint re-created
    /// under the same name continues its series, as in CloudWatch.
    pub fn series_of(&self, key: SeriesKey) -> Arc<Series> {
        let mut all = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        all.entry(key).or_insert_with(|| Arc::new(Series::new(self.retention))).clone()
    }

    /// The series of a variant, created on first use.
    pub fn series(&self, endpoint: &str, variant: &str) -> Arc<Series> {
        self.series_of(SeriesKey::variant(endpoint, variant))
    }

    /// How long series keep their seconds.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// Every series recorded so far.
    pub fn all(&self) -> Vec<(SeriesKey, Arc<Series>)> {
        let all = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        all.iter().map(|(key, series)| (key.clone(), series.clone())).collect()
    }

    /// The series of `key`, if anything was recorded for it.
    pub fn find(&self, key: &SeriesKey) -> Option<Arc<Series>> {
        self.series.lock().unwrap_or_else(PoisonError::into_inner).get(key).cloned()
    }

    /// The series behind a metric named as CloudWatch names it (namespace,
    /// name, dimensions), if the simulator publishes it: one of its metrics
    /// with exactly the dimensions of that metric's scope.
    pub fn published(&self, namespace: &str, name: &str, dimensions: &[(String, String)]) -> Option<(MetricName, Arc<Series>)> {
        let metric = MetricName::parse(namespace, name)?;
        let key = SeriesKey::of_dimensions(dimensions).filter(|key| key.scope() == metric.scope())?;
        Some((metric, self.find(&key)?))
    }

    /// Datapoints of a metric named as CloudWatch names it; none for a metric
    /// the simulator does not publish, as in CloudWatch.
    pub fn lookup(
        &self,
        namespace: &str,
        name: &str,
        dimensions: &[(String, String)],
        stat: Stat,
        period: i64,
        (start, end): (i64, i64),
    ) -> Vec<(i64, f64)> {
        self.published(namespace, name, dimensions)
            .map(|(metric, series)| series.datapoints(metric, stat, period, start, end))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A variant series with, at each second, requests of these model
    /// latencies and this many errors (which may not have reached the model).
    fn series_with(seconds: &[(i64, &[u32], u64)]) -> Series {
        let mut map = BTreeMap::new();
        for &(at, latencies, errors) in seconds {
            map.insert(
                at,
                Second {
                    invocations: (latencies.len() as u64).max(errors),
                    errors_5xx: errors,
                    model_us: latencies.to_vec(),
                    instances: 2,
                    busy_us: 1_000_000,
                    worker_seconds_us: 4_000_000,
                    vcpus: 2,
                    ..Default::default()
                },
            );
        }
        Series { seconds: Mutex::new(map), retention_secs: 3600 }
    }

    #[test]
    fn statistics_follow_cloudwatch_definitions() {
        let s = series_with(&[(100, &[1000, 2000, 3000, 4000], 1), (101, &[5000], 0)]);
        let one = |metric, stat| s.datapoints(metric, stat, 60, 60, 180);
        assert_eq!(one(MetricName::Invocations, Stat::Sum), vec![(60, 5.0)]);
        assert_eq!(one(MetricName::Invocation5XXErrors, Stat::Sum), vec![(60, 1.0)]);
        assert_eq!(one(MetricName::ModelLatency, Stat::Average), vec![(60, 3000.0)]);
        assert_eq!(one(MetricName::ModelLatency, Stat::Percentile(50.0)), vec![(60, 3000.0)]);
        assert_eq!(one(MetricName::ModelLatency, Stat::Maximum), vec![(60, 5000.0)]);
        assert_eq!(one(MetricName::ModelLatency, Stat::SampleCount), vec![(60, 5.0)]);
        assert_eq!(one(MetricName::InvocationsPerInstance, Stat::Sum), vec![(60, 2.5)]);
        // 1 s busy of 4 worker-seconds on a 2-vCPU instance: 25 % of 200 %.
        assert_eq!(one(MetricName::CpuUtilization, Stat::Average), vec![(60, 50.0)]);
        // Second 100 held 10 ms of model time over 2 instances, second 101 5 ms.
        let concurrency = one(MetricName::ConcurrentRequestsPerModel, Stat::Maximum);
        assert_eq!(concurrency, vec![(60, 0.005)]);
    }

    #[test]
    fn periods_are_aligned_and_empty_ones_absent() {
        let s = series_with(&[(100, &[10], 0), (105, &[20], 0), (131, &[30], 0)]);
        let points = s.datapoints(MetricName::Invocations, Stat::Sum, 10, 95, 140);
        assert_eq!(points, vec![(100, 2.0), (130, 1.0)]);
        // As CloudWatch does, a window starting inside a period takes all of it.
        let points = s.datapoints(MetricName::Invocations, Stat::Sum, 10, 102, 140);
        assert_eq!(points, vec![(100, 2.0), (130, 1.0)]);
    }

    #[test]
    fn metrics_are_found_under_the_dimensions_of_their_scope() {
        let store = MetricStore::new(Duration::from_secs(3600));
        let capacity = Capacity { instances: 1, workers_per_instance: 1, vcpus: 2, memory_percent: 0.0 };
        let served =
            Served { outcome: Outcome::Success, model: Some(Duration::from_millis(5)), overhead: None, busy: Duration::ZERO };
        store.series("e", "AllTraffic").record(served, capacity);
        store.series_of(SeriesKey::endpoint("e")).record_backlog(Backlog { size: 4, instances: 2, oldest: Duration::ZERO });
        let dims = |pairs: &[(&str, &str)]| pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect::<Vec<_>>();
        let now = epoch_seconds(SystemTime::now()) as i64;
        let sum = |name: &str, dimensions: &[(String, String)]| {
            store
                .lookup("AWS/SageMaker", name, dimensions, Stat::Maximum, 60, (now - 60, now + 60))
                .iter()
                .map(|p| p.1)
                .sum::<f64>()
        };
        let variant = dims(&[("VariantName", "AllTraffic"), ("EndpointName", "e")]);
        let endpoint = dims(&[("EndpointName", "e")]);
        assert_eq!(sum("Invocations", &variant), 1.0);
        assert_eq!(sum("ApproximateBacklogSizePerInstance", &endpoint), 2.0);
        assert_eq!(sum("ApproximateBacklogSizePerInstance", &variant), 0.0, "published under EndpointName alone");
        assert_eq!(sum("Invocations", &endpoint), 0.0, "published under EndpointName and VariantName");
        assert_eq!(SeriesKey::of_dimensions(&dims(&[("EndpointName", "e"), ("Other", "x")])), None);
        assert_eq!(SeriesKey::variant("e", "v").dimensions(), dims(&[("EndpointName", "e"), ("VariantName", "v")]));
    }

    #[test]
    fn only_metrics_with_samples_since_are_listed() {
        // Second 100 saw one request that failed before reaching the model.
        let s = series_with(&[(100, &[], 1), (200, &[1000], 0)]);
        let all = MetricName::ALL;
        assert!(s.sampled_since(150, &all).contains(&MetricName::ModelLatency));
        let early = s.sampled_since(0, &[MetricName::Invocations, MetricName::OverheadLatency]);
        assert_eq!(early, vec![MetricName::Invocations], "no request reached the overhead path");
        assert!(s.sampled_since(201, &all).is_empty());
    }

    #[test]
    fn stat_names_parse() {
        assert_eq!(Stat::parse("p99"), Some(Stat::Percentile(99.0)));
        assert_eq!(Stat::parse("p99.9"), Some(Stat::Percentile(99.9)));
        assert_eq!(Stat::parse("Average"), Some(Stat::Average));
        assert_eq!(Stat::parse("p101"), None);
        assert_eq!(Stat::parse("tm99"), None);
    }
}
