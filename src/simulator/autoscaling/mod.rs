//! Application Auto Scaling for SageMaker endpoint variants: scalable
//! targets, scaling policies and scaling activities, acting on endpoints
//! through the control plane (the [`Endpoints`] trait) and driven by the
//! CloudWatch alarms of [`crate::simulator::alarms`].
//!
//! - `api`: the seven operations (awsJson 1.1, `AnyScaleFrontendService.*`)
//!   and the errors Application Auto Scaling gives;
//! - `policy`: what target tracking and step scaling decide — pure, with the
//!   AWS rules (datapoints, proportional scale-out, conservative scale-in,
//!   cooldowns, bounds) pinned by unit tests;
//! - `activities`: turning the alarms' invocations into scaling activities,
//!   setting the desired instance count as UpdateEndpointWeightsAndCapacities
//!   does, and following each activity until its instances are in service.
//!
//! The simulator's background evaluator calls [`Scaling::evaluate`] a few
//! times a second, so an endpoint scales with no control-plane call at all.

mod activities;
mod api;
pub mod policy;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use super::alarms::AlarmStore;
use super::control::VariantScaling;
use super::profile::ScalingClock;
use super::wire::AwsError;
use policy::{Cooldowns, Direction, PolicyConfig, Side};

/// The one service namespace and scalable dimension the simulator scales.
pub const NAMESPACE: &str = "sagemaker";
pub const VARIANT_DIMENSION: &str = "sagemaker:variant:DesiredInstanceCount";

/// What Application Auto Scaling needs of the SageMaker control plane.
pub trait Endpoints {
    /// The variant's capacity and its endpoint's status; a SageMaker error if
    /// the endpoint or the variant does not exist.
    fn variant(&mut self, endpoint: &str, variant: &str) -> Result<VariantScaling, AwsError>;
    /// Sets the variant's desired instance count the way
    /// UpdateEndpointWeightsAndCapacities does.
    fn set_desired_instance_count(&mut self, endpoint: &str, variant: &str, count: u32) -> Result<(), AwsError>;
}

/// Everything an operation or an evaluation uses besides the scaling state.
/// Lock order: the scaling state, the registry (held by `endpoints`), the
/// alarms — never the other way round.
pub struct Env<'a> {
    pub endpoints: &'a mut dyn Endpoints,
    pub alarms: &'a Mutex<AlarmStore>,
    pub clock: ScalingClock,
    pub region: &'a str,
    pub now: SystemTime,
}

/// A scalable target's identity within the sagemaker namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TargetKey {
    pub resource_id: String,
    pub dimension: String,
}

/// SuspendedState.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Suspended {
    pub dynamic_in: bool,
    pub dynamic_out: bool,
    pub scheduled: bool,
}

#[derive(Debug)]
pub struct ScalableTarget {
    pub key: TargetKey,
    pub endpoint: String,
    pub variant: String,
    pub min: u32,
    pub max: u32,
    pub role_arn: String,
    pub arn: String,
    pub created: SystemTime,
    pub suspended: Suspended,
    /// Min or Max was (re)set: bring the capacity inside them once.
    pub bounds_pending: bool,
    /// The desired count last seen, to describe a scaling that fails because
    /// the endpoint is gone.
    pub last_known: Option<u32>,
}

/// The alarms a target tracking policy owns (and deletes with itself).
#[derive(Debug, Clone, PartialEq)]
pub struct TrackingAlarms {
    pub high: String,
    pub low: Option<String>,
}

impl TrackingAlarms {
    fn names(&self) -> Vec<String> {
        std::iter::once(self.high.clone()).chain(self.low.clone()).collect()
    }
}

#[derive(Debug)]
pub struct Policy {
    pub arn: String,
    pub name: String,
    pub target: TargetKey,
    pub config: PolicyConfig,
    pub created: SystemTime,
    pub owned: Option<TrackingAlarms>,
    pub cooldowns: Cooldowns,
}

impl Policy {
    /// Which side of a target tracking policy `alarm` is.
    fn side_of(&self, alarm: &str) -> Option<Side> {
        let owned = self.owned.as_ref()?;
        if owned.high == alarm {
            Some(Side::High)
        } else if owned.low.as_deref() == Some(alarm) {
            Some(Side::Low)
        } else {
            None
        }
    }

    fn owned_alarm_names(&self) -> Vec<String> {
        self.owned.as_ref().map(TrackingAlarms::names).unwrap_or_default()
    }
}

/// ScalingActivityStatusCode (the ones the simulator reaches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityStatus {
    /// Decided, waiting for the endpoint to accept an update.
    Pending,
    /// The endpoint is updating.
    InProgress,
    Successful,
    Failed,
}

impl ActivityStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityStatus::Pending => "Pending",
            ActivityStatus::InProgress => "InProgress",
            ActivityStatus::Successful => "Successful",
            ActivityStatus::Failed => "Failed",
        }
    }

    fn is_open(self) -> bool {
        matches!(self, ActivityStatus::Pending | ActivityStatus::InProgress)
    }
}

/// The policy behind an activity, so its cooldown starts when it completes.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    pub policy: String,
    pub direction: Direction,
    pub base: u32,
}

#[derive(Debug, Clone)]
pub struct Activity {
    pub id: String,
    pub target: TargetKey,
    pub to: u32,
    pub cause: String,
    pub start: SystemTime,
    pub end: Option<SystemTime>,
    pub status: ActivityStatus,
    pub status_message: Option<String>,
    pub origin: Option<Origin>,
}

/// How many activities the simulator remembers (AWS keeps six weeks').
const ACTIVITIES_KEPT: usize = 1000;

/// The Application Auto Scaling state of one simulator.
#[derive(Debug, Default)]
pub struct Scaling {
    targets: BTreeMap<TargetKey, ScalableTarget>,
    /// By policy ARN.
    policies: BTreeMap<String, Policy>,
    /// Oldest first.
    activities: Vec<Activity>,
}

impl Scaling {
    /// Whether an activity of `target` is still under way.
    fn busy(&self, target: &TargetKey) -> bool {
        self.activities.iter().any(|a| a.target == *target && a.status.is_open())
    }

    fn record(&mut self, activity: Activity) {
        self.activities.push(activity);
        if self.activities.len() > ACTIVITIES_KEPT
            && let Some(oldest_closed) = self.activities.iter().position(|a| !a.status.is_open())
        {
            self.activities.remove(oldest_closed);
        }
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A control plane of one endpoint (`e`, variant `AllTraffic`) and a
    //! harness around the scaling state, for the unit tests.

    use std::collections::HashMap;

    use serde_json::{Value, json};

    use super::*;
    use crate::simulator::alarms::{Invocation, StateValue};

    pub const RESOURCE: &str = "endpoint/e/variant/AllTraffic";

    pub struct Harness {
        pub scaling: Scaling,
        pub endpoints: FakeEndpoints,
        pub alarms: Mutex<AlarmStore>,
        pub now: SystemTime,
    }

    impl Harness {
        pub fn new() -> Harness {
            Harness {
                scaling: Scaling::default(),
                endpoints: FakeEndpoints::default(),
                alarms: Mutex::new(AlarmStore::default()),
                now: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
            }
        }

        fn env(&mut self) -> Env<'_> {
            Env {
                endpoints: &mut self.endpoints,
                alarms: &self.alarms,
                clock: ScalingClock::new(1.0),
                region: "us-east-1",
                now: self.now,
            }
        }

        pub fn call(&mut self, operation: &str, input: Value) -> Result<Value, AwsError> {
            let mut scaling = std::mem::take(&mut self.scaling);
            let result = scaling.call(operation, &input, &mut self.env());
            self.scaling = scaling;
            result
        }

        pub fn register(&mut self, min: u32, max: u32) -> Result<Value, AwsError> {
            self.call(
                "RegisterScalableTarget",
                json!({"ServiceNamespace": "sagemaker", "ResourceId": RESOURCE,
                       "ScalableDimension": VARIANT_DIMENSION, "MinCapacity": min, "MaxCapacity": max}),
            )
        }

        pub fn put_tracking(&mut self, name: &str, config: Value) -> Result<Value, AwsError> {
            self.call(
                "PutScalingPolicy",
                json!({"PolicyName": name, "ServiceNamespace": "sagemaker", "ResourceId": RESOURCE,
                       "ScalableDimension": VARIANT_DIMENSION, "PolicyType": "TargetTrackingScaling",
                       "TargetTrackingScalingPolicyConfiguration": config}),
            )
        }

        /// One evaluation in which the invoking alarms are in their states.
        pub fn evaluate(&mut self, invocations: &[Invocation]) {
            let states: HashMap<String, StateValue> = invocations.iter().map(|i| (i.alarm.clone(), i.state)).collect();
            self.evaluate_with(invocations, &states);
        }

        pub fn evaluate_with(&mut self, invocations: &[Invocation], states: &HashMap<String, StateValue>) {
            let mut scaling = std::mem::take(&mut self.scaling);
            scaling.evaluate(invocations, states, &mut self.env());
            self.scaling = scaling;
        }
    }

    #[derive(Debug)]
    pub struct FakeEndpoints {
        pub status: &'static str,
        pub instance_type: String,
        pub desired: u32,
        pub current: u32,
        pub exists: bool,
        pub updates: Vec<u32>,
        pub asynchronous: bool,
    }

    impl Default for FakeEndpoints {
        fn default() -> Self {
            FakeEndpoints {
                status: "InService",
                instance_type: "ml.m5.large".into(),
                desired: 1,
                current: 1,
                exists: true,
                updates: Vec::new(),
                asynchronous: false,
            }
        }
    }

    impl FakeEndpoints {
        /// The endpoint finishes its update.
        pub fn settle(&mut self) {
            self.status = "InService";
            self.current = self.desired;
        }
    }

    impl Endpoints for FakeEndpoints {
        fn variant(&mut self, endpoint: &str, variant: &str) -> Result<VariantScaling, AwsError> {
            if !self.exists || endpoint != "e" || variant != "AllTraffic" {
                return Err(AwsError::validation(format!(
                    "Could not find endpoint \"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{endpoint}\"."
                )));
            }
            Ok(VariantScaling {
                status: self.status,
                instance_type: self.instance_type.clone(),
                desired: self.desired,
                current: Some(self.current),
                failure_reason: None,
                asynchronous: self.asynchronous,
            })
        }

        fn set_desired_instance_count(&mut self, endpoint: &str, variant: &str, count: u32) -> Result<(), AwsError> {
            self.variant(endpoint, variant)?;
            if self.status != "InService" {
                return Err(AwsError::validation("Cannot update in-progress endpoint."));
            }
            self.desired = count;
            self.status = "Updating";
            self.updates.push(count);
            Ok(())
        }
    }
}
