//! CloudWatch metric alarms: the alarms themselves (PutMetricAlarm,
//! DescribeAlarms, DeleteAlarms in [`api`]), and their evaluation against what
//! the simulator served ([`MetricStore`]) on the scaling clock.
//!
//! An alarm is evaluated once each of its periods ends, over its last
//! EvaluationPeriods periods ([`evaluation`] holds CloudWatch's rules). When it
//! changes state it asks for that state's actions, and — as CloudWatch does
//! for Auto Scaling actions — again every minute it stays there. The only
//! actions the simulator carries out are Application Auto Scaling policies,
//! which [`crate::simulator::autoscaling`] runs; alarms know them as ARNs only.

pub mod api;
pub mod evaluation;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde_json::json;

use super::ACCOUNT_ID;
use super::metrics::{MetricStore, Stat, epoch_seconds};
use super::profile::ScalingClock;
pub use evaluation::StateValue;
use evaluation::{EXTRA_PERIODS, Rule, Verdict, evaluate};

/// How often an alarm that stays in a state re-invokes its Auto Scaling
/// actions (AWS time; the scaling clock compresses it).
const REINVOKE_EVERY: Duration = Duration::from_secs(60);

/// The statistic an alarm applies: a standard one or a percentile.
#[derive(Debug, Clone, PartialEq)]
pub enum Statistic {
    Standard(String),
    Extended(String),
}

impl Statistic {
    fn stat(&self) -> Option<Stat> {
        match self {
            Statistic::Standard(name) | Statistic::Extended(name) => Stat::parse(name),
        }
    }
}

/// An alarm as PutMetricAlarm (or a target tracking policy) defines it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmConfig {
    pub name: String,
    pub description: Option<String>,
    pub actions_enabled: bool,
    pub ok_actions: Vec<String>,
    pub alarm_actions: Vec<String>,
    pub insufficient_data_actions: Vec<String>,
    pub namespace: String,
    pub metric_name: String,
    pub dimensions: Vec<(String, String)>,
    pub statistic: Statistic,
    /// Seconds, in AWS time.
    pub period: u32,
    pub unit: Option<String>,
    pub rule: Rule,
    /// As given (the rule holds the value in effect).
    pub datapoints_to_alarm: Option<u32>,
    pub treat_missing_data: Option<String>,
    pub evaluate_low_sample_count_percentile: Option<String>,
}

impl AlarmConfig {
    fn actions_for(&self, state: StateValue) -> &[String] {
        match state {
            StateValue::Ok => &self.ok_actions,
            StateValue::Alarm => &self.alarm_actions,
            StateValue::InsufficientData => &self.insufficient_data_actions,
        }
    }

    fn references(&self, arn: &str) -> bool {
        [&self.ok_actions, &self.alarm_actions, &self.insufficient_data_actions].iter().any(|list| list.iter().any(|a| a == arn))
    }
}

/// An alarm and where its evaluation stands.
#[derive(Debug, Clone)]
pub struct Alarm {
    pub config: AlarmConfig,
    pub arn: String,
    configured: SystemTime,
    pub state: StateValue,
    reason: String,
    reason_data: Option<String>,
    state_updated: SystemTime,
    state_transitioned: SystemTime,
    /// End (epoch seconds) of the last period evaluated.
    evaluated_until: i64,
    last_invoked: Option<SystemTime>,
}

/// An alarm asking for the actions of its state.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub alarm: String,
    pub state: StateValue,
    pub actions: Vec<String>,
    pub threshold: f64,
    /// The datapoints that decided the state, oldest first, in the alarm's
    /// statistic and AWS units (counts per AWS period).
    pub values: Vec<f64>,
}

/// Every alarm of the simulator, by name.
#[derive(Debug, Default)]
pub struct AlarmStore {
    alarms: BTreeMap<String, Alarm>,
}

/// The end (epoch seconds) of the last whole period of `period_secs` before `now`.
fn period_boundary(now: SystemTime, period_secs: i64) -> i64 {
    (epoch_seconds(now) as i64).div_euclid(period_secs) * period_secs
}

impl AlarmStore {
    /// Creates an alarm (in INSUFFICIENT_DATA) or replaces the configuration
    /// of an existing one, whose state stays as it is — as PutMetricAlarm does.
    pub fn put(&mut self, config: AlarmConfig, region: &str, clock: ScalingClock, now: SystemTime) -> String {
        let evaluated_until = period_boundary(now, clock.period_secs(config.period));
        if let Some(alarm) = self.alarms.get_mut(&config.name) {
            alarm.config = config;
            alarm.configured = now;
            alarm.evaluated_until = evaluated_until;
            return alarm.arn.clone();
        }
        let arn = format!("arn:aws:cloudwatch:{region}:{ACCOUNT_ID}:alarm:{}", config.name);
        self.alarms.insert(
            config.name.clone(),
            Alarm {
                arn: arn.clone(),
                configured: now,
                state: StateValue::InsufficientData,
                reason: "Unchecked: Initial alarm creation".to_string(),
                reason_data: None,
                state_updated: now,
                state_transitioned: now,
                evaluated_until,
                last_invoked: None,
                config,
            },
        );
        arn
    }

    pub fn get(&self, name: &str) -> Option<&Alarm> {
        self.alarms.get(name)
    }

    /// Deletes the named alarms that exist.
    pub fn delete(&mut self, names: &[String]) {
        for name in names {
            self.alarms.remove(name);
        }
    }

    /// The state of every alarm, by name.
    pub fn states(&self) -> HashMap<String, StateValue> {
        self.alarms.iter().map(|(name, alarm)| (name.clone(), alarm.state)).collect()
    }

    /// Name and ARN of every alarm with `arn` among its actions.
    pub fn referencing(&self, arn: &str) -> Vec<(String, String)> {
        self.alarms.values().filter(|a| a.config.references(arn)).map(|a| (a.config.name.clone(), a.arn.clone())).collect()
    }

    /// The alarms whose next period has ended, with that period's end.
    fn due(&self, clock: ScalingClock, now: SystemTime) -> Vec<(AlarmConfig, i64)> {
        self.alarms
            .values()
            .filter_map(|alarm| {
                let boundary = period_boundary(now, clock.period_secs(alarm.config.period));
                (boundary > alarm.evaluated_until).then(|| (alarm.config.clone(), boundary))
            })
            .collect()
    }

    /// Records the verdict of the evaluation up to `boundary`; the invocation
    /// of the state's actions if they are due.
    fn record(
        &mut self,
        name: &str,
        boundary: i64,
        verdict: Verdict,
        reason_data: String,
        clock: ScalingClock,
        now: SystemTime,
    ) -> Option<Invocation> {
        let alarm = self.alarms.get_mut(name)?;
        alarm.evaluated_until = boundary;
        let changed = verdict.state != alarm.state;
        if changed {
            alarm.state = verdict.state;
            alarm.reason = verdict.reason;
            alarm.reason_data = Some(reason_data);
            alarm.state_updated = now;
            alarm.state_transitioned = now;
        }
        let actions = alarm.config.actions_for(alarm.state);
        if !alarm.config.actions_enabled || actions.is_empty() {
            return None;
        }
        let reinvoke_due =
            alarm.last_invoked.is_none_or(|at| now.duration_since(at).unwrap_or_default() >= clock.real(REINVOKE_EVERY));
        if !changed && !reinvoke_due {
            return None;
        }
        alarm.last_invoked = Some(now);
        Some(Invocation {
            alarm: name.to_string(),
            state: alarm.state,
            actions: actions.to_vec(),
            threshold: alarm.config.rule.threshold,
            values: verdict.evaluated.iter().map(|(_, v)| *v).collect(),
        })
    }
}

/// The evaluation range of `config` ending at `boundary`: N + extra periods,
/// oldest first, each with its datapoint if the metric had one. Counts are
/// scaled back to the AWS period, so a compressed minute still reads as a
/// minute's worth of invocations.
fn evaluation_range(store: &MetricStore, config: &AlarmConfig, clock: ScalingClock, boundary: i64) -> Vec<(i64, Option<f64>)> {
    let Some(stat) = config.statistic.stat() else { return Vec::new() };
    let period = clock.period_secs(config.period);
    let per_aws_period = match stat {
        Stat::Sum | Stat::SampleCount => f64::from(config.period) / period as f64,
        _ => 1.0,
    };
    let periods = (config.rule.evaluation_periods + EXTRA_PERIODS) as i64;
    let start = boundary - periods * period;
    let points = store.lookup(&config.namespace, &config.metric_name, &config.dimensions, stat, period, (start, boundary));
    (0..periods)
        .map(|i| {
            let at = start + i * period;
            (at, points.iter().find(|(t, _)| *t == at).map(|(_, v)| v * per_aws_period))
        })
        .collect()
}

/// StateReasonData: the JSON document CloudWatch attaches to a state change.
fn reason_data(config: &AlarmConfig, range: &[(i64, Option<f64>)], verdict: &Verdict, now: SystemTime) -> String {
    let iso = |secs: i64| {
        chrono::DateTime::from_timestamp(secs, 0).map(|t| t.format("%Y-%m-%dT%H:%M:%S.000+0000").to_string()).unwrap_or_default()
    };
    let mut data = json!({
        "version": "1.0",
        "queryDate": iso(epoch_seconds(now) as i64),
        "period": config.period,
        "recentDatapoints": range.iter().filter_map(|(_, v)| *v).collect::<Vec<_>>(),
        "threshold": config.rule.threshold,
        "evaluatedDatapoints": verdict.evaluated.iter().rev().map(|(at, v)| json!({"timestamp": iso(*at), "value": v})).collect::<Vec<_>>(),
    });
    if let Some((start, _)) = range.first() {
        data["startDate"] = json!(iso(*start));
    }
    match &config.statistic {
        Statistic::Standard(s) => data["statistic"] = json!(s),
        Statistic::Extended(s) => data["extendedStatistic"] = json!(s),
    }
    data.to_string()
}

/// Evaluates every alarm whose period has ended; returns the actions due.
/// The store is locked only to read and to record, never while metrics are read.
pub fn evaluate_due(alarms: &Mutex<AlarmStore>, store: &MetricStore, clock: ScalingClock, now: SystemTime) -> Vec<Invocation> {
    let lock = || alarms.lock().unwrap_or_else(PoisonError::into_inner);
    let due = lock().due(clock, now);
    let mut invocations = Vec::new();
    for (config, boundary) in due {
        let range = evaluation_range(store, &config, clock, boundary);
        let current = lock().get(&config.name).map(|a| a.state);
        let Some(current) = current else { continue };
        let verdict = evaluate(&config.rule, &range, current);
        let data = reason_data(&config, &range, &verdict, now);
        invocations.extend(lock().record(&config.name, boundary, verdict, data, clock, now));
    }
    invocations
}

#[cfg(test)]
mod tests {
    use super::evaluation::{Comparison, MissingData};
    use super::*;

    pub(crate) fn config(name: &str, actions: &[&str]) -> AlarmConfig {
        AlarmConfig {
            name: name.to_string(),
            description: None,
            actions_enabled: true,
            ok_actions: Vec::new(),
            alarm_actions: actions.iter().map(|a| a.to_string()).collect(),
            insufficient_data_actions: Vec::new(),
            namespace: "AWS/SageMaker".to_string(),
            metric_name: "Invocations".to_string(),
            dimensions: vec![("EndpointName".into(), "e".into()), ("VariantName".into(), "AllTraffic".into())],
            statistic: Statistic::Standard("Sum".into()),
            period: 60,
            unit: None,
            rule: Rule {
                comparison: Comparison::GreaterThanThreshold,
                threshold: 5.0,
                evaluation_periods: 3,
                datapoints_to_alarm: 3,
                missing: MissingData::Missing,
            },
            datapoints_to_alarm: None,
            treat_missing_data: None,
            evaluate_low_sample_count_percentile: None,
        }
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn verdict(state: StateValue) -> Verdict {
        Verdict { state, evaluated: vec![(0, 9.0)], reason: "r".into() }
    }

    #[test]
    fn alarms_fall_due_once_per_compressed_period() {
        let clock = ScalingClock::new(60.0);
        let mut store = AlarmStore::default();
        store.put(config("a", &[]), "us-east-1", clock, at(1000));
        assert!(store.due(clock, at(1000)).is_empty(), "the creation period is not over yet");
        assert_eq!(store.due(clock, at(1001)).len(), 1);
        store.record("a", 1001, verdict(StateValue::Ok), String::new(), clock, at(1001));
        assert!(store.due(clock, at(1001)).is_empty());
        let aws = ScalingClock::new(1.0);
        store.put(config("b", &[]), "us-east-1", aws, at(1000));
        assert_eq!(store.due(aws, at(1019)).iter().filter(|(c, _)| c.name == "b").count(), 0);
        assert_eq!(store.due(aws, at(1020)).iter().filter(|(c, _)| c.name == "b").count(), 1, "minute boundary");
    }

    #[test]
    fn actions_run_on_transition_then_every_minute_while_in_state() {
        let clock = ScalingClock::new(60.0);
        let mut store = AlarmStore::default();
        let arn = store.put(config("a", &["policy-arn"]), "eu-west-1", clock, at(1000));
        assert_eq!(arn, "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:a");
        assert_eq!(store.get("a").unwrap().state, StateValue::InsufficientData);
        let invoked = store.record("a", 1001, verdict(StateValue::Alarm), String::new(), clock, at(1001)).unwrap();
        assert_eq!((invoked.state, invoked.actions, invoked.values), (StateValue::Alarm, vec!["policy-arn".into()], vec![9.0]));
        // Still in ALARM: invoked again once a compressed minute (1 s) has passed.
        let half = at(1001) + Duration::from_millis(500);
        assert!(store.record("a", 1001, verdict(StateValue::Alarm), String::new(), clock, half).is_none());
        assert!(store.record("a", 1002, verdict(StateValue::Alarm), String::new(), clock, at(1002)).is_some());
        // OK has no actions here.
        assert!(store.record("a", 1003, verdict(StateValue::Ok), String::new(), clock, at(1003)).is_none());
        assert_eq!(store.referencing("policy-arn"), vec![("a".to_string(), arn)]);
        store.delete(&["a".to_string(), "never-there".to_string()]);
        assert!(store.get("a").is_none());
    }

    #[test]
    fn counts_keep_their_per_period_meaning_on_a_compressed_clock() {
        use crate::simulator::metrics::{Capacity, Outcome, Served};
        let store = MetricStore::new(Duration::from_secs(3600));
        let served = Served { outcome: Outcome::Success, model: None, overhead: None, busy: Duration::ZERO };
        let capacity = Capacity { instances: 1, workers_per_instance: 1, vcpus: 2, memory_percent: 0.0 };
        let now = SystemTime::now();
        for _ in 0..3 {
            store.series("e", "AllTraffic").record(served, capacity);
        }
        let second = epoch_seconds(now) as i64;
        // Recorded in this second or, at worst, the next one.
        let boundary = second + 2;
        let range = evaluation_range(&store, &config("a", &[]), ScalingClock::new(60.0), boundary);
        assert_eq!(range.len(), 5, "N + 2 periods of one second each");
        assert_eq!(range.first().unwrap().0, boundary - 5);
        let total: f64 = range.iter().filter_map(|(_, v)| *v).sum();
        assert_eq!(total, 180.0, "3 invocations in one real second are a rate of 180 per minute");
    }
}
