//! ListMetrics: every metric the simulator has data for, under the
//! dimensions SageMaker publishes it with (EndpointName and VariantName, or
//! EndpointName alone for an asynchronous endpoint's backlog), filtered and
//! paged as CloudWatch does.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{Doc, MetricId, Out, invalid, required};
use crate::simulator::metrics::{MetricName, MetricStore};
use crate::simulator::wire::AwsError;

/// Metrics per answer, as CloudWatch pages them.
const PAGE_SIZE: usize = 500;

/// What `RecentlyActive = PT3H` (its only valid value) looks back over.
const RECENTLY_ACTIVE_SECS: f64 = 3.0 * 3600.0;

#[derive(Debug, Clone, PartialEq)]
struct Request {
    namespace: Option<String>,
    metric_name: Option<String>,
    /// Dimension filters: a name, and the value it must have if given.
    dimensions: Vec<(String, Option<String>)>,
    recently_active: bool,
    /// From NextToken: the last metric of the previous page.
    after: Option<MetricId>,
}

impl Request {
    fn lists_name(&self, metric: MetricName) -> bool {
        let (namespace, name) = metric.identity();
        self.namespace.as_deref().is_none_or(|n| n == namespace) && self.metric_name.as_deref().is_none_or(|n| n == name)
    }

    /// A metric with more dimensions than the filters name still matches.
    fn lists_dimensions(&self, metric: &MetricId) -> bool {
        self.dimensions.iter().all(|(name, value)| {
            metric.dimension(name).is_some_and(|actual| value.as_deref().is_none_or(|wanted| wanted == actual))
        })
    }
}

/// `now` in epoch seconds.
pub(super) fn answer<D: Doc>(store: &MetricStore, doc: &D, now: f64) -> Result<Out, AwsError> {
    let request = decode_request(doc)?;
    let (page, next) = page(listed(store, &request, now), request.after.as_ref());
    let mut members = vec![("Metrics", Out::List(page.iter().map(MetricId::to_out).collect()))];
    if let Some(last) = next {
        members.push(("NextToken", Out::text(next_token(&last))));
    }
    Ok(Out::map(members))
}

fn decode_request<D: Doc>(doc: &D) -> Result<Request, AwsError> {
    let dimensions = doc
        .items("Dimensions")
        .iter()
        .map(|filter| Ok((required(filter, "Name")?.text().unwrap_or_default().to_string(), filter.text_of("Value"))))
        .collect::<Result<Vec<_>, AwsError>>()?;
    let recently_active = match doc.text_of("RecentlyActive").as_deref() {
        None => false,
        Some("PT3H") => true,
        Some(other) => {
            return Err(invalid(format!("The value {other} for parameter RecentlyActive is not valid; PT3H is its only value.")));
        }
    };
    let after = doc.text_of("NextToken").map(|token| resume_after(&token)).transpose()?;
    Ok(Request {
        namespace: doc.text_of("Namespace"),
        metric_name: doc.text_of("MetricName"),
        dimensions,
        recently_active,
        after,
    })
}

/// Every metric the request lists, in a stable order (namespace, name,
/// dimensions) so that NextToken can resume after the last one returned.
/// Only metrics with samples within the store's retention are listed, as
/// CloudWatch lists only metrics with recent data.
fn listed(store: &MetricStore, request: &Request, now: f64) -> Vec<MetricId> {
    let retained = now - store.retention().as_secs_f64();
    let since = if request.recently_active { retained.max(now - RECENTLY_ACTIVE_SECS) } else { retained };
    let names: Vec<MetricName> = MetricName::ALL.into_iter().filter(|&m| request.lists_name(m)).collect();
    let mut listed = Vec::new();
    for (key, series) in store.all() {
        let of_scope: Vec<MetricName> = names.iter().copied().filter(|m| m.scope() == key.scope()).collect();
        for metric in series.sampled_since(since.floor() as i64, &of_scope) {
            let id = MetricId::of_series(metric, &key);
            if request.lists_dimensions(&id) {
                listed.push(id);
            }
        }
    }
    listed.sort();
    listed
}

/// The page after `after`, and the metric to resume after if more follow.
/// Resuming after a metric rather than at an offset keeps paging right while
/// new endpoints start publishing.
fn page(listed: Vec<MetricId>, after: Option<&MetricId>) -> (Vec<MetricId>, Option<MetricId>) {
    let start = after.map_or(0, |after| listed.partition_point(|m| m <= after));
    let rest = listed.len().saturating_sub(start);
    let page: Vec<MetricId> = listed.into_iter().skip(start).take(PAGE_SIZE).collect();
    let next = if rest > PAGE_SIZE { page.last().cloned() } else { None };
    (page, next)
}

/// An opaque token naming the last metric of a page.
fn next_token(last: &MetricId) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(last).expect("a metric id serializes"))
}

fn resume_after(token: &str) -> Result<MetricId, AwsError> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| invalid(format!("The NextToken {token:?} is not valid.")))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value as Json, json};

    use super::super::test_support::*;
    use super::*;

    fn names(answer: &Json) -> Vec<String> {
        let metrics = answer["Metrics"].as_array().unwrap();
        metrics
            .iter()
            .map(|m| format!("{}/{}", m["Dimensions"][0]["Value"].as_str().unwrap(), m["MetricName"].as_str().unwrap()))
            .collect()
    }

    fn list(store: &MetricStore, doc: Json) -> Json {
        answer(store, &doc, now()).unwrap().to_json()
    }

    #[test]
    fn cbor_and_json_requests_decode_to_the_same_filters() {
        let token = next_token(&MetricId::of_variant(MetricName::Invocations, "e", "AllTraffic"));
        let doc = json!({"Namespace": "AWS/SageMaker", "MetricName": "Invocations", "RecentlyActive": "PT3H",
            "Dimensions": [{"Name": "EndpointName", "Value": "e"}, {"Name": "VariantName"}], "NextToken": token});
        let from_json = decode_request(&doc).unwrap();
        assert_eq!(decode_request(&cbor_of(&doc)).unwrap(), from_json);
        assert_eq!(from_json.dimensions, vec![("EndpointName".into(), Some("e".into())), ("VariantName".into(), None)]);
        assert_eq!(from_json.after, Some(MetricId::of_variant(MetricName::Invocations, "e", "AllTraffic")));
        assert!(from_json.recently_active);
    }

    #[test]
    fn metrics_are_listed_with_the_dimensions_sagemaker_uses() {
        let store = store_with(&[("a", &[5]), ("b", &[5])]);
        let everything = list(&store, json!({}));
        assert_eq!(everything["Metrics"].as_array().unwrap().len(), 2 * REAL_TIME_METRICS);
        assert!(everything.get("NextToken").is_none());
        let first = &everything["Metrics"][0];
        assert_eq!(first["Namespace"], "/aws/sagemaker/Endpoints", "sorted by namespace first");
        assert_eq!(
            first["Dimensions"],
            json!([{"Name": "EndpointName", "Value": "a"}, {"Name": "VariantName", "Value": "AllTraffic"}])
        );

        let latency = list(&store, json!({"Namespace": "AWS/SageMaker", "MetricName": "ModelLatency"}));
        assert_eq!(names(&latency), vec!["a/ModelLatency", "b/ModelLatency"]);
        let of_b = list(
            &store,
            json!({"Namespace": "/aws/sagemaker/Endpoints", "Dimensions": [{"Name": "EndpointName", "Value": "b"}]}),
        );
        assert_eq!(names(&of_b), vec!["b/CPUUtilization", "b/MemoryUtilization"]);
        let by_name_only = list(&store, json!({"MetricName": "Invocations", "Dimensions": [{"Name": "VariantName"}]}));
        assert_eq!(names(&by_name_only), vec!["a/Invocations", "b/Invocations"]);
        let other_dimension = list(&store, json!({"Dimensions": [{"Name": "InstanceId"}]}));
        assert_eq!(other_dimension["Metrics"], json!([]));
        assert_eq!(list(&store, json!({"Namespace": "AWS/EC2"}))["Metrics"], json!([]));
    }

    #[test]
    fn only_metrics_with_data_in_the_retention_or_the_last_three_hours_are_listed() {
        let store = store_with(&[("a", &[5])]);
        let listed_at = |now: f64, doc: Json| answer(&store, &doc, now).unwrap().to_json()["Metrics"].as_array().unwrap().len();
        assert_eq!(listed_at(now(), json!({"RecentlyActive": "PT3H"})), REAL_TIME_METRICS);
        let past_retention = now() + store.retention().as_secs_f64() + 5.0;
        assert_eq!(listed_at(past_retention, json!({})), 0);
        let error = decode_request(&json!({"RecentlyActive": "PT1H"})).unwrap_err();
        assert_eq!(error.code, "InvalidParameterValue");
    }

    #[test]
    fn pages_of_500_resume_after_the_token() {
        let endpoints: Vec<String> = (0..70).map(|i| format!("e{i:02}")).collect();
        let traffic: Vec<(&str, &[u64])> = endpoints.iter().map(|e| (e.as_str(), &[5u64][..])).collect();
        let store = store_with(&traffic);
        let total = 70 * REAL_TIME_METRICS;
        let first = list(&store, json!({}));
        assert_eq!(first["Metrics"].as_array().unwrap().len(), PAGE_SIZE);
        let token = first["NextToken"].as_str().expect("a second page").to_string();
        // An endpoint that starts publishing between pages sorts before the
        // cursor: resuming after the last metric, not at an offset, repeats nothing.
        serve(&store, "a-new", &[5]);
        let second = list(&store, json!({"NextToken": token}));
        assert!(second.get("NextToken").is_none());
        let mut all = names(&first);
        all.extend(names(&second));
        let mut unique = all.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), all.len(), "no metric listed twice");
        // Every metric there was is listed; of the new endpoint's, only those
        // sorting after the cursor.
        let new = all.iter().filter(|n| n.contains("a-new")).count();
        assert_eq!(all.len(), total + new);
        assert_eq!(decode_request(&json!({"NextToken": "not a token"})).unwrap_err().code, "InvalidParameterValue");
    }
}
