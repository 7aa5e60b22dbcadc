//! What the simulator really served, per endpoint variant and per second: the
//! ground truth behind its CloudWatch answers.
//!
//! Latencies are kept per request (microseconds) so percentiles are exact;
//! counters and utilisation are kept per second. Series outlive their endpoint,
//! as CloudWatch metrics do, until the profile's retention drops them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The CloudWatch metrics the simulator publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricName {
    Invocations,
    InvocationsPerInstance,
    ModelLatency,
    OverheadLatency,
    Invocation4XXErrors,
    Invocation5XXErrors,
    CpuUtilization,
    MemoryUtilization,
    ConcurrentRequestsPerModel,
}

impl MetricName {
    /// Looks a metric up by namespace and name.
    pub fn parse(namespace: &str, name: &str) -> Option<MetricName> {
        use MetricName::*;
        match (namespace, name) {
            ("AWS/SageMaker", "Invocations") => Some(Invocations),
            ("AWS/SageMaker", "InvocationsPerInstance") => Some(InvocationsPerInstance),
            ("AWS/SageMaker", "ModelLatency") => Some(ModelLatency),
            ("AWS/SageMaker", "OverheadLatency") => Some(OverheadLatency),
            ("AWS/SageMaker", "Invocation4XXErrors") => Some(Invocation4XXErrors),
            ("AWS/SageMaker", "Invocation5XXErrors") => Some(Invocation5XXErrors),
            ("/aws/sagemaker/Endpoints", "CPUUtilization") => Some(CpuUtilization),
            ("/aws/sagemaker/Endpoints", "MemoryUtilization") => Some(MemoryUtilization),
            ("AWS/SageMaker", "ConcurrentRequestsPerModel") => Some(ConcurrentRequestsPerModel),
            _ => None,
        }
    }

    /// Every metric the simulator publishes, as ListMetrics lists them.
    pub const ALL: [MetricName; 9] = {
        use MetricName::*;
        [
            Invocations,
            InvocationsPerInstance,
            ModelLatency,
            OverheadLatency,
            Invocation4XXErrors,
            Invocation5XXErrors,
            CpuUtilization,
            MemoryUtilization,
            ConcurrentRequestsPerModel,
        ]
    };

    /// The namespace and name CloudWatch knows the metric by (the inverse of [`MetricName::parse`]).
    pub fn identity(self) -> (&'static str, &'static str) {
        use MetricName::*;
        match self {
            Invocations => ("AWS/SageMaker", "Invocations"),
            InvocationsPerInstance => ("AWS/SageMaker", "InvocationsPerInstance"),
            ModelLatency => ("AWS/SageMaker", "ModelLatency"),
            OverheadLatency => ("AWS/SageMaker", "OverheadLatency"),
            Invocation4XXErrors => ("AWS/SageMaker", "Invocation4XXErrors"),
            Invocation5XXErrors => ("AWS/SageMaker", "Invocation5XXErrors"),
            CpuUtilization => ("/aws/sagemaker/Endpoints", "CPUUtilization"),
            MemoryUtilization => ("/aws/sagemaker/Endpoints", "MemoryUtilization"),
            ConcurrentRequestsPerModel => ("AWS/SageMaker", "ConcurrentRequestsPerModel"),
        }
    }

    /// The unit SageMaker publishes the metric with, which CloudWatch reports
    /// back on every datapoint (and which a Unit filter must match).
    pub fn unit(self) -> &'static str {
        use MetricName::*;
        match self {
            ModelLatency | OverheadLatency => "Microseconds",
            CpuUtilization | MemoryUtilization => "Percent",
            Invocations | InvocationsPerInstance | Invocation4XXErrors | Invocation5XXErrors | ConcurrentRequestsPerModel => {
                "None"
            }
        }
    }
}

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

/// How one request ended, as CloudWatch classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    ClientError,
    ServerError,
}

/// One request, as the simulator records it.
#[derive(Debug, Clone, Copy)]
pub struct Served {
    pub outcome: Outcome,
    /// Time the model held the request (queue wait + service), if it reached it.
    pub model: Option<Duration>,
    /// Time spent outside the model, if it reached it.
    pub overhead: Option<Duration>,
    /// Worker time the request occupied.
    pub busy: Duration,
}

/// The fixed facts of a variant needed to turn busy time into utilisation.
#[derive(Debug, Clone, Copy)]
pub struct Capacity {
    pub instances: u32,
    pub workers_per_instance: u32,
    pub vcpus: u32,
    pub memory_percent: f64,
}

#[derive(Debug, Default)]
struct Second {
    invocations: u64,
    errors_4xx: u64,
    errors_5xx: u64,
    model_us: Vec<u32>,
    overhead_us: Vec<u32>,
    busy_us: u64,
    worker_seconds_us: u64,
    instances: u32,
    vcpus: u32,
    memory_percent: f64,
}

impl Second {
    fn busy_fraction(&self) -> f64 {
        if self.worker_seconds_us == 0 { 0.0 } else { (self.busy_us as f64 / self.worker_seconds_us as f64).min(1.0) }
    }

    /// This second's samples of `metric` (per request for latencies, one per
    /// second for counters and utilisation), appended to `out`.
    fn samples(&self, metric: MetricName, out: &mut Vec<f64>) {
        use MetricName::*;
        match metric {
            ModelLatency => out.extend(self.model_us.iter().map(|&v| v as f64)),
            OverheadLatency => out.extend(self.overhead_us.iter().map(|&v| v as f64)),
            Invocations => out.push(self.invocations as f64),
            InvocationsPerInstance => out.push(self.invocations as f64 / self.instances.max(1) as f64),
            Invocation4XXErrors => out.push(self.errors_4xx as f64),
            Invocation5XXErrors => out.push(self.errors_5xx as f64),
            CpuUtilization => out.push(self.busy_fraction() * self.vcpus as f64 * 100.0),
            MemoryUtilization => out.push((self.memory_percent + 10.0 * self.busy_fraction()).min(100.0)),
            // Little's law: the time requests spent in the model during this
            // second is the average number in it (queued or served), per instance.
            ConcurrentRequestsPerModel => {
                out.push(self.model_us.iter().map(|&us| us as f64).sum::<f64>() / 1e6 / self.instances.max(1) as f64)
            }
        }
    }
}

/// The per-second record of one endpoint variant.
#[derive(Debug)]
pub struct VariantSeries {
    seconds: Mutex<BTreeMap<i64, Second>>,
    retention_secs: i64,
}

pub fn epoch_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn micros(d: Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}

impl VariantSeries {
    /// Records one request that ended now.
    pub fn record(&self, served: Served, capacity: Capacity) {
        let mut seconds = self.seconds.lock().unwrap_or_else(PoisonError::into_inner);
        let s = self.this_second(&mut seconds, &capacity);
        s.invocations += 1;
        match served.outcome {
            Outcome::Success => {}
            Outcome::ClientError => s.errors_4xx += 1,
            Outcome::ServerError => s.errors_5xx += 1,
        }
        if let Some(model) = served.model {
            s.model_us.push(micros(model));
        }
        if let Some(overhead) = served.overhead {
            s.overhead_us.push(micros(overhead));
        }
        s.busy_us += served.busy.as_micros() as u64;
    }

    /// Marks the current second as one the variant was in service, traffic
    /// or not: SageMaker publishes its counters (zero when idle) every
    /// period an endpoint is in service, which is what lets target tracking
    /// scale in after the traffic stops.
    pub fn heartbeat(&self, capacity: Capacity) {
        let mut seconds = self.seconds.lock().unwrap_or_else(PoisonError::into_inner);
        self.this_second(&mut seconds, &capacity);
    }

    /// The record of the current second, created (and the seconds past
    /// retention dropped) if it is new, with the capacity serving it.
    fn this_second<'s>(&self, seconds: &'s mut BTreeMap<i64, Second>, capacity: &Capacity) -> &'s mut Second {
        let second = epoch_seconds(SystemTime::now()) as i64;
        if !seconds.contains_key(&second) {
            let horizon = second - self.retention_secs;
            while seconds.first_key_value().is_some_and(|(&s, _)| s < horizon) {
                seconds.pop_first();
            }
        }
        let s = seconds.entry(second).or_default();
        s.instances = capacity.instances;
        s.worker_seconds_us = capacity.instances as u64 * capacity.workers_per_instance as u64 * 1_000_000;
        s.vcpus = capacity.vcpus;
        s.memory_percent = capacity.memory_percent;
        s
    }

    /// The metrics of `candidates` with at least one sample at or after
    /// `since`: what ListMetrics lists for this variant.
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

/// Every variant series the simulator has served, by endpoint and variant name.
#[derive(Debug)]
pub struct MetricStore {
    series: Mutex<HashMap<(String, String), Arc<VariantSeries>>>,
    retention: Duration,
}

impl MetricStore {
    pub fn new(retention: Duration) -> Self {
        MetricStore { series: Mutex::new(HashMap::new()), retention }
    }

    /// The series of a variant, created on first use. An endpoint re-created
    /// under the same name continues its series, as in CloudWatch.
    pub fn series(&self, endpoint: &str, variant: &str) -> Arc<VariantSeries> {
        let mut all = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        all.entry((endpoint.to_string(), variant.to_string()))
            .or_insert_with(|| {
                Arc::new(VariantSeries { seconds: Mutex::new(BTreeMap::new()), retention_secs: self.retention.as_secs() as i64 })
            })
            .clone()
    }

    /// How long series keep their seconds.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// Every variant that ever served a request, as (endpoint, variant, series).
    pub fn variants(&self) -> Vec<(String, String, Arc<VariantSeries>)> {
        let all = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        all.iter().map(|((endpoint, variant), series)| (endpoint.clone(), variant.clone(), series.clone())).collect()
    }

    /// The series of a variant, if it ever served a request.
    pub fn find(&self, endpoint: &str, variant: &str) -> Option<Arc<VariantSeries>> {
        let all = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        all.get(&(endpoint.to_string(), variant.to_string())).cloned()
    }

    /// Datapoints of a metric named as CloudWatch names it (namespace, name,
    /// dimensions). A metric the simulator does not publish has none, as in
    /// CloudWatch; its variant metrics carry exactly EndpointName and VariantName.
    pub fn lookup(
        &self,
        namespace: &str,
        name: &str,
        dimensions: &[(String, String)],
        stat: Stat,
        period: i64,
        (start, end): (i64, i64),
    ) -> Vec<(i64, f64)> {
        let dim = |wanted: &str| dimensions.iter().find(|(n, _)| n == wanted).map(|(_, v)| v.as_str());
        match (MetricName::parse(namespace, name), dim("EndpointName"), dim("VariantName")) {
            (Some(metric), Some(endpoint), Some(variant)) if dimensions.len() == 2 => {
                self.find(endpoint, variant).map(|s| s.datapoints(metric, stat, period, start, end)).unwrap_or_default()
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series_with(seconds: &[(i64, &[u32], u64)]) -> VariantSeries {
        let mut map = BTreeMap::new();
        for &(at, latencies, errors) in seconds {
            map.insert(
                at,
                Second {
                    invocations: latencies.len() as u64,
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
        VariantSeries { seconds: Mutex::new(map), retention_secs: 3600 }
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
    fn every_metric_is_found_by_the_name_it_is_listed_under() {
        for metric in MetricName::ALL {
            let (namespace, name) = metric.identity();
            assert_eq!(MetricName::parse(namespace, name), Some(metric));
        }
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
