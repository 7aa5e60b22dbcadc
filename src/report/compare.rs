//! `perfsize compare BASELINE CURRENT`: the gate between two builds. Each
//! side is a run directory (a sizing run) or a StepResult JSON (`perfsize
//! load --json`). Figures compared: max TPS per instance of each type, p99 at
//! peak, the recommended $/hour, and every step both runs measured alike.

use std::path::Path;

use serde::Serialize;

use super::{ReportError, RunData};
use crate::format::{percent, signed_percent, trim_number};
use crate::load::LoadModel;
use crate::record::{RunDir, RunDirError, Summary, TypeOutcome};
use crate::result::StepResult;
use crate::step::Capacity;
use crate::vocab::Phase;

/// Which direction is better for a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Lower,
    Higher,
}

/// One compared figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure {
    pub group: String,
    pub name: String,
    pub unit: &'static str,
    pub better: Better,
    pub baseline: Option<f64>,
    pub current: Option<f64>,
    /// (current − baseline) ÷ baseline × 100.
    pub change_percent: Option<f64>,
    pub regressed: bool,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub baseline: String,
    pub current: String,
    pub max_regression_percent: f64,
    pub figures: Vec<Figure>,
    pub regressions: usize,
}

/// A side of a comparison: its label and its steps, with the run summary if any.
struct Side {
    label: String,
    data: Option<RunData>,
    steps: Vec<StepResult>,
}

fn load(path: &Path) -> Result<Side, ReportError> {
    let label = path.display().to_string();
    if path.is_file() {
        let bytes = std::fs::read(path).map_err(|e| RunDirError::Read { path: path.to_path_buf(), reason: e.to_string() })?;
        let step: StepResult =
            serde_json::from_slice(&bytes).map_err(|e| RunDirError::Read { path: path.to_path_buf(), reason: e.to_string() })?;
        return Ok(Side { label, data: None, steps: vec![step] });
    }
    let data = RunData::load(&RunDir::open(path)?)?;
    Ok(Side { label, steps: data.steps.clone(), data: Some(data) })
}

fn figure(
    group: &str,
    name: String,
    unit: &'static str,
    better: Better,
    baseline: Option<f64>,
    current: Option<f64>,
    max_regression: f64,
) -> Figure {
    let change_percent = match (baseline, current) {
        (Some(b), Some(c)) if b != 0.0 => Some((c - b) / b * 100.0),
        _ => None,
    };
    let regressed = match (better, change_percent) {
        (Better::Lower, Some(change)) => change > max_regression,
        (Better::Higher, Some(change)) => change < -max_regression,
        _ => false,
    };
    Figure { group: group.to_string(), name, unit, better, baseline, current, change_percent, regressed, note: None }
}

/// One type's capacity per instance in both runs. Compared on the lower
/// sides; a lower bound now does not show a lower capacity (the type was
/// only not pushed as far), so it never regresses — and a bound on either
/// side is named as one.
fn capacity_figure(before: &TypeOutcome, now: Option<&TypeOutcome>, r: f64) -> Figure {
    let (b, c) = (before.summary.capacity, now.and_then(|t| t.summary.capacity));
    let mut f = figure(
        "capacity",
        format!("max {} per instance, {}", b.map_or("TPS", |c| c.unit()), before.summary.label()),
        b.map_or("TPS", |c| c.unit()),
        Better::Higher,
        b.map(|c| c.at_least),
        c.map(|c| c.at_least),
        r,
    );
    if c.is_some_and(|c| !c.is_bracketed()) {
        f.regressed = false;
    }
    if b.is_some_and(|c| !c.is_bracketed()) || c.is_some_and(|c| !c.is_bracketed()) {
        let show = |c: Option<Capacity>| c.map_or("–".to_string(), |c| format!("{} {}", c.figure(), c.unit()));
        f.note = Some(format!("{} → {} (≥: a lower bound)", show(b), show(c)));
    }
    // Searched now and sustaining nothing, where it sustained a rate before.
    if let Some(now) = now.filter(|t| b.is_some() && c.is_none() && !t.summary.verdict.starts_with("not searched")) {
        f.regressed = true;
        f.note = Some(now.summary.verdict.clone());
    }
    f
}

/// A step's identity across runs: what it measured, not when. Open-model
/// and closed-loop figures are never compared with each other.
fn key(s: &StepResult) -> (Phase, String, u32, String, LoadModel) {
    (s.phase, s.instance_type.clone(), s.instance_count, trim_number(s.target_tps), s.load_model)
}

/// What a step measured, in words.
fn measured(s: &StepResult) -> String {
    let pace = match s.load_model {
        LoadModel::Open => format!("at {} TPS", trim_number(s.target_tps)),
        LoadModel::ClosedLoop { concurrency } => format!("closed loop of {concurrency}"),
    };
    format!("{} × {} {pace}", s.instance_type, s.instance_count)
}

pub fn compare(baseline: &Path, current: &Path, max_regression_percent: f64) -> Result<Comparison, ReportError> {
    let (b, c) = (load(baseline)?, load(current)?);
    let r = max_regression_percent;
    let mut figures = Vec::new();

    if let (Some(bd), Some(cd)) = (&b.data, &c.data) {
        let (bs, cs) = (&bd.summary, &cd.summary);
        let cost = |s: &Summary| s.recommendation.as_ref().map(|rec| rec.cost_per_hour);
        let mut f = figure("recommendation", "recommended $/hour".into(), "$/h", Better::Lower, cost(bs), cost(cs), r);
        let describe = |s: &Summary| {
            s.recommendation.as_ref().map_or("none".to_string(), |rec| format!("{} × {}", rec.instance_type, rec.instance_count))
        };
        f.note = Some(format!("{} → {}", describe(bs), describe(cs)));
        if bs.recommendation.is_some() && cs.recommendation.is_none() {
            f.regressed = true;
            f.note = Some(format!("{} → no configuration met the requirements", describe(bs)));
        }
        figures.push(f);
        for bt in &bs.types {
            let ct = cs.types.iter().find(|t| t.summary.label() == bt.summary.label());
            figures.push(capacity_figure(bt, ct, r));
        }
        // p99 at peak compares like with like: the same configuration on both sides.
        let verified = |d: &RunData| {
            let rec = d.summary.recommendation.as_ref()?;
            let step = d.steps.iter().find(|s| Some(s.index) == rec.verified_by_step)?;
            Some((rec.candidate(), step.latency_ms.map(|l| l.p99)))
        };
        if let (Some((b_candidate, b_p99)), Some((c_candidate, c_p99))) = (verified(bd), verified(cd))
            && b_candidate == c_candidate
        {
            figures.push(figure(
                "recommendation",
                "p99 at peak (recommended configuration)".into(),
                "ms",
                Better::Lower,
                b_p99,
                c_p99,
                r,
            ));
        }
    }

    for bs in &b.steps {
        // With repeated measurements of one probe, compare the last of each.
        let Some(cs) = c.steps.iter().rev().find(|s| key(s) == key(bs)) else { continue };
        if b.steps.iter().rev().find(|s| key(s) == key(bs)).map(|s| s.index) != Some(bs.index) {
            continue;
        }
        let group = format!("{} {}", bs.phase.as_str(), measured(bs));
        let lat = |s: &StepResult, f: fn(&crate::result::Percentiles) -> f64| s.latency_ms.as_ref().map(f);
        figures.push(figure(&group, "p50".into(), "ms", Better::Lower, lat(bs, |l| l.p50), lat(cs, |l| l.p50), r));
        figures.push(figure(&group, "p99".into(), "ms", Better::Lower, lat(bs, |l| l.p99), lat(cs, |l| l.p99), r));
        figures.push(figure(
            &group,
            "achieved TPS".into(),
            "TPS",
            Better::Higher,
            Some(bs.achieved_tps),
            Some(cs.achieved_tps),
            r,
        ));
        // Error rates: a change within the error budget's share is noise, not a regression.
        let mut errors = figure(&group, "errors".into(), "%", Better::Lower, Some(bs.error_percent), Some(cs.error_percent), r);
        let allowance = bs.requirements.max_error_percent * r / 100.0;
        errors.regressed = cs.error_percent - bs.error_percent > allowance.max(1e-9);
        figures.push(errors);
        if bs.passed && !cs.passed {
            let mut verdict = figure(&group, "verdict".into(), "", Better::Higher, Some(1.0), Some(0.0), r);
            verdict.regressed = true;
            verdict.note = Some(cs.reasons.join("; "));
            figures.push(verdict);
        }
    }
    if let ([bs], [cs], None, None) = (&b.steps[..], &c.steps[..], &b.data, &c.data)
        && key(bs) != key(cs)
    {
        return Err(ReportError::NotComparable(format!(
            "the two load results measured different things ({} vs {})",
            measured(bs),
            measured(cs)
        )));
    }
    if figures.is_empty() {
        return Err(ReportError::NotComparable("the two runs measured nothing alike".into()));
    }
    let regressions = figures.iter().filter(|f| f.regressed).count();
    Ok(Comparison { baseline: b.label, current: c.label, max_regression_percent: r, figures, regressions })
}

/// The comparison as a table for the terminal.
pub fn text(c: &Comparison) -> String {
    let mut out = format!(
        "perfsize compare (regression bound {})\n  baseline {}\n  current  {}\n\n",
        percent(c.max_regression_percent),
        c.baseline,
        c.current
    );
    let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    let mut group = String::new();
    for f in &c.figures {
        if f.group != group {
            out.push_str(&format!("{}\n", f.group));
            group = f.group.clone();
        }
        out.push_str(&format!(
            "  {:<44} {:>12} {:>12} {:>9}  {}{}\n",
            format!("{} ({})", f.name, f.unit),
            show(f.baseline),
            show(f.current),
            f.change_percent.map_or("-".to_string(), signed_percent),
            if f.regressed { "REGRESSED" } else { "ok" },
            f.note.as_ref().map(|n| format!("  {n}")).unwrap_or_default()
        ));
    }
    out.push_str(&format!("\n{} regression(s)\n", c.regressions));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_figure_regresses_only_past_the_bound_in_its_worse_direction() {
        assert!(!figure("g", "p99".into(), "ms", Better::Lower, Some(100.0), Some(109.0), 10.0).regressed);
        assert!(figure("g", "p99".into(), "ms", Better::Lower, Some(100.0), Some(111.0), 10.0).regressed);
        assert!(
            !figure("g", "p99".into(), "ms", Better::Lower, Some(100.0), Some(50.0), 10.0).regressed,
            "faster is not a regression"
        );
        assert!(figure("g", "tps".into(), "TPS", Better::Higher, Some(100.0), Some(85.0), 10.0).regressed);
        assert!(!figure("g", "tps".into(), "TPS", Better::Higher, Some(100.0), Some(95.0), 10.0).regressed);
        assert!(!figure("g", "x".into(), "ms", Better::Lower, None, Some(1.0), 10.0).regressed, "nothing to compare with");
    }

    #[test]
    fn a_lower_bound_is_named_and_never_counts_as_a_regression() {
        let outcome = |capacity: Option<Capacity>| TypeOutcome {
            summary: crate::step::TypeSummary {
                instance_type: "ml.c5.large".parse().unwrap(),
                max_concurrent_invocations: None,
                capacity,
                count_needed: Some(1),
                verified_count: Some(1),
                verdict: "recommended".into(),
            },
            price_per_hour: 0.102,
            cost_at_needed_count: None,
        };
        let bracketed = outcome(Some(Capacity::between(118.0, Some(121.0))));
        let bound = outcome(Some(Capacity::bound(100.0)));
        let f = capacity_figure(&bracketed, Some(&bound), 10.0);
        assert!(!f.regressed, "≥ 100 does not say the capacity fell below 118");
        assert_eq!(f.note.as_deref(), Some("118 TPS → ≥ 100 TPS (≥: a lower bound)"));
        let f = capacity_figure(&bound, Some(&bracketed), 10.0);
        assert!(!f.regressed && f.note.is_some());
        let slower = outcome(Some(Capacity::between(90.0, Some(94.0))));
        let f = capacity_figure(&bracketed, Some(&slower), 10.0);
        assert!(f.regressed, "a measured capacity 24 % lower is a regression");
        assert_eq!(f.note, None);
    }
}
