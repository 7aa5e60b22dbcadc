//! The CloudWatch metrics the simulator publishes: the namespace and name
//! CloudWatch knows each by, the unit SageMaker publishes it with, and the
//! dimensions it is published under (one table, so the lookups agree).
//!
//! Real-time endpoints publish Invocations, InvocationsPerInstance,
//! OverheadLatency and ConcurrentRequestsPerModel; asynchronous ones do not,
//! and publish the backlog metrics (under EndpointName alone) and the
//! asynchronous invocation metrics (under EndpointName and VariantName)
//! instead — SageMaker Developer Guide, "Monitoring asynchronous endpoints".
//! ModelLatency, the 4XX/5XX errors and the instance metrics are common.
//! Variants that served response streams also publish GPUUtilization and
//! GPUMemoryUtilization (instance metrics) and, under a namespace of the
//! simulator's own that AWS does not have, the per-request truth of their
//! streams: TimeToFirstToken, InterTokenLatency, TimePerOutputToken,
//! InputTokens and OutputTokens. Serverless variants publish ModelSetupTime
//! (their cold starts) and ServerlessConcurrentExecutionsUtilization besides
//! the real-time metrics.

/// The dimensions a metric is published under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// EndpointName and VariantName.
    Variant,
    /// EndpointName alone.
    Endpoint,
}

/// A metric the simulator publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    InvocationsProcessed,
    InvocationFailures,
    ExpiredRequests,
    RequestDownloadFailures,
    ResponseUploadFailures,
    TimeInBacklog,
    TotalProcessingTime,
    ApproximateBacklogSize,
    ApproximateBacklogSizePerInstance,
    ApproximateAgeOfOldestRequest,
    HasBacklogWithoutCapacity,
    GpuUtilization,
    GpuMemoryUtilization,
    TimeToFirstToken,
    InterTokenLatency,
    TimePerOutputToken,
    InputTokens,
    OutputTokens,
    ModelSetupTime,
    ServerlessConcurrentExecutionsUtilization,
}

const SAGEMAKER: &str = "AWS/SageMaker";
const INSTANCES: &str = "/aws/sagemaker/Endpoints";
/// The simulator's own figures, which no AWS service publishes.
pub const SIMULATOR: &str = "perfsize/Simulator";

/// Each metric's (metric, namespace, name, unit, scope).
const TABLE: [(MetricName, &str, &str, &str, Scope); 29] = {
    use MetricName::*;
    use Scope::*;
    [
        (Invocations, SAGEMAKER, "Invocations", "None", Variant),
        (InvocationsPerInstance, SAGEMAKER, "InvocationsPerInstance", "None", Variant),
        (ModelLatency, SAGEMAKER, "ModelLatency", "Microseconds", Variant),
        (OverheadLatency, SAGEMAKER, "OverheadLatency", "Microseconds", Variant),
        (Invocation4XXErrors, SAGEMAKER, "Invocation4XXErrors", "None", Variant),
        (Invocation5XXErrors, SAGEMAKER, "Invocation5XXErrors", "None", Variant),
        (CpuUtilization, INSTANCES, "CPUUtilization", "Percent", Variant),
        (MemoryUtilization, INSTANCES, "MemoryUtilization", "Percent", Variant),
        (ConcurrentRequestsPerModel, SAGEMAKER, "ConcurrentRequestsPerModel", "None", Variant),
        // The guide spells it "InvocationsProcesssed"; the simulator uses the
        // word (a dashboard query with the guide's spelling finds nothing).
        (InvocationsProcessed, SAGEMAKER, "InvocationsProcessed", "Count", Variant),
        (InvocationFailures, SAGEMAKER, "InvocationFailures", "Count", Variant),
        (ExpiredRequests, SAGEMAKER, "ExpiredRequests", "Count", Variant),
        (RequestDownloadFailures, SAGEMAKER, "RequestDownloadFailures", "Count", Variant),
        (ResponseUploadFailures, SAGEMAKER, "ResponseUploadFailures", "Count", Variant),
        (TimeInBacklog, SAGEMAKER, "TimeInBacklog", "Milliseconds", Variant),
        (TotalProcessingTime, SAGEMAKER, "TotalProcessingTime", "Milliseconds", Variant),
        (ApproximateBacklogSize, SAGEMAKER, "ApproximateBacklogSize", "Count", Endpoint),
        (ApproximateBacklogSizePerInstance, SAGEMAKER, "ApproximateBacklogSizePerInstance", "Count", Endpoint),
        (ApproximateAgeOfOldestRequest, SAGEMAKER, "ApproximateAgeOfOldestRequest", "Seconds", Endpoint),
        (HasBacklogWithoutCapacity, SAGEMAKER, "HasBacklogWithoutCapacity", "Count", Endpoint),
        (GpuUtilization, INSTANCES, "GPUUtilization", "Percent", Variant),
        (GpuMemoryUtilization, INSTANCES, "GPUMemoryUtilization", "Percent", Variant),
        (TimeToFirstToken, SIMULATOR, "TimeToFirstToken", "Microseconds", Variant),
        (InterTokenLatency, SIMULATOR, "InterTokenLatency", "Microseconds", Variant),
        (TimePerOutputToken, SIMULATOR, "TimePerOutputToken", "Microseconds", Variant),
        (InputTokens, SIMULATOR, "InputTokens", "Count", Variant),
        (OutputTokens, SIMULATOR, "OutputTokens", "Count", Variant),
        (ModelSetupTime, SAGEMAKER, "ModelSetupTime", "Microseconds", Variant),
        (ServerlessConcurrentExecutionsUtilization, SAGEMAKER, "ServerlessConcurrentExecutionsUtilization", "None", Variant),
    ]
};

impl MetricName {
    /// Every metric the simulator publishes.
    pub const ALL: [MetricName; TABLE.len()] = {
        let mut all = [MetricName::Invocations; TABLE.len()];
        let mut i = 0;
        while i < TABLE.len() {
            all[i] = TABLE[i].0;
            i += 1;
        }
        all
    };

    fn row(self) -> &'static (MetricName, &'static str, &'static str, &'static str, Scope) {
        TABLE.iter().find(|row| row.0 == self).expect("every metric has a row")
    }

    /// Looks a metric up by namespace and name.
    pub fn parse(namespace: &str, name: &str) -> Option<MetricName> {
        TABLE.iter().find(|row| row.1 == namespace && row.2 == name).map(|row| row.0)
    }

    /// The namespace and name CloudWatch knows the metric by (the inverse of [`MetricName::parse`]).
    pub fn identity(self) -> (&'static str, &'static str) {
        let row = self.row();
        (row.1, row.2)
    }

    /// The unit SageMaker publishes the metric with, which CloudWatch reports
    /// back on every datapoint (and which a Unit filter must match).
    pub fn unit(self) -> &'static str {
        self.row().3
    }

    pub fn scope(self) -> Scope {
        self.row().4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_found_by_the_name_it_is_listed_under() {
        for metric in MetricName::ALL {
            let (namespace, name) = metric.identity();
            assert_eq!(MetricName::parse(namespace, name), Some(metric));
        }
        assert_eq!(MetricName::ALL.len(), 29);
        assert_eq!(MetricName::parse("AWS/SageMaker", "CPUUtilization"), None, "instance metrics have a namespace of their own");
        assert_eq!(MetricName::HasBacklogWithoutCapacity.scope(), Scope::Endpoint);
        assert_eq!(MetricName::TimeInBacklog.unit(), "Milliseconds");
        assert_eq!(MetricName::parse(SIMULATOR, "TimeToFirstToken"), Some(MetricName::TimeToFirstToken));
        assert_eq!(MetricName::parse("AWS/SageMaker", "TimeToFirstToken"), None, "SageMaker publishes no such metric");
    }
}
