//! `perfsize simulator`: the built-in SageMaker simulator, standalone.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::{Failure, exit};
use crate::simulator::{self, Profile};

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

pub async fn run(args: SimulatorArgs) -> Result<u8, Failure> {
    let profile = Profile::load_or_builtin(args.profile.as_deref())?;
    let interrupts = super::interrupts();
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .map_err(|e| Failure::usage(format!("cannot listen on {}:{}: {e}", args.host, args.port)))?;
    let addr = listener.local_addr().map_err(Failure::infrastructure)?;
    let url = format!("http://{addr}");
    println!("{url}");
    eprintln!(
        "perfsize simulator ({}) listening on {url}\n  \
         point SDKs and perfsize at it: AWS_ENDPOINT_URL={url} (any credentials, any region)\n  \
         Ctrl-C stops it",
        profile.origin
    );
    let _ = std::io::stdout().flush();
    let token = interrupts.token();
    simulator::run(listener, profile, async move { token.cancelled().await }).await.map_err(Failure::infrastructure)?;
    Ok(exit::OK)
}
