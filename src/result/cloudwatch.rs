//! The server's side of a step: SageMaker's CloudWatch metrics for the
//! step's window. They arrive late on AWS (a minute or more), so the fetch
//! waits up to a bound and records "not available" rather than failing.

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricDataResult, MetricStat};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// Average and tail of a server-side latency metric, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ServerLatency {
    pub avg: f64,
    /// Only when the window is one CloudWatch period (medians do not combine).
    pub p50: Option<f64>,
    /// With several periods in the window: the largest per-period p99.
    pub p99: f64,
}

/// The CloudWatch figures of one step.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServerMetrics {
    pub available: bool,
    /// Why figures are missing or partial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub period_seconds: i32,
    pub invocations: Option<f64>,
    pub invocations_4xx: Option<f64>,
    pub invocations_5xx: Option<f64>,
    pub model_latency_ms: Option<ServerLatency>,
    pub overhead_latency_ms: Option<ServerLatency>,
    /// Sum over cores, so up to vCPUs × 100.
    pub cpu_utilization_avg: Option<f64>,
    pub memory_utilization_avg: Option<f64>,
    /// Serverless endpoints: the model set-up time of cold workers (µs in
    /// CloudWatch, ms here), and how many requests met one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_setup_time_ms: Option<ServerLatency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_starts: Option<f64>,
    /// Asynchronous endpoints: their queue, as SageMaker publishes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asynchronous: Option<AsyncServerMetrics>,
}

/// What SageMaker publishes for an asynchronous endpoint instead of
/// Invocations and OverheadLatency: requests processed and failed, the time
/// each waited in the backlog and took in all, and the backlog itself.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct AsyncServerMetrics {
    pub processed: Option<f64>,
    pub failures: Option<f64>,
    pub time_in_backlog_ms: Option<ServerLatency>,
    pub total_processing_ms: Option<ServerLatency>,
    /// Largest ApproximateBacklogSize of any period.
    pub backlog_max: Option<f64>,
    /// Largest ApproximateAgeOfOldestRequest of any period, in seconds.
    pub oldest_request_age_max_s: Option<f64>,
}

impl ServerMetrics {
    pub fn unavailable(note: impl Into<String>) -> ServerMetrics {
        ServerMetrics { available: false, note: Some(note.into()), ..Default::default() }
    }
}

/// Which metrics, where and when.
#[derive(Debug, Clone)]
pub struct MetricsWindow {
    pub endpoint: String,
    pub variant: String,
    pub from: SystemTime,
    pub to: SystemTime,
    /// CloudWatch period: 60 s on AWS (SageMaker publishes per minute).
    pub period: Duration,
    /// Requests the step sent; the figures are complete once CloudWatch counts them.
    pub expected_invocations: u64,
    /// An asynchronous endpoint, which publishes other metrics.
    pub asynchronous: bool,
}

impl MetricsWindow {
    /// The measured window of `run` (after its warm-up) on `endpoint`.
    pub fn of_run(endpoint: &str, variant: &str, run: &crate::load::LoadRun, period: Duration) -> MetricsWindow {
        MetricsWindow {
            endpoint: endpoint.to_string(),
            variant: variant.to_string(),
            from: run.measured_from,
            to: run.measured_to,
            period,
            expected_invocations: run.totals.counts.sent,
            asynchronous: run.asynchronous.is_some(),
        }
    }
}

/// Which dimensions a metric is published under.
#[derive(Clone, Copy, PartialEq)]
enum Dims {
    Variant,
    /// Endpoint-level metrics (the async backlog) carry no variant.
    Endpoint,
}

/// (id, namespace, metric, stat, dimensions)
type Query = (&'static str, &'static str, &'static str, &'static str, Dims);

const INSTANCE_QUERIES: [Query; 2] = [
    ("cpu", "/aws/sagemaker/Endpoints", "CPUUtilization", "Average", Dims::Variant),
    ("mem", "/aws/sagemaker/Endpoints", "MemoryUtilization", "Average", Dims::Variant),
];

const REAL_TIME_QUERIES: [Query; 15] = [
    ("inv", "AWS/SageMaker", "Invocations", "Sum", Dims::Variant),
    ("e4xx", "AWS/SageMaker", "Invocation4XXErrors", "Sum", Dims::Variant),
    ("e5xx", "AWS/SageMaker", "Invocation5XXErrors", "Sum", Dims::Variant),
    ("ml_avg", "AWS/SageMaker", "ModelLatency", "Average", Dims::Variant),
    ("ml_n", "AWS/SageMaker", "ModelLatency", "SampleCount", Dims::Variant),
    ("ml_p50", "AWS/SageMaker", "ModelLatency", "p50", Dims::Variant),
    ("ml_p99", "AWS/SageMaker", "ModelLatency", "p99", Dims::Variant),
    ("ol_avg", "AWS/SageMaker", "OverheadLatency", "Average", Dims::Variant),
    ("ol_n", "AWS/SageMaker", "OverheadLatency", "SampleCount", Dims::Variant),
    ("ol_p50", "AWS/SageMaker", "OverheadLatency", "p50", Dims::Variant),
    ("ol_p99", "AWS/SageMaker", "OverheadLatency", "p99", Dims::Variant),
    // Serverless variants only: each sample is a request that met a cold worker.
    ("ms_avg", "AWS/SageMaker", "ModelSetupTime", "Average", Dims::Variant),
    ("ms_n", "AWS/SageMaker", "ModelSetupTime", "SampleCount", Dims::Variant),
    ("ms_p50", "AWS/SageMaker", "ModelSetupTime", "p50", Dims::Variant),
    ("ms_p99", "AWS/SageMaker", "ModelSetupTime", "p99", Dims::Variant),
];

const ASYNC_QUERIES: [Query; 12] = [
    ("inv", "AWS/SageMaker", "InvocationsProcessed", "Sum", Dims::Variant),
    ("fail", "AWS/SageMaker", "InvocationFailures", "Sum", Dims::Variant),
    ("tib_avg", "AWS/SageMaker", "TimeInBacklog", "Average", Dims::Variant),
    ("tib_n", "AWS/SageMaker", "TimeInBacklog", "SampleCount", Dims::Variant),
    ("tib_p50", "AWS/SageMaker", "TimeInBacklog", "p50", Dims::Variant),
    ("tib_p99", "AWS/SageMaker", "TimeInBacklog", "p99", Dims::Variant),
    ("tpt_avg", "AWS/SageMaker", "TotalProcessingTime", "Average", Dims::Variant),
    ("tpt_n", "AWS/SageMaker", "TotalProcessingTime", "SampleCount", Dims::Variant),
    ("tpt_p50", "AWS/SageMaker", "TotalProcessingTime", "p50", Dims::Variant),
    ("tpt_p99", "AWS/SageMaker", "TotalProcessingTime", "p99", Dims::Variant),
    ("backlog", "AWS/SageMaker", "ApproximateBacklogSize", "Maximum", Dims::Endpoint),
    ("oldest", "AWS/SageMaker", "ApproximateAgeOfOldestRequest", "Maximum", Dims::Endpoint),
];

/// The queries of `window`'s kind of endpoint.
fn queries(window: &MetricsWindow) -> Vec<Query> {
    let kind: &[Query] = if window.asynchronous { &ASYNC_QUERIES } else { &REAL_TIME_QUERIES };
    kind.iter().chain(&INSTANCE_QUERIES).copied().collect()
}

fn query(window: &MetricsWindow, (id, namespace, name, stat, dims): Query) -> MetricDataQuery {
    let mut metric = Metric::builder()
        .namespace(namespace)
        .metric_name(name)
        .dimensions(Dimension::builder().name("EndpointName").value(&window.endpoint).build());
    if dims == Dims::Variant {
        metric = metric.dimensions(Dimension::builder().name("VariantName").value(&window.variant).build());
    }
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder().metric(metric.build()).period(window.period.as_secs().max(1) as i32).stat(stat).build(),
        )
        .return_data(true)
        .build()
}

/// Fetches the step's figures, polling every `poll` until CloudWatch has
/// counted the step's requests, `wait` has passed, or `cancel` fires —
/// whichever comes first; the best answer so far is kept.
pub async fn fetch(
    client: &aws_sdk_cloudwatch::Client,
    window: &MetricsWindow,
    wait: Duration,
    poll: Duration,
    cancel: &CancellationToken,
) -> ServerMetrics {
    let started = tokio::time::Instant::now();
    let mut best: Option<ServerMetrics> = None;
    let mut last_error = None;
    loop {
        match within(started + wait, cancel, fetch_once(client, window)).await {
            Ok(metrics) => best = Some(metrics),
            Err(reason) => last_error = Some(reason),
        }
        let counted = best.as_ref().and_then(|m| m.invocations).unwrap_or(0.0);
        let complete = counted >= 0.95 * window.expected_invocations as f64 && best.is_some();
        if complete || started.elapsed() + poll > wait || cancel.is_cancelled() {
            return match best {
                Some(mut metrics) => {
                    metrics.available = metrics.invocations.is_some();
                    metrics.note = note(window, complete, counted, started.elapsed());
                    metrics
                }
                None => ServerMetrics::unavailable(last_error.unwrap_or_else(|| "no answer from CloudWatch".into())),
            };
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = cancel.cancelled() => {}
        }
    }
}

/// One fetch, given up at `deadline` or on `cancel`: a CloudWatch that does
/// not answer (the SDK's own timeouts and retries add up to minutes) must
/// never hold a step past the configured wait.
async fn within(
    deadline: tokio::time::Instant,
    cancel: &CancellationToken,
    fetch: impl Future<Output = Result<ServerMetrics, String>>,
) -> Result<ServerMetrics, String> {
    tokio::select! {
        answer = fetch => answer,
        _ = tokio::time::sleep_until(deadline) => Err("no answer from CloudWatch within the configured wait".into()),
        _ = cancel.cancelled() => Err("CloudWatch figures were not awaited: the run was interrupted".into()),
    }
}

/// What a reader should know about these figures.
fn note(window: &MetricsWindow, complete: bool, counted: f64, waited: Duration) -> Option<String> {
    let mut notes = Vec::new();
    if !complete {
        notes.push(format!(
            "CloudWatch had counted {counted} of {} requests after {}; figures may be partial",
            window.expected_invocations,
            humantime::format_duration(Duration::from_secs(waited.as_secs()))
        ));
    }
    if window.period >= Duration::from_secs(60) {
        notes.push(format!(
            "CloudWatch aggregates whole {}-second periods, so these figures also hold traffic just before and after the step",
            window.period.as_secs()
        ));
    }
    (!notes.is_empty()).then(|| notes.join("; "))
}

async fn fetch_once(client: &aws_sdk_cloudwatch::Client, window: &MetricsWindow) -> Result<ServerMetrics, String> {
    let mut request = client
        .get_metric_data()
        .start_time(DateTime::from(window.from))
        .end_time(DateTime::from(window.to + Duration::from_secs(1)));
    for q in queries(window) {
        request = request.metric_data_queries(query(window, q));
    }
    let out = request.send().await.map_err(|e| format!("CloudWatch GetMetricData failed: {}", crate::error_chain(&e)))?;
    let results = out.metric_data_results();
    let values = |id: &str| -> Vec<f64> {
        results.iter().find(|r: &&MetricDataResult| r.id() == Some(id)).map(|r| r.values().to_vec()).unwrap_or_default()
    };
    let sum = |id: &str| -> Option<f64> {
        let v = values(id);
        (!v.is_empty()).then(|| v.iter().sum())
    };
    let mean = |id: &str| -> Option<f64> {
        let v = values(id);
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let max = |id: &str| -> Option<f64> { values(id).into_iter().reduce(f64::max) };
    // `per_ms`: the metric's unit per millisecond (ModelLatency is in µs).
    let latency = |prefix: &str, per_ms: f64| -> Option<ServerLatency> {
        // Per-period averages weighted by their sample counts give the window's average.
        let avgs = values(&format!("{prefix}_avg"));
        let counts = values(&format!("{prefix}_n"));
        let total: f64 = counts.iter().sum();
        if avgs.is_empty() || avgs.len() != counts.len() || total == 0.0 {
            return None;
        }
        let avg = avgs.iter().zip(&counts).map(|(a, n)| a * n).sum::<f64>() / total;
        let p50 = values(&format!("{prefix}_p50"));
        Some(ServerLatency {
            avg: avg / per_ms,
            p50: (p50.len() == 1).then(|| p50[0] / per_ms),
            p99: max(&format!("{prefix}_p99"))? / per_ms,
        })
    };
    Ok(ServerMetrics {
        available: true,
        note: None,
        period_seconds: window.period.as_secs() as i32,
        invocations: sum("inv"),
        invocations_4xx: sum("e4xx"),
        invocations_5xx: sum("e5xx"),
        model_latency_ms: latency("ml", 1000.0),
        overhead_latency_ms: latency("ol", 1000.0),
        cpu_utilization_avg: mean("cpu"),
        memory_utilization_avg: mean("mem"),
        model_setup_time_ms: latency("ms", 1000.0),
        cold_starts: sum("ms_n"),
        asynchronous: window.asynchronous.then(|| AsyncServerMetrics {
            processed: sum("inv"),
            failures: sum("fail"),
            time_in_backlog_ms: latency("tib", 1.0),
            total_processing_ms: latency("tpt", 1.0),
            backlog_max: max("backlog"),
            oldest_request_age_max_s: max("oldest"),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fetch_that_never_answers_is_given_up_at_the_deadline() {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(50);
        let never = std::future::pending::<Result<ServerMetrics, String>>();
        let err = within(deadline, &CancellationToken::new(), never).await.unwrap_err();
        assert!(err.contains("within the configured wait"), "{err}");
        assert!(tokio::time::Instant::now() >= deadline, "not before the deadline either");

        let cancel = CancellationToken::new();
        cancel.cancel();
        let never = std::future::pending::<Result<ServerMetrics, String>>();
        assert!(within(deadline + Duration::from_secs(60), &cancel, never).await.unwrap_err().contains("interrupted"));
    }
}
