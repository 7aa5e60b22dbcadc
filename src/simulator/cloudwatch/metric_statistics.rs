//! GetMetricStatistics: the basic statistics or the percentiles of one
//! metric per period, each datapoint with the unit the metric is published in.

use std::collections::BTreeMap;

use super::{Doc, MetricId, Out, Window, datapoints, decode_metric, decode_window, invalid, invalid_combination, required};
use crate::simulator::metrics::{MetricName, MetricStore, Stat};
use crate::simulator::wire::AwsError;

/// More datapoints than this in one answer is refused, as CloudWatch does.
const MAX_DATAPOINTS: i64 = 1440;

const BASIC_STATISTICS: [&str; 5] = ["SampleCount", "Average", "Sum", "Minimum", "Maximum"];

/// The statistics asked for, each with the name it is answered under.
/// CloudWatch takes basic statistics or percentiles in one call, never both.
#[derive(Debug, Clone, PartialEq)]
enum Asked {
    Basic(Vec<(String, Stat)>),
    Percentiles(Vec<(String, Stat)>),
}

impl Asked {
    fn each(&self) -> &[(String, Stat)] {
        match self {
            Asked::Basic(stats) | Asked::Percentiles(stats) => stats,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Request {
    metric: MetricId,
    window: Window,
    period: i64,
    asked: Asked,
    unit: Option<String>,
}

pub(super) fn answer<D: Doc>(store: &MetricStore, doc: &D) -> Result<Out, AwsError> {
    let request = decode_request(doc)?;
    Ok(encode(&request, &read(store, &request)))
}

/// Checks in CloudWatch's order: which statistics first (it answers that
/// even to a request missing everything else), then what is required, then
/// the window and period.
fn decode_request<D: Doc>(doc: &D) -> Result<Request, AwsError> {
    let asked = decode_asked(doc)?;
    required(doc, "Namespace")?;
    required(doc, "MetricName")?;
    let window = decode_window(doc)?;
    let period = decode_period(doc)?;
    check_datapoint_count(window, period)?;
    Ok(Request { metric: decode_metric(doc), window, period, asked, unit: doc.text_of("Unit") })
}

fn decode_asked<D: Doc>(doc: &D) -> Result<Asked, AwsError> {
    let names = |key: &str| -> Vec<String> { doc.items(key).iter().map(|n| n.text().unwrap_or_default().to_string()).collect() };
    let (basic, percentiles) = (names("Statistics"), names("ExtendedStatistics"));
    match (basic.is_empty(), percentiles.is_empty()) {
        (true, true) => {
            Err(invalid_combination("At least one of the parameters Statistics and ExtendedStatistics must be specified."))
        }
        (false, false) => Err(invalid_combination(
            "The parameters Statistics and ExtendedStatistics are mutually exclusive and you have specified both.",
        )),
        (false, true) => {
            let parse = |name: &str| if BASIC_STATISTICS.contains(&name) { Stat::parse(name) } else { None };
            parse_each("Statistics", basic, parse, "must be a value in the set [SampleCount, Average, Sum, Minimum, Maximum]")
                .map(Asked::Basic)
        }
        (true, false) => {
            let parse = |name: &str| Stat::parse(name).filter(|stat| matches!(stat, Stat::Percentile(_)));
            parse_each("ExtendedStatistics", percentiles, parse, "must be a percentile from p0.0 to p100").map(Asked::Percentiles)
        }
    }
}

/// Parses each named statistic, once each, naming the first invalid one as
/// CloudWatch does (`Statistics.member.2`).
fn parse_each(
    parameter: &str,
    names: Vec<String>,
    parse: impl Fn(&str) -> Option<Stat>,
    rule: &str,
) -> Result<Vec<(String, Stat)>, AwsError> {
    let mut stats: Vec<(String, Stat)> = Vec::new();
    for (i, name) in names.into_iter().enumerate() {
        let stat = parse(&name).ok_or_else(|| invalid(format!("The parameter {parameter}.member.{} {rule}.", i + 1)))?;
        if !stats.iter().any(|(seen, _)| *seen == name) {
            stats.push((name, stat));
        }
    }
    Ok(stats)
}

/// CloudWatch's granularities: whole minutes, or 1, 5, 10, 20 or 30 seconds
/// for high-resolution metrics. The simulator keeps every second, so its
/// metrics answer at high resolution too (SageMaker's own are per minute).
fn decode_period<D: Doc>(doc: &D) -> Result<i64, AwsError> {
    let period = required(doc, "Period")?.number().unwrap_or(0.0);
    let whole = period as i64;
    let valid = whole as f64 == period && (matches!(whole, 1 | 5 | 10 | 20 | 30) || (whole > 0 && whole % 60 == 0));
    if !valid {
        return Err(invalid(format!("The parameter Period must be 1, 5, 10, 20, 30 or a multiple of 60, not {period}.")));
    }
    Ok(whole)
}

fn check_datapoint_count(window: Window, period: i64) -> Result<(), AwsError> {
    let requested = ((window.end - window.start) / period as f64).ceil() as i64;
    if requested > MAX_DATAPOINTS {
        return Err(invalid_combination(format!(
            "You have requested up to {requested} datapoints, which exceeds the limit of {MAX_DATAPOINTS}. \
             You may reduce the datapoints requested by increasing Period, or decreasing the time range."
        )));
    }
    Ok(())
}

/// Each period's values, as (index of the asked statistic, value). Each
/// statistic is read on its own, so a period that begins between two reads
/// holds only some of them.
fn read(store: &MetricStore, request: &Request) -> BTreeMap<i64, Vec<(usize, f64)>> {
    let mut by_period: BTreeMap<i64, Vec<(usize, f64)>> = BTreeMap::new();
    for (i, (_, stat)) in request.asked.each().iter().enumerate() {
        let points = datapoints(store, &request.metric, request.unit.as_deref(), *stat, request.period, request.window);
        for (at, value) in points {
            by_period.entry(at).or_default().push((i, value));
        }
    }
    by_period
}

fn encode(request: &Request, by_period: &BTreeMap<i64, Vec<(usize, f64)>>) -> Out {
    let unit = MetricName::parse(&request.metric.namespace, &request.metric.metric_name).map_or("None", MetricName::unit);
    let asked = request.asked.each();
    let datapoints = by_period.iter().map(|(&at, values)| {
        let named = values.iter().map(|&(i, value)| (asked[i].0.clone(), Out::Number(value)));
        let mut members = vec![("Timestamp".to_string(), Out::Time(at)), ("Unit".to_string(), Out::text(unit))];
        match request.asked {
            Asked::Basic(_) => members.extend(named),
            Asked::Percentiles(_) => members.push(("ExtendedStatistics".to_string(), Out::map(named))),
        }
        Out::Map(members)
    });
    Out::map([("Label", Out::text(&request.metric.metric_name)), ("Datapoints", Out::List(datapoints.collect()))])
}

#[cfg(test)]
mod tests {
    use serde_json::{Value as Json, json};

    use super::super::test_support::*;
    use super::*;

    fn request(metric: &str, statistics: Json) -> Json {
        let mut doc = json!({
            "Namespace": "AWS/SageMaker", "MetricName": metric,
            "Dimensions": [{"Name": "EndpointName", "Value": "e"}, {"Name": "VariantName", "Value": "AllTraffic"}],
            "StartTime": now() - 300.0, "EndTime": now() + 60.0, "Period": 60,
        });
        for (key, value) in statistics.as_object().unwrap() {
            doc[key] = value.clone();
        }
        doc
    }

    fn refusal(doc: Json) -> AwsError {
        decode_request(&doc).unwrap_err()
    }

    #[test]
    fn cbor_and_json_requests_decode_to_the_same_query() {
        let doc = request("ModelLatency", json!({"ExtendedStatistics": ["p99", "p50"], "Unit": "Microseconds"}));
        let from_json = decode_request(&doc).unwrap();
        assert_eq!(decode_request(&cbor_of(&doc)).unwrap(), from_json);
        assert_eq!(
            from_json.asked,
            Asked::Percentiles(vec![("p99".into(), Stat::Percentile(99.0)), ("p50".into(), Stat::Percentile(50.0))])
        );
        assert_eq!(from_json.metric.dimensions.len(), 2);
        assert_eq!(from_json.unit.as_deref(), Some("Microseconds"));
    }

    #[test]
    fn statistics_or_percentiles_but_not_both_nor_neither() {
        let neither = refusal(json!({}));
        assert_eq!(
            (neither.code, neither.message.as_str()),
            (
                "InvalidParameterCombination",
                "At least one of the parameters Statistics and ExtendedStatistics must be specified."
            )
        );
        let both = refusal(request("ModelLatency", json!({"Statistics": ["Sum"], "ExtendedStatistics": ["p99"]})));
        assert_eq!(both.code, "InvalidParameterCombination");
        assert!(both.message.contains("mutually exclusive"), "{}", both.message);
        let percentile_as_basic = refusal(request("ModelLatency", json!({"Statistics": ["Sum", "p99"]})));
        assert_eq!(percentile_as_basic.code, "InvalidParameterValue");
        assert!(percentile_as_basic.message.contains("Statistics.member.2"), "{}", percentile_as_basic.message);
        for bad in ["p101", "Sum", "tm99"] {
            let error = refusal(request("ModelLatency", json!({"ExtendedStatistics": [bad]})));
            assert_eq!(error.code, "InvalidParameterValue", "{bad}");
        }
    }

    #[test]
    fn required_members_are_named() {
        let mut doc = request("Invocations", json!({"Statistics": ["Sum"]}));
        doc.as_object_mut().unwrap().remove("Namespace");
        let missing = refusal(doc);
        assert_eq!((missing.code, missing.message.as_str()), ("MissingParameter", "The parameter Namespace is required."));
    }

    #[test]
    fn periods_are_whole_minutes_or_high_resolution() {
        for ok in [1, 5, 10, 20, 30, 60, 300, 3600] {
            let mut doc = request("Invocations", json!({"Statistics": ["Sum"]}));
            doc["Period"] = json!(ok);
            assert!(decode_request(&doc).is_ok(), "period {ok}");
        }
        for bad in [0, 7, 45, 90, -60] {
            let mut doc = request("Invocations", json!({"Statistics": ["Sum"]}));
            doc["Period"] = json!(bad);
            assert_eq!(refusal(doc).code, "InvalidParameterValue", "period {bad}");
        }
    }

    #[test]
    fn more_than_1440_datapoints_are_refused() {
        let mut doc = request("Invocations", json!({"Statistics": ["Sum"]}));
        doc["StartTime"] = json!(0);
        doc["EndTime"] = json!(1440 * 60);
        assert!(decode_request(&doc).is_ok(), "exactly 1,440 is allowed");
        doc["EndTime"] = json!(1440 * 60 + 1);
        let error = refusal(doc);
        assert_eq!(error.code, "InvalidParameterCombination");
        assert!(error.message.starts_with("You have requested up to 1441 datapoints"), "{}", error.message);
        let reversed =
            refusal(request("Invocations", json!({"Statistics": ["Sum"], "StartTime": now(), "EndTime": now() - 60.0})));
        assert!(reversed.message.contains("StartTime must be less than"), "{}", reversed.message);
    }

    fn datapoints_of(answer: &Json) -> &Vec<Json> {
        answer["Datapoints"].as_array().unwrap()
    }

    fn total(answer: &Json, stat: &str) -> f64 {
        datapoints_of(answer).iter().filter_map(|d| d[stat].as_f64()).sum()
    }

    #[test]
    fn datapoints_carry_the_asked_statistics_and_the_unit() {
        let store = store_with(&[("e", &[10, 20, 30, 40])]);
        let read = |doc: Json| answer(&store, &doc).unwrap().to_json();

        let invocations = read(request("Invocations", json!({"Statistics": ["Sum", "Maximum"]})));
        assert_eq!(invocations["Label"], "Invocations");
        assert_eq!(total(&invocations, "Sum"), 4.0);
        assert!(datapoints_of(&invocations).iter().all(|d| d["Unit"] == "None" && d["Timestamp"].is_i64()));

        let latency = read(request("ModelLatency", json!({"ExtendedStatistics": ["p0", "p100"]})));
        let highest = datapoints_of(&latency).iter().filter_map(|d| d["ExtendedStatistics"]["p100"].as_f64()).fold(0.0, f64::max);
        let lowest =
            datapoints_of(&latency).iter().filter_map(|d| d["ExtendedStatistics"]["p0"].as_f64()).fold(f64::MAX, f64::min);
        assert_eq!((lowest, highest), (10_000.0, 40_000.0), "ModelLatency is in microseconds");
        assert!(datapoints_of(&latency).iter().all(|d| d["Unit"] == "Microseconds" && d.get("p100").is_none()));

        let cpu = read(json!({"Namespace": "/aws/sagemaker/Endpoints", "MetricName": "CPUUtilization",
            "Dimensions": [{"Name": "VariantName", "Value": "AllTraffic"}, {"Name": "EndpointName", "Value": "e"}],
            "StartTime": now() - 300.0, "EndTime": now() + 60.0, "Period": 60, "Statistics": ["Average"]}));
        assert!(datapoints_of(&cpu).iter().all(|d| d["Unit"] == "Percent"));
        assert!(!datapoints_of(&cpu).is_empty());

        let other_unit = read(request("ModelLatency", json!({"Statistics": ["SampleCount"], "Unit": "Milliseconds"})));
        assert_eq!(other_unit["Label"], "ModelLatency");
        assert!(datapoints_of(&other_unit).is_empty(), "CloudWatch never converts units");
        let in_unit = read(request("ModelLatency", json!({"Statistics": ["SampleCount"], "Unit": "Microseconds"})));
        assert_eq!(total(&in_unit, "SampleCount"), 4.0);
    }
}
