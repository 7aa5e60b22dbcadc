//! The run's record: everything a run writes to its directory,
//! `RESULTS_DIR/<run id>/`, and reads back — `plan.json` (what was asked,
//! written first), `steps/NNN-….json` (one StepResult each, written the
//! moment the step ends), `usage.json` (what the run has spent, rewritten with
//! each step), `summary.json` (the conclusion), and the reports. The file
//! names live here alone; the orchestrator writes the record, and the
//! reports, `compare` and `--resume` read it, without knowing each other.
//! One session writes a run at a time: `.lock` ([`RunLock`]).

pub mod interval_log;
mod lock;
mod scaling;
mod serverless;
mod streaming;
mod summary;

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cost::Spend;
use crate::result::StepResult;

pub use lock::{LockError, RunLock};
pub use scaling::{MetricVerdict, ScalingTrial, ScalingVerdict, Shape, TrialBrief};
pub use serverless::{ColdStartReport, ServerlessOutcome, ServerlessRecommendation, recommended_kind};
pub use streaming::{ConcurrencyFrom, ConcurrencyScaling, RecommendedStreams, StreamingRecommendation, StreamingSummary, TokenCost};
pub use summary::{
    AsyncRecommendation, AsyncRecord, Autoscaling, BacklogAutoscaling, Leftovers, PlanRecord, Recommendation, RunObjects,
    RunStatus, ScalingAdvice, StepBrief, Summary, TypeOutcome,
};

/// What was asked: a [`PlanRecord`], written before the first step.
const PLAN_FILE: &str = "plan.json";
/// The run's spend across sessions: a [`Spend`].
const SPEND_FILE: &str = "usage.json";
/// The conclusion: a [`Summary`].
const SUMMARY_FILE: &str = "summary.json";
const STEPS_DIR: &str = "steps";
/// The auto-scaling test's trials: one [`ScalingTrial`] each.
const SCALING_DIR: &str = "scaling";
/// The reports rendered from the rest of the record.
pub const REPORT_FILE: &str = "report.html";
pub const JUNIT_FILE: &str = "junit.xml";

#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error("cannot create results directory {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a perfsize run directory (no plan.json, summary.json or steps/)")]
    NotARun { path: PathBuf },
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Lock(#[from] LockError),
}

impl crate::error::HasKind for RunDirError {
    fn kind(&self) -> crate::error::ErrorKind {
        match self {
            // Writing the record failed mid-run: the machine's disk, not the input.
            RunDirError::Write { .. } | RunDirError::Lock(LockError::Io { .. }) => crate::error::ErrorKind::Infrastructure,
            _ => crate::error::ErrorKind::Usage,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Creates `results/<run id>` (and its steps/) and checks it can be written.
    pub fn create(results: &Path, run_id: &str) -> Result<RunDir, RunDirError> {
        let root = results.join(run_id);
        let create = |path: &Path| {
            std::fs::create_dir_all(path).map_err(|source| RunDirError::Create { path: path.to_path_buf(), source })
        };
        create(&root.join(STEPS_DIR))?;
        let probe = root.join(".writable");
        std::fs::write(&probe, b"").map_err(|source| RunDirError::Create { path: root.clone(), source })?;
        let _ = std::fs::remove_file(probe);
        Ok(RunDir { root })
    }

    /// An existing run directory (possibly from an interrupted run).
    pub fn open(root: &Path) -> Result<RunDir, RunDirError> {
        let is_run = [PLAN_FILE, SUMMARY_FILE, STEPS_DIR].iter().any(|p| root.join(p).exists());
        if is_run { Ok(RunDir { root: root.to_path_buf() }) } else { Err(RunDirError::NotARun { path: root.to_path_buf() }) }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the directory for this session: a second session writing the
    /// same run is refused (see [`RunLock`]). Hold it until the run ends.
    pub fn lock(&self) -> Result<RunLock, RunDirError> {
        Ok(RunLock::acquire(&self.root)?)
    }

    /// The run id (the directory's name).
    pub fn run_id(&self) -> String {
        self.root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn step_path(&self, step: &StepResult) -> PathBuf {
        self.root.join(STEPS_DIR).join(step.file_name())
    }

    /// The relative path a summary names a step's file by.
    pub fn step_file(step: &StepResult) -> String {
        format!("{STEPS_DIR}/{}", step.file_name())
    }

    /// Writes `bytes` as the file `name` of the run, atomically.
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, RunDirError> {
        let path = self.path(name);
        write_atomic(&path, bytes).map_err(|source| RunDirError::Write { path: path.clone(), source })?;
        Ok(path)
    }

    pub fn write_plan(&self, plan: &PlanRecord) -> Result<(), RunDirError> {
        self.write_json(PLAN_FILE, plan)
    }

    pub fn plan(&self) -> Result<Option<PlanRecord>, RunDirError> {
        self.read_json(PLAN_FILE)
    }

    pub fn write_spend(&self, spend: &Spend) -> Result<(), RunDirError> {
        self.write_json(SPEND_FILE, spend)
    }

    pub fn spend(&self) -> Result<Option<Spend>, RunDirError> {
        self.read_json(SPEND_FILE)
    }

    pub fn write_summary(&self, summary: &Summary) -> Result<(), RunDirError> {
        self.write_json(SUMMARY_FILE, summary)
    }

    pub fn summary(&self) -> Result<Option<Summary>, RunDirError> {
        self.read_json(SUMMARY_FILE)
    }

    /// Writes (or rewrites, once CloudWatch figures arrive) a step's file.
    pub fn write_step(&self, step: &StepResult) -> Result<PathBuf, RunDirError> {
        let path = self.step_path(step);
        write_json(&path, step).map_err(|source| RunDirError::Write { path: path.clone(), source })?;
        Ok(path)
    }

    /// Writes a trial of the auto-scaling test the moment it ends.
    pub fn write_trial(&self, trial: &ScalingTrial) -> Result<PathBuf, RunDirError> {
        let path = self.root.join(SCALING_DIR).join(trial.file_name());
        write_json(&path, trial).map_err(|source| RunDirError::Write { path: path.clone(), source })?;
        Ok(path)
    }

    /// Every trial of the auto-scaling test written so far, in run order.
    pub fn trials(&self) -> Result<Vec<ScalingTrial>, RunDirError> {
        let mut trials: Vec<ScalingTrial> =
            json_files(&self.root.join(SCALING_DIR)).iter().map(|p| read(p)).collect::<Result<_, _>>()?;
        trials.sort_by_key(|t| t.index);
        Ok(trials)
    }

    fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), RunDirError> {
        let path = self.path(name);
        write_json(&path, value).map_err(|source| RunDirError::Write { path, source })
    }

    fn read_json<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, RunDirError> {
        let path = self.path(name);
        if !path.exists() {
            return Ok(None);
        }
        read(&path).map(Some)
    }

    /// Every step written so far, in run order.
    pub fn steps(&self) -> Result<Vec<StepResult>, RunDirError> {
        let mut steps: Vec<StepResult> =
            json_files(&self.root.join(STEPS_DIR)).iter().map(|p| read(p)).collect::<Result<_, _>>()?;
        steps.sort_by_key(|s| s.index);
        Ok(steps)
    }
}

/// The JSON files in `dir` (none if it does not exist), by name, without the
/// hidden temporaries of writes in progress.
fn json_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json") && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    paths.sort();
    paths
}

fn read<T: DeserializeOwned>(path: &Path) -> Result<T, RunDirError> {
    let bytes = std::fs::read(path).map_err(|e| RunDirError::Read { path: path.to_path_buf(), reason: e.to_string() })?;
    serde_json::from_slice(&bytes).map_err(|e| RunDirError::Read { path: path.to_path_buf(), reason: e.to_string() })
}

/// Writes `bytes` to `path` so a reader never sees half a file: a temporary
/// sibling, then a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("result")));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Writes a value as pretty JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}
