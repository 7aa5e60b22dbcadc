//! Faults on purpose: what AWS does on a bad day, produced exactly when a
//! profile asks, so that a test of it is repeatable.
//!
//! A profile lists faults as `[[faults]]` tables. Each names the operation it
//! strikes (a SageMaker control-plane operation such as `CreateEndpoint`,
//! `InvokeEndpoint` for the runtime, a CloudWatch operation such as
//! `GetMetricData`, or `"*"` for every one of them), *when* — by call count
//! (`calls = [3, 5]`: the 3rd to the 5th call of that operation) or by time
//! since the simulator started (`seconds = [10.0, 40.0]`) — and what the
//! struck call gets (`answer`): an AWS error, a reset connection, or silence
//! for `delay_seconds` before the answer.
//!
//! A fault may also strike by *who* calls: `access_key_id = "AKID…"` only
//! calls signed with that access key, `access_keys_older_than_seconds = 600.0`
//! only calls signed with a key the simulator first saw that long before —
//! with `answer = "ExpiredTokenException"`, credentials that expire, which a
//! client must renew to go on.
//!
//! The control plane, the runtime and CloudWatch consult one [`Injector`]
//! through [`Injector::strike`] before they serve a call; nothing else in the
//! simulator knows about faults. Calls are counted per operation whether or
//! not a fault strikes them, so `calls = [3, 5]` means the same calls in
//! every run.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Response, StatusCode};
use serde::Deserialize;
use tokio::time::Instant;

use super::wire::{AwsError, Protocol};

/// Matches every operation of every service.
const ANY_OPERATION: &str = "*";

/// The longest a fault may delay an answer: an hour, far beyond any client's
/// timeout.
const MAX_DELAY_SECONDS: f64 = 3_600.0;

/// One `[[faults]]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultFile {
    operation: String,
    calls: Option<[u64; 2]>,
    seconds: Option<[f64; 2]>,
    answer: Option<Answer>,
    delay_seconds: Option<f64>,
    access_key_id: Option<String>,
    access_keys_older_than_seconds: Option<f64>,
}

/// What a struck call gets back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Answer {
    /// 400 ThrottlingException ("Rate exceeded"): retry later.
    ThrottlingException,
    /// 400 ResourceLimitExceeded: an account quota (instances for endpoint usage) is reached.
    ResourceLimitExceeded,
    /// 400 ValidationException for an operation still in progress — what
    /// DeleteEndpoint says of an endpoint that is Updating.
    ValidationException,
    /// 400 ExpiredTokenException: the caller's session credentials expired.
    ExpiredTokenException,
    /// 500 InternalFailure.
    InternalFailure,
    /// 503 ServiceUnavailable (the runtime when an instance is replaced).
    ServiceUnavailable,
    /// The connection is dropped after the status line: the client reads a
    /// truncated response, as when an instance dies mid-answer.
    ConnectionReset,
    /// The call is served normally (after `delay_seconds`, if set).
    Served,
    /// An update (UpdateEndpoint, UpdateEndpointWeightsAndCapacities) is
    /// accepted, then ends Failed: the endpoint is out of service.
    UpdateFails,
    /// An update is accepted, fails, and so does its rollback: the endpoint
    /// ends UpdateRollbackFailed, still serving what it served before.
    UpdateRollbackFails,
}

/// How an update a fault struck ends, instead of InService with the update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateEnding {
    Failed,
    RollbackFailed,
}

/// The operations an update fault may strike.
const UPDATES: [&str; 2] = ["UpdateEndpoint", "UpdateEndpointWeightsAndCapacities"];

impl Answer {
    /// The error this answer is, or None when it is not an AWS error.
    fn error(self, operation: &str) -> Option<AwsError> {
        let (status, code, message) = match self {
            Answer::ThrottlingException => (StatusCode::BAD_REQUEST, "ThrottlingException", "Rate exceeded".to_string()),
            Answer::ResourceLimitExceeded => (
                StatusCode::BAD_REQUEST,
                "ResourceLimitExceeded",
                "The account-level service limit for instances for endpoint usage is reached (simulated fault)".to_string(),
            ),
            Answer::ValidationException => (
                StatusCode::BAD_REQUEST,
                "ValidationException",
                format!("Cannot {operation} while an in-progress update of the endpoint runs (simulated fault)"),
            ),
            Answer::ExpiredTokenException => (
                StatusCode::BAD_REQUEST,
                "ExpiredTokenException",
                "The security token included in the request is expired".to_string(),
            ),
            Answer::InternalFailure => {
                (StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure", "An internal error occurred (simulated fault)".into())
            }
            Answer::ServiceUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "Service is unavailable (simulated fault)".into())
            }
            Answer::ConnectionReset | Answer::Served | Answer::UpdateFails | Answer::UpdateRollbackFails => return None,
        };
        Some(AwsError::new(status, code, message))
    }
}

/// When a fault strikes: which calls of its operation, or which stretch of
/// time since the simulator started. Exactly one, by construction.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Window {
    /// The `first`th to the `last`th call, counted from 1, both included.
    Calls { first: u64, last: u64 },
    /// Calls arriving `from` to `to` after the simulator started.
    Time { from: Duration, to: Duration },
}

impl Window {
    fn contains(&self, call: u64, since_start: Duration) -> bool {
        match *self {
            Window::Calls { first, last } => (first..=last).contains(&call),
            Window::Time { from, to } => from <= since_start && since_start < to,
        }
    }
}

/// Which callers a fault strikes, by the access key that signed the call.
#[derive(Debug, Clone, Default, PartialEq)]
struct Callers {
    /// Only this access key.
    key: Option<String>,
    /// Only keys first seen at least this long before the call.
    older_than: Option<Duration>,
}

/// The access key that signed a call, and how long ago the simulator first saw it.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub key: &'a str,
    pub age: Duration,
}

impl Callers {
    fn any(&self) -> bool {
        self.key.is_none() && self.older_than.is_none()
    }

    /// Whether a call from `caller` (None: unsigned) is among them.
    fn include(&self, caller: Option<Caller<'_>>) -> bool {
        if self.any() {
            return true;
        }
        caller
            .is_some_and(|c| self.key.as_deref().is_none_or(|key| key == c.key) && self.older_than.is_none_or(|age| c.age >= age))
    }
}

/// One validated fault.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    operation: String,
    window: Window,
    answer: Answer,
    delay: Duration,
    callers: Callers,
}

impl Fault {
    fn strikes(&self, operation: &str, call: u64, since_start: Duration, caller: Option<Caller<'_>>) -> bool {
        (self.operation == ANY_OPERATION || self.operation == operation)
            && self.window.contains(call, since_start)
            && self.callers.include(caller)
    }
}

/// Validates the `[[faults]]` tables of a profile; the message names the
/// table (counted from 1) and the key.
pub fn validate(files: &[FaultFile]) -> Result<Vec<Fault>, String> {
    files.iter().enumerate().map(|(i, file)| validate_one(file).map_err(|m| format!("`faults[{}]`: {m}", i + 1))).collect()
}

fn validate_one(file: &FaultFile) -> Result<Fault, String> {
    if file.operation.trim().is_empty() {
        return Err("`operation` names the call to strike (e.g. \"CreateEndpoint\", \"InvokeEndpoint\", or \"*\")".into());
    }
    let window = match (file.calls, file.seconds) {
        (Some([first, last]), None) if first >= 1 && first <= last => Window::Calls { first, last },
        (Some([first, last]), None) => {
            return Err(format!("`calls = [first, last]` counts from 1 with first <= last, got [{first}, {last}]"));
        }
        (None, Some([from, to])) if from.is_finite() && to.is_finite() && 0.0 <= from && from < to => {
            Window::Time { from: Duration::from_secs_f64(from), to: Duration::from_secs_f64(to.min(1e9)) }
        }
        (None, Some([from, to])) => {
            return Err(format!("`seconds = [from, to]` needs 0 <= from < to, got [{from}, {to}]"));
        }
        _ => return Err("set exactly one of `calls = [first, last]` and `seconds = [from, to]`".into()),
    };
    let delay = match file.delay_seconds {
        None => Duration::ZERO,
        Some(s) if s.is_finite() && (0.0..=MAX_DELAY_SECONDS).contains(&s) => Duration::from_secs_f64(s),
        Some(s) => return Err(format!("`delay_seconds` must be between 0 and {MAX_DELAY_SECONDS}, got {s}")),
    };
    let answer = match (file.answer, delay.is_zero()) {
        (Some(answer), _) => answer,
        // Silence alone is a fault too: the answer comes, late.
        (None, false) => Answer::Served,
        (None, true) => return Err("`answer` or `delay_seconds` says what the struck call gets".into()),
    };
    let is_update_fault = matches!(answer, Answer::UpdateFails | Answer::UpdateRollbackFails);
    if is_update_fault && !UPDATES.contains(&file.operation.trim()) {
        return Err(format!("`answer = \"{answer:?}\"` strikes an update: `operation` must be one of {UPDATES:?}"));
    }
    let older_than = match file.access_keys_older_than_seconds {
        None => None,
        Some(s) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s.min(1e9))),
        Some(s) => return Err(format!("`access_keys_older_than_seconds` must be 0 or more, got {s}")),
    };
    let key = match &file.access_key_id {
        Some(key) if key.trim().is_empty() => return Err("`access_key_id` names the key whose calls are struck".into()),
        key => key.as_ref().map(|k| k.trim().to_string()),
    };
    Ok(Fault { operation: file.operation.trim().to_string(), window, answer, delay, callers: Callers { key, older_than } })
}

/// The faults of one simulator, the calls counted so far, and when each
/// access key was first seen.
#[derive(Debug)]
pub struct Injector {
    faults: Vec<Fault>,
    started: Instant,
    calls: Mutex<HashMap<String, u64>>,
    keys: Mutex<HashMap<String, Instant>>,
}

impl Injector {
    pub fn new(faults: Vec<Fault>) -> Injector {
        Injector { faults, started: Instant::now(), calls: Mutex::new(HashMap::new()), keys: Mutex::new(HashMap::new()) }
    }

    /// Counts a call of `operation` signed as `headers` say and says what a
    /// fault makes of it (after any delay the fault asks for): `Err` with the
    /// answer to give instead of serving it, or `Ok` to serve it — with how
    /// an update ends, when a fault makes it fail.
    pub async fn strike(
        &self,
        operation: &str,
        protocol: Protocol,
        headers: &HeaderMap,
    ) -> Result<Option<UpdateEnding>, Response<Body>> {
        if self.faults.is_empty() {
            return Ok(None);
        }
        let key = super::wire::access_key_id(headers);
        let caller = key.as_deref().map(|key| Caller { key, age: self.age_of(key) });
        let Some(fault) = self.fault_for(operation, self.started.elapsed(), caller) else { return Ok(None) };
        if !fault.delay.is_zero() {
            tracing::info!("simulated fault: {operation} is silent for {:?}", fault.delay);
            tokio::time::sleep(fault.delay).await;
        }
        tracing::info!("simulated fault: {operation} answered {:?}", fault.answer);
        match fault.answer {
            Answer::Served => Ok(None),
            Answer::UpdateFails => Ok(Some(UpdateEnding::Failed)),
            Answer::UpdateRollbackFails => Ok(Some(UpdateEnding::RollbackFailed)),
            Answer::ConnectionReset => Err(reset_connection()),
            answer => Err(answer.error(operation).expect("every other answer is an AWS error").into_response(protocol)),
        }
    }

    /// How long ago `key` signed its first call (now, for a key never seen).
    fn age_of(&self, key: &str) -> Duration {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        keys.entry(key.to_string()).or_insert_with(Instant::now).elapsed()
    }

    /// The first fault that strikes this call of `operation` by `caller`,
    /// `since_start` after the simulator started, after counting it.
    fn fault_for(&self, operation: &str, since_start: Duration, caller: Option<Caller<'_>>) -> Option<Fault> {
        if self.faults.is_empty() {
            return None;
        }
        let call = {
            // A poisoned count is still a count: one bad request must not stop the rest.
            let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
            let count = calls.entry(operation.to_string()).or_default();
            *count += 1;
            *count
        };
        self.faults.iter().find(|fault| fault.strikes(operation, call, since_start, caller)).cloned()
    }
}

/// A 500 whose body fails after the headers: the server drops the
/// connection, and the client sees it closed mid-response.
fn reset_connection() -> Response<Body> {
    let broken =
        futures::stream::once(async { Err::<axum::body::Bytes, _>(std::io::Error::other("simulated connection reset")) });
    let mut response = Response::new(Body::from_stream(broken));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Fault>, String> {
        #[derive(Deserialize)]
        struct Faults {
            faults: Vec<FaultFile>,
        }
        let file: Faults = toml::from_str(text).map_err(|e| e.to_string())?;
        validate(&file.faults)
    }

    fn struck_at(injector: &Injector, operation: &str, since_start: Duration) -> Option<Answer> {
        injector.fault_for(operation, since_start, None).map(|f| f.answer)
    }

    fn struck(injector: &Injector, operation: &str) -> Option<Answer> {
        struck_at(injector, operation, Duration::ZERO)
    }

    #[test]
    fn a_call_window_strikes_exactly_those_calls_of_that_operation() {
        let faults =
            parse("[[faults]]\noperation = \"CreateEndpoint\"\ncalls = [3, 5]\nanswer = \"ThrottlingException\"\n").unwrap();
        let injector = Injector::new(faults);
        let calls: Vec<bool> = (0..7).map(|_| struck(&injector, "CreateEndpoint").is_some()).collect();
        assert_eq!(calls, [false, false, true, true, true, false, false]);
        assert_eq!(struck(&injector, "DescribeEndpoint"), None, "other operations are counted apart");
    }

    #[test]
    fn the_wildcard_strikes_every_operation_and_the_first_fault_listed_wins() {
        let faults = parse(
            "[[faults]]\noperation = \"DeleteEndpoint\"\ncalls = [1, 1]\nanswer = \"ValidationException\"\n\
             [[faults]]\noperation = \"*\"\ncalls = [1, 2]\nanswer = \"ExpiredTokenException\"\n",
        )
        .unwrap();
        let injector = Injector::new(faults);
        assert_eq!(struck(&injector, "DeleteEndpoint"), Some(Answer::ValidationException));
        assert_eq!(struck(&injector, "DeleteEndpoint"), Some(Answer::ExpiredTokenException));
        assert_eq!(struck(&injector, "InvokeEndpoint"), Some(Answer::ExpiredTokenException));
        assert_eq!(struck(&injector, "DeleteEndpoint"), None);
    }

    #[test]
    fn a_time_window_strikes_from_its_start_until_its_end() {
        let faults =
            parse("[[faults]]\noperation = \"InvokeEndpoint\"\nseconds = [10.0, 20.0]\nanswer = \"ServiceUnavailable\"\n")
                .unwrap();
        let injector = Injector::new(faults);
        let at = |seconds: u64| struck_at(&injector, "InvokeEndpoint", Duration::from_secs(seconds));
        assert_eq!(at(9), None);
        assert_eq!(at(10), Some(Answer::ServiceUnavailable));
        assert_eq!(at(19), Some(Answer::ServiceUnavailable));
        assert_eq!(at(20), None, "the end is not included");
    }

    #[tokio::test]
    async fn silence_delays_the_answer_then_serves_the_call_and_errors_are_aws_errors() {
        let faults = parse("[[faults]]\noperation = \"GetMetricData\"\ncalls = [1, 1]\ndelay_seconds = 120.0\n").unwrap();
        let silent = Injector::new(faults).fault_for("GetMetricData", Duration::ZERO, None).unwrap();
        assert_eq!((silent.answer, silent.delay), (Answer::Served, Duration::from_secs(120)));
        let throttled = parse("[[faults]]\noperation = \"*\"\ncalls = [1, 1]\nanswer = \"ThrottlingException\"\n").unwrap();
        let answer =
            Injector::new(throttled).strike("DescribeEndpoint", Protocol::AwsJson11, &HeaderMap::new()).await.unwrap_err();
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
        assert_eq!(answer.headers()["x-amzn-errortype"], "ThrottlingException");
    }

    #[test]
    fn a_caller_fault_strikes_only_that_key_or_keys_that_old() {
        let faults = parse(
            "[[faults]]\noperation = \"*\"\nseconds = [0.0, 1000.0]\nanswer = \"ExpiredTokenException\"\naccess_key_id = \"AKIDOLD\"\n\
             [[faults]]\noperation = \"*\"\nseconds = [0.0, 1000.0]\nanswer = \"ExpiredTokenException\"\naccess_keys_older_than_seconds = 60.0\n",
        )
        .unwrap();
        let injector = Injector::new(faults);
        let at = |key: &str, age: u64| {
            let caller = Caller { key, age: Duration::from_secs(age) };
            injector.fault_for("DescribeEndpoint", Duration::from_secs(1), Some(caller)).map(|f| f.answer)
        };
        assert_eq!(at("AKIDOLD", 0), Some(Answer::ExpiredTokenException), "that key, whatever its age");
        assert_eq!(at("AKIDNEW", 59), None, "another key, younger than 60 s");
        assert_eq!(at("AKIDNEW", 60), Some(Answer::ExpiredTokenException), "any key 60 s old");
        assert_eq!(injector.fault_for("DescribeEndpoint", Duration::from_secs(1), None), None, "unsigned calls are nobody's");
        assert!(injector.age_of("AKIDFIRST") < Duration::from_secs(1), "a key is first seen at its first call");
    }

    #[tokio::test]
    async fn a_signed_call_is_struck_by_the_key_in_its_authorization_header() {
        let faults = parse(
            "[[faults]]\noperation = \"InvokeEndpoint\"\ncalls = [1, 100]\nanswer = \"ExpiredTokenException\"\naccess_key_id = \"AKIDOLD\"\n",
        )
        .unwrap();
        let injector = Injector::new(faults);
        let signed = |key: &str| {
            let mut headers = HeaderMap::new();
            let auth = format!(
                "AWS4-HMAC-SHA256 Credential={key}/20261129/us-west-2/sagemaker/aws4_request, SignedHeaders=host, Signature=0"
            );
            headers.insert(axum::http::header::AUTHORIZATION, auth.parse().unwrap());
            headers
        };
        let expired = injector.strike("InvokeEndpoint", Protocol::RestJson, &signed("AKIDOLD")).await.unwrap_err();
        assert_eq!(expired.headers()["x-amzn-errortype"], "ExpiredTokenException");
        assert!(injector.strike("InvokeEndpoint", Protocol::RestJson, &signed("AKIDNEW")).await.is_ok());
    }

    #[test]
    fn malformed_faults_are_refused_by_table_and_key() {
        for (text, expect) in [
            ("operation = \"X\"\nanswer = \"InternalFailure\"\n", "exactly one of"),
            ("operation = \"X\"\ncalls = [1, 2]\nseconds = [0.0, 1.0]\nanswer = \"InternalFailure\"\n", "exactly one of"),
            ("operation = \"X\"\ncalls = [0, 2]\nanswer = \"InternalFailure\"\n", "counts from 1"),
            ("operation = \"X\"\ncalls = [3, 2]\nanswer = \"InternalFailure\"\n", "first <= last"),
            ("operation = \"X\"\nseconds = [5.0, 5.0]\nanswer = \"InternalFailure\"\n", "from < to"),
            ("operation = \"X\"\ncalls = [1, 2]\n", "`answer` or `delay_seconds`"),
            ("operation = \"X\"\ncalls = [1, 2]\ndelay_seconds = -1.0\n", "delay_seconds"),
            ("operation = \"\"\ncalls = [1, 2]\nanswer = \"InternalFailure\"\n", "`operation`"),
            ("operation = \"CreateEndpoint\"\ncalls = [1, 2]\nanswer = \"UpdateFails\"\n", "strikes an update"),
            ("operation = \"X\"\ncalls = [1, 2]\nanswer = \"Served\"\naccess_keys_older_than_seconds = -1.0\n", "older_than"),
            ("operation = \"X\"\ncalls = [1, 2]\nanswer = \"Served\"\naccess_key_id = \" \"\n", "`access_key_id`"),
        ] {
            // A valid first table, so that the message must name the second.
            let valid = "[[faults]]\noperation = \"Y\"\ncalls = [1, 1]\nanswer = \"Served\"\n";
            let err = parse(&format!("{valid}[[faults]]\n{text}")).unwrap_err();
            assert!(err.contains("`faults[2]`") && err.contains(expect), "{text}: {err}");
        }
        let err = parse("[[faults]]\noperation = \"X\"\ncalls = [1, 2]\nanswer = \"Gremlins\"\n").unwrap_err();
        assert!(err.contains("Gremlins"), "{err}");
    }
}
