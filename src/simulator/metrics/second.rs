//! One second of one series: what ended in it (requests, real-time or
//! asynchronous, and response streams — see `stream`) and the backlog
//! samples taken in it, and the CloudWatch samples of each metric that follow
//! from them. Pure arithmetic.

use std::time::Duration;

use super::names::MetricName;
use super::stream::{StreamSecond, StreamServed};

/// How one request ended, as CloudWatch classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    ClientError,
    ServerError,
}

/// One real-time request, as the simulator records it.
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

/// Why an asynchronous request failed, as its metrics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsyncFailure {
    /// The model answered with an error or timed out.
    Model,
    /// The input could not be read from S3.
    Download,
    /// The output could not be written to S3.
    Upload,
    /// Its RequestTTLSeconds passed while it waited in the backlog.
    Expired,
}

/// One asynchronous request that left the backlog for good.
#[derive(Debug, Clone, Copy)]
pub struct AsyncServed {
    /// The model's answer, if the request reached the model.
    pub outcome: Option<Outcome>,
    pub failure: Option<AsyncFailure>,
    /// Time the model held it (service), if it reached the model.
    pub model: Option<Duration>,
    /// Worker time it occupied.
    pub busy: Duration,
    /// From InvokeEndpointAsync to the start of processing; None if it never started.
    pub in_backlog: Option<Duration>,
    /// From InvokeEndpointAsync to its result (or failure) in S3.
    pub total: Duration,
}

/// The fixed facts of a variant needed to turn busy time into utilisation.
#[derive(Debug, Clone, Copy)]
pub struct Capacity {
    pub instances: u32,
    pub workers_per_instance: u32,
    pub vcpus: u32,
    pub memory_percent: f64,
}

/// A look at an asynchronous endpoint's backlog: the requests queued or being
/// processed, the instances in service, and how long the oldest has waited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backlog {
    pub size: u64,
    pub instances: u32,
    pub oldest: Duration,
}

impl Backlog {
    /// ApproximateBacklogSizePerInstance. With no instance, the whole backlog:
    /// a per-instance figure of nothing would be undefined, and target
    /// tracking multiplies it by the capacity (0) anyway, so it cannot scale
    /// an endpoint out of zero — HasBacklogWithoutCapacity is what can.
    pub fn per_instance(&self) -> f64 {
        self.size as f64 / f64::from(self.instances.max(1))
    }

    /// HasBacklogWithoutCapacity: 1 while requests wait and no instance serves.
    pub fn without_capacity(&self) -> f64 {
        if self.size > 0 && self.instances == 0 { 1.0 } else { 0.0 }
    }
}

#[derive(Debug, Default)]
pub struct Second {
    // Every request that ended this second.
    pub(super) errors_4xx: u64,
    pub(super) errors_5xx: u64,
    pub(super) model_us: Vec<u32>,
    pub(super) busy_us: u64,
    pub(super) worker_seconds_us: u64,
    pub(super) instances: u32,
    pub(super) vcpus: u32,
    pub(super) memory_percent: f64,
    // Real-time requests.
    pub(super) invocations: u64,
    /// A real-time variant was in service this second, traffic or not.
    pub(super) in_service: bool,
    pub(super) overhead_us: Vec<u32>,
    // Asynchronous requests.
    pub(super) async_ended: u64,
    pub(super) processed: u64,
    pub(super) failures: u64,
    pub(super) expired: u64,
    pub(super) download_failures: u64,
    pub(super) upload_failures: u64,
    pub(super) in_backlog_ms: Vec<f64>,
    pub(super) total_ms: Vec<f64>,
    // The backlog, as looked at during this second.
    pub(super) backlog: Vec<Backlog>,
    // Response streams and the LLM engines behind them.
    pub(super) stream: StreamSecond,
    // Serverless variants: a serverless variant was in service this second,
    // and the cold starts that ended in it.
    pub(super) serverless: bool,
    pub(super) setup_us: Vec<u32>,
}

pub(super) fn micros(d: Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Second {
    /// A real-time variant in service this second: SageMaker publishes its
    /// counters every period it is in service, zero when idle, which is what
    /// lets target tracking scale it in once the traffic stops.
    pub fn in_service(&mut self, capacity: Capacity) {
        self.in_service = true;
        self.serving(capacity);
    }

    fn serving(&mut self, capacity: Capacity) {
        self.instances = capacity.instances;
        self.worker_seconds_us = capacity.instances as u64 * capacity.workers_per_instance as u64 * 1_000_000;
        self.vcpus = capacity.vcpus;
        self.memory_percent = capacity.memory_percent;
    }

    fn ended(&mut self, outcome: Option<Outcome>, model: Option<Duration>, busy: Duration, capacity: Capacity) {
        match outcome {
            Some(Outcome::ClientError) => self.errors_4xx += 1,
            Some(Outcome::ServerError) => self.errors_5xx += 1,
            Some(Outcome::Success) | None => {}
        }
        if let Some(model) = model {
            self.model_us.push(micros(model));
        }
        self.busy_us += busy.as_micros() as u64;
        self.serving(capacity);
    }

    pub fn record(&mut self, served: Served, capacity: Capacity) {
        self.invocations += 1;
        if let Some(overhead) = served.overhead {
            self.overhead_us.push(micros(overhead));
        }
        self.ended(Some(served.outcome), served.model, served.busy, capacity);
    }

    /// A request to a serverless variant ended, after a cold start of
    /// `setup` if it met a cold worker: worker time includes the set-up.
    pub fn record_serverless(&mut self, served: Served, setup: Option<Duration>, capacity: Capacity) {
        self.serverless = true;
        if let Some(setup) = setup {
            self.setup_us.push(micros(setup));
        }
        self.record(served, capacity);
    }

    /// A response stream ended: it is an invocation like any other, and its
    /// model time and token times go to the streaming record (its model
    /// time is not worker time: an LLM keeps the GPU, not the CPU, busy).
    pub fn record_stream(&mut self, served: StreamServed, capacity: Capacity) {
        self.invocations += 1;
        self.overhead_us.push(micros(served.overhead));
        self.ended(Some(served.outcome), None, Duration::ZERO, capacity);
        self.stream.record(&served);
    }

    pub fn record_async(&mut self, served: AsyncServed, capacity: Capacity) {
        self.async_ended += 1;
        self.processed += u64::from(served.outcome.is_some());
        self.failures += u64::from(served.failure.is_some());
        match served.failure {
            Some(AsyncFailure::Expired) => self.expired += 1,
            Some(AsyncFailure::Download) => self.download_failures += 1,
            Some(AsyncFailure::Upload) => self.upload_failures += 1,
            Some(AsyncFailure::Model) | None => {}
        }
        if let Some(waited) = served.in_backlog {
            self.in_backlog_ms.push(millis(waited));
        }
        self.total_ms.push(millis(served.total));
        self.ended(served.outcome, served.model, served.busy, capacity);
    }

    fn busy_fraction(&self) -> f64 {
        if self.worker_seconds_us == 0 { 0.0 } else { (self.busy_us as f64 / self.worker_seconds_us as f64).min(1.0) }
    }

    /// This second's samples of `metric`, appended to `out`: one per request
    /// for latencies and times, one per look for the backlog, one per second
    /// for counters and utilisation — and none for a kind of traffic the
    /// second did not see, so a metric exists only where SageMaker publishes it.
    pub fn samples(&self, metric: MetricName, out: &mut Vec<f64>) {
        use MetricName::*;
        let real_time = self.invocations > 0 || self.in_service;
        let asynchronous = self.async_ended > 0;
        let any_request = real_time || asynchronous;
        let mut count = |seen: bool, n: f64| {
            if seen {
                out.push(n);
            }
        };
        match metric {
            ModelLatency => {
                out.extend(self.model_us.iter().map(|&v| v as f64));
                out.extend(self.stream.model_latencies());
            }
            OverheadLatency => out.extend(self.overhead_us.iter().map(|&v| v as f64)),
            Invocations => count(real_time, self.invocations as f64),
            InvocationsPerInstance => count(real_time, self.invocations as f64 / self.instances.max(1) as f64),
            Invocation4XXErrors => count(any_request, self.errors_4xx as f64),
            Invocation5XXErrors => count(any_request, self.errors_5xx as f64),
            CpuUtilization => count(any_request, self.busy_fraction() * self.vcpus as f64 * 100.0),
            MemoryUtilization => count(any_request, (self.memory_percent + 10.0 * self.busy_fraction()).min(100.0)),
            // Little's law: the time requests spent in the model during this
            // second is the average number in it (queued or served), per
            // instance; streams, which outlast their second, are counted by
            // looking at the engines instead.
            ConcurrentRequestsPerModel => count(
                real_time,
                self.model_us.iter().map(|&us| us as f64).sum::<f64>() / 1e6 / self.instances.max(1) as f64
                    + self.stream.mean_in_flight_per_instance(),
            ),
            InvocationsProcessed => count(asynchronous, self.processed as f64),
            InvocationFailures => count(asynchronous, self.failures as f64),
            ExpiredRequests => count(asynchronous, self.expired as f64),
            RequestDownloadFailures => count(asynchronous, self.download_failures as f64),
            ResponseUploadFailures => count(asynchronous, self.upload_failures as f64),
            TimeInBacklog => out.extend(&self.in_backlog_ms),
            TotalProcessingTime => out.extend(&self.total_ms),
            ApproximateBacklogSize => out.extend(self.backlog.iter().map(|b| b.size as f64)),
            ApproximateBacklogSizePerInstance => out.extend(self.backlog.iter().map(Backlog::per_instance)),
            ApproximateAgeOfOldestRequest => out.extend(self.backlog.iter().map(|b| b.oldest.as_secs_f64())),
            HasBacklogWithoutCapacity => out.extend(self.backlog.iter().map(Backlog::without_capacity)),
            ModelSetupTime => out.extend(self.setup_us.iter().map(|&v| v as f64)),
            // Executions in flight over the second (Little's law, as for
            // ConcurrentRequestsPerModel) divided by MaxConcurrency: the
            // capacity of a serverless variant is its MaxConcurrency workers.
            ServerlessConcurrentExecutionsUtilization => count(self.serverless, self.busy_fraction()),
            GpuUtilization | GpuMemoryUtilization | TimeToFirstToken | InterTokenLatency | TimePerOutputToken | InputTokens
            | OutputTokens => self.stream.samples(metric, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(second: &Second, metric: MetricName) -> Vec<f64> {
        let mut out = Vec::new();
        second.samples(metric, &mut out);
        out
    }

    const CAPACITY: Capacity = Capacity { instances: 2, workers_per_instance: 1, vcpus: 2, memory_percent: 20.0 };

    #[test]
    fn serverless_seconds_publish_cold_starts_and_concurrency_utilisation() {
        let capacity = Capacity { instances: 1, workers_per_instance: 4, vcpus: 0, memory_percent: 50.0 };
        let served = |outcome, busy_ms| Served {
            outcome,
            model: Some(Duration::from_millis(100)),
            overhead: Some(Duration::from_millis(1)),
            busy: Duration::from_millis(busy_ms),
        };
        let mut second = Second::default();
        second.record_serverless(served(Outcome::Success, 2100), Some(Duration::from_secs(2)), capacity);
        second.record_serverless(served(Outcome::Success, 100), None, capacity);
        let throttled = Served { outcome: Outcome::ClientError, model: None, overhead: None, busy: Duration::ZERO };
        second.record_serverless(throttled, None, capacity);
        assert_eq!(samples(&second, MetricName::ModelSetupTime), vec![2_000_000.0]);
        assert_eq!(samples(&second, MetricName::Invocations), vec![3.0]);
        assert_eq!(samples(&second, MetricName::Invocation4XXErrors), vec![1.0], "a throttle is a 4XX");
        // 2.2 s of executions in a second of 4 possible: 55 %.
        let utilisation = samples(&second, MetricName::ServerlessConcurrentExecutionsUtilization);
        assert!(utilisation.len() == 1 && (utilisation[0] - 0.55).abs() < 1e-9, "{utilisation:?}");
        let mut instances = Second::default();
        instances.record(served(Outcome::Success, 100), CAPACITY);
        assert!(samples(&instances, MetricName::ServerlessConcurrentExecutionsUtilization).is_empty());
    }

    #[test]
    fn backlog_gauges_follow_the_documented_definitions() {
        let waiting = Backlog { size: 6, instances: 2, oldest: Duration::from_millis(2500) };
        assert_eq!((waiting.per_instance(), waiting.without_capacity()), (3.0, 0.0));
        let stranded = Backlog { size: 3, instances: 0, oldest: Duration::from_secs(9) };
        assert_eq!((stranded.per_instance(), stranded.without_capacity()), (3.0, 1.0));
        let idle = Backlog { size: 0, instances: 0, oldest: Duration::ZERO };
        assert_eq!((idle.per_instance(), idle.without_capacity()), (0.0, 0.0));

        let second = Second { backlog: vec![waiting, stranded], ..Default::default() };
        assert_eq!(samples(&second, MetricName::ApproximateBacklogSize), vec![6.0, 3.0]);
        assert_eq!(samples(&second, MetricName::ApproximateAgeOfOldestRequest), vec![2.5, 9.0]);
        assert_eq!(samples(&second, MetricName::HasBacklogWithoutCapacity), vec![0.0, 1.0]);
        assert!(samples(&second, MetricName::Invocations).is_empty(), "a look at the backlog is no request");
        assert!(samples(&second, MetricName::InvocationsProcessed).is_empty());
    }

    #[test]
    fn asynchronous_requests_publish_their_own_metrics_and_not_invocations() {
        let mut second = Second::default();
        let done = AsyncServed {
            outcome: Some(Outcome::Success),
            failure: None,
            model: Some(Duration::from_millis(20)),
            busy: Duration::from_millis(20),
            in_backlog: Some(Duration::from_millis(500)),
            total: Duration::from_millis(530),
        };
        second.record_async(done, CAPACITY);
        second.record_async(
            AsyncServed { outcome: Some(Outcome::ServerError), failure: Some(AsyncFailure::Model), ..done },
            CAPACITY,
        );
        let missing_input =
            AsyncServed { outcome: None, failure: Some(AsyncFailure::Download), model: None, busy: Duration::ZERO, ..done };
        second.record_async(missing_input, CAPACITY);
        let expired = AsyncServed { in_backlog: None, failure: Some(AsyncFailure::Expired), ..missing_input };
        second.record_async(expired, CAPACITY);

        assert_eq!(samples(&second, MetricName::InvocationsProcessed), vec![2.0], "two reached the model");
        assert_eq!(samples(&second, MetricName::InvocationFailures), vec![3.0]);
        assert_eq!(samples(&second, MetricName::RequestDownloadFailures), vec![1.0]);
        assert_eq!(samples(&second, MetricName::ExpiredRequests), vec![1.0]);
        assert_eq!(samples(&second, MetricName::Invocation5XXErrors), vec![1.0]);
        assert_eq!(samples(&second, MetricName::ModelLatency), vec![20_000.0, 20_000.0]);
        assert_eq!(samples(&second, MetricName::TimeInBacklog), vec![500.0, 500.0, 500.0], "the expired one never left it");
        assert_eq!(samples(&second, MetricName::TotalProcessingTime).len(), 4);
        for absent in [MetricName::Invocations, MetricName::InvocationsPerInstance, MetricName::OverheadLatency] {
            assert!(samples(&second, absent).is_empty(), "{absent:?} is not published for asynchronous endpoints");
        }
        // 40 ms of worker time in 2 worker-seconds on 2 vCPUs: 2 % of 200 %.
        assert_eq!(samples(&second, MetricName::CpuUtilization), vec![4.0]);
    }
}
