//! `perfsize cleanup`: removes what a killed run left behind (resources
//! tagged `perfsize:run-id`), or with --dry-run only lists it.

use std::time::Duration;

use clap::Args;

use super::args::AwsArgs;
use super::{Failure, exit};
use crate::environment::{RunId, cleanup};

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["run_id", "all"]))]
pub struct CleanupArgs {
    /// The run whose resources to delete (its directory's name under the results dir).
    #[arg(long, value_parser = |s: &str| s.parse::<RunId>().map_err(|e| e.to_string()))]
    pub run_id: Option<RunId>,
    /// Every perfsize run's resources — including runs still going, on a shared account.
    #[arg(long)]
    pub all: bool,
    /// List what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub aws: AwsArgs,
}

pub async fn run(args: CleanupArgs) -> Result<u8, Failure> {
    let session = super::open_session(&args.aws, None).await?;
    let clients = session.clients();
    let leftovers = cleanup::find(&clients, args.run_id.as_ref()).await?;
    if leftovers.is_empty() {
        println!(
            "nothing to clean up: no perfsize resources{}",
            args.run_id.as_ref().map(|r| format!(" of run {r}")).unwrap_or_default()
        );
        return Ok(exit::OK);
    }
    for l in &leftovers {
        println!("{} {} {} (run {})", if args.dry_run { "would delete" } else { "deleting" }, l.kind, l.name, l.run_id);
    }
    if args.dry_run {
        return Ok(exit::OK);
    }
    let failed = cleanup::remove(&clients, &leftovers, Duration::from_secs(5), |l, result| match result {
        Ok(()) => println!("deleted {} {}", l.kind, l.name),
        Err(e) => eprintln!("could not delete {} {}: {e}", l.kind, l.name),
    })
    .await;
    if failed > 0 {
        return Err(Failure::infrastructure(format!("{failed} resources could not be deleted; run cleanup again")));
    }
    Ok(exit::OK)
}
