//! How a CloudWatch metric alarm turns datapoints into a state, as the
//! CloudWatch User Guide describes it ("Evaluating an alarm", "Configuring how
//! CloudWatch alarms treat missing data", "Avoiding premature transitions to
//! alarm state"). Pure: datapoints in, state out; no clock, no store.

use std::fmt::Write;

/// An alarm's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateValue {
    Ok,
    Alarm,
    InsufficientData,
}

impl StateValue {
    pub fn as_str(self) -> &'static str {
        match self {
            StateValue::Ok => "OK",
            StateValue::Alarm => "ALARM",
            StateValue::InsufficientData => "INSUFFICIENT_DATA",
        }
    }

    pub fn parse(text: &str) -> Option<StateValue> {
        [StateValue::Ok, StateValue::Alarm, StateValue::InsufficientData].into_iter().find(|s| s.as_str() == text)
    }
}

/// The static-threshold comparison operators (the anomaly-detection ones need
/// a band model the simulator does not have).
// The variants are named as the API names the values.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    GreaterThanOrEqualToThreshold,
    GreaterThanThreshold,
    LessThanThreshold,
    LessThanOrEqualToThreshold,
}

impl Comparison {
    const ALL: [Comparison; 4] = [
        Comparison::GreaterThanOrEqualToThreshold,
        Comparison::GreaterThanThreshold,
        Comparison::LessThanThreshold,
        Comparison::LessThanOrEqualToThreshold,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::GreaterThanOrEqualToThreshold => "GreaterThanOrEqualToThreshold",
            Comparison::GreaterThanThreshold => "GreaterThanThreshold",
            Comparison::LessThanThreshold => "LessThanThreshold",
            Comparison::LessThanOrEqualToThreshold => "LessThanOrEqualToThreshold",
        }
    }

    pub fn parse(text: &str) -> Option<Comparison> {
        Comparison::ALL.into_iter().find(|c| c.as_str() == text)
    }

    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::GreaterThanOrEqualToThreshold => value >= threshold,
            Comparison::GreaterThanThreshold => value > threshold,
            Comparison::LessThanThreshold => value < threshold,
            Comparison::LessThanOrEqualToThreshold => value <= threshold,
        }
    }

    /// The words CloudWatch's state reasons use.
    fn words(self) -> &'static str {
        match self {
            Comparison::GreaterThanOrEqualToThreshold => "greater than or equal to",
            Comparison::GreaterThanThreshold => "greater than",
            Comparison::LessThanThreshold => "less than",
            Comparison::LessThanOrEqualToThreshold => "less than or equal to",
        }
    }
}

/// TreatMissingData.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingData {
    /// The default: all missing means INSUFFICIENT_DATA.
    Missing,
    /// Keep the current state.
    Ignore,
    Breaching,
    NotBreaching,
}

impl MissingData {
    pub fn parse(text: &str) -> Option<MissingData> {
        match text {
            "missing" => Some(MissingData::Missing),
            "ignore" => Some(MissingData::Ignore),
            "breaching" => Some(MissingData::Breaching),
            "notBreaching" => Some(MissingData::NotBreaching),
            _ => None,
        }
    }
}

/// What decides an alarm's state from its datapoints.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    pub comparison: Comparison,
    pub threshold: f64,
    /// N: how many datapoints are evaluated.
    pub evaluation_periods: usize,
    /// M: how many of them must breach (DatapointsToAlarm, default N).
    pub datapoints_to_alarm: usize,
    pub missing: MissingData,
}

/// How many periods before the evaluated ones CloudWatch also retrieves, to
/// make up for missing datapoints. The User Guide's example retrieves 5 for
/// an alarm of 3 evaluation periods; the simulator uses N + 2 for every N.
pub const EXTRA_PERIODS: usize = 2;

/// One period of the evaluation range: its start (epoch seconds) and its
/// datapoint, if the metric had one.
pub type Period = (i64, Option<f64>);

/// The outcome of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub state: StateValue,
    /// The real datapoints the state was decided on, oldest first.
    pub evaluated: Vec<(i64, f64)>,
    /// Why, in CloudWatch's words.
    pub reason: String,
}

/// The state an alarm with `rule`, now in `current`, goes to given the
/// evaluation range `range` (N + [`EXTRA_PERIODS`] periods, oldest first).
pub fn evaluate(rule: &Rule, range: &[Period], current: StateValue) -> Verdict {
    let n = rule.evaluation_periods.max(1);
    let m = rule.datapoints_to_alarm.clamp(1, n);
    let real: Vec<(i64, f64)> = range.iter().filter_map(|&(at, v)| Some((at, v?))).collect();
    let breaches = |points: &[(i64, f64)]| points.iter().filter(|(_, v)| rule.comparison.breaches(*v, rule.threshold)).count();

    // Enough real datapoints: the most recent N decide, missing data plays no part.
    if real.len() >= n {
        let evaluated = real[real.len() - n..].to_vec();
        let breaching = breaches(&evaluated);
        let state = if breaching >= m { StateValue::Alarm } else { StateValue::Ok };
        return verdict(rule, state, evaluated, breaching, m, n);
    }
    // Too few: the missing ones are filled in as TreatMissingData says, as
    // few times as possible; every real datapoint in the range counts.
    let filled = n - real.len();
    let breaching = breaches(&real);
    let state = match rule.missing {
        MissingData::Breaching | MissingData::NotBreaching => {
            let filled_breaching = if rule.missing == MissingData::Breaching { filled } else { 0 };
            if breaching + filled_breaching >= m { StateValue::Alarm } else { StateValue::Ok }
        }
        MissingData::Missing | MissingData::Ignore => {
            let undecided = if rule.missing == MissingData::Missing { StateValue::InsufficientData } else { current };
            if real.is_empty() {
                undecided
            } else if breaching >= m {
                StateValue::Alarm
            } else if breaching < real.len() {
                StateValue::Ok
            } else if breached_long_enough(rule, &range[range.len().saturating_sub(n)..], m) {
                // The premature-transition rule: with only breaches and gaps,
                // a breach at least M periods old is an alarm (unless missing
                // data is ignored, which keeps the state).
                if rule.missing == MissingData::Missing { StateValue::Alarm } else { current }
            } else {
                // Only a few recent breaches: wait for the next datapoints
                // rather than alarm prematurely.
                current
            }
        }
    };
    if state == StateValue::InsufficientData {
        return Verdict { state, evaluated: Vec::new(), reason: format!("Insufficient Data: {n} datapoints were unknown.") };
    }
    verdict(rule, state, real, breaching, m, n)
}

/// Whether, in the last N periods (holding only breaches and gaps), the
/// oldest breaching datapoint is at least M periods old.
fn breached_long_enough(rule: &Rule, last_n: &[Period], m: usize) -> bool {
    let breached = |v: f64| rule.comparison.breaches(v, rule.threshold);
    let oldest = last_n.iter().position(|(_, v)| v.is_some_and(breached));
    oldest.is_some_and(|oldest| last_n.len() - oldest >= m)
}

fn verdict(rule: &Rule, state: StateValue, evaluated: Vec<(i64, f64)>, breaching: usize, m: usize, n: usize) -> Verdict {
    let reason = state_reason(rule, state, &evaluated, breaching, m, n);
    Verdict { state, evaluated, reason }
}

/// "Threshold Crossed: 3 datapoints [105.0 (14/11/23 09:38:00), …] were
/// greater than the threshold (70.0)." — newest datapoint first, as CloudWatch
/// writes it; for an M-of-N alarm it names the minimum too.
fn state_reason(rule: &Rule, state: StateValue, evaluated: &[(i64, f64)], breaching: usize, m: usize, n: usize) -> String {
    let alarm = state == StateValue::Alarm;
    let shown: Vec<&(i64, f64)> =
        evaluated.iter().rev().filter(|(_, v)| rule.comparison.breaches(*v, rule.threshold) == alarm).collect();
    let mut list = String::new();
    for (i, (at, value)) in shown.iter().enumerate() {
        let when = chrono::DateTime::from_timestamp(*at, 0).map(|t| t.format("%d/%m/%y %H:%M:%S").to_string());
        let _ = write!(list, "{}{value:?} ({})", if i == 0 { "" } else { ", " }, when.unwrap_or_default());
    }
    let count = shown.len();
    let (noun, verb) = if count == 1 { ("datapoint", "was") } else { ("datapoints", "were") };
    let not = if alarm { "" } else { "not " };
    let words = rule.comparison.words();
    let threshold = rule.threshold;
    if alarm && m < n {
        format!(
            "Threshold Crossed: {breaching} out of the last {n} {noun} [{list}] {verb} {words} the threshold ({threshold:?}) \
             (minimum {m} datapoint{} for OK -> ALARM transition).",
            if m == 1 { "" } else { "s" }
        )
    } else {
        format!("Threshold Crossed: {count} {noun} [{list}] {verb} {not}{words} the threshold ({threshold:?}).")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(m: usize, n: usize, missing: MissingData) -> Rule {
        Rule {
            comparison: Comparison::GreaterThanThreshold,
            threshold: 70.0,
            evaluation_periods: n,
            datapoints_to_alarm: m,
            missing,
        }
    }

    /// A range from the User Guide's notation: 0 not breaching, X breaching, - missing.
    fn range(pattern: &str) -> Vec<Period> {
        pattern
            .split_whitespace()
            .enumerate()
            .map(|(i, c)| {
                let at = 60 * i as i64;
                match c {
                    "0" => (at, Some(10.0)),
                    "X" => (at, Some(100.0)),
                    _ => (at, None),
                }
            })
            .collect()
    }

    use MissingData::*;
    use StateValue::{Alarm, InsufficientData, Ok as Fine};

    #[test]
    fn three_breaching_datapoints_of_three_alarm() {
        let v = evaluate(&rule(3, 3, Missing), &range("0 0 X X X"), Fine);
        assert_eq!(v.state, Alarm);
        assert_eq!(v.evaluated.len(), 3);
        assert!(v.reason.starts_with("Threshold Crossed: 3 datapoints [100.0 (01/01/70 00:04:00)"), "{}", v.reason);
        assert!(v.reason.ends_with("were greater than the threshold (70.0)."), "{}", v.reason);
        // Two of three are not enough.
        let v = evaluate(&rule(3, 3, Missing), &range("X X 0 X X"), Alarm);
        assert_eq!(v.state, Fine);
        assert!(v.reason.contains("1 datapoint [10.0") && v.reason.contains("was not greater than"), "{}", v.reason);
    }

    #[test]
    fn the_low_alarm_needs_fifteen_datapoints_below() {
        let low = Rule {
            comparison: Comparison::LessThanThreshold,
            threshold: 63.0,
            evaluation_periods: 15,
            datapoints_to_alarm: 15,
            missing: Missing,
        };
        let below = |count: usize| -> Vec<Period> {
            (0..17).map(|i| (i as i64 * 60, Some(if i >= 17 - count { 10.0 } else { 100.0 }))).collect()
        };
        assert_eq!(evaluate(&low, &below(14), Fine).state, Fine);
        assert_eq!(evaluate(&low, &below(15), Fine).state, Alarm);
        assert!(evaluate(&low, &below(15), Fine).reason.contains("were less than the threshold (63.0)"));
    }

    /// The two tables of "How alarm state is evaluated when data is missing".
    #[test]
    fn missing_data_follows_the_user_guide_tables() {
        let three_of_three = [
            ("0 - X - X", [Fine, Fine, Fine, Fine]),
            ("0 - - - -", [Fine, Fine, Fine, Fine]),
            ("- - - - -", [InsufficientData, Alarm /* retained */, Alarm, Fine]),
            ("0 X X - X", [Alarm, Alarm, Alarm, Alarm]),
            ("- - X - -", [Alarm, Alarm /* retained */, Alarm, Fine]),
        ];
        let two_of_three = [
            ("0 - X - X", [Alarm, Alarm, Alarm, Alarm]),
            ("0 0 X 0 X", [Alarm, Alarm, Alarm, Alarm]),
            ("0 - X - -", [Fine, Fine, Alarm, Fine]),
            ("- - - - 0", [Fine, Fine, Alarm, Fine]),
            ("- - - X -", [Alarm, Alarm /* retained */, Alarm, Fine]),
        ];
        for (m, table) in [(3, three_of_three), (2, two_of_three)] {
            for (pattern, expected) in table {
                for (missing, want) in [Missing, Ignore, Breaching, NotBreaching].into_iter().zip(expected) {
                    // "Retain current state" rows start from ALARM, so retaining shows as ALARM.
                    let got = evaluate(&rule(m, 3, missing), &range(pattern), Alarm).state;
                    assert_eq!(got, want, "{m} of 3, {pattern}, {missing:?}");
                }
            }
        }
        // Retaining really is retaining.
        assert_eq!(evaluate(&rule(3, 3, Ignore), &range("- - - - -"), Fine).state, Fine);
        let v = evaluate(&rule(3, 3, Missing), &range("- - - - -"), Fine);
        assert_eq!(v.reason, "Insufficient Data: 3 datapoints were unknown.");
    }

    #[test]
    fn a_lone_recent_breach_does_not_alarm_prematurely() {
        assert_eq!(evaluate(&rule(3, 3, Missing), &range("- - - - X"), Fine).state, Fine);
        assert_eq!(evaluate(&rule(3, 3, Missing), &range("- - - X -"), InsufficientData).state, InsufficientData);
    }

    #[test]
    fn m_of_n_reasons_name_the_minimum() {
        let v = evaluate(&rule(2, 3, Missing), &range("0 0 X 0 X"), Fine);
        assert!(v.reason.starts_with("Threshold Crossed: 2 out of the last 3 datapoints"), "{}", v.reason);
        assert!(v.reason.ends_with("(minimum 2 datapoints for OK -> ALARM transition)."), "{}", v.reason);
    }
}
