//! The least-privilege IAM policy a perfsize run needs, for a platform team
//! to grant exactly that: SageMaker on the resources perfsize names
//! (`perfsize-…`), the runtime calls of the traffic, CloudWatch reads,
//! Application Auto Scaling and the alarms it manages when the auto-scaling
//! test runs, S3 on the named buckets and prefixes for asynchronous
//! endpoints, and iam:PassRole on the execution role when perfsize creates
//! the model. Pure: it only writes the document.

use serde_json::{Value, json};

use crate::environment::NAME_PREFIX;
use crate::s3::{Buckets, S3Location};

/// What a run does, as far as permissions go.
#[derive(Debug, Clone, Default)]
pub struct Needs {
    /// `*` when not given.
    pub region: Option<String>,
    /// `*` when not given.
    pub account: Option<String>,
    pub model: Model,
    /// The auto-scaling test (and `perfsize cleanup`, which deregisters).
    pub autoscaling: bool,
    /// Asynchronous endpoints: where inputs and outputs go.
    pub async_io: Option<Buckets>,
}

/// Where the model comes from.
#[derive(Debug, Clone, Default)]
pub enum Model {
    /// `--model-name`: only described, never changed.
    Existing(String),
    /// `--image`: created and deleted by the run, passing this role to SageMaker.
    Created { execution_role_arn: String },
    /// Not known: describing any model is allowed.
    #[default]
    Unknown,
}

impl Needs {
    fn arn(&self, service: &str, resource: &str) -> String {
        let region = self.region.as_deref().unwrap_or("*");
        let account = self.account.as_deref().unwrap_or("*");
        format!("arn:aws:{service}:{region}:{account}:{resource}")
    }

    /// perfsize's own SageMaker resources of `kind`.
    fn ours(&self, kind: &str) -> String {
        self.arn("sagemaker", &format!("{kind}/{NAME_PREFIX}*"))
    }
}

fn statement(sid: &str, actions: &[&str], resources: Vec<String>) -> Value {
    json!({ "Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources })
}

/// The policy document, ready for `aws iam create-policy --policy-document`.
pub fn policy(needs: &Needs) -> Value {
    let endpoints = vec![needs.ours("endpoint"), needs.ours("endpoint-config")];
    let mut statements = vec![
        statement(
            "PerfsizeEndpoints",
            &[
                "sagemaker:CreateEndpointConfig",
                "sagemaker:DescribeEndpointConfig",
                "sagemaker:DeleteEndpointConfig",
                "sagemaker:CreateEndpoint",
                "sagemaker:DescribeEndpoint",
                "sagemaker:UpdateEndpointWeightsAndCapacities",
                "sagemaker:DeleteEndpoint",
                "sagemaker:AddTags",
                "sagemaker:ListTags",
            ],
            endpoints,
        ),
        statement(
            "PerfsizeTraffic",
            &["sagemaker:InvokeEndpoint", "sagemaker:InvokeEndpointAsync"],
            vec![needs.ours("endpoint")],
        ),
        // List calls and CloudWatch reads take no resource-level permissions.
        statement(
            "PerfsizeListsAndMetrics",
            &[
                "sagemaker:ListEndpoints",
                "sagemaker:ListEndpointConfigs",
                "sagemaker:ListModels",
                "cloudwatch:GetMetricData",
                "cloudwatch:GetMetricStatistics",
                "cloudwatch:ListMetrics",
            ],
            vec!["*".into()],
        ),
    ];
    statements.extend(model_statements(needs));
    if needs.autoscaling {
        statements.extend(autoscaling_statements(needs));
    }
    if let Some(io) = &needs.async_io {
        statements.extend(s3_statements(io));
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}

fn model_statements(needs: &Needs) -> Vec<Value> {
    match &needs.model {
        Model::Existing(name) => {
            vec![statement(
                "PerfsizeModel",
                &["sagemaker:DescribeModel"],
                vec![needs.arn("sagemaker", &format!("model/{}", name.to_lowercase()))],
            )]
        }
        Model::Unknown => vec![statement("PerfsizeModel", &["sagemaker:DescribeModel"], vec![needs.arn("sagemaker", "model/*")])],
        Model::Created { execution_role_arn } => vec![
            statement(
                "PerfsizeModel",
                &[
                    "sagemaker:CreateModel",
                    "sagemaker:DescribeModel",
                    "sagemaker:DeleteModel",
                    "sagemaker:AddTags",
                    "sagemaker:ListTags",
                ],
                vec![needs.ours("model")],
            ),
            json!({
                "Sid": "PerfsizePassExecutionRole",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": execution_role_arn,
                "Condition": { "StringEquals": { "iam:PassedToService": "sagemaker.amazonaws.com" } }
            }),
        ],
    }
}

/// The alarms target tracking creates in the caller's name, and for an
/// asynchronous endpoint the one perfsize puts to wake it from zero
/// (`<endpoint>-has-backlog-without-capacity`).
fn scaling_alarms(needs: &Needs) -> Vec<String> {
    let mut alarms = vec![needs.arn("cloudwatch", &format!("alarm:TargetTracking-endpoint/{NAME_PREFIX}*"))];
    if needs.async_io.is_some() {
        alarms.push(needs.arn("cloudwatch", &format!("alarm:{NAME_PREFIX}*")));
    }
    alarms
}

/// Application Auto Scaling and its alarms; the service-linked role it
/// needs the first time.
fn autoscaling_statements(needs: &Needs) -> Vec<Value> {
    vec![
        statement(
            "PerfsizeAutoScaling",
            &[
                "application-autoscaling:RegisterScalableTarget",
                "application-autoscaling:DeregisterScalableTarget",
                "application-autoscaling:DescribeScalableTargets",
                "application-autoscaling:PutScalingPolicy",
                "application-autoscaling:DescribeScalingPolicies",
                "application-autoscaling:DeleteScalingPolicy",
                "application-autoscaling:DescribeScalingActivities",
            ],
            vec!["*".into()],
        ),
        statement(
            "PerfsizeScalingAlarms",
            &["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"],
            scaling_alarms(needs),
        ),
        json!({
            "Sid": "PerfsizeAutoScalingRole",
            "Effect": "Allow",
            "Action": "iam:CreateServiceLinkedRole",
            // IAM is global: its ARNs name no region.
            "Resource": format!(
                "arn:aws:iam::{}:role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint",
                needs.account.as_deref().unwrap_or("*")
            ),
            "Condition": { "StringLike": { "iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com" } }
        }),
    ]
}

/// Objects only under the runs' prefixes of the user's buckets, or buckets
/// only perfsize's own; listing buckets, for `perfsize cleanup`.
fn s3_statements(buckets: &Buckets) -> Vec<Value> {
    let mut out = match buckets {
        Buckets::Named { input, output } => {
            let objects = |l: &S3Location| format!("arn:aws:s3:::{}/{}*", l.bucket, l.prefix);
            let bucket = |l: &S3Location| format!("arn:aws:s3:::{}", l.bucket);
            vec![
                statement(
                    "PerfsizeAsyncObjects",
                    &["s3:PutObject", "s3:GetObject", "s3:DeleteObject"],
                    vec![objects(input), objects(output)],
                ),
                json!({
                    "Sid": "PerfsizeAsyncListing",
                    "Effect": "Allow",
                    "Action": "s3:ListBucket",
                    "Resource": if input.bucket == output.bucket { vec![bucket(input)] } else { vec![bucket(input), bucket(output)] },
                    "Condition": { "StringLike": { "s3:prefix": [format!("{}*", input.prefix), format!("{}*", output.prefix)] } }
                }),
            ]
        }
        Buckets::RunOwned => vec![
            statement(
                "PerfsizeAsyncBuckets",
                &["s3:CreateBucket", "s3:DeleteBucket", "s3:ListBucket"],
                vec![format!("arn:aws:s3:::{NAME_PREFIX}*")],
            ),
            statement(
                "PerfsizeAsyncObjects",
                &["s3:PutObject", "s3:GetObject", "s3:DeleteObject"],
                vec![format!("arn:aws:s3:::{NAME_PREFIX}*/*")],
            ),
        ],
    };
    out.push(statement("PerfsizeAsyncFindBuckets", &["s3:ListAllMyBuckets"], vec!["*".into()]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actions(policy: &Value) -> Vec<String> {
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| match &s["Action"] {
                Value::String(a) => vec![a.clone()],
                Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
                _ => vec![],
            })
            .collect()
    }

    #[test]
    fn a_real_time_run_on_an_existing_model_changes_only_perfsize_resources() {
        let needs = Needs {
            region: Some("us-west-2".into()),
            account: Some("123456789012".into()),
            model: Model::Existing("Churn".into()),
            ..Needs::default()
        };
        let policy = policy(&needs);
        let all = actions(&policy);
        assert!(all.contains(&"sagemaker:CreateEndpoint".to_string()) && all.contains(&"sagemaker:InvokeEndpoint".to_string()));
        assert!(!all.iter().any(|a| a.starts_with("application-autoscaling") || a.starts_with("s3:") || a == "iam:PassRole"));
        let text = policy.to_string();
        assert!(text.contains("arn:aws:sagemaker:us-west-2:123456789012:endpoint/perfsize-*"), "{text}");
        assert!(text.contains("arn:aws:sagemaker:us-west-2:123456789012:model/churn"), "{text}");
        assert!(!text.contains("sagemaker:CreateModel"), "an existing model is never changed");
    }

    #[test]
    fn creating_the_model_passes_only_its_role_to_sagemaker() {
        let role = "arn:aws:iam::123456789012:role/model";
        let needs = Needs { model: Model::Created { execution_role_arn: role.into() }, ..Needs::default() };
        let policy = policy(&needs);
        let pass = policy["Statement"].as_array().unwrap().iter().find(|s| s["Action"] == "iam:PassRole").unwrap();
        assert_eq!(pass["Resource"], role);
        assert_eq!(pass["Condition"]["StringEquals"]["iam:PassedToService"], "sagemaker.amazonaws.com");
    }

    #[test]
    fn the_scaling_test_adds_auto_scaling_and_its_alarms_only() {
        let policy = policy(&Needs { autoscaling: true, ..Needs::default() });
        let all = actions(&policy);
        assert!(all.contains(&"application-autoscaling:PutScalingPolicy".to_string()));
        assert!(all.contains(&"cloudwatch:PutMetricAlarm".to_string()));
        assert!(policy.to_string().contains("alarm:TargetTracking-endpoint/perfsize-*"));
        assert!(policy.to_string().contains("arn:aws:iam::*:role/aws-service-role/"), "{policy}");
        assert!(!policy.to_string().contains("alarm:perfsize-*"), "no alarm of its own in real time");
        let from_zero = super::policy(&Needs { autoscaling: true, async_io: Some(Buckets::RunOwned), ..Needs::default() });
        assert!(from_zero.to_string().contains("arn:aws:cloudwatch:*:*:alarm:perfsize-*"), "the wake-from-zero alarm");
    }

    #[test]
    fn async_runs_touch_objects_only_under_their_prefixes() {
        let named = Buckets::Named {
            input: S3Location::parse("s3://team-in/perfsize/").unwrap(),
            output: S3Location::parse("s3://team-out/results/").unwrap(),
        };
        let text = policy(&Needs { async_io: Some(named), ..Needs::default() }).to_string();
        assert!(text.contains("arn:aws:s3:::team-in/perfsize/*") && text.contains("arn:aws:s3:::team-out/results/*"), "{text}");
        assert!(!text.contains("s3:CreateBucket"), "the user's buckets are never created or deleted");
    }

    #[test]
    fn a_run_owned_bucket_is_created_and_deleted_only_under_perfsizes_names() {
        let text = policy(&Needs { async_io: Some(Buckets::RunOwned), ..Needs::default() }).to_string();
        assert!(text.contains("s3:CreateBucket") && text.contains("arn:aws:s3:::perfsize-*"), "{text}");
        assert!(!text.contains("arn:aws:s3:::*"), "never every bucket: {text}");
    }
}
