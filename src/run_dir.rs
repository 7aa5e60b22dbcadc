//! A run's directory, `RESULTS_DIR/<run id>/`: `plan.json` (what was asked,
//! written first), `steps/NNN-….json` (one StepResult each, written the
//! moment the step ends), `usage.json` (what the run has spent, rewritten with
//! each step), `summary.json` (the conclusion), and the reports. Everything
//! downstream — reports, `compare`, `--resume` — reads it back.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::result::StepResult;

/// The run's spend across sessions: an [`crate::environment::Spend`].
pub const SPEND_FILE: &str = "usage.json";

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
        create(&root.join("steps"))?;
        let probe = root.join(".writable");
        std::fs::write(&probe, b"").map_err(|source| RunDirError::Create { path: root.clone(), source })?;
        let _ = std::fs::remove_file(probe);
        Ok(RunDir { root })
    }

    /// An existing run directory (possibly from an interrupted run).
    pub fn open(root: &Path) -> Result<RunDir, RunDirError> {
        let is_run = ["plan.json", "summary.json", "steps"].iter().any(|p| root.join(p).exists());
        if is_run { Ok(RunDir { root: root.to_path_buf() }) } else { Err(RunDirError::NotARun { path: root.to_path_buf() }) }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The run id (the directory's name).
    pub fn run_id(&self) -> String {
        self.root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn step_path(&self, step: &StepResult) -> PathBuf {
        self.root.join("steps").join(step.file_name())
    }

    pub fn write_json<T: serde::Serialize>(&self, name: &str, value: &T) -> Result<(), RunDirError> {
        let path = self.path(name);
        crate::result::write_json(&path, value).map_err(|source| RunDirError::Write { path, source })
    }

    pub fn write_step(&self, step: &StepResult) -> Result<PathBuf, RunDirError> {
        let path = self.step_path(step);
        crate::result::write_json(&path, step).map_err(|source| RunDirError::Write { path: path.clone(), source })?;
        Ok(path)
    }

    pub fn read_json<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, RunDirError> {
        let path = self.path(name);
        if !path.exists() {
            return Ok(None);
        }
        read(&path).map(Some)
    }

    /// Every step written so far, in run order.
    pub fn steps(&self) -> Result<Vec<StepResult>, RunDirError> {
        let dir = self.root.join("steps");
        let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(Vec::new()) };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json") && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        paths.sort();
        let mut steps: Vec<StepResult> = paths.iter().map(|p| read(p)).collect::<Result<_, _>>()?;
        steps.sort_by_key(|s| s.index);
        Ok(steps)
    }
}

fn read<T: DeserializeOwned>(path: &Path) -> Result<T, RunDirError> {
    let bytes = std::fs::read(path).map_err(|e| RunDirError::Read { path: path.to_path_buf(), reason: e.to_string() })?;
    serde_json::from_slice(&bytes).map_err(|e| RunDirError::Read { path: path.to_path_buf(), reason: e.to_string() })
}
