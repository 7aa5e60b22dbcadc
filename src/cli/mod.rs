//! The command line: clap types (one module per command), the session every
//! AWS command opens, and `main`, which maps outcomes to perfsize's exit codes.
//! Everything a command reads is checked here, before anything is deployed.

pub mod args;
mod load;
mod simulator;

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
#[command(name = "perfsize", version, about = "Right-size Amazon SageMaker inference endpoints by experiment", propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Drive one load step at an existing endpoint and judge it (no deployment).
    Load(load::LoadArgs),
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
        Command::Load(args) => load::run(args).await,
        Command::Simulator(args) => simulator::run(args).await,
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
