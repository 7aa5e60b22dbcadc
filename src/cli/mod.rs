//! The command line: clap types (one module per command), and `main`. Each
//! command is parse → validate → call the engine → map to an exit code;
//! this module alone turns an [`ErrorKind`] into an exit code, and alone
//! starts the in-process simulator that `--simulate` points the engine at.

pub mod args;
mod bench;
mod cleanup;
pub mod config;
mod iam;
mod load;
mod merge;
mod report;
mod simulator;
pub mod sizing;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::aws::AwsOptions;
use crate::engine::Session;
use crate::error::{ErrorKind, HasKind};
use crate::signals::{self, Interrupts};
use crate::simulator::{Profile, ProfileError, RunningSimulator};
use args::{AwsArgs, SimArgs};
use config::ConfigOrClap;

/// Exit codes, as Jenkins jobs and scripts read them.
pub mod exit {
    use crate::error::ErrorKind;

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

    /// The exit code of a failure of `kind`.
    pub fn code(kind: ErrorKind) -> u8 {
        match kind {
            ErrorKind::Usage => USAGE,
            ErrorKind::NotMet => NOT_MET,
            ErrorKind::Infrastructure => INFRASTRUCTURE,
            ErrorKind::Interrupted => INTERRUPTED,
        }
    }

    /// The exit code of a job that ended with `failure` (None: success).
    pub fn of(failure: Option<ErrorKind>) -> u8 {
        failure.map_or(OK, code)
    }
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
    /// Drive one load step at an existing endpoint (or any HTTP model server) and judge it.
    Load(Box<load::LoadArgs>),
    /// Combine the shards of one load step (`load --shard i/N`) into its one result.
    Merge(merge::MergeArgs),
    /// Benchmarks that print figures (simulator, capacity, accuracy, stall, strategies).
    Bench(bench::BenchArgs),
    /// Run the built-in SageMaker simulator (control plane, runtime, CloudWatch) on one port.
    Simulator(simulator::SimulatorArgs),
    /// Print the least-privilege IAM policy a run needs (JSON, for aws iam create-policy).
    IamPolicy(iam::IamArgs),
}

/// A failed command: what to print, and its kind.
#[derive(Debug)]
pub struct Failure {
    pub kind: ErrorKind,
    pub error: Box<dyn std::error::Error + Send + Sync>,
}

impl Failure {
    /// The user's input is wrong: a message of the CLI's own.
    pub fn usage(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Failure { kind: ErrorKind::Usage, error: error.into() }
    }

    pub fn infrastructure(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Failure { kind: ErrorKind::Infrastructure, error: error.into() }
    }
}

/// Every error of the engine and the managers knows its kind.
impl<E: HasKind + std::error::Error + Send + Sync + 'static> From<E> for Failure {
    fn from(error: E) -> Failure {
        Failure { kind: error.kind(), error: Box::new(error) }
    }
}

impl HasKind for ProfileError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Usage
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
    let cli = match config::parse_with_config(std::env::args_os()) {
        Ok(cli) => cli,
        Err(ConfigOrClap::Clap(e)) => e.exit(),
        Err(ConfigOrClap::Config(e)) => {
            print_error(&e);
            return ExitCode::from(exit::USAGE);
        }
    };
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
            ExitCode::from(exit::code(failure.kind))
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
    // Each command's future lives on the heap: together, inline, they are
    // larger than a test thread's stack in a debug build.
    match cli.command {
        None => Box::pin(sizing::run(cli.sizing)).await,
        Some(Command::Plan(args)) => Box::pin(sizing::plan(*args)).await,
        Some(Command::Cleanup(args)) => Box::pin(cleanup::run(args)).await,
        Some(Command::Load(args)) => Box::pin(load::run(*args)).await,
        Some(Command::Merge(args)) => merge::run(args),
        Some(Command::Report(args)) => Box::pin(report::run(args)).await,
        Some(Command::Compare(args)) => Box::pin(report::compare(args)).await,
        Some(Command::Simulator(args)) => Box::pin(simulator::run(args)).await,
        Some(Command::Bench(args)) => Box::pin(bench::run(args)).await,
        Some(Command::IamPolicy(args)) => iam::run(args),
    }
}

/// The process's interrupt handling; a forced exit is an interrupt too.
pub fn interrupts() -> &'static Interrupts {
    signals::install(exit::INTERRUPTED as i32)
}

/// The engine's session for a command, and the in-process simulator it
/// talks to under `--simulate` (stopped when this is dropped).
pub struct CliSession {
    pub session: Session,
    _simulator: Option<RunningSimulator>,
}

impl std::ops::Deref for CliSession {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

/// Loads the simulator profile of `--simulate` (a usage error when
/// malformed); call before anything else so bad input never reaches a deployment.
pub fn simulator_profile(sim: &SimArgs) -> Result<Option<Profile>, Failure> {
    if !sim.simulate {
        return Ok(None);
    }
    Ok(Some(Profile::load_or_builtin(sim.sim_profile.as_deref())?))
}

/// Opens the session: on AWS as `aws` says, or on a simulator started here with `profile`.
pub async fn open_session(aws: &AwsArgs, profile: Option<Profile>) -> Result<CliSession, Failure> {
    let (options, simulator) = match profile {
        Some(profile) => {
            let simulator = RunningSimulator::start(profile, "127.0.0.1", 0).await.map_err(Failure::infrastructure)?;
            let options = AwsOptions {
                region: Some(aws.region.clone().unwrap_or_else(|| SIMULATED_REGION.into())),
                endpoint_url: Some(simulator.url()),
                static_credentials: true,
                ..AwsOptions::default()
            };
            (options, Some(simulator))
        }
        None => (aws.options(), None),
    };
    let session = Session::open(&options, simulator.is_some(), interrupts()).await?;
    Ok(CliSession { session, _simulator: simulator })
}

/// The region a simulated run claims when none is given.
pub const SIMULATED_REGION: &str = "us-east-1";

/// A model that stands in for the user's under --simulate.
pub fn simulated_model() -> crate::environment::ModelSource {
    crate::environment::ModelSource::Create {
        image: "perfsize/simulated-model:latest".into(),
        model_data_url: None,
        execution_role_arn: format!("arn:aws:iam::{}:role/perfsize-simulated", crate::simulator::ACCOUNT_ID),
        environment: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_kind_has_its_exit_code_and_errors_bring_their_kind() {
        assert_eq!(
            [ErrorKind::Usage, ErrorKind::NotMet, ErrorKind::Infrastructure, ErrorKind::Interrupted].map(exit::code),
            [2, 1, 3, 130]
        );
        assert_eq!(exit::of(None), exit::OK);
        let refused: Failure = crate::plan::PlanError::BadParallel.into();
        assert_eq!(refused.kind, ErrorKind::Usage);
        let aws =
            crate::environment::ApiError { operation: "CreateEndpoint", code: "InternalFailure".into(), message: "boom".into() };
        assert_eq!(Failure::from(aws).kind, ErrorKind::Infrastructure);
        let expired = crate::environment::ApiError {
            operation: "DescribeEndpoint",
            code: "ExpiredTokenException".into(),
            message: "".into(),
        };
        assert_eq!(Failure::from(expired).kind, ErrorKind::Usage, "credentials are the user's to fix");
    }

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

    #[test]
    fn serverless_entries_share_the_type_walk_and_bad_ones_are_usage_errors() {
        use crate::vocab::MemorySize;
        use sizing::WalkEntry;
        let cli =
            Cli::try_parse_from(["perfsize", "--peak-tps", "5", "--type-walk", "ml.c5.large,serverless:2048,serverless:4096"])
                .unwrap();
        assert_eq!(cli.sizing.type_walk.len(), 3);
        assert_eq!(cli.sizing.type_walk[1], WalkEntry::Serverless(MemorySize::try_from(2048).unwrap()));
        for bad in ["serverless:1500", "serverless", "serverless:7168"] {
            let err = Cli::try_parse_from(["perfsize", "--peak-tps", "5", "--type-walk", bad]).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
        }
        let err = Cli::try_parse_from(["perfsize", "--peak-tps", "5", "--serverless-max-concurrency", "201"]).unwrap_err();
        assert!(err.to_string().contains("1 to 200"), "{err}");
    }
}
