//! GetMetricData: MetricStat queries, each one statistic of one metric.

use super::{Doc, MetricId, Out, Window, datapoints, decode_metric, decode_window, invalid, required};
use crate::simulator::metrics::{MetricStore, Stat};
use crate::simulator::wire::AwsError;

/// One MetricStat query.
#[derive(Debug, Clone, PartialEq)]
struct Query {
    id: String,
    label: Option<String>,
    metric: MetricId,
    period: i64,
    stat: String,
    unit: Option<String>,
    return_data: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Request {
    queries: Vec<Query>,
    window: Window,
    descending: bool,
}

/// The answer to one query.
struct Series {
    id: String,
    label: String,
    points: Vec<(i64, f64)>,
}

pub(super) fn answer<D: Doc>(store: &MetricStore, doc: &D) -> Result<Out, AwsError> {
    let series = run(store, &decode_request(doc)?)?;
    Ok(encode(&series))
}

fn decode_request<D: Doc>(doc: &D) -> Result<Request, AwsError> {
    let window = decode_window(doc)?;
    let queries = required(doc, "MetricDataQueries")?
        .list()
        .ok_or_else(|| invalid("MetricDataQueries must be a list."))?
        .iter()
        .map(decode_query)
        .collect::<Result<Vec<_>, _>>()?;
    let descending = doc.get("ScanBy").and_then(Doc::text) != Some("TimestampAscending");
    Ok(Request { queries, window, descending })
}

fn decode_query<D: Doc>(q: &D) -> Result<Query, AwsError> {
    let id = required(q, "Id")?.text().unwrap_or_default().to_string();
    if q.get("Expression").is_some() {
        return Err(invalid(format!("Query {id}: the simulator answers MetricStat queries only, not Expression.")));
    }
    let stat = required(q, "MetricStat")?;
    let metric = decode_metric(required(stat, "Metric")?);
    let period = required(stat, "Period")?.number().unwrap_or(0.0) as i64;
    if period < 1 {
        return Err(invalid(format!("Query {id}: Period must be at least 1 second.")));
    }
    Ok(Query {
        id,
        label: q.text_of("Label"),
        metric,
        period,
        stat: stat.text_of("Stat").unwrap_or_default(),
        unit: stat.text_of("Unit"),
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
        let mut points = datapoints(store, &q.metric, q.unit.as_deref(), stat, q.period, request.window);
        if request.descending {
            points.reverse();
        }
        out.push(Series { id: q.id.clone(), label: q.label.clone().unwrap_or_else(|| q.metric.metric_name.clone()), points });
    }
    Ok(out)
}

fn encode(series: &[Series]) -> Out {
    let results = series.iter().map(|s| {
        Out::map([
            ("Id", Out::text(&s.id)),
            ("Label", Out::text(&s.label)),
            ("Timestamps", Out::List(s.points.iter().map(|&(t, _)| Out::Time(t)).collect())),
            ("Values", Out::List(s.points.iter().map(|&(_, v)| Out::Number(v)).collect())),
            ("StatusCode", Out::text("Complete")),
        ])
    });
    Out::map([("MetricDataResults", Out::List(results.collect())), ("Messages", Out::List(Vec::new()))])
}

#[cfg(test)]
mod tests {
    use serde_json::{Value as Json, json};

    use super::super::test_support::*;
    use super::*;

    fn latency_request() -> Json {
        json!({
            "StartTime": 1000.5, "EndTime": 1060,
            "MetricDataQueries": [{"Id": "m1", "MetricStat": {
                "Metric": {"Namespace": "AWS/SageMaker", "MetricName": "ModelLatency",
                           "Dimensions": [{"Name": "EndpointName", "Value": "e"}, {"Name": "VariantName", "Value": "AllTraffic"}]},
                "Period": 60, "Stat": "p99"}}]
        })
    }

    #[test]
    fn cbor_and_json_requests_decode_to_the_same_query() {
        let json_doc = latency_request();
        let from_json = decode_request(&json_doc).unwrap();
        let from_cbor = decode_request(&cbor_of(&json_doc)).unwrap();
        assert_eq!(from_json, from_cbor);
        assert_eq!(from_cbor.queries[0].metric.dimensions.len(), 2);
        assert!(from_cbor.descending, "CloudWatch scans newest first by default");
    }

    #[test]
    fn bad_queries_are_refused_with_a_reason() {
        let doc = json!({"StartTime": 10, "EndTime": 5, "MetricDataQueries": []});
        assert!(decode_request(&doc).unwrap_err().message.contains("StartTime"));
        let doc = json!({"StartTime": 1, "EndTime": 5, "MetricDataQueries": [{"Id": "x", "Expression": "SUM(m)"}]});
        assert!(decode_request(&doc).unwrap_err().message.contains("Expression"));
    }

    #[test]
    fn a_query_reads_what_was_served() {
        let store = store_with(&[("e", &[10, 30])]);
        let mut doc = latency_request();
        doc["StartTime"] = json!(now() - 120.0);
        doc["EndTime"] = json!(now() + 60.0);
        doc["MetricDataQueries"][0]["MetricStat"]["Stat"] = json!("Maximum");
        let answer = answer(&store, &doc).unwrap().to_json();
        let result = &answer["MetricDataResults"][0];
        assert_eq!(result["Label"], "ModelLatency");
        assert_eq!(result["Values"].as_array().unwrap().iter().filter_map(Json::as_f64).fold(0.0, f64::max), 30_000.0);
    }
}
