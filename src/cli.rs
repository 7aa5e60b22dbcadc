//! The command line: clap types, and `main`, which runs a command and maps its
//! outcome to perfsize's exit codes.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::signals;
use crate::simulator::{self, Profile};

/// Exit codes, as Jenkins jobs and scripts read them.
pub mod exit {
    /// A recommendation was found (or the command did what it was asked).
    pub const OK: u8 = 0;
    /// No configuration meets the requirements, or a comparison found a regression.
    pub const NOT_MET: u8 = 1;
    /// The command line or an input file is wrong; nothing was deployed.
    pub const USAGE: u8 = 2;
    /// AWS (or the simulator) failed us.
    pub const INFRASTRUCTURE: u8 = 3;
    /// Stopped by Ctrl-C; everything deployed was torn down.
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Debug, Parser)]
#[command(name = "perfsize", version, about = "Right-size Amazon SageMaker inference endpoints by experiment")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the built-in SageMaker simulator (control plane, runtime, CloudWatch) on one port.
    Simulator(SimulatorArgs),
}

#[derive(Debug, Args)]
pub struct SimulatorArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on; 0 picks a free one (printed on start).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Simulator profile (TOML); the shipped resources/simulator/default.toml when absent.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
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
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

async fn run(cli: Cli) -> Result<u8, Failure> {
    match cli.command {
        Command::Simulator(args) => run_simulator(args).await,
    }
}

async fn run_simulator(args: SimulatorArgs) -> Result<u8, Failure> {
    let profile = Profile::load_or_builtin(args.profile.as_deref()).map_err(Failure::usage)?;
    let interrupts = signals::install();
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .map_err(|e| Failure::usage(format!("cannot listen on {}:{}: {e}", args.host, args.port)))?;
    let addr = listener.local_addr().map_err(Failure::infrastructure)?;
    let url = format!("http://{addr}");
    println!("{url}");
    eprintln!(
        "perfsize simulator ({}) listening on {url}\n  \
         point SDKs at it: AWS_ENDPOINT_URL={url} (any credentials)\n  \
         Ctrl-C stops it",
        profile.origin
    );
    let _ = std::io::stdout().flush();
    let token = interrupts.token();
    simulator::run(listener, profile, async move { token.cancelled().await })
        .await
        .map_err(Failure::infrastructure)?;
    Ok(exit::OK)
}
