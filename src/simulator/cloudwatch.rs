//! CloudWatch GetMetricData, answered from what the simulator really served.
//! Accepts Smithy RPC v2 CBOR (aws-sdk-cloudwatch, botocore ≥ 1.40) and
//! awsJson 1.0 (older SDKs); both decode into one query type.

use axum::body::Body;
use axum::http::{Response, StatusCode};
use ciborium::Value as Cbor;
use serde_json::{Value as Json, json};

use super::metrics::{MetricName, MetricStore, Stat};
use super::wire::{AwsError, Protocol, body_response, cbor_text, encode_cbor, json_response};

/// One MetricStat query.
#[derive(Debug, Clone, PartialEq)]
struct Query {
    id: String,
    label: Option<String>,
    namespace: String,
    metric_name: String,
    dimensions: Vec<(String, String)>,
    period: i64,
    stat: String,
    return_data: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Request {
    queries: Vec<Query>,
    start: f64,
    end: f64,
    descending: bool,
}

/// The answer to one query.
struct Series {
    id: String,
    label: String,
    points: Vec<(i64, f64)>,
}

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::new(StatusCode::BAD_REQUEST, "InvalidParameterValue", message)
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

fn decode_request<D: Doc>(doc: &D) -> Result<Request, AwsError> {
    let start = required(doc, "StartTime")?.epoch().ok_or_else(|| invalid("StartTime must be a timestamp."))?;
    let end = required(doc, "EndTime")?.epoch().ok_or_else(|| invalid("EndTime must be a timestamp."))?;
    if end <= start {
        return Err(invalid("The parameter StartTime must be less than the parameter EndTime."));
    }
    let queries = required(doc, "MetricDataQueries")?
        .list()
        .ok_or_else(|| invalid("MetricDataQueries must be a list."))?
        .iter()
        .map(decode_query)
        .collect::<Result<Vec<_>, _>>()?;
    let descending = doc.get("ScanBy").and_then(Doc::text) != Some("TimestampAscending");
    Ok(Request { queries, start, end, descending })
}

fn decode_query<D: Doc>(q: &D) -> Result<Query, AwsError> {
    let id = required(q, "Id")?.text().unwrap_or_default().to_string();
    if q.get("Expression").is_some() {
        return Err(invalid(format!("Query {id}: the simulator answers MetricStat queries only, not Expression.")));
    }
    let stat = required(q, "MetricStat")?;
    let metric = required(stat, "Metric")?;
    let text = |d: &D, key: &str| d.get(key).and_then(Doc::text).unwrap_or_default().to_string();
    let dimensions = metric
        .get("Dimensions")
        .and_then(Doc::list)
        .unwrap_or_default()
        .iter()
        .map(|d| (text(d, "Name"), text(d, "Value")))
        .collect();
    let period = required(stat, "Period")?.number().unwrap_or(0.0) as i64;
    if period < 1 {
        return Err(invalid(format!("Query {id}: Period must be at least 1 second.")));
    }
    Ok(Query {
        id,
        label: q.get("Label").and_then(Doc::text).map(str::to_string),
        namespace: text(metric, "Namespace"),
        metric_name: text(metric, "MetricName"),
        dimensions,
        period,
        stat: text(stat, "Stat"),
        return_data: q.get("ReturnData").and_then(Doc::flag).unwrap_or(true),
    })
}

fn run(store: &MetricStore, request: &Request) -> Result<Vec<Series>, AwsError> {
    let mut out = Vec::new();
    for q in request.queries.iter().filter(|q| q.return_data) {
        let stat = Stat::parse(&q.stat).ok_or_else(|| {
            invalid(format!(
                "Query {}: the statistic {:?} is not valid (Sum, Average, SampleCount, Minimum, Maximum or pNN).",
                q.id, q.stat
            ))
        })?;
        let dim = |name: &str| q.dimensions.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        let mut points = match (MetricName::parse(&q.namespace, &q.metric_name), dim("EndpointName"), dim("VariantName")) {
            (Some(metric), Some(endpoint), Some(variant)) if q.dimensions.len() == 2 => store
                .find(endpoint, variant)
                .map(|s| s.datapoints(metric, stat, q.period, request.start.floor() as i64, request.end.ceil() as i64))
                .unwrap_or_default(),
            // Anything else is a metric nobody published: no datapoints, as CloudWatch answers.
            _ => Vec::new(),
        };
        if request.descending {
            points.reverse();
        }
        out.push(Series { id: q.id.clone(), label: q.label.clone().unwrap_or_else(|| q.metric_name.clone()), points });
    }
    Ok(out)
}

fn encode_cbor_answer(series: &[Series]) -> Vec<u8> {
    let results = series
        .iter()
        .map(|s| {
            Cbor::Map(vec![
                (cbor_text("Id"), cbor_text(&s.id)),
                (cbor_text("Label"), cbor_text(&s.label)),
                (
                    cbor_text("Timestamps"),
                    Cbor::Array(s.points.iter().map(|(t, _)| Cbor::Tag(1, Box::new(Cbor::Integer((*t).into())))).collect()),
                ),
                (cbor_text("Values"), Cbor::Array(s.points.iter().map(|(_, v)| Cbor::Float(*v)).collect())),
                (cbor_text("StatusCode"), cbor_text("Complete")),
            ])
        })
        .collect();
    encode_cbor(&Cbor::Map(vec![
        (cbor_text("MetricDataResults"), Cbor::Array(results)),
        (cbor_text("Messages"), Cbor::Array(vec![])),
    ]))
}

fn encode_json_answer(series: &[Series]) -> Json {
    let results: Vec<Json> = series
        .iter()
        .map(|s| {
            json!({
                "Id": s.id,
                "Label": s.label,
                "Timestamps": s.points.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
                "Values": s.points.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
                "StatusCode": "Complete",
            })
        })
        .collect();
    json!({ "MetricDataResults": results, "Messages": [] })
}

/// Answers a CloudWatch call in `protocol`.
pub fn handle(store: &MetricStore, protocol: Protocol, operation: &str, body: &[u8]) -> Response<Body> {
    let answer = || -> Result<Response<Body>, AwsError> {
        if operation != "GetMetricData" {
            return Err(AwsError::new(
                StatusCode::BAD_REQUEST,
                "UnknownOperationException",
                format!("The simulator implements CloudWatch GetMetricData only, not {operation}."),
            ));
        }
        Ok(match protocol {
            Protocol::RpcV2Cbor => {
                let doc: Cbor = ciborium::from_reader(body).map_err(|e| {
                    AwsError::new(StatusCode::BAD_REQUEST, "SerializationException", format!("malformed CBOR: {e}"))
                })?;
                let series = run(store, &decode_request(&doc)?)?;
                body_response(StatusCode::OK, protocol, encode_cbor_answer(&series))
            }
            _ => {
                let doc: Json = serde_json::from_slice(body).map_err(|e| {
                    AwsError::new(StatusCode::BAD_REQUEST, "SerializationException", format!("malformed JSON: {e}"))
                })?;
                let series = run(store, &decode_request(&doc)?)?;
                json_response(protocol, &encode_json_answer(&series))
            }
        })
    };
    answer().unwrap_or_else(|e| e.into_response(protocol))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cbor_and_json_requests_decode_to_the_same_query() {
        let json_doc = json!({
            "StartTime": 1000.0, "EndTime": 1060,
            "MetricDataQueries": [{"Id": "m1", "MetricStat": {
                "Metric": {"Namespace": "AWS/SageMaker", "MetricName": "ModelLatency",
                           "Dimensions": [{"Name": "EndpointName", "Value": "e"}, {"Name": "VariantName", "Value": "AllTraffic"}]},
                "Period": 60, "Stat": "p99"}}]
        });
        let bytes = serde_json::to_vec(&json_doc).unwrap();
        let cbor_doc: Cbor = Cbor::Map(vec![
            (cbor_text("StartTime"), Cbor::Tag(1, Box::new(Cbor::Float(1000.0)))),
            (cbor_text("EndTime"), Cbor::Tag(1, Box::new(Cbor::Integer(1060.into())))),
            (
                cbor_text("MetricDataQueries"),
                Cbor::Array(vec![Cbor::Map(vec![
                    (cbor_text("Id"), cbor_text("m1")),
                    (
                        cbor_text("MetricStat"),
                        Cbor::Map(vec![
                            (
                                cbor_text("Metric"),
                                Cbor::Map(vec![
                                    (cbor_text("Namespace"), cbor_text("AWS/SageMaker")),
                                    (cbor_text("MetricName"), cbor_text("ModelLatency")),
                                    (
                                        cbor_text("Dimensions"),
                                        Cbor::Array(vec![
                                            Cbor::Map(vec![
                                                (cbor_text("Name"), cbor_text("EndpointName")),
                                                (cbor_text("Value"), cbor_text("e")),
                                            ]),
                                            Cbor::Map(vec![
                                                (cbor_text("Name"), cbor_text("VariantName")),
                                                (cbor_text("Value"), cbor_text("AllTraffic")),
                                            ]),
                                        ]),
                                    ),
                                ]),
                            ),
                            (cbor_text("Period"), Cbor::Integer(60.into())),
                            (cbor_text("Stat"), cbor_text("p99")),
                        ]),
                    ),
                ])]),
            ),
        ]);
        let from_json = decode_request(&serde_json::from_slice::<Json>(&bytes).unwrap()).unwrap();
        let from_cbor = decode_request(&cbor_doc).unwrap();
        assert_eq!(from_json, from_cbor);
        assert_eq!(from_cbor.queries[0].dimensions.len(), 2);
        assert!(from_cbor.descending, "CloudWatch scans newest first by default");
    }

    #[test]
    fn bad_queries_are_refused_with_a_reason() {
        let doc = json!({"StartTime": 10, "EndTime": 5, "MetricDataQueries": []});
        assert!(decode_request(&doc).unwrap_err().message.contains("StartTime"));
        let doc = json!({"StartTime": 1, "EndTime": 5, "MetricDataQueries": [{"Id": "x", "Expression": "SUM(m)"}]});
        assert!(decode_request(&doc).unwrap_err().message.contains("Expression"));
    }
}
