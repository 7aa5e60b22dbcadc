//! The auto-scaling section of report.html: what the test concluded, the four
//! settings of the policy with how each was found, every trial with its
//! verdict and what its scale-out cost, a timeline per trial (offered rate
//! against the capacity in service, scaling activities marked), and the
//! commands that apply the tested policy.

use std::time::Duration;

use super::RunData;
use super::charts::{Axis, Canvas, Chart};
use super::page_charts::anchor;
use crate::format::{compact, money, ms, trim_number};
use crate::record::{MetricVerdict, ScalingTrial, ScalingVerdict, TrialBrief};
use crate::sagemaker::VARIANT_NAME;
use crate::step::Capacity;

pub(super) struct ScalingSection {
    pub conclusion: String,
    /// How two metrics' policies differed, when both were tested.
    pub difference: Option<String>,
    pub scales: bool,
    pub settings: Vec<Setting>,
    pub trials: Vec<TrialRow>,
    pub suggestions: Vec<String>,
    pub note: Option<String>,
    pub commands: Vec<String>,
    pub charts: Vec<Chart>,
}

/// One of the four settings perfsize finds, and how it found it.
pub(super) struct Setting {
    pub name: &'static str,
    pub value: String,
    pub how: String,
}

pub(super) struct TrialRow {
    pub anchor: String,
    pub step: u32,
    pub metric: String,
    pub shape: &'static str,
    pub min: u32,
    pub passed: bool,
    pub p99: String,
    pub errors: String,
    pub instances: String,
    pub reaction: String,
    pub disruption: String,
    pub cost: String,
}

impl ScalingSection {
    pub(super) fn new(data: &RunData) -> Option<ScalingSection> {
        let verdict = data.summary.scaling.as_ref()?;
        let rec = data.summary.recommendation.as_ref()?;
        let shown = verdict.best().or(verdict.metrics.first())?;
        let capacity = rec.capacity.at_least;
        let rows = verdict.metrics.iter().flat_map(|m| m.trials.iter().chain(&m.spikes).map(move |t| trial_row(m, t)));
        Some(ScalingSection {
            conclusion: verdict.conclusion(),
            difference: verdict.difference(),
            scales: verdict.best().is_some(),
            settings: settings(verdict, shown, &rec.instance_type, &rec.capacity, data.summary.peak_tps?),
            trials: rows.collect(),
            suggestions: verdict.metrics.iter().filter_map(|m| m.suggestion.clone()).collect(),
            note: verdict.note.clone(),
            commands: verdict.best().map_or_else(Vec::new, |m| m.policy.commands("YOUR-ENDPOINT", VARIANT_NAME).to_vec()),
            charts: data.trials.iter().map(|t| timeline_chart(t, capacity)).collect(),
        })
    }
}

fn settings(verdict: &ScalingVerdict, m: &MetricVerdict, instance_type: &str, capacity: &Capacity, peak: f64) -> Vec<Setting> {
    let p = &m.policy;
    let tried: Vec<String> = m.trials.iter().map(|t| format!("{} {}", t.min, if t.passed { "held" } else { "failed" })).collect();
    let minimum_how = if tried.is_empty() {
        "nothing to bisect: the fixed-scale count is the lowest allowed".to_string()
    } else {
        format!(
            "bisected under a {} ramp to {} TPS and {} at peak: {}",
            humantime::format_duration(Duration::from_secs(verdict.ramp_seconds as u64)),
            trim_number(peak),
            humantime::format_duration(Duration::from_secs(verdict.hold_seconds as u64)),
            tried.join(", ")
        )
    };
    vec![
        Setting {
            name: "instance type",
            value: instance_type.to_string(),
            how: "the cheapest configuration that met the requirements at peak, verified by an endurance run".into(),
        },
        Setting {
            name: "maximum count",
            value: p.max.to_string(),
            how: format!(
                "enough for every instance to sit at its target at peak, never below the verified {}",
                verdict.fixed_count
            ),
        },
        Setting {
            name: "target",
            value: format!("{} {}", trim_number(p.target), p.metric.unit()),
            how: format!("from one instance's measured capacity, {}, and the safety factor", capacity.describe()),
        },
        Setting {
            name: "minimum count",
            value: if m.scales { p.min.to_string() } else { format!("{} (fixed scale)", verdict.fixed_count) },
            how: minimum_how,
        },
    ]
}

fn trial_row(m: &MetricVerdict, t: &TrialBrief) -> TrialRow {
    TrialRow {
        anchor: anchor(t.index),
        step: t.index,
        metric: m.policy.metric.to_string(),
        shape: t.shape.as_str(),
        min: t.min,
        passed: t.passed,
        p99: t.judged_latency_ms.map_or("–".into(), ms),
        errors: format!("{:.3}%", t.error_percent),
        instances: format!("{} → {} (mean {:.1})", t.min, t.peak_instances, t.mean_instances),
        reaction: reaction(t),
        disruption: format!("{} errors · {} slow s", t.disruption_errors, t.disruption_slow_seconds),
        cost: format!("{} (fixed {})", money(t.cost_per_hour), money(t.fixed_cost_per_hour)),
    }
}

/// Seconds from the first breach to each new instance serving; from zero,
/// also when the first output came.
fn reaction(t: &TrialBrief) -> String {
    let mut text = if t.scale_outs_after_breach.is_empty() {
        "–".to_string()
    } else {
        t.scale_outs_after_breach.iter().map(|s| format!("{s:.0}")).collect::<Vec<_>>().join(", ") + " s"
    };
    if t.min == 0 {
        text += &match t.first_answer_second {
            Some(second) => format!(" · first output at {second} s"),
            None => " · no output".to_string(),
        };
    }
    text
}

/// The offered rate against the capacity in service (instances × what one
/// sustains) and the capacity asked for, with each scaling activity marked.
fn timeline_chart(t: &ScalingTrial, capacity: f64) -> Chart {
    let title = format!("Step {} · {} {} from {} instance(s)", t.index, t.policy.metric, t.shape.as_str(), t.policy.min);
    let points = &t.timeline.points;
    if points.is_empty() {
        return Chart::empty(title, "no per-second figures recorded");
    }
    let top = points.iter().map(|p| (p.offered as f64).max(p.desired.max(p.in_service) as f64 * capacity)).fold(1.0, f64::max);
    let x = Axis::exact(0.0, points.len() as f64, "seconds", compact);
    let mut canvas = Canvas::new(title, x, Axis::linear(0.0, top * 1.05, "requests per second", compact));
    let at = |second: u32| second as f64 + 0.5;
    canvas.line("c-capacity", "capacity in service", points.iter().map(|p| Some((at(p.second), p.in_service as f64 * capacity))));
    canvas.line(
        "c-capacity dash",
        "capacity asked for",
        points.iter().map(|p| Some((at(p.second), p.desired as f64 * capacity))),
    );
    canvas.line("c-offered", "offered", points.iter().map(|p| Some((at(p.second), p.offered as f64))));
    canvas.line("c-errors", "errors", points.iter().map(|p| Some((at(p.second), p.errors as f64))));
    if let Some(breach) = t.timeline.first_breach {
        canvas.vrule(breach as f64, "c-limit", "target passed");
    }
    if let Some(answer) = t.timeline.first_answer.filter(|_| t.policy.min == 0) {
        canvas.vrule(answer as f64, "c-capacity", "first output");
    }
    for activity in &t.activities {
        let second = (activity.started_at - t.started_at).num_milliseconds() as f64 / 1000.0;
        if (0.0..=points.len() as f64).contains(&second) {
            canvas.vrule(second, "c-judged", "scaling activity");
        }
    }
    canvas.finish()
}

#[cfg(test)]
mod tests {
    use crate::report::fixtures::{recommended_run, scaled_run};
    use crate::report::render_report;

    #[test]
    fn a_tested_policy_shows_its_settings_trials_timeline_and_commands() {
        let html = render_report(&scaled_run()).unwrap();
        assert!(html.contains("Auto-scaling, tested under a ramp"));
        assert!(html.contains("auto-scaling meets the requirements under the ramp from 2 instances"));
        for setting in ["instance type", "maximum count", "target", "minimum count"] {
            assert!(html.contains(&format!("<td>{setting}</td>")), "the {setting} setting");
        }
        assert!(html.contains("2 held, 1 failed"), "how the minimum was found");
        assert!(html.contains("href=\"#step-6\"") && html.contains("href=\"#step-7\""), "each trial links to its step");
        assert!(html.contains("Step 6 · invocations ramp from 2 instance(s)"), "a timeline per trial");
        assert!(html.contains("scaling activity"), "scaling activities are marked");
        assert!(html.contains("--min-capacity 2 --max-capacity 6"), "the commands apply the tested policy");
    }

    #[test]
    fn without_a_test_the_untested_policy_is_shown_as_before() {
        let html = render_report(&recommended_run()).unwrap();
        assert!(!html.contains("Auto-scaling, tested"));
        assert!(html.contains("<h3>Auto-scaling policy</h3>"));
    }
}
