//! `perfsize cleanup`: finds what a killed run left behind — resources named
//! `perfsize-…` that carry the `perfsize:run-id` tag, the scalable targets
//! and wake-from-zero alarms of their endpoints, and the buckets of
//! asynchronous runs — and deletes them, scaling first, then endpoints,
//! buckets last. Resources without the tag are never touched; a scalable
//! target or alarm whose endpoint is gone counts as perfsize's only when its
//! name carries the run id.

use serde::Serialize;

use super::autoscaling::{alarms_named, registered_endpoints};
use super::sagemaker::{Clients, api_error, delete};
use super::{ApiError, Kind, NAME_PREFIX, Patience, RUN_TAG, RunId};
use crate::scaling::backlog::ALARM_SUFFIX;

/// A perfsize resource still alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leftover {
    pub kind: Kind,
    pub name: String,
    pub run_id: String,
}

/// Every perfsize resource (of `run`, if given), in deletion order.
pub async fn find(clients: &Clients, run: Option<&RunId>) -> Result<Vec<Leftover>, ApiError> {
    let client = &clients.sagemaker;
    let prefix = match run {
        Some(run) => format!("{NAME_PREFIX}{run}"),
        None => NAME_PREFIX.to_string(),
    };
    let mut found = Vec::new();
    for kind in [Kind::Endpoint, Kind::EndpointConfig, Kind::Model] {
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
    let targets: Vec<(String, String)> =
        registered_endpoints(&clients.autoscaling).await?.into_iter().map(|e| (e.clone(), e)).collect();
    let targets = endpoint_leftovers(Kind::ScalableTarget, &targets, &found, run);
    let alarms: Vec<(String, String)> = alarms_named(&clients.cloudwatch, &prefix)
        .await?
        .into_iter()
        .filter_map(|name| Some((name.strip_suffix(ALARM_SUFFIX)?.to_string(), name)))
        .collect();
    let alarms = endpoint_leftovers(Kind::Alarm, &alarms, &found, run);
    let buckets = bucket_leftovers(&clients.s3, run).await?;
    Ok(targets.into_iter().chain(alarms).chain(found).chain(buckets).collect())
}

/// The buckets perfsize created for asynchronous runs (of `run`, if given).
/// Buckets carry no tag perfsize could check, so without a run id only names
/// of the generated form `perfsize-YYYYMMDD-HHMMSS-xxxx` count as perfsize's.
async fn bucket_leftovers(s3: &aws_sdk_s3::Client, run: Option<&RunId>) -> Result<Vec<Leftover>, ApiError> {
    let names = crate::s3::run_buckets(s3, run.map(RunId::as_str)).await?;
    Ok(names
        .into_iter()
        .filter_map(|name| {
            let run_id = name.strip_prefix(NAME_PREFIX)?.to_string();
            (run.is_some() || looks_generated(&run_id)).then_some(Leftover { kind: Kind::Bucket, name, run_id })
        })
        .collect())
}

/// `YYYYMMDD-HHMMSS-xxxx`, as [`RunId::generate`] makes them.
fn looks_generated(id: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    parts.len() == 3
        && digits(parts[0], 8)
        && digits(parts[1], 6)
        && parts[2].len() == 4
        && parts[2].bytes().all(|b| b.is_ascii_hexdigit())
}

/// The resources of `kind` among `named` — (endpoint, resource name) pairs
/// of scalable targets or alarms, which belong to an endpoint — that are
/// perfsize's: those of an endpoint found tagged, and those whose endpoint
/// is gone but whose name starts with `run`'s names.
fn endpoint_leftovers(kind: Kind, named: &[(String, String)], found: &[Leftover], run: Option<&RunId>) -> Vec<Leftover> {
    named
        .iter()
        .filter_map(|(endpoint, name)| {
            let tagged = found.iter().find(|l| l.kind == Kind::Endpoint && &l.name == endpoint);
            let run_id = match (tagged, run) {
                (Some(leftover), _) => leftover.run_id.clone(),
                (None, Some(run)) if endpoint.starts_with(&format!("{NAME_PREFIX}{run}-")) => run.to_string(),
                _ => return None,
            };
            Some(Leftover { kind, name: name.clone(), run_id })
        })
        .collect()
}

/// Names and ARNs of every resource of `kind` whose name contains `filter`.
async fn list(client: &aws_sdk_sagemaker::Client, kind: Kind, filter: &str) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let (page, next) = match kind {
            Kind::ScalableTarget | Kind::Alarm | Kind::Bucket => {
                unreachable!("scalable targets, alarms and buckets are listed by their own services")
            }
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

/// Deletes `leftovers` in order (scaling, endpoints, configs, then models),
/// reporting each as it goes; returns how many could not be deleted.
pub async fn remove(
    clients: &Clients,
    leftovers: &[Leftover],
    patience: Patience,
    report: impl Fn(&Leftover, Result<(), &ApiError>),
) -> usize {
    let mut failed = 0;
    for kind in Kind::DELETION_ORDER {
        for leftover in leftovers.iter().filter(|l| l.kind == kind) {
            let result = delete(clients, kind, &leftover.name, patience).await;
            failed += result.is_err() as usize;
            report(leftover, result.as_ref().map(|_| ()));
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scalable_target_or_alarm_is_perfsizes_by_its_tagged_endpoint_or_by_its_runs_name() {
        let run: RunId = "20261129-030000-ab12".parse().unwrap();
        let found = [Leftover { kind: Kind::Endpoint, name: "perfsize-x-ml-m5-large-1".into(), run_id: "x".into() }];
        let registered = [
            "perfsize-x-ml-m5-large-1".to_string(),
            "perfsize-20261129-030000-ab12-ml-c5-large-2".to_string(),
            "perfsize-20261129-030000-ab123-other".to_string(),
            "someone-elses".to_string(),
        ];
        let targets: Vec<(String, String)> = registered.iter().map(|e| (e.clone(), e.clone())).collect();
        let names =
            |run| endpoint_leftovers(Kind::ScalableTarget, &targets, &found, run).into_iter().map(|l| l.name).collect::<Vec<_>>();
        assert_eq!(names(None), ["perfsize-x-ml-m5-large-1"]);
        assert_eq!(names(Some(&run)), ["perfsize-x-ml-m5-large-1", "perfsize-20261129-030000-ab12-ml-c5-large-2"]);
        let alarms: Vec<(String, String)> =
            registered.iter().map(|e| (e.clone(), crate::scaling::backlog::alarm_name(e))).collect();
        let alarm = endpoint_leftovers(Kind::Alarm, &alarms, &found, Some(&run));
        assert_eq!(alarm[1].name, "perfsize-20261129-030000-ab12-ml-c5-large-2-has-backlog-without-capacity");
        assert_eq!((alarm.len(), alarm[1].kind), (2, Kind::Alarm));
    }

    #[test]
    fn without_a_run_id_only_buckets_named_like_generated_runs_are_perfsizes() {
        assert!(looks_generated("20261129-030000-ab12"));
        for other in ["team-data", "20261129-030000", "2026112-030000-ab12", "20261129-030000-xyz1", "nightly-run"] {
            assert!(!looks_generated(other), "{other}");
        }
    }
}
