//! The auto-scaling test in the record: each trial of a policy at one
//! minimum count (`scaling/NNN-<metric>-<shape>-min-K.json`, written the moment
//! it ends, its traffic also a step in `steps/`), and the verdict the summary
//! carries — the minimum found for each metric, every trial in brief, and
//! what to do when no minimum works.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cost::RunCost;
use crate::scaling::{Activity, Policy, Timeline};

/// How the traffic of a trial reaches the peak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// From 0 to the peak over the ramp, then held.
    Ramp,
    /// The peak at once, then held.
    Spike,
}

impl Shape {
    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Ramp => "ramp",
            Shape::Spike => "spike",
        }
    }
}

/// One policy, tested from one minimum count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingTrial {
    /// The index of its step in `steps/`.
    pub index: u32,
    pub shape: Shape,
    pub policy: Policy,
    pub endpoint: String,
    /// When the traffic schedule started: second 0 of the timeline.
    pub started_at: DateTime<Utc>,
    pub passed: bool,
    pub reasons: Vec<String>,
    pub judged_latency_ms: Option<f64>,
    pub error_percent: f64,
    pub requests: u64,
    pub timeline: Timeline,
    pub activities: Vec<Activity>,
    /// The instances it used, priced: mean instances in service × $/hour.
    pub cost_per_hour: f64,
    /// The verified fixed-scale count, priced the same way.
    pub fixed_cost_per_hour: f64,
}

impl ScalingTrial {
    pub fn file_name(&self) -> String {
        format!("{:03}-{}-{}-min-{}.json", self.index, self.policy.metric, self.shape.as_str(), self.policy.min)
    }

    /// The trial in brief, for the summary.
    pub fn brief(&self) -> TrialBrief {
        let t = &self.timeline;
        TrialBrief {
            index: self.index,
            shape: self.shape,
            min: self.policy.min,
            passed: self.passed,
            reasons: self.reasons.clone(),
            judged_latency_ms: self.judged_latency_ms,
            error_percent: self.error_percent,
            peak_instances: t.peak_instances,
            mean_instances: t.mean_instances,
            first_scale_out_after_breach: t.scale_outs.first().and_then(|o| o.after_breach),
            first_answer_second: t.first_answer,
            scale_outs_after_breach: t.scale_outs.iter().filter_map(|o| o.after_breach).collect(),
            disruption_errors: t.disruption.errors,
            disruption_slow_seconds: t.disruption.slow_seconds,
            cost_per_hour: self.cost_per_hour,
            fixed_cost_per_hour: self.fixed_cost_per_hour,
            file: format!("{}/{}", super::SCALING_DIR, self.file_name()),
        }
    }
}

/// A trial in brief.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialBrief {
    pub index: u32,
    pub shape: Shape,
    pub min: u32,
    pub passed: bool,
    pub reasons: Vec<String>,
    pub judged_latency_ms: Option<f64>,
    pub error_percent: f64,
    pub peak_instances: u32,
    pub mean_instances: f64,
    /// Seconds from the first breach of the target to the first new instance serving.
    pub first_scale_out_after_breach: Option<f64>,
    /// Seconds from the first breach to each rise of the instances in service.
    #[serde(default)]
    pub scale_outs_after_breach: Vec<f64>,
    /// The second of the trial the first successful answer arrived in: from
    /// zero instances, the cold start the first request waited through.
    #[serde(default)]
    pub first_answer_second: Option<u32>,
    pub disruption_errors: u64,
    pub disruption_slow_seconds: u32,
    /// The instances it used, priced: mean instances in service × $/hour.
    pub cost_per_hour: f64,
    /// The fixed-scale count, priced the same way.
    pub fixed_cost_per_hour: f64,
    pub file: String,
}

/// What the test found for one metric's policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricVerdict {
    /// The policy as tested; its `min` is the lowest that passed (the fixed
    /// count when none below it did).
    pub policy: Policy,
    /// A minimum below the fixed-scale count met the requirements under the ramp.
    pub scales: bool,
    pub trials: Vec<TrialBrief>,
    /// `--spike`: trials of the peak at once, from the minimum found up.
    pub spikes: Vec<TrialBrief>,
    /// The lowest minimum that held the spike (the fixed count if none below did).
    pub spike_min: Option<u32>,
    /// What to change when no minimum worked.
    pub suggestion: Option<String>,
}

impl MetricVerdict {
    /// When a ramp from zero instances held: how long its first request
    /// waited for the endpoint to wake, to the second.
    pub fn cold_start(&self) -> Option<u32> {
        self.trials.iter().find(|t| t.min == 0 && t.passed).and_then(|t| t.first_answer_second)
    }

    /// The median seconds from the first breach of the target to the first
    /// new instance serving, over this metric's trials that scaled out.
    pub fn reaction(&self) -> Option<f64> {
        let mut seconds: Vec<f64> =
            self.trials.iter().chain(&self.spikes).filter_map(|t| t.first_scale_out_after_breach).collect();
        seconds.sort_by(f64::total_cmp);
        seconds.get(seconds.len() / 2).copied()
    }
}

/// The auto-scaling test's conclusion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingVerdict {
    /// The fixed-scale count the search verified: the known-good upper end.
    pub fixed_count: u32,
    pub ramp_seconds: f64,
    pub hold_seconds: f64,
    pub metrics: Vec<MetricVerdict>,
    /// Why the test stopped early, if it did.
    pub note: Option<String>,
    /// What the test itself took: wall time, instance-hours, dollars.
    pub cost: RunCost,
}

impl ScalingVerdict {
    /// The metric whose policy scales from the lowest minimum (the cheaper
    /// one on ties: fewer instances idle at night), if any scales at all.
    pub fn best(&self) -> Option<&MetricVerdict> {
        self.metrics.iter().filter(|m| m.scales).min_by_key(|m| m.policy.min)
    }

    /// With two metrics tested: how their policies differed, in a sentence.
    pub fn difference(&self) -> Option<String> {
        let [a, b] = &self.metrics[..] else { return None };
        let min = |m: &MetricVerdict| if m.scales { m.policy.min } else { self.fixed_count };
        let mut parts = Vec::new();
        if min(a) != min(b) {
            let (low, high) = if min(a) < min(b) { (a, b) } else { (b, a) };
            parts.push(format!(
                "{} holds the ramp from {} instance(s), {} only from {}",
                low.policy.metric,
                min(low),
                high.policy.metric,
                min(high)
            ));
        }
        if let (Some(ra), Some(rb)) = (a.reaction(), b.reaction())
            && (ra - rb).abs() >= 1.0
        {
            let (fast, slow, by) = if ra < rb { (a, b, rb - ra) } else { (b, a, ra - rb) };
            parts.push(format!(
                "{} added its first instance {by:.0} s sooner after its target was passed than {}",
                fast.policy.metric, slow.policy.metric
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// One sentence on what the test found.
    pub fn conclusion(&self) -> String {
        match self.best() {
            Some(m) => format!(
                "auto-scaling meets the requirements under the ramp from {} instance{} ({} target {}){}",
                m.policy.min,
                if m.policy.min == 1 { "" } else { "s" },
                m.policy.metric,
                crate::format::trim_number(m.policy.target),
                m.cold_start()
                    .map_or(String::new(), |s| format!("; from zero, the first output came {s} s after the first request")),
            ),
            None if self.metrics.iter().all(|m| m.trials.is_empty()) => {
                format!("one configuration of {} instance(s) holds the peak: nothing to scale", self.fixed_count)
            }
            None => format!("auto-scaling cannot meet this ramp; use fixed scale at {}", self.fixed_count),
        }
    }
}
