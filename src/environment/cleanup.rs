//! `perfsize cleanup`: finds what a killed run left behind — resources named
//! `perfsize-…` that carry the `perfsize:run-id` tag — and deletes them,
//! endpoints first. Resources without the tag are never touched.

use std::time::Duration;

use serde::Serialize;

use super::sagemaker::{api_error, delete};
use super::{ApiError, Kind, NAME_PREFIX, RUN_TAG, RunId};

/// A perfsize resource still alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leftover {
    pub kind: Kind,
    pub name: String,
    pub run_id: String,
}

/// Every perfsize resource (of `run`, if given), endpoints first.
pub async fn find(client: &aws_sdk_sagemaker::Client, run: Option<&RunId>) -> Result<Vec<Leftover>, ApiError> {
    let prefix = match run {
        Some(run) => format!("{NAME_PREFIX}{run}"),
        None => NAME_PREFIX.to_string(),
    };
    let mut found = Vec::new();
    for kind in Kind::DELETION_ORDER {
        for (name, arn) in list(client, kind, &prefix).await? {
            if !name.starts_with(NAME_PREFIX) {
                continue;
            }
            let Some(run_id) = run_tag(client, &arn).await? else { continue };
            if run.is_none_or(|run| run.as_str() == run_id) {
                found.push(Leftover { kind, name, run_id });
            }
        }
    }
    Ok(found)
}

/// Names and ARNs of every resource of `kind` whose name contains `filter`.
async fn list(client: &aws_sdk_sagemaker::Client, kind: Kind, filter: &str) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let (page, next) = match kind {
            Kind::Endpoint => {
                let r = client
                    .list_endpoints()
                    .name_contains(filter)
                    .max_results(100)
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(|e| api_error("ListEndpoints", &e))?;
                (
                    r.endpoints()
                        .iter()
                        .map(|e| (e.endpoint_name.clone().unwrap_or_default(), e.endpoint_arn.clone().unwrap_or_default()))
                        .collect::<Vec<_>>(),
                    r.next_token,
                )
            }
            Kind::EndpointConfig => {
                let r = client
                    .list_endpoint_configs()
                    .name_contains(filter)
                    .max_results(100)
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(|e| api_error("ListEndpointConfigs", &e))?;
                (
                    r.endpoint_configs()
                        .iter()
                        .map(|c| {
                            (
                                c.endpoint_config_name.clone().unwrap_or_default(),
                                c.endpoint_config_arn.clone().unwrap_or_default(),
                            )
                        })
                        .collect(),
                    r.next_token,
                )
            }
            Kind::Model => {
                let r = client
                    .list_models()
                    .name_contains(filter)
                    .max_results(100)
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(|e| api_error("ListModels", &e))?;
                (
                    r.models()
                        .iter()
                        .map(|m| (m.model_name.clone().unwrap_or_default(), m.model_arn.clone().unwrap_or_default()))
                        .collect(),
                    r.next_token,
                )
            }
        };
        out.extend(page);
        match next.filter(|t| !t.is_empty()) {
            Some(next) => token = Some(next),
            None => return Ok(out),
        }
    }
}

async fn run_tag(client: &aws_sdk_sagemaker::Client, arn: &str) -> Result<Option<String>, ApiError> {
    let tags = client.list_tags().resource_arn(arn).max_results(100).send().await.map_err(|e| api_error("ListTags", &e))?;
    Ok(tags.tags().iter().find(|t| t.key() == Some(RUN_TAG)).and_then(|t| t.value().map(str::to_string)))
}

/// Deletes `leftovers` in order (endpoints, then configs, then models),
/// reporting each as it goes; returns how many could not be deleted.
pub async fn remove(
    client: &aws_sdk_sagemaker::Client,
    leftovers: &[Leftover],
    poll: Duration,
    report: impl Fn(&Leftover, Result<(), &ApiError>),
) -> usize {
    let mut failed = 0;
    for kind in Kind::DELETION_ORDER {
        for leftover in leftovers.iter().filter(|l| l.kind == kind) {
            let result = delete(client, kind, &leftover.name, poll).await;
            failed += result.is_err() as usize;
            report(leftover, result.as_ref().map(|_| ()));
        }
    }
    failed
}
