//! CloudWatch's metric reads — GetMetricData, GetMetricStatistics and
//! ListMetrics — answered from what the simulator really served ([`MetricStore`]).
//!
//! One service, two protocols: Smithy RPC v2 CBOR (aws-sdk-cloudwatch) and
//! awsJson 1.0 (botocore, hence boto3 and the AWS CLI: it ranks JSON above
//! CBOR). Every operation reads its request through the [`Doc`] trait and
//! builds its answer as an [`Out`] tree, which is written back in the
//! request's protocol, so no operation knows which protocol it serves.
//! awsQuery (form-encoded `Action=…`, XML answers), which older SDKs sent, is
//! not served.
//!
//! GetMetricData and GetMetricStatistics read datapoints through one path,
//! [`datapoints`], so both answer the same figures for the same metric.

mod list_metrics;
mod metric_data;
mod metric_statistics;

use std::time::SystemTime;

use axum::body::Body;
use axum::http::{Response, StatusCode};
use ciborium::Value as Cbor;
use serde_json::Value as Json;

use super::metrics::{MetricName, MetricStore, SeriesKey, Stat, epoch_seconds};
use super::wire::{AwsError, Protocol, body_response, cbor_text, encode_cbor, json_response};

/// Answers a CloudWatch call in `protocol`.
pub fn handle(store: &MetricStore, protocol: Protocol, operation: &str, body: &[u8]) -> Response<Body> {
    let now = epoch_seconds(SystemTime::now());
    let answered = match protocol {
        Protocol::RpcV2Cbor => decode_cbor(body)
            .and_then(|request| answer(store, operation, &request, now))
            .map(|out| body_response(StatusCode::OK, protocol, encode_cbor(&out.to_cbor()))),
        _ => decode_json(body)
            .and_then(|request| answer(store, operation, &request, now))
            .map(|out| json_response(protocol, &out.to_json())),
    };
    answered.unwrap_or_else(|e| e.into_response(protocol))
}

/// Runs `operation` on a decoded request; `now` in epoch seconds.
fn answer<D: Doc>(store: &MetricStore, operation: &str, request: &D, now: f64) -> Result<Out, AwsError> {
    match operation {
        "GetMetricData" => metric_data::answer(store, request),
        "GetMetricStatistics" => metric_statistics::answer(store, request),
        "ListMetrics" => list_metrics::answer(store, request, now),
        _ => Err(AwsError::new(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            format!("The simulator implements CloudWatch GetMetricData, GetMetricStatistics and ListMetrics, not {operation}."),
        )),
    }
}

/// An operation without input members may arrive with no body at all.
fn decode_cbor(body: &[u8]) -> Result<Cbor, AwsError> {
    if body.is_empty() {
        return Ok(Cbor::Map(Vec::new()));
    }
    ciborium::from_reader(body)
        .map_err(|e| AwsError::new(StatusCode::BAD_REQUEST, "SerializationException", format!("malformed CBOR: {e}")))
}

fn decode_json(body: &[u8]) -> Result<Json, AwsError> {
    if body.is_empty() {
        return Ok(Json::Object(Default::default()));
    }
    serde_json::from_slice(body)
        .map_err(|e| AwsError::new(StatusCode::BAD_REQUEST, "SerializationException", format!("malformed JSON: {e}")))
}

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::new(StatusCode::BAD_REQUEST, "InvalidParameterValue", message)
}

fn invalid_combination(message: impl Into<String>) -> AwsError {
    AwsError::new(StatusCode::BAD_REQUEST, "InvalidParameterCombination", message)
}

/// A uniform view over a decoded CBOR or JSON document.
trait Doc: Sized {
    fn get(&self, key: &str) -> Option<&Self>;
    fn text(&self) -> Option<&str>;
    fn number(&self) -> Option<f64>;
    fn flag(&self) -> Option<bool>;
    fn list(&self) -> Option<&[Self]>;
    /// Epoch seconds: CBOR tag 1 around a number, or a JSON number.
    fn epoch(&self) -> Option<f64>;

    /// The text member `key`, if present.
    fn text_of(&self, key: &str) -> Option<String> {
        self.get(key).and_then(Doc::text).map(str::to_string)
    }

    /// The members of list member `key`; absent means empty, as in CloudWatch.
    fn items(&self, key: &str) -> &[Self] {
        self.get(key).and_then(Doc::list).unwrap_or_default()
    }
}

impl Doc for Cbor {
    fn get(&self, key: &str) -> Option<&Self> {
        self.as_map()?.iter().find(|(k, _)| k.as_text() == Some(key)).map(|(_, v)| v)
    }
    fn text(&self) -> Option<&str> {
        self.as_text()
    }
    fn number(&self) -> Option<f64> {
        match self {
            Cbor::Integer(i) => Some(i128::from(*i) as f64),
            Cbor::Float(f) => Some(*f),
            _ => None,
        }
    }
    fn flag(&self) -> Option<bool> {
        self.as_bool()
    }
    fn list(&self) -> Option<&[Self]> {
        self.as_array().map(Vec::as_slice)
    }
    fn epoch(&self) -> Option<f64> {
        match self {
            Cbor::Tag(1, inner) => inner.number(),
            other => other.number(),
        }
    }
}

impl Doc for Json {
    fn get(&self, key: &str) -> Option<&Self> {
        Json::get(self, key)
    }
    fn text(&self) -> Option<&str> {
        self.as_str()
    }
    fn number(&self) -> Option<f64> {
        self.as_f64()
    }
    fn flag(&self) -> Option<bool> {
        self.as_bool()
    }
    fn list(&self) -> Option<&[Self]> {
        self.as_array().map(Vec::as_slice)
    }
    fn epoch(&self) -> Option<f64> {
        self.as_f64()
    }
}

fn required<'d, D: Doc>(doc: &'d D, key: &str) -> Result<&'d D, AwsError> {
    doc.get(key)
        .ok_or_else(|| AwsError::new(StatusCode::BAD_REQUEST, "MissingParameter", format!("The parameter {key} is required.")))
}

/// An answer, built once by an operation and written in the request's protocol.
#[derive(Debug, Clone, PartialEq)]
enum Out {
    Map(Vec<(String, Out)>),
    List(Vec<Out>),
    Text(String),
    Number(f64),
    /// Epoch seconds: a JSON number, or a number in CBOR tag 1 as RPC v2 requires.
    Time(i64),
}

impl Out {
    fn map<K: Into<String>>(members: impl IntoIterator<Item = (K, Out)>) -> Out {
        Out::Map(members.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    fn text(text: impl Into<String>) -> Out {
        Out::Text(text.into())
    }

    fn to_cbor(&self) -> Cbor {
        match self {
            Out::Map(members) => Cbor::Map(members.iter().map(|(k, v)| (cbor_text(k), v.to_cbor())).collect()),
            Out::List(items) => Cbor::Array(items.iter().map(Out::to_cbor).collect()),
            Out::Text(text) => cbor_text(text),
            Out::Number(n) => Cbor::Float(*n),
            Out::Time(t) => Cbor::Tag(1, Box::new(Cbor::Integer((*t).into()))),
        }
    }

    fn to_json(&self) -> Json {
        match self {
            Out::Map(members) => Json::Object(members.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
            Out::List(items) => Json::Array(items.iter().map(Out::to_json).collect()),
            Out::Text(text) => Json::from(text.as_str()),
            Out::Number(n) => Json::from(*n),
            Out::Time(t) => Json::from(*t),
        }
    }
}

/// A metric as requests name it. CloudWatch treats every combination of
/// dimensions as a metric of its own. The order sorts ListMetrics answers,
/// and ListMetrics' NextToken carries one, serialized.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
struct MetricId {
    namespace: String,
    metric_name: String,
    dimensions: Vec<(String, String)>,
}

impl MetricId {
    /// The identity of a series' metric, with the dimensions SageMaker publishes it under.
    fn of_series(metric: MetricName, key: &SeriesKey) -> MetricId {
        let (namespace, metric_name) = metric.identity();
        MetricId { namespace: namespace.to_string(), metric_name: metric_name.to_string(), dimensions: key.dimensions() }
    }

    #[cfg(test)]
    fn of_variant(metric: MetricName, endpoint: &str, variant: &str) -> MetricId {
        MetricId::of_series(metric, &SeriesKey::variant(endpoint, variant))
    }

    fn dimension(&self, name: &str) -> Option<&str> {
        self.dimensions.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn to_out(&self) -> Out {
        let dimensions =
            self.dimensions.iter().map(|(name, value)| Out::map([("Name", Out::text(name)), ("Value", Out::text(value))]));
        Out::map([
            ("Namespace", Out::text(&self.namespace)),
            ("MetricName", Out::text(&self.metric_name)),
            ("Dimensions", Out::List(dimensions.collect())),
        ])
    }
}

/// Namespace, MetricName and Dimensions, as a GetMetricData `Metric` and a
/// GetMetricStatistics request both carry them.
fn decode_metric<D: Doc>(doc: &D) -> MetricId {
    MetricId {
        namespace: doc.text_of("Namespace").unwrap_or_default(),
        metric_name: doc.text_of("MetricName").unwrap_or_default(),
        dimensions: doc
            .items("Dimensions")
            .iter()
            .map(|d| (d.text_of("Name").unwrap_or_default(), d.text_of("Value").unwrap_or_default()))
            .collect(),
    }
}

/// The time range of a read, in epoch seconds; the end is exclusive.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Window {
    start: f64,
    end: f64,
}

fn decode_window<D: Doc>(doc: &D) -> Result<Window, AwsError> {
    let start = required(doc, "StartTime")?.epoch().ok_or_else(|| invalid("StartTime must be a timestamp."))?;
    let end = required(doc, "EndTime")?.epoch().ok_or_else(|| invalid("EndTime must be a timestamp."))?;
    if end <= start {
        return Err(invalid("The parameter StartTime must be less than the parameter EndTime."));
    }
    Ok(Window { start, end })
}

/// `stat` of `metric` over whole periods of `window`, oldest first: the one
/// path GetMetricData and GetMetricStatistics read by. A metric nobody
/// published, or a `unit` other than the one it is published in, has no
/// datapoints, as CloudWatch answers (it never converts units).
fn datapoints(
    store: &MetricStore,
    metric: &MetricId,
    unit: Option<&str>,
    stat: Stat,
    period: i64,
    window: Window,
) -> Vec<(i64, f64)> {
    match store.published(&metric.namespace, &metric.metric_name, &metric.dimensions) {
        Some((name, series)) if unit.is_none_or(|unit| unit == name.unit()) => {
            series.datapoints(name, stat, period, window.start.floor() as i64, window.end.ceil() as i64)
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod test_support {
    //! Building requests and a store with traffic for the operations' tests.

    use std::time::Duration;

    use super::*;
    use crate::simulator::metrics::{Capacity, Outcome, Served};

    /// A JSON document as a CBOR one, timestamps (members ending in `Time`)
    /// in tag 1 as aws-sdk-cloudwatch sends them.
    pub fn cbor_of(json: &Json) -> Cbor {
        fn convert(key: Option<&str>, value: &Json) -> Cbor {
            match value {
                Json::Object(members) => Cbor::Map(members.iter().map(|(k, v)| (cbor_text(k), convert(Some(k), v))).collect()),
                Json::Array(items) => Cbor::Array(items.iter().map(|v| convert(None, v)).collect()),
                Json::String(s) => cbor_text(s),
                Json::Bool(b) => Cbor::Bool(*b),
                Json::Number(n) => {
                    let number = match n.as_i64() {
                        Some(i) => Cbor::Integer(i.into()),
                        None => Cbor::Float(n.as_f64().unwrap_or_default()),
                    };
                    if key.is_some_and(|k| k.ends_with("Time")) { Cbor::Tag(1, Box::new(number)) } else { number }
                }
                Json::Null => Cbor::Null,
            }
        }
        convert(None, json)
    }

    /// How many metrics a real-time variant that served requests publishes.
    pub const REAL_TIME_METRICS: usize = 9;

    /// A store in which variant AllTraffic of each endpoint served a request
    /// of each model latency (ms), all just now.
    pub fn store_with(endpoints: &[(&str, &[u64])]) -> MetricStore {
        let store = MetricStore::new(Duration::from_secs(3600));
        for (endpoint, latencies_ms) in endpoints {
            serve(&store, endpoint, latencies_ms);
        }
        store
    }

    /// Records a request of each model latency (ms) on variant AllTraffic of `endpoint`.
    pub fn serve(store: &MetricStore, endpoint: &str, latencies_ms: &[u64]) {
        let capacity = Capacity { instances: 1, workers_per_instance: 2, vcpus: 2, memory_percent: 20.0 };
        let series = store.series(endpoint, "AllTraffic");
        for &ms in latencies_ms {
            let served = Served {
                outcome: Outcome::Success,
                model: Some(Duration::from_millis(ms)),
                overhead: Some(Duration::from_micros(300)),
                busy: Duration::from_millis(ms),
            };
            series.record(served, capacity);
        }
    }

    pub fn now() -> f64 {
        epoch_seconds(SystemTime::now())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::test_support::*;
    use super::*;

    #[test]
    fn answers_are_written_in_the_protocol_asked() {
        let out = Out::map([("At", Out::Time(60)), ("Values", Out::List(vec![Out::Number(1.5)]))]);
        assert_eq!(out.to_json(), json!({"At": 60, "Values": [1.5]}));
        let cbor = out.to_cbor();
        assert_eq!(cbor.get("At"), Some(&Cbor::Tag(1, Box::new(Cbor::Integer(60.into())))), "RPC v2 timestamps carry tag 1");
    }

    #[test]
    fn an_empty_body_is_an_empty_request() {
        assert_eq!(decode_cbor(b"").unwrap(), Cbor::Map(Vec::new()));
        assert_eq!(decode_json(b"").unwrap(), json!({}));
        assert_eq!(decode_json(b"{").unwrap_err().code, "SerializationException");
    }

    #[test]
    fn unknown_operations_are_named() {
        let store = store_with(&[]);
        let error = answer(&store, "PutMetricData", &json!({}), now()).unwrap_err();
        assert_eq!(error.code, "UnknownOperationException");
        assert!(error.message.contains("PutMetricData"), "{}", error.message);
    }

    #[test]
    fn only_published_metrics_with_their_unit_have_datapoints() {
        let store = store_with(&[("e", &[10, 20])]);
        let window = Window { start: now() - 120.0, end: now() + 60.0 };
        let latency = MetricId::of_variant(MetricName::ModelLatency, "e", "AllTraffic");
        let count = |metric: &MetricId, unit| {
            datapoints(&store, metric, unit, Stat::SampleCount, 60, window).iter().map(|(_, v)| v).sum::<f64>()
        };
        assert_eq!(count(&latency, None), 2.0);
        assert_eq!(count(&latency, Some("Microseconds")), 2.0);
        assert_eq!(count(&latency, Some("Milliseconds")), 0.0, "CloudWatch never converts units");
        let mut fewer_dimensions = latency.clone();
        fewer_dimensions.dimensions.pop();
        assert_eq!(count(&fewer_dimensions, None), 0.0, "each dimension combination is a metric of its own");
        let mut reordered = latency.clone();
        reordered.dimensions.reverse();
        assert_eq!(count(&reordered, None), 2.0);
    }
}
