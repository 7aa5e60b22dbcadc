//! `perfsize merge DIR...`: the shards of one load step, written by
//! `perfsize load --shard i/N --shard-dir DIR` on several machines, combined
//! into one result — printed, judged (exit 0 pass, 1 fail) and written as
//! `--json` and `--hgrm` like a single `perfsize load`.

use std::path::{Path, PathBuf};

use clap::Args;

use super::load::{StepOutputs, ensure_writable, write_outputs};
use super::{Failure, exit};
use crate::engine::shards;

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Directories holding shard-i-of-N.json and shard-i-of-N.hlog files.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Write the merged StepResult here (JSON).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Write the merged latency percentile distribution here (HdrHistogram .hgrm text).
    #[arg(long, value_name = "PATH")]
    pub hgrm: Option<PathBuf>,
}

impl StepOutputs for MergeArgs {
    fn json(&self) -> Option<&Path> {
        self.json.as_deref()
    }
    fn hgrm(&self) -> Option<&Path> {
        self.hgrm.as_deref()
    }
}

pub fn run(args: MergeArgs) -> Result<u8, Failure> {
    for (flag, path) in [("--json", &args.json), ("--hgrm", &args.hgrm)] {
        if let Some(path) = path {
            ensure_writable(flag, path)?;
        }
    }
    let step = shards::merge(&args.dirs)?;
    println!("{}", step.summary());
    write_outputs(&args, &step)?;
    Ok(if step.passed { exit::OK } else { exit::NOT_MET })
}
