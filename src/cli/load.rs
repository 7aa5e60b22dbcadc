//! `perfsize load`: one load step against an endpoint that already exists —
//! the quick regression check of a Jenkins job.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::args::{
    AsyncArgs, AwsArgs, RequirementArgs, SimArgs, TrafficArgs, parse_duration, parse_non_negative, parse_positive,
};
use super::{Failure, exit, simulated_model};
use crate::catalog::InstanceType;
use crate::engine::load_step::{self, LoadJob, LoadTarget};
use crate::load::RateProfile;
use crate::progress::Progress;
use crate::record;
use crate::result::histogram;
use crate::vocab::Candidate;

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The endpoint to drive; it must be InService. With --simulate perfsize deploys one instead.
    #[arg(long, required_unless_present = "simulate")]
    pub endpoint_name: Option<String>,
    /// Its production variant (for CloudWatch figures).
    #[arg(long, default_value = crate::sagemaker::VARIANT_NAME)]
    pub variant: String,
    /// Target rate, requests per second.
    #[arg(long, value_parser = parse_positive, value_name = "TPS")]
    pub tps: f64,
    /// How long to measure, after the warm-up.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub duration: Duration,
    /// Rise linearly from --ramp-start-tps to --tps over this long.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub ramp: Option<Duration>,
    #[arg(long, value_parser = parse_non_negative, default_value = "0", value_name = "TPS")]
    pub ramp_start_tps: f64,
    /// Write the StepResult here (JSON).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Write the latency percentile distribution here (HdrHistogram .hgrm text).
    #[arg(long, value_name = "PATH")]
    pub hgrm: Option<PathBuf>,
    /// How long to wait for CloudWatch figures (default 3m on AWS; 0 skips them).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub cloudwatch_wait: Option<Duration>,
    /// Instance type of the endpoint --simulate deploys.
    #[arg(long, default_value = "ml.m5.large", value_parser = |s: &str| s.parse::<InstanceType>().map_err(|e| e.to_string()))]
    pub instance_type: InstanceType,
    /// Instance count of the endpoint --simulate deploys.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub instance_count: u32,
    #[command(flatten)]
    pub asynchronous: AsyncArgs,
    #[command(flatten)]
    pub traffic: TrafficArgs,
    #[command(flatten)]
    pub requirements: RequirementArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub sim: SimArgs,
}

/// Makes sure an output file can be written, creating its directory.
pub fn ensure_writable(flag: &str, path: &Path) -> Result<(), Failure> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Failure::usage(format!("cannot write {flag} {}: {e}", path.display())))?;
    if path.is_dir() {
        return Err(Failure::usage(format!("cannot write {flag} {}: it is a directory", path.display())));
    }
    Ok(())
}

pub async fn run(args: LoadArgs) -> Result<u8, Failure> {
    // Everything the user typed is checked before anything else happens.
    let requirements = args.requirements.requirements()?;
    let traffic = args.traffic.traffic()?;
    let profile = super::simulator_profile(&args.sim)?;
    for (flag, path) in [("--json", &args.json), ("--hgrm", &args.hgrm)] {
        if let Some(path) = path {
            ensure_writable(flag, path)?;
        }
    }
    if args.ramp_start_tps > args.tps {
        return Err(Failure::usage(format!("--ramp-start-tps {} is above --tps {}", args.ramp_start_tps, args.tps)));
    }
    let asynchronous =
        args.asynchronous.asynchronous(Duration::from_secs_f64(requirements.latency_ms / 1000.0)).map_err(Failure::usage)?;

    let session = super::open_session(&args.aws, profile).await?;
    if let Some(a) = &asynchronous {
        session.check_buckets(&a.buckets).await.map_err(Failure::usage)?;
    }
    let warmup = args.traffic.warmup.unwrap_or(Duration::from_secs(5));
    let job = LoadJob {
        target: match &args.endpoint_name {
            // Under --simulate there is no endpoint yet: deploy one, and always take it away.
            _ if session.simulated => LoadTarget::Deployed {
                candidate: Candidate::new(args.instance_type.clone(), args.instance_count),
                model: simulated_model(),
            },
            Some(endpoint) => LoadTarget::Existing { endpoint: endpoint.clone(), variant: args.variant.clone() },
            None => unreachable!("clap requires --endpoint-name without --simulate"),
        },
        rate: RateProfile::new(args.tps, args.ramp.map(|ramp| (args.ramp_start_tps, ramp)), warmup + args.duration),
        warmup,
        traffic,
        requirements,
        cloudwatch_wait: args.cloudwatch_wait.unwrap_or(session.pace.metrics_wait),
        asynchronous,
    };
    let progress = Arc::new(Progress::new(session.simulated, false));
    let outcome = load_step::run(&session, &job, &progress).await;
    progress.finish();
    let step = outcome?;

    println!("{}", step.summary());
    let cannot_write = |path: &Path, e: std::io::Error| Failure::infrastructure(format!("cannot write {}: {e}", path.display()));
    if let Some(path) = &args.json {
        record::write_json(path, &step).map_err(|e| cannot_write(path, e))?;
    }
    if let Some(path) = &args.hgrm {
        let h = histogram::decode(&step.histogram).map_err(Failure::infrastructure)?;
        record::write_atomic(path, histogram::hgrm(&h).as_bytes()).map_err(|e| cannot_write(path, e))?;
    }
    Ok(if session.interrupted() {
        exit::INTERRUPTED
    } else if step.passed {
        exit::OK
    } else {
        exit::NOT_MET
    })
}
