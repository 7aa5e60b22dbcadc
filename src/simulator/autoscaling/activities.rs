//! Scaling activities: what the policies decide when their alarms invoke
//! them, applied to the endpoint the way UpdateEndpointWeightsAndCapacities
//! is, and followed until the new instances are in service (or the change
//! fails). An endpoint that is updating makes an activity wait, as AWS retries.

use std::collections::{BTreeMap, HashMap};

use super::policy::{Bounds, Decision, Direction, PolicyConfig, Trigger};
use super::{Activity, ActivityStatus, Env, Origin, Scaling, TargetKey};
use crate::simulator::alarms::{Invocation, StateValue};
use crate::simulator::control::VariantScaling;
use crate::simulator::wire::uuid;

/// One policy's wish for its target in one evaluation.
struct Wish {
    to: u32,
    origin: Origin,
    cause: String,
    /// A target tracking scale-in, which needs every such policy to agree.
    tracking_scale_in: bool,
    /// Why the endpoint could not be reached, if it could not.
    unreachable: Option<String>,
}

/// SageMaker accepts a capacity change only from these states; others
/// (Creating, Updating, …) make the activity wait.
fn accepts_update(view: &VariantScaling) -> bool {
    matches!(view.status, "InService" | "Failed")
}

impl Scaling {
    /// One evaluation: finish what completed, bring targets inside new
    /// bounds, run the policies `invocations` ask for, start what can start.
    pub fn evaluate(&mut self, invocations: &[Invocation], alarm_states: &HashMap<String, StateValue>, env: &mut Env<'_>) {
        self.follow_in_progress(env);
        self.enforce_bounds(env);
        self.run_policies(invocations, alarm_states, env);
        self.start_pending(env);
    }

    fn run_policies(&mut self, invocations: &[Invocation], alarm_states: &HashMap<String, StateValue>, env: &mut Env<'_>) {
        let mut wishes: BTreeMap<TargetKey, Vec<Wish>> = BTreeMap::new();
        for invocation in invocations {
            for arn in &invocation.actions {
                if let Some((target, wish)) = self.wish(arn, invocation, env) {
                    wishes.entry(target).or_default().push(wish);
                }
            }
        }
        for (target, wishes) in wishes {
            if let Some(wish) = self.choose(&target, wishes, alarm_states) {
                self.open(target, wish, env);
            }
        }
    }

    /// What the policy `arn` wants when `invocation` invokes it.
    fn wish(&mut self, arn: &str, invocation: &Invocation, env: &mut Env<'_>) -> Option<(TargetKey, Wish)> {
        let policy = self.policies.get(arn)?;
        if self.busy(&policy.target) {
            return None;
        }
        let side = policy.side_of(&invocation.alarm);
        let tracking = matches!(policy.config, PolicyConfig::TargetTracking(_));
        // Target tracking acts on its own alarms in ALARM; step scaling on any
        // alarm that lists it, in whatever state lists it.
        if tracking && (side.is_none() || invocation.state != StateValue::Alarm) {
            return None;
        }
        let target = self.targets.get_mut(&policy.target)?;
        let (current, unreachable) = match env.endpoints.variant(&target.endpoint, &target.variant) {
            Ok(view) => {
                target.last_known = Some(view.desired);
                (view.desired, None)
            }
            Err(e) => (target.last_known?, Some(e.message)),
        };
        let trigger = Trigger { side, threshold: invocation.threshold, values: &invocation.values };
        let bounds = Bounds { min: target.min, max: target.max };
        let Decision::Scale { to, direction, base } = policy.config.decide(&trigger, current, bounds, &policy.cooldowns, env.now)
        else {
            return None;
        };
        let suspended = match direction {
            Direction::Out => target.suspended.dynamic_out,
            Direction::In => target.suspended.dynamic_in,
        };
        if suspended {
            return None;
        }
        let wish = Wish {
            to,
            origin: Origin { policy: arn.to_string(), direction, base },
            cause: format!(
                "monitor alarm {} in state {} triggered policy {}",
                invocation.alarm,
                invocation.state.as_str(),
                policy.name
            ),
            tracking_scale_in: tracking && direction == Direction::In,
            unreachable,
        };
        Some((policy.target.clone(), wish))
    }

    /// Of several wishes for one target, the one AWS acts on: any scale-out
    /// wins, the largest capacity first; a target tracking scale-in needs
    /// every target tracking policy that scales in to be ready to scale in.
    fn choose(&self, target: &TargetKey, wishes: Vec<Wish>, alarm_states: &HashMap<String, StateValue>) -> Option<Wish> {
        let (outs, ins): (Vec<Wish>, Vec<Wish>) = wishes.into_iter().partition(|w| w.origin.direction == Direction::Out);
        if !outs.is_empty() {
            return outs.into_iter().max_by_key(|w| w.to);
        }
        let all_ready_to_scale_in = self
            .policies
            .values()
            .filter(|p| p.target == *target)
            .filter_map(|p| p.owned.as_ref()?.low.as_ref())
            .all(|low| alarm_states.get(low) == Some(&StateValue::Alarm));
        ins.into_iter().filter(|w| !w.tracking_scale_in || all_ready_to_scale_in).max_by_key(|w| w.to)
    }

    fn open(&mut self, target: TargetKey, wish: Wish, env: &Env<'_>) {
        let mut activity = Activity {
            id: uuid(),
            target,
            to: wish.to,
            cause: wish.cause,
            start: env.now,
            end: None,
            status: ActivityStatus::Pending,
            status_message: None,
            origin: Some(wish.origin),
        };
        if let Some(reason) = wish.unreachable {
            fail(&mut activity, &reason, env);
        }
        self.record(activity);
    }

    /// A new Min or Max applies at once: capacity outside them is brought in.
    fn enforce_bounds(&mut self, env: &mut Env<'_>) {
        let pending: Vec<TargetKey> =
            self.targets.values().filter(|t| t.bounds_pending && !self.busy(&t.key)).map(|t| t.key.clone()).collect();
        for key in pending {
            let Some(target) = self.targets.get_mut(&key) else { continue };
            let view = match env.endpoints.variant(&target.endpoint, &target.variant) {
                Ok(view) if accepts_update(&view) => view,
                Ok(_) => continue,
                Err(_) => {
                    target.bounds_pending = false;
                    continue;
                }
            };
            target.bounds_pending = false;
            target.last_known = Some(view.desired);
            let (to, cause) = if view.desired < target.min {
                (target.min, format!("minimum capacity was set to {}", target.min))
            } else if view.desired > target.max {
                (target.max, format!("maximum capacity was set to {}", target.max))
            } else {
                continue;
            };
            self.record(Activity {
                id: uuid(),
                target: key,
                to,
                cause,
                start: env.now,
                end: None,
                status: ActivityStatus::Pending,
                status_message: None,
                origin: None,
            });
        }
    }

    /// Starts every pending activity whose endpoint accepts an update now.
    fn start_pending(&mut self, env: &mut Env<'_>) {
        for i in 0..self.activities.len() {
            if self.activities[i].status != ActivityStatus::Pending {
                continue;
            }
            let Some(target) = self.targets.get(&self.activities[i].target) else { continue };
            let (endpoint, variant) = (target.endpoint.clone(), target.variant.clone());
            let to = self.activities[i].to;
            match env.endpoints.variant(&endpoint, &variant) {
                Err(e) => fail(&mut self.activities[i], &e.message, env),
                Ok(view) if accepts_update(&view) => {
                    if view.desired == to && view.current == Some(to) {
                        self.complete(i, env);
                    } else {
                        match env.endpoints.set_desired_instance_count(&endpoint, &variant, to) {
                            Ok(()) => self.activities[i].status = ActivityStatus::InProgress,
                            Err(e) => fail(&mut self.activities[i], &e.message, env),
                        }
                    }
                }
                Ok(_) => {}
            }
        }
    }

    /// Ends every activity whose endpoint update finished.
    fn follow_in_progress(&mut self, env: &mut Env<'_>) {
        for i in 0..self.activities.len() {
            if self.activities[i].status != ActivityStatus::InProgress {
                continue;
            }
            let Some(target) = self.targets.get(&self.activities[i].target) else {
                fail(&mut self.activities[i], "the scalable target was deregistered", env);
                continue;
            };
            let to = self.activities[i].to;
            match env.endpoints.variant(&target.endpoint, &target.variant) {
                Err(e) => fail(&mut self.activities[i], &e.message, env),
                Ok(view) if view.desired == to && view.current == Some(to) && view.status == "InService" => self.complete(i, env),
                Ok(view) if accepts_update(&view) => {
                    let reason = view.failure_reason.unwrap_or_else(|| "the endpoint update did not take effect".to_string());
                    fail(&mut self.activities[i], &reason, env);
                }
                Ok(_) => {}
            }
        }
    }

    /// Marks activity `i` successful and starts its policy's cooldown; a
    /// scale-out also ends every scale-in cooldown of its target.
    fn complete(&mut self, i: usize, env: &Env<'_>) {
        let activity = &mut self.activities[i];
        activity.status = ActivityStatus::Successful;
        activity.end = Some(env.now);
        activity.status_message = Some(format!(
            "Successfully set desired instance count to {}. Change successfully fulfilled by sagemaker.",
            activity.to
        ));
        let Some(origin) = activity.origin.clone() else { return };
        let target = activity.target.clone();
        if origin.direction == Direction::Out {
            for policy in self.policies.values_mut().filter(|p| p.target == target) {
                policy.cooldowns.end_scale_in();
            }
        }
        if let Some(policy) = self.policies.get_mut(&origin.policy) {
            let length = env.clock.real(policy.config.cooldown(origin.direction));
            policy.cooldowns.start(origin.direction, origin.base, env.now, length);
        }
    }
}

fn fail(activity: &mut Activity, reason: &str, env: &Env<'_>) {
    activity.status = ActivityStatus::Failed;
    activity.end = Some(env.now);
    activity.status_message = Some(format!("Failed to set desired instance count to {}. Reason: {reason}", activity.to));
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{Value, json};

    use super::super::fake::Harness;
    use super::*;

    fn tracking_policy(h: &mut Harness, name: &str, target: f64) -> (String, String, String) {
        let out = h.put_tracking(
            name,
            json!({"TargetValue": target,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}}),
        );
        let out = out.unwrap();
        let names: Vec<String> =
            out["Alarms"].as_array().unwrap().iter().map(|a| a["AlarmName"].as_str().unwrap().to_string()).collect();
        let high = names.iter().find(|n| n.contains("AlarmHigh")).unwrap().clone();
        let low = names.iter().find(|n| n.contains("AlarmLow")).unwrap().clone();
        (out["PolicyARN"].as_str().unwrap().to_string(), high, low)
    }

    fn invoked(alarm: &str, policy: &str, threshold: f64, values: &[f64]) -> Invocation {
        Invocation {
            alarm: alarm.to_string(),
            state: StateValue::Alarm,
            actions: vec![policy.to_string()],
            threshold,
            values: values.to_vec(),
        }
    }

    fn activities(h: &mut Harness) -> Vec<Value> {
        let out = h.call("DescribeScalingActivities", json!({"ServiceNamespace": "sagemaker"})).unwrap();
        out["ScalingActivities"].as_array().unwrap().clone()
    }

    #[test]
    fn an_alarm_scales_the_endpoint_out_and_the_cooldown_follows() {
        let mut h = Harness::new();
        h.register(1, 5).unwrap();
        let (policy, high, _) = tracking_policy(&mut h, "p", 100.0);
        h.evaluate(&[invoked(&high, &policy, 100.0, &[280.0, 290.0, 300.0])]);
        assert_eq!(h.endpoints.updates, vec![3], "ceil(1 × 300 / 100)");
        let listed = activities(&mut h);
        assert_eq!(listed[0]["StatusCode"], "InProgress");
        assert_eq!(listed[0]["Description"], "Setting desired instance count to 3.");
        assert_eq!(listed[0]["Cause"], format!("monitor alarm {high} in state ALARM triggered policy p"));
        assert!(listed[0].get("EndTime").is_none());
        // The endpoint still updating: nothing new, nothing finished.
        h.evaluate(&[invoked(&high, &policy, 100.0, &[300.0])]);
        assert_eq!(activities(&mut h).len(), 1);
        h.endpoints.settle();
        h.evaluate(&[]);
        let listed = activities(&mut h);
        assert_eq!(listed[0]["StatusCode"], "Successful");
        assert_eq!(
            listed[0]["StatusMessage"],
            "Successfully set desired instance count to 3. Change successfully fulfilled by sagemaker."
        );
        assert!(listed[0]["EndTime"].is_number());
        // In the scale-out cooldown (300 s): 3 × 150 / 100 would be 5, but it
        // counts from the 1 before, so 2 is not larger than 3.
        h.now += Duration::from_secs(60);
        h.evaluate(&[invoked(&high, &policy, 100.0, &[150.0])]);
        assert_eq!(activities(&mut h).len(), 1);
        // After it: from 3.
        h.now += Duration::from_secs(300);
        h.evaluate(&[invoked(&high, &policy, 100.0, &[150.0])]);
        assert_eq!(h.endpoints.updates, vec![3, 5]);
    }

    #[test]
    fn a_busy_endpoint_makes_the_activity_wait() {
        let mut h = Harness::new();
        h.register(1, 5).unwrap();
        let (policy, high, _) = tracking_policy(&mut h, "p", 100.0);
        h.endpoints.status = "Updating";
        h.evaluate(&[invoked(&high, &policy, 100.0, &[200.0])]);
        assert_eq!(activities(&mut h)[0]["StatusCode"], "Pending");
        assert!(h.endpoints.updates.is_empty());
        h.endpoints.status = "InService";
        h.evaluate(&[]);
        assert_eq!(activities(&mut h)[0]["StatusCode"], "InProgress");
        assert_eq!(h.endpoints.updates, vec![2]);
    }

    #[test]
    fn scaling_a_deleted_endpoint_fails() {
        let mut h = Harness::new();
        h.register(1, 5).unwrap();
        let (policy, high, _) = tracking_policy(&mut h, "p", 100.0);
        h.endpoints.exists = false;
        h.evaluate(&[invoked(&high, &policy, 100.0, &[400.0])]);
        let listed = activities(&mut h);
        assert_eq!(listed[0]["StatusCode"], "Failed");
        let message = listed[0]["StatusMessage"].as_str().unwrap();
        assert!(message.starts_with("Failed to set desired instance count to 4. Reason: Could not find endpoint"), "{message}");
        // The target stays registered, as in AWS.
        let targets = h.call("DescribeScalableTargets", json!({"ServiceNamespace": "sagemaker"})).unwrap();
        assert_eq!(targets["ScalableTargets"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_new_minimum_applies_at_once() {
        let mut h = Harness::new();
        h.register(2, 5).unwrap();
        h.evaluate(&[]);
        let listed = activities(&mut h);
        assert_eq!(listed[0]["Cause"], "minimum capacity was set to 2");
        assert_eq!(h.endpoints.updates, vec![2]);
    }

    #[test]
    fn target_tracking_scales_in_only_when_every_policy_agrees() {
        let mut h = Harness::new();
        h.endpoints.desired = 4;
        h.endpoints.current = 4;
        h.register(1, 5).unwrap();
        h.evaluate(&[]);
        let (first, _, first_low) = tracking_policy(&mut h, "a", 100.0);
        let (_, _, second_low) = tracking_policy(&mut h, "b", 100.0);
        let mut states = HashMap::from([(first_low.clone(), StateValue::Alarm), (second_low.clone(), StateValue::Ok)]);
        h.evaluate_with(&[invoked(&first_low, &first, 90.0, &[10.0])], &states);
        assert!(h.endpoints.updates.is_empty(), "policy b is not ready to scale in");
        states.insert(second_low, StateValue::Alarm);
        h.evaluate_with(&[invoked(&first_low, &first, 90.0, &[10.0])], &states);
        assert_eq!(h.endpoints.updates, vec![1], "ceil(4 × 10 / 100)");
    }
}
