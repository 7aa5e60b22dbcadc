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
        }
    }
}

/// (id, namespace, metric, stat)
const QUERIES: [(&str, &str, &str, &str); 13] = [
    ("inv", "AWS/SageMaker", "Invocations", "Sum"),
    ("e4xx", "AWS/SageMaker", "Invocation4XXErrors", "Sum"),
    ("e5xx", "AWS/SageMaker", "Invocation5XXErrors", "Sum"),
    ("ml_avg", "AWS/SageMaker", "ModelLatency", "Average"),
    ("ml_n", "AWS/SageMaker", "ModelLatency", "SampleCount"),
    ("ml_p50", "AWS/SageMaker", "ModelLatency", "p50"),
    ("ml_p99", "AWS/SageMaker", "ModelLatency", "p99"),
    ("ol_avg", "AWS/SageMaker", "OverheadLatency", "Average"),
    ("ol_n", "AWS/SageMaker", "OverheadLatency", "SampleCount"),
    ("ol_p50", "AWS/SageMaker", "OverheadLatency", "p50"),
    ("ol_p99", "AWS/SageMaker", "OverheadLatency", "p99"),
    ("cpu", "/aws/sagemaker/Endpoints", "CPUUtilization", "Average"),
    ("mem", "/aws/sagemaker/Endpoints", "MemoryUtilization", "Average"),
];

fn query(window: &MetricsWindow, (id, namespace, name, stat): (&str, &str, &str, &str)) -> MetricDataQuery {
    let metric = Metric::builder()
        .namespace(namespace)
        .metric_name(name)
        .dimensions(Dimension::builder().name("EndpointName").value(&window.endpoint).build())
        .dimensions(Dimension::builder().name("VariantName").value(&window.variant).build())
        .build();
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(MetricStat::builder().metric(metric).period(window.period.as_secs().max(1) as i32).stat(stat).build())
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
        match fetch_once(client, window).await {
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
    for q in QUERIES {
        request = request.metric_data_queries(query(window, q));
    }
    let out = request.send().await.map_err(|e| format!("GetMetricData failed: {}", crate::error_chain(&e)))?;
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
    let latency = |prefix: &str| -> Option<ServerLatency> {
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
            avg: avg / 1000.0,
            p50: (p50.len() == 1).then(|| p50[0] / 1000.0),
            p99: max(&format!("{prefix}_p99"))? / 1000.0,
        })
    };
    Ok(ServerMetrics {
        available: true,
        note: None,
        period_seconds: window.period.as_secs() as i32,
        invocations: sum("inv"),
        invocations_4xx: sum("e4xx"),
        invocations_5xx: sum("e5xx"),
        model_latency_ms: latency("ml"),
        overhead_latency_ms: latency("ol"),
        cpu_utilization_avg: mean("cpu"),
        memory_utilization_avg: mean("mem"),
    })
}
