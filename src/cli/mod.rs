//! The command line: clap types (one module per command), the session every
//! AWS command opens, and `main`, which maps outcomes to perfsize's exit codes.
//! Everything a command reads is checked here, before anything is deployed.

pub mod args;
mod bench;
mod cleanup;
mod load;
mod report;
mod simulator;
pub mod sizing;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::aws::{Aws, AwsOptions};
use crate::simulator::{Profile, RunningSimulator};
use args::{AwsArgs, SimArgs};

/// Exit codes, as Jenkins jobs and scripts read them.
pub mod exit {
    /// A recommendation was found (or the command did what it was asked).
    pub const OK: u8 = 0;
    /// No configuration meets the requirements, a load step failed them, or a
    /// comparison found a regression.
    pub const NOT_MET: u8 = 1;
    /// The command line or an input file is wrong; nothing was deployed.
    pub const USAGE: u8 = 2;
    /// AWS (or the simulator) failed us.
    pub const INFRASTRUCTURE: u8 = 3;
    /// Stopped by Ctrl-C; everything deployed was torn down.
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Debug, Parser)]
#[command(
    name = "perfsize",
    version,
    about = "Right-size Amazon SageMaker inference endpoints by experiment",
    long_about = "Right-size Amazon SageMaker inference endpoints by experiment.\n\n\
        Without a subcommand, perfsize runs a sizing job: it deploys candidate configurations, drives real \
        traffic at them, and recommends the cheapest instance type × count that serves --peak-tps within the \
        latency and error requirements, with its cost and an auto-scaling policy.\n\n\
        Example: perfsize --simulate --peak-tps 100 --type-walk ml.m5.large,ml.c5.large --payload req.json",
    args_conflicts_with_subcommands = true,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub sizing: sizing::SizingArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the steps a sizing run may take and their worst-case cost; deploy nothing.
    Plan(Box<sizing::SizingArgs>),
    /// Delete what a killed run left behind (resources tagged by perfsize).
    Cleanup(cleanup::CleanupArgs),
    /// Rebuild report.html, junit.xml and the .hgrm files of a run directory.
    Report(report::ReportArgs),
    /// Compare two runs (or two load results); exit 1 when a figure regressed.
    Compare(report::CompareArgs),
    /// Drive one load step at an existing endpoint and judge it (no deployment).
    Load(Box<load::LoadArgs>),
    /// Benchmarks that print figures (simulator, capacity, accuracy, stall, strategies).
    Bench(bench::BenchArgs),
    /// Run the built-in SageMaker simulator (control plane, runtime, CloudWatch) on one port.
    Simulator(simulator::SimulatorArgs),
}

/// A failed command: what to print and which exit code to use.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: Box<dyn std::error::Error + Send + Sync>,
}

impl Failure {
    pub fn usage(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Failure { code: exit::USAGE, error: error.into() }
    }

    pub fn infrastructure(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Failure { code: exit::INFRASTRUCTURE, error: error.into() }
    }
}

/// Prints `error: …` and then every cause, one per line.
pub fn print_error(error: &(dyn std::error::Error + 'static)) {
    eprintln!("error: {error}");
    let mut source = error.source();
    if source.is_some() {
        eprintln!("\nCaused by:");
    }
    while let Some(cause) = source {
        eprintln!("    {cause}");
        source = cause.source();
    }
}

/// Entry point of the `perfsize` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            print_error(&e);
            return ExitCode::from(exit::INFRASTRUCTURE);
        }
    };
    let outcome = runtime.block_on(run(cli));
    // Nothing may outlive the command: no task, no socket.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            print_error(failure.error.as_ref());
            ExitCode::from(failure.code)
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PERFSIZE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,goose=error"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> Result<u8, Failure> {
    match cli.command {
        None => sizing::run(cli.sizing).await,
        Some(Command::Plan(args)) => sizing::plan(*args).await,
        Some(Command::Cleanup(args)) => cleanup::run(args).await,
        Some(Command::Load(args)) => load::run(*args).await,
        Some(Command::Report(args)) => report::run(args).await,
        Some(Command::Compare(args)) => report::compare(args).await,
        Some(Command::Simulator(args)) => simulator::run(args).await,
        Some(Command::Bench(args)) => bench::run(args).await,
    }
}

/// The AWS side of a command: clients, and the in-process simulator they
/// talk to under --simulate (stopped when the session is dropped).
pub struct Session {
    pub aws: Aws,
    pub simulated: bool,
    /// Kept alive for the session's lifetime.
    pub simulator: Option<RunningSimulator>,
}

impl Session {
    /// Loads the simulator profile (a usage error when malformed); call before
    /// anything else so bad input never reaches a deployment.
    pub fn simulator_profile(sim: &SimArgs) -> Result<Option<Profile>, Failure> {
        if !sim.simulate {
            return Ok(None);
        }
        Profile::load_or_builtin(sim.sim_profile.as_deref()).map(Some).map_err(Failure::usage)
    }

    pub async fn open(aws: &AwsArgs, profile: Option<Profile>) -> Result<Session, Failure> {
        let (options, simulator) = match profile {
            Some(profile) => {
                let simulator = RunningSimulator::start(profile, "127.0.0.1", 0).await.map_err(Failure::infrastructure)?;
                let options = AwsOptions {
                    region: Some(aws.region.clone().unwrap_or_else(|| "us-east-1".into())),
                    endpoint_url: Some(simulator.url()),
                    static_credentials: true,
                    ..AwsOptions::default()
                };
                (options, Some(simulator))
            }
            None => (aws.options(), None),
        };
        let aws = Aws::connect(&options).await.map_err(Failure::usage)?;
        Ok(Session { aws, simulated: simulator.is_some(), simulator })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn perfsizesagemaker_flags_are_accepted() {
        let cli = Cli::try_parse_from([
            "perfsize",
            "--peak_tps",
            "5",
            "--latency_success_p99",
            "400",
            "--percent_fail",
            "0.01",
            "--type_walk",
            "ml.m5.large,ml.m5.xlarge",
            "--count_walk",
            "1",
            "--tps_walk",
            "1,10,100",
            "--duration_minutes",
            "1",
            "--endurance_ramp_start_tps",
            "0",
            "--endurance_ramp_minutes",
            "0",
            "--endurance_steady_state_minutes",
            "1",
            "--endurance_retries",
            "3",
            "--perfsize_results_dir",
            "out",
            "--scenario_requests",
            "[]",
            "--iam_role_arn",
            "arn:aws:iam::1:role/r",
            "--host",
            "runtime.sagemaker.us-west-2.amazonaws.com",
            "--region",
            "us-west-2",
            "--endpoint_name",
            "e",
            "--endpoint_config_name",
            "c",
            "--model_name",
            "m",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        let s = cli.sizing;
        assert_eq!(s.peak_tps, Some(5.0));
        assert_eq!(s.type_walk.len(), 2);
        assert_eq!(s.tps_walk, vec![1.0, 10.0, 100.0]);
        assert_eq!(s.duration_minutes, Some(std::time::Duration::from_secs(60)));
        assert_eq!(s.requirements.max_error_percent, 0.01);
        assert_eq!(s.model_name.as_deref(), Some("m"));
    }

    #[test]
    fn an_unknown_instance_type_is_refused_while_parsing() {
        let err = Cli::try_parse_from(["perfsize", "--peak-tps", "5", "--type-walk", "ml.m5.large,ml.m5.huge"]).unwrap_err();
        assert_eq!(err.exit_code(), exit::USAGE as i32);
        assert!(err.to_string().contains("ml.m5.huge"), "{err}");
    }
}
