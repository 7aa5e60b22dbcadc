//! Reports: everything a run directory says, rendered for people and
//! machines — `report.html` (self-contained: inline CSS and SVG, no network),
//! `junit.xml` for Jenkins, a `.hgrm` percentile distribution per step — and
//! `compare`, the regression gate between two runs. Reports are rebuilt from
//! the directory alone, at any time, including a run that was interrupted.
//!
//! - `page`: report.html — its view model, built from [`RunData`];
//! - `page_charts`: the charts of report.html, assembled from the steps;
//! - `charts`: chart geometry (axes, ticks, SVG paths) for the `chart` macro;
//! - [`compare`]: the figures of two runs compared; `compare_page` renders them;
//! - [`junit`]: the JUnit XML of a run.
//!
//! How numbers read comes from [`crate::format`], which the terminal shares.

mod charts;
pub mod compare;
mod compare_page;
pub mod junit;
mod page;
mod page_charts;
mod scaling_page;
mod serverless_page;
mod stream_charts;

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::cost::Spend;
use crate::record::{JUNIT_FILE, PlanRecord, REPORT_FILE, RunDir, RunDirError, RunStatus, ScalingTrial, StepBrief, Summary};
use crate::result::{StepResult, histogram};

pub use compare_page::render_comparison;
pub use page::render_report;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    #[error("{0} holds neither summary.json nor plan.json: nothing to report")]
    Empty(PathBuf),
    #[error("nothing to compare: {0}")]
    NotComparable(String),
    #[error("cannot render {what}: {reason}")]
    Render { what: &'static str, reason: String },
}

impl crate::error::HasKind for ReportError {
    fn kind(&self) -> crate::error::ErrorKind {
        match self {
            ReportError::RunDir(e) => e.kind(),
            ReportError::Empty(_) | ReportError::NotComparable(_) => crate::error::ErrorKind::Usage,
            ReportError::Render { .. } => crate::error::ErrorKind::Infrastructure,
        }
    }
}

/// Everything known about a run.
#[derive(Debug, Clone)]
pub struct RunData {
    pub summary: Summary,
    pub plan: Option<PlanRecord>,
    pub steps: Vec<StepResult>,
    /// The auto-scaling test's trials, with their timelines.
    pub trials: Vec<ScalingTrial>,
    pub cost: CostKnown,
}

/// How much of the run's own cost is known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CostKnown {
    /// The run finished: its summary holds all it spent.
    Complete,
    /// A run that never finished spent at least the summary's figure, as
    /// recorded at this time; what it left running bills until removed.
    AtLeast(DateTime<Utc>),
    Unknown,
}

impl RunData {
    /// The summary was rebuilt from plan.json and the steps: the run never finished.
    pub fn partial(&self) -> bool {
        self.cost != CostKnown::Complete
    }

    pub fn load(dir: &RunDir) -> Result<RunData, ReportError> {
        let plan = dir.plan()?;
        let steps = dir.steps()?;
        let trials = dir.trials()?;
        match dir.summary()? {
            Some(mut summary) => {
                // Steps on disk carry the CloudWatch figures that arrived after the summary.
                summary.steps = steps.iter().map(StepBrief::from).collect();
                Ok(RunData { summary, plan, steps, trials, cost: CostKnown::Complete })
            }
            None => {
                let plan = plan.ok_or_else(|| ReportError::Empty(dir.root().to_path_buf()))?;
                let spend = dir.spend()?;
                let cost = spend.as_ref().map_or(CostKnown::Unknown, |s| CostKnown::AtLeast(s.written_at));
                let summary = partial_summary(&plan, &steps, spend);
                Ok(RunData { summary, plan: Some(plan), steps, trials, cost })
            }
        }
    }
}

/// A summary for a run that was killed before it could write one.
fn partial_summary(plan: &PlanRecord, steps: &[StepResult], spend: Option<Spend>) -> Summary {
    let started_at = steps.first().map_or_else(Utc::now, |s| s.started_at);
    let last_step = steps.last().map_or(started_at, |s| s.ended_at);
    let ended_at = spend.as_ref().map_or(last_step, |s| s.written_at.max(last_step));
    Summary {
        perfsize_version: plan.perfsize_version.clone(),
        run_id: plan.run_id.clone(),
        simulated: plan.simulated,
        status: RunStatus::Interrupted,
        note: Some("the run stopped before writing its summary (killed?); this report shows the steps it finished".into()),
        region: plan.region.clone(),
        command_line: plan.command_line.clone(),
        started_at,
        ended_at,
        peak_tps: plan.peak_tps,
        peak_concurrency: plan.peak_concurrency,
        requirements: plan.requirements,
        strategy: plan.search.strategy,
        prices: plan.prices.clone(),
        recommendation: None,
        types: Vec::new(),
        steps: steps.iter().map(StepBrief::from).collect(),
        run_cost: spend.map(|s| s.run_cost).unwrap_or_default(),
        scaling: None,
        objects: None,
        leftovers: None,
        serverless: None,
        comparison: None,
        recommended_kind: None,
        streaming: None,
    }
}

/// Writes every report of a run directory; returns the files written.
pub fn write_all(dir: &RunDir) -> Result<Vec<PathBuf>, ReportError> {
    let data = RunData::load(dir)?;
    let mut written = Vec::new();
    for step in &data.steps {
        if let Ok(h) = histogram::decode(&step.histogram) {
            let path = dir.step_path(step).with_extension("hgrm");
            crate::record::write_atomic(&path, histogram::hgrm(&h).as_bytes())
                .map_err(|source| RunDirError::Write { path: path.clone(), source })?;
            written.push(path);
        }
    }
    written.push(dir.write_file(JUNIT_FILE, junit::render(&data).as_bytes())?);
    let html = render_report(&data).map_err(|e| ReportError::Render { what: REPORT_FILE, reason: e.to_string() })?;
    written.push(dir.write_file(REPORT_FILE, html.as_bytes())?);
    Ok(written)
}

#[cfg(test)]
pub(crate) mod fixtures;
