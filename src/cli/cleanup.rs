//! `perfsize cleanup`: removes what a killed run left behind (resources
//! tagged `perfsize:run-id`), or with --dry-run only lists it.

use std::time::Duration;

use clap::Args;

use super::args::AwsArgs;
use super::{Failure, exit};
use crate::environment::{Patience, RunId, cleanup};
use crate::s3::S3Location;

/// `perfsize cleanup` is run by a person after a killed run: it keeps at a
/// deletion AWS refuses for now (throttled, an endpoint still updating) for
/// half an hour, every five seconds.
const CLEANUP_PATIENCE: Patience = Patience { poll: Duration::from_secs(5), within: Duration::from_secs(30 * 60) };

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["run_id", "all"]))]
pub struct CleanupArgs {
    /// The run whose resources to delete (its directory's name under the results dir).
    #[arg(long, value_parser = |s: &str| s.parse::<RunId>().map_err(|e| e.to_string()))]
    pub run_id: Option<RunId>,
    /// Every perfsize run's resources — including runs still going, on a shared account.
    #[arg(long)]
    pub all: bool,
    /// A folder of your own bucket an asynchronous run wrote under (its
    /// --input-bucket/--input-prefix, or output): the run's objects there,
    /// under <prefix><run id>/, are deleted too. Repeatable; needs --run-id.
    #[arg(long, value_name = "s3://BUCKET/PREFIX/", requires = "run_id", value_parser = |s: &str| S3Location::parse(s).ok_or_else(|| format!("`{s}` is not s3://bucket/prefix/")))]
    pub objects: Vec<S3Location>,
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
    let folders: Vec<S3Location> = match &args.run_id {
        Some(run) => args.objects.iter().map(|f| f.child(run.as_str())).collect(),
        None => Vec::new(),
    };
    let objects_failed = delete_objects(&clients.s3, &folders, args.dry_run).await;
    if leftovers.is_empty() {
        println!(
            "nothing to clean up: no perfsize resources{}",
            args.run_id.as_ref().map(|r| format!(" of run {r}")).unwrap_or_default()
        );
        return objects_outcome(objects_failed);
    }
    for l in &leftovers {
        println!("{} {} {} (run {})", if args.dry_run { "would delete" } else { "deleting" }, l.kind, l.name, l.run_id);
    }
    if args.dry_run {
        return Ok(exit::OK);
    }
    objects_outcome(objects_failed)?;
    let failed = cleanup::remove(&clients, &leftovers, CLEANUP_PATIENCE, |l, result| match result {
        Ok(()) => println!("deleted {} {}", l.kind, l.name),
        Err(e) => eprintln!("could not delete {} {}: {e}", l.kind, l.name),
    })
    .await;
    if failed > 0 {
        return Err(Failure::infrastructure(format!("{failed} resources could not be deleted; run cleanup again")));
    }
    Ok(exit::OK)
}

/// Deletes (or with `dry_run` counts) the objects under each of `folders`;
/// returns how many folders could not be cleared.
async fn delete_objects(s3: &aws_sdk_s3::Client, folders: &[S3Location], dry_run: bool) -> usize {
    let mut failed = 0;
    for folder in folders {
        let result = if dry_run { crate::s3::count_under(s3, folder).await } else { crate::s3::delete_under(s3, folder).await };
        match result {
            Ok(n) => println!("{} {n} objects under {folder}", if dry_run { "would delete" } else { "deleted" }),
            Err(e) => {
                eprintln!("could not clear {folder}: {e}");
                failed += 1;
            }
        }
    }
    failed
}

fn objects_outcome(failed: usize) -> Result<u8, Failure> {
    if failed > 0 {
        return Err(Failure::infrastructure(format!("{failed} folders could not be cleared; run cleanup again")));
    }
    Ok(exit::OK)
}
