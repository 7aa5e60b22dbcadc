//! `perfsize iam-policy`: the least-privilege IAM policy of a run, printed as
//! JSON for `aws iam create-policy --policy-document file://…`.

use clap::Args;

use super::args::BucketArgs;
use super::{Failure, exit};
use crate::iam::{Model, Needs, policy};

#[derive(Debug, Args)]
pub struct IamArgs {
    /// The region the runs use (default: any).
    #[arg(long)]
    pub region: Option<String>,
    /// The account the runs use (default: any).
    #[arg(long, value_name = "ID")]
    pub account: Option<String>,
    /// The existing model the runs size: described, never changed.
    #[arg(long, conflicts_with = "execution_role_arn")]
    pub model_name: Option<String>,
    /// The runs create the model (`--image`) and pass this role to SageMaker.
    #[arg(long, value_name = "ARN")]
    pub execution_role_arn: Option<String>,
    /// The runs test auto-scaling (`--scaling-ramp`): Application Auto Scaling and its alarms.
    #[arg(long)]
    pub scaling: bool,
    /// The runs size asynchronous endpoints (`--async`): S3 on the buckets and prefixes below,
    /// or on the buckets perfsize creates when none is named.
    #[arg(long = "async")]
    pub asynchronous: bool,
    #[command(flatten)]
    pub buckets: BucketArgs,
}

pub fn run(args: IamArgs) -> Result<u8, Failure> {
    if let Some(account) = &args.account
        && !(account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(Failure::usage(format!("--account {account}: an AWS account id is 12 digits")));
    }
    let model = match (args.model_name, args.execution_role_arn) {
        (Some(name), _) => Model::Existing(name),
        (None, Some(role)) => Model::Created { execution_role_arn: role },
        (None, None) => Model::Unknown,
    };
    let async_io = args.asynchronous.then(|| args.buckets.buckets()).transpose().map_err(Failure::usage)?;
    let needs = Needs { region: args.region, account: args.account, model, autoscaling: args.scaling, async_io };
    println!("{}", serde_json::to_string_pretty(&policy(&needs)).expect("a JSON value prints"));
    Ok(exit::OK)
}
