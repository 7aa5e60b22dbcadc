//! PutMetricAlarm, DescribeAlarms and DeleteAlarms on the wire. Requests in
//! either of CloudWatch's protocols (RPC v2 CBOR, awsJson 1.0) become one JSON
//! document that one decoder reads; answers go back in the request's protocol.

use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use axum::body::Body;
use axum::http::{Response, StatusCode};
use serde_json::{Value, json};

use super::evaluation::{Comparison, MissingData, Rule, StateValue};
use super::{Alarm, AlarmConfig, AlarmStore, Statistic};
use crate::simulator::control::validation::{constraint, int_member, not_null, str_member, strings_member};
use crate::simulator::metrics::Stat;
use crate::simulator::profile::ScalingClock;
use crate::simulator::wire::{
    AwsError, Protocol, body_response, cbor_to_json, encode_cbor, json_response, json_to_cbor, page, timestamp,
};

/// The members of DescribeAlarms' answer that are timestamps.
const TIMESTAMPS: [&str; 3] = ["AlarmConfigurationUpdatedTimestamp", "StateUpdatedTimestamp", "StateTransitionedTimestamp"];

const STATISTICS: [&str; 5] = ["SampleCount", "Average", "Sum", "Minimum", "Maximum"];

/// Whether `operation` is one of the alarm operations this module answers.
pub fn serves(operation: &str) -> bool {
    matches!(operation, "PutMetricAlarm" | "DescribeAlarms" | "DeleteAlarms")
}

/// Answers one alarm operation in `protocol`.
pub fn handle(
    alarms: &Mutex<AlarmStore>,
    clock: ScalingClock,
    protocol: Protocol,
    operation: &str,
    region: &str,
    body: &[u8],
    now: SystemTime,
) -> Response<Body> {
    let answer = || -> Result<Response<Body>, AwsError> {
        let input = decode(protocol, body)?;
        let mut alarms = alarms.lock().unwrap_or_else(PoisonError::into_inner);
        let output = match operation {
            "PutMetricAlarm" => {
                alarms.put(put_metric_alarm(&input)?, region, clock, now);
                json!({})
            }
            "DescribeAlarms" => describe_alarms(&alarms, &input)?,
            _ => delete_alarms(&mut alarms, &input)?,
        };
        Ok(match protocol {
            Protocol::RpcV2Cbor => body_response(StatusCode::OK, protocol, encode_cbor(&json_to_cbor(&output, &TIMESTAMPS))),
            _ => json_response(protocol, &output),
        })
    };
    answer().unwrap_or_else(|e| e.into_response(protocol))
}

fn decode(protocol: Protocol, body: &[u8]) -> Result<Value, AwsError> {
    let malformed = |what: &str, e: &dyn std::fmt::Display| {
        AwsError::new(StatusCode::BAD_REQUEST, "SerializationException", format!("malformed {what}: {e}"))
    };
    if body.is_empty() {
        return Ok(json!({}));
    }
    match protocol {
        Protocol::RpcV2Cbor => {
            let doc: ciborium::Value = ciborium::from_reader(body).map_err(|e| malformed("CBOR", &e))?;
            Ok(cbor_to_json(&doc))
        }
        _ => serde_json::from_slice(body).map_err(|e| malformed("JSON", &e)),
    }
}

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::new(StatusCode::BAD_REQUEST, "InvalidParameterValue", message)
}

fn combination(message: impl Into<String>) -> AwsError {
    AwsError::new(StatusCode::BAD_REQUEST, "InvalidParameterCombination", message)
}

fn missing(member: &str) -> AwsError {
    AwsError::new(StatusCode::BAD_REQUEST, "MissingParameter", format!("The parameter {member} is required."))
}

/// CloudWatch names its member-constraint errors ValidationError.
fn as_cloudwatch(error: AwsError) -> AwsError {
    AwsError { code: "ValidationError", ..error }
}

fn required_text<'v>(input: &'v Value, key: &str, member: &str) -> Result<&'v str, AwsError> {
    str_member(input, key).ok_or_else(|| as_cloudwatch(not_null(member)))
}

fn whole(input: &Value, key: &str, member: &str) -> Result<Option<i64>, AwsError> {
    int_member(input, key, member).map_err(as_cloudwatch)
}

fn at_least_one(value: i64, member: &str) -> Result<u32, AwsError> {
    u32::try_from(value)
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| as_cloudwatch(constraint(&value.to_string(), member, "Member must have value greater than or equal to 1")))
}

fn actions(input: &Value, key: &str, member: &str) -> Result<Vec<String>, AwsError> {
    let list = strings_member(input, key);
    if list.len() > 5 {
        return Err(as_cloudwatch(constraint(&format!("{list:?}"), member, "Member must have length less than or equal to 5")));
    }
    Ok(list)
}

fn put_metric_alarm(input: &Value) -> Result<AlarmConfig, AwsError> {
    let name = required_text(input, "AlarmName", "alarmName")?;
    if name.is_empty() || name.len() > 255 {
        return Err(as_cloudwatch(constraint(name, "alarmName", "Member must have length between 1 and 255")));
    }
    let comparison_text = required_text(input, "ComparisonOperator", "comparisonOperator")?;
    let comparison = Comparison::parse(comparison_text).ok_or_else(|| {
        if comparison_text.contains("Lower") || comparison_text.contains("Upper") {
            combination("The simulator evaluates static thresholds only; anomaly detection bands are not simulated.")
        } else {
            as_cloudwatch(constraint(
                comparison_text,
                "comparisonOperator",
                "Member must satisfy enum value set: [GreaterThanOrEqualToThreshold, GreaterThanThreshold, LessThanThreshold, LessThanOrEqualToThreshold, LessThanLowerOrGreaterThanUpperThreshold, LessThanLowerThreshold, GreaterThanUpperThreshold]",
            ))
        }
    })?;
    let evaluation_periods = at_least_one(
        whole(input, "EvaluationPeriods", "evaluationPeriods")?.ok_or_else(|| as_cloudwatch(not_null("evaluationPeriods")))?,
        "evaluationPeriods",
    )?;
    if input.get("Metrics").is_some() {
        return Err(invalid(
            "The simulator evaluates single-metric alarms (Namespace, MetricName, Statistic); Metrics queries are not supported.",
        ));
    }
    let namespace = str_member(input, "Namespace").ok_or_else(|| missing("Namespace"))?;
    let metric_name = str_member(input, "MetricName").ok_or_else(|| missing("MetricName"))?;
    let statistic = statistic(input)?;
    let period = at_least_one(whole(input, "Period", "period")?.ok_or_else(|| missing("Period"))?, "period")?;
    if !matches!(period, 10 | 20 | 30) && period % 60 != 0 {
        return Err(invalid("The parameter Period must be 10, 20, 30 or a multiple of 60."));
    }
    if u64::from(evaluation_periods) * u64::from(period) > 86_400 {
        return Err(as_cloudwatch(AwsError::validation(
            "Metrics cannot be checked across more than a day (EvaluationPeriods * Period must be <= 86400).",
        )));
    }
    let datapoints_to_alarm =
        whole(input, "DatapointsToAlarm", "datapointsToAlarm")?.map(|d| at_least_one(d, "datapointsToAlarm")).transpose()?;
    if datapoints_to_alarm.is_some_and(|d| d > evaluation_periods) {
        return Err(invalid("DatapointsToAlarm must be less than or equal to EvaluationPeriods."));
    }
    let threshold = input.get("Threshold").and_then(Value::as_f64).ok_or_else(|| missing("Threshold"))?;
    let treat_missing_data = str_member(input, "TreatMissingData").map(str::to_string);
    let missing_data = match &treat_missing_data {
        None => MissingData::Missing,
        Some(text) => MissingData::parse(text).ok_or_else(|| {
            invalid(format!(
                "The value {text} for parameter TreatMissingData is not valid (breaching, notBreaching, ignore, missing)."
            ))
        })?,
    };
    let dimensions = dimensions(input)?;
    Ok(AlarmConfig {
        name: name.to_string(),
        description: str_member(input, "AlarmDescription").map(str::to_string),
        actions_enabled: input.get("ActionsEnabled").and_then(Value::as_bool).unwrap_or(true),
        ok_actions: actions(input, "OKActions", "oKActions")?,
        alarm_actions: actions(input, "AlarmActions", "alarmActions")?,
        insufficient_data_actions: actions(input, "InsufficientDataActions", "insufficientDataActions")?,
        namespace: namespace.to_string(),
        metric_name: metric_name.to_string(),
        dimensions,
        statistic,
        period,
        unit: str_member(input, "Unit").map(str::to_string),
        rule: Rule {
            comparison,
            threshold,
            evaluation_periods: evaluation_periods as usize,
            datapoints_to_alarm: datapoints_to_alarm.unwrap_or(evaluation_periods) as usize,
            missing: missing_data,
        },
        datapoints_to_alarm,
        treat_missing_data,
        evaluate_low_sample_count_percentile: str_member(input, "EvaluateLowSampleCountPercentile").map(str::to_string),
    })
}

fn statistic(input: &Value) -> Result<Statistic, AwsError> {
    match (str_member(input, "Statistic"), str_member(input, "ExtendedStatistic")) {
        (Some(_), Some(_)) => Err(combination("Statistic and ExtendedStatistic cannot both be specified.")),
        (None, None) => Err(missing("Statistic or ExtendedStatistic")),
        (Some(standard), None) if STATISTICS.contains(&standard) => Ok(Statistic::Standard(standard.to_string())),
        (Some(other), None) => Err(as_cloudwatch(constraint(
            other,
            "statistic",
            "Member must satisfy enum value set: [SampleCount, Average, Sum, Minimum, Maximum]",
        ))),
        (None, Some(extended)) => match Stat::parse(extended) {
            Some(Stat::Percentile(_)) => Ok(Statistic::Extended(extended.to_string())),
            _ => Err(invalid(format!(
                "The extended statistic {extended} is not supported by the simulator (percentiles pNN are)."
            ))),
        },
    }
}

fn dimensions(input: &Value) -> Result<Vec<(String, String)>, AwsError> {
    let list = input.get("Dimensions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    if list.len() > 30 {
        return Err(as_cloudwatch(constraint(
            &list.len().to_string(),
            "dimensions",
            "Member must have length less than or equal to 30",
        )));
    }
    list.iter()
        .enumerate()
        .map(|(i, d)| {
            let member = |field: &str| format!("dimensions.{}.member.{field}", i + 1);
            Ok((required_text(d, "Name", &member("name"))?.to_string(), required_text(d, "Value", &member("value"))?.to_string()))
        })
        .collect()
}

fn describe_alarms(alarms: &AlarmStore, input: &Value) -> Result<Value, AwsError> {
    let names = strings_member(input, "AlarmNames");
    let prefix = str_member(input, "AlarmNamePrefix");
    if !names.is_empty() && prefix.is_some() {
        return Err(combination("AlarmNamePrefix and AlarmNames cannot both be specified."));
    }
    let state = match str_member(input, "StateValue") {
        None => None,
        Some(text) => Some(StateValue::parse(text).ok_or_else(|| {
            as_cloudwatch(constraint(text, "stateValue", "Member must satisfy enum value set: [OK, ALARM, INSUFFICIENT_DATA]"))
        })?),
    };
    let action_prefix = str_member(input, "ActionPrefix");
    let types = strings_member(input, "AlarmTypes");
    // Composite alarms are not simulated, so asking about them finds nothing.
    let wants_metric_alarms = (types.is_empty() || types.iter().any(|t| t == "MetricAlarm"))
        && input.get("ChildrenOfAlarmName").is_none()
        && input.get("ParentsOfAlarmName").is_none();
    let max = whole(input, "MaxRecords", "maxRecords")?.unwrap_or(50);
    if !(1..=100).contains(&max) {
        return Err(as_cloudwatch(constraint(&max.to_string(), "maxRecords", "Member must have value between 1 and 100")));
    }
    let matching: Vec<&Alarm> = alarms
        .alarms
        .values()
        .filter(|_| wants_metric_alarms)
        .filter(|a| names.is_empty() || names.contains(&a.config.name))
        .filter(|a| prefix.is_none_or(|p| a.config.name.starts_with(p)))
        .filter(|a| state.is_none_or(|s| a.state == s))
        .filter(|a| {
            action_prefix.is_none_or(|p| {
                [&a.config.ok_actions, &a.config.alarm_actions, &a.config.insufficient_data_actions]
                    .iter()
                    .any(|list| list.iter().any(|action| action.starts_with(p)))
            })
        })
        .collect();
    let token = str_member(input, "NextToken");
    let (shown, next) = page(matching, token, max as usize).map_err(|()| {
        AwsError::new(
            StatusCode::BAD_REQUEST,
            "InvalidNextToken",
            format!("The NextToken {} is not valid.", token.unwrap_or_default()),
        )
    })?;
    let mut out = json!({
        "MetricAlarms": shown.into_iter().map(describe_alarm).collect::<Vec<_>>(),
        "CompositeAlarms": [],
    });
    if let Some(next) = next {
        out["NextToken"] = json!(next);
    }
    Ok(out)
}

fn describe_alarm(alarm: &Alarm) -> Value {
    let c = &alarm.config;
    let mut out = json!({
        "AlarmName": c.name,
        "AlarmArn": alarm.arn,
        "AlarmConfigurationUpdatedTimestamp": timestamp(alarm.configured),
        "ActionsEnabled": c.actions_enabled,
        "OKActions": c.ok_actions,
        "AlarmActions": c.alarm_actions,
        "InsufficientDataActions": c.insufficient_data_actions,
        "StateValue": alarm.state.as_str(),
        "StateReason": alarm.reason,
        "StateUpdatedTimestamp": timestamp(alarm.state_updated),
        "StateTransitionedTimestamp": timestamp(alarm.state_transitioned),
        "MetricName": c.metric_name,
        "Namespace": c.namespace,
        "Dimensions": c.dimensions.iter().map(|(n, v)| json!({"Name": n, "Value": v})).collect::<Vec<_>>(),
        "Period": c.period,
        "EvaluationPeriods": c.rule.evaluation_periods,
        "Threshold": c.rule.threshold,
        "ComparisonOperator": c.rule.comparison.as_str(),
    });
    match &c.statistic {
        Statistic::Standard(s) => out["Statistic"] = json!(s),
        Statistic::Extended(s) => out["ExtendedStatistic"] = json!(s),
    }
    let optional = [
        ("AlarmDescription", c.description.clone().map(Value::from)),
        ("StateReasonData", alarm.reason_data.clone().map(Value::from)),
        ("Unit", c.unit.clone().map(Value::from)),
        ("DatapointsToAlarm", c.datapoints_to_alarm.map(Value::from)),
        ("TreatMissingData", c.treat_missing_data.clone().map(Value::from)),
        ("EvaluateLowSampleCountPercentile", c.evaluate_low_sample_count_percentile.clone().map(Value::from)),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            out[key] = value;
        }
    }
    out
}

fn delete_alarms(alarms: &mut AlarmStore, input: &Value) -> Result<Value, AwsError> {
    let names = strings_member(input, "AlarmNames");
    if input.get("AlarmNames").is_none() {
        return Err(as_cloudwatch(not_null("alarmNames")));
    }
    if names.len() > 100 {
        return Err(as_cloudwatch(constraint(
            &names.len().to_string(),
            "alarmNames",
            "Member must have length less than or equal to 100",
        )));
    }
    // In the event of an error no alarm is deleted, as the API reference says.
    let unknown: Vec<&String> = names.iter().filter(|n| alarms.get(n).is_none()).collect();
    if !unknown.is_empty() {
        return Err(AwsError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!(
                "{} Alarm(s) not found: {}",
                unknown.len(),
                unknown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    alarms.delete(&names);
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Value {
        json!({
            "AlarmName": "high-latency",
            "MetricName": "ModelLatency", "Namespace": "AWS/SageMaker",
            "Dimensions": [{"Name": "EndpointName", "Value": "e"}, {"Name": "VariantName", "Value": "AllTraffic"}],
            "ExtendedStatistic": "p99", "Period": 60, "EvaluationPeriods": 5, "DatapointsToAlarm": 3,
            "Threshold": 250000, "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching",
            "AlarmActions": ["arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:x:resource/sagemaker/endpoint/e/variant/AllTraffic:policyName/p"],
        })
    }

    #[test]
    fn put_metric_alarm_reads_every_member() {
        let config = put_metric_alarm(&request()).unwrap();
        assert_eq!(config.statistic, Statistic::Extended("p99".into()));
        assert_eq!((config.rule.evaluation_periods, config.rule.datapoints_to_alarm), (5, 3));
        assert_eq!(config.rule.missing, MissingData::NotBreaching);
        assert_eq!(config.rule.threshold, 250_000.0);
        assert_eq!(config.dimensions.len(), 2);
        assert!(config.actions_enabled);
    }

    #[test]
    fn put_metric_alarm_refuses_what_cloudwatch_refuses() {
        let refused = |change: &dyn Fn(&mut Value)| {
            let mut input = request();
            change(&mut input);
            put_metric_alarm(&input).unwrap_err()
        };
        let e = refused(&|i| i["Statistic"] = json!("Sum"));
        assert_eq!(e.code, "InvalidParameterCombination");
        let e = refused(&|i| i["Period"] = json!(45));
        assert!(e.message.contains("Period"), "{}", e.message);
        let e = refused(&|i| i["DatapointsToAlarm"] = json!(9));
        assert!(e.message.contains("DatapointsToAlarm"), "{}", e.message);
        let e = refused(&|i| i["EvaluationPeriods"] = json!(2000));
        assert!(e.message.contains("more than a day"), "{}", e.message);
        let e = refused(&|i| i["ComparisonOperator"] = json!("Bigger"));
        assert_eq!(e.code, "ValidationError");
        let e = refused(&|i| {
            i.as_object_mut().unwrap().remove("AlarmName");
        });
        assert!(e.message.contains("'alarmName'"), "{}", e.message);
        let e = refused(&|i| i["TreatMissingData"] = json!("sometimes"));
        assert_eq!(e.code, "InvalidParameterValue");
    }

    #[test]
    fn describe_filters_and_pages() {
        let mut store = AlarmStore::default();
        let clock = ScalingClock::new(1.0);
        for name in ["a-1", "a-2", "b-1"] {
            let mut config = put_metric_alarm(&request()).unwrap();
            config.name = name.into();
            store.put(config, "us-east-1", clock, SystemTime::now());
        }
        let names = |out: &Value| -> Vec<String> {
            out["MetricAlarms"].as_array().unwrap().iter().map(|a| a["AlarmName"].as_str().unwrap().to_string()).collect()
        };
        let out = describe_alarms(&store, &json!({"AlarmNamePrefix": "a-", "MaxRecords": 1})).unwrap();
        assert_eq!(names(&out), ["a-1"]);
        let out = describe_alarms(&store, &json!({"AlarmNamePrefix": "a-", "NextToken": out["NextToken"]})).unwrap();
        assert_eq!(names(&out), ["a-2"]);
        assert!(out.get("NextToken").is_none());
        let out = describe_alarms(&store, &json!({"StateValue": "INSUFFICIENT_DATA", "AlarmNames": ["b-1", "zz"]})).unwrap();
        assert_eq!(names(&out), ["b-1"]);
        assert_eq!(out["MetricAlarms"][0]["StateReason"], "Unchecked: Initial alarm creation");
        let out = describe_alarms(&store, &json!({"StateValue": "ALARM"})).unwrap();
        assert!(names(&out).is_empty());
        assert_eq!(describe_alarms(&store, &json!({"NextToken": "nope"})).unwrap_err().code, "InvalidNextToken");
        assert_eq!(delete_alarms(&mut store, &json!({"AlarmNames": ["a-1", "zz"]})).unwrap_err().code, "ResourceNotFound");
        assert!(store.get("a-1").is_some(), "nothing is deleted when one name is unknown");
        delete_alarms(&mut store, &json!({"AlarmNames": ["a-1"]})).unwrap();
        assert!(store.get("a-1").is_none());
    }

    /// The same calls in both of CloudWatch's protocols; CBOR answers tag
    /// their timestamps.
    #[tokio::test]
    async fn both_protocols_put_and_describe_the_same_alarm() {
        let alarms = Mutex::new(AlarmStore::default());
        let clock = ScalingClock::new(1.0);
        let call = |protocol: Protocol, operation: &str, input: &Value| {
            let body = match protocol {
                Protocol::RpcV2Cbor => encode_cbor(&json_to_cbor(input, &[])),
                _ => serde_json::to_vec(input).unwrap(),
            };
            handle(&alarms, clock, protocol, operation, "us-west-2", &body, SystemTime::now())
        };
        let body = |response: Response<Body>| async move {
            assert_eq!(response.status(), StatusCode::OK);
            axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap()
        };
        body(call(Protocol::AwsJson10, "PutMetricAlarm", &request())).await;
        let mut cbor_request = request();
        cbor_request["AlarmName"] = json!("from-cbor");
        body(call(Protocol::RpcV2Cbor, "PutMetricAlarm", &cbor_request)).await;

        let json_answer: Value =
            serde_json::from_slice(&body(call(Protocol::AwsJson10, "DescribeAlarms", &json!({}))).await).unwrap();
        let names: Vec<&str> =
            json_answer["MetricAlarms"].as_array().unwrap().iter().map(|a| a["AlarmName"].as_str().unwrap()).collect();
        assert_eq!(names, ["from-cbor", "high-latency"]);
        assert!(json_answer["MetricAlarms"][0]["StateUpdatedTimestamp"].is_number());
        assert_eq!(json_answer["MetricAlarms"][0]["AlarmArn"], "arn:aws:cloudwatch:us-west-2:123456789012:alarm:from-cbor");

        let cbor_bytes = body(call(Protocol::RpcV2Cbor, "DescribeAlarms", &json!({"AlarmNames": ["from-cbor"]}))).await;
        let cbor: ciborium::Value = ciborium::from_reader(&cbor_bytes[..]).unwrap();
        let alarm = &cbor_to_json(&cbor)["MetricAlarms"][0];
        assert_eq!(alarm["ExtendedStatistic"], "p99");
        let raw = format!("{cbor:?}");
        assert!(raw.contains("Tag(1, Float("), "timestamps carry CBOR tag 1: {raw}");

        let refused = call(Protocol::RpcV2Cbor, "DeleteAlarms", &json!({"AlarmNames": ["nope"]}));
        assert_eq!(refused.status(), StatusCode::NOT_FOUND);
        assert_eq!(refused.headers()["x-amzn-query-error"], "ResourceNotFound;Sender");
    }
}
