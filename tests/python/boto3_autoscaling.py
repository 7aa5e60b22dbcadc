"""boto3 against perfsize's simulator: Application Auto Scaling scales an endpoint out under load and
back in when the load drops, driven only by InvokeEndpoint traffic, then everything is torn down.

The simulator must run with `scaling_time_scale = 60`: a CloudWatch minute lasts a second, the
default 300 s cooldowns 5 s. Metric values keep their meaning, so the target below is invocations
per minute per instance, as on AWS.

Usage: python3 boto3_autoscaling.py SIMULATOR_URL
"""
import sys
import threading
import time

import boto3

url = sys.argv[1]
session = boto3.session.Session(aws_access_key_id="AKIDTEST", aws_secret_access_key="secret", region_name="us-east-1")
sm = session.client("sagemaker", endpoint_url=url)
rt = session.client("sagemaker-runtime", endpoint_url=url)
aas = session.client("application-autoscaling", endpoint_url=url)
cw = session.client("cloudwatch", endpoint_url=url)

ENDPOINT = "boto3-scaling"
RESOURCE = f"endpoint/{ENDPOINT}/variant/AllTraffic"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
TARGET = {"ServiceNamespace": "sagemaker", "ResourceId": RESOURCE, "ScalableDimension": DIMENSION}
# Invocations per minute per instance. 6 requests/s on one instance is 360 a minute: three times
# the target, so target tracking asks for ceil(1 x 360 / 120) = 3 instances.
TARGET_VALUE = 120.0
PEAK_RATE = 6.0
# When the load drops the simulator, like SageMaker, publishes no InvocationsPerInstance for a
# minute without invocations; the scale-in alarm would then go INSUFFICIENT_DATA and never scale in
# (as the Application Auto Scaling User Guide warns). A trickle keeps the metric present and far
# below 90 % of the target: 1.5 requests/s over 3 instances is 30 a minute each.
TRICKLE_RATE = 1.5
started = time.monotonic()


def log(message):
    print(f"[{time.monotonic() - started:6.1f}s] {message}", flush=True)


def poll(what, predicate, deadline_s):
    """Polls predicate() every half second until it holds; fails after deadline_s."""
    give_up = time.monotonic() + deadline_s
    while time.monotonic() < give_up:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    activities = aas.describe_scaling_activities(ServiceNamespace="sagemaker", ResourceId=RESOURCE)
    alarms = cw.describe_alarms(AlarmNamePrefix=f"TargetTracking-{RESOURCE}-")["MetricAlarms"]
    raise AssertionError(
        f"{what}: not within {deadline_s} s\nactivities: {activities['ScalingActivities']}\n"
        f"alarms: {[(a['AlarmName'], a['StateValue'], a['StateReason']) for a in alarms]}"
    )


class Load(threading.Thread):
    """InvokeEndpoint at `rate` requests per second, paced (not closed-loop) until stopped."""

    def __init__(self, rate):
        super().__init__(daemon=True)
        self.rate = rate
        self.stopped = threading.Event()
        self.sent = 0
        self.failed = 0

    def run(self):
        next_at = time.monotonic()
        while not self.stopped.is_set():
            try:
                rt.invoke_endpoint(EndpointName=ENDPOINT, ContentType="application/json", Body=b'{"x": 1}')["Body"].read()
                self.sent += 1
            except Exception as e:  # counted, not fatal: scaling must not break serving
                self.failed += 1
                log(f"invoke failed: {e}")
            next_at = max(next_at + 1.0 / self.rate, time.monotonic() - 1.0)
            self.stopped.wait(max(0.0, next_at - time.monotonic()))


def variant():
    described = sm.describe_endpoint(EndpointName=ENDPOINT)
    v = described["ProductionVariants"][0]
    return described["EndpointStatus"], v["DesiredInstanceCount"], v.get("CurrentInstanceCount")


sm.create_model(ModelName=ENDPOINT, ExecutionRoleArn="arn:aws:iam::123456789012:role/test",
                PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/model:1"})
sm.create_endpoint_config(EndpointConfigName=ENDPOINT, ProductionVariants=[{
    "VariantName": "AllTraffic", "ModelName": ENDPOINT, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=ENDPOINT)
poll("endpoint in service", lambda: variant()[0] == "InService", 60)

aas.register_scalable_target(MinCapacity=1, MaxCapacity=3, **TARGET)
policy = aas.put_scaling_policy(PolicyName="invocations", PolicyType="TargetTrackingScaling", **TARGET,
                                TargetTrackingScalingPolicyConfiguration={
                                    "TargetValue": TARGET_VALUE,
                                    "PredefinedMetricSpecification": {
                                        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}})
assert len(policy["Alarms"]) == 2, policy
alarms = cw.describe_alarms(AlarmNamePrefix=f"TargetTracking-{RESOURCE}-")["MetricAlarms"]
assert sorted(a["ComparisonOperator"] for a in alarms) == ["GreaterThanThreshold", "LessThanThreshold"], alarms
assert all(a["AlarmActions"] == [policy["PolicyARN"]] for a in alarms), alarms
log(f"policy {policy['PolicyARN']}")

load = Load(PEAK_RATE)
load.start()
log(f"load at {PEAK_RATE}/s")
poll("scale-out decided", lambda: variant()[1] > 1, 120)
log(f"desired {variant()[1]}")
peak = poll("scaled-out instances in service",
            lambda: (lambda s, d, c: d if s == "InService" and c == d > 1 else None)(*variant()), 120)
log(f"{peak} instances in service")

load.rate = TRICKLE_RATE
log(f"load down to {TRICKLE_RATE}/s")
poll("scale-in", lambda: variant()[1] < peak, 180)
poll("scaled-in instances in service",
     lambda: (lambda s, d, c: s == "InService" and c == d < peak)(*variant()), 120)
log(f"scaled in to {variant()[1]}")
load.stopped.set()
load.join()
assert load.failed == 0, f"{load.failed} of {load.sent + load.failed} invocations failed while scaling"


def finished_activities():
    """The activities, once the evaluator has marked every one finished."""
    listed = aas.describe_scaling_activities(ServiceNamespace="sagemaker", ResourceId=RESOURCE)["ScalingActivities"]
    return listed if listed and all("EndTime" in a for a in listed) else None


activities = poll("activities finished", finished_activities, 60)
for a in activities:
    log(f"{a['StatusCode']}: {a['Description']} ({a['Cause']})")
starts = [a["StartTime"] for a in activities]
assert starts == sorted(starts, reverse=True), "newest first"
scale_in, first_scale_out = activities[0], activities[-1]
assert "-AlarmHigh-" in first_scale_out["Cause"], first_scale_out
assert "in state ALARM triggered policy invocations" in first_scale_out["Cause"], first_scale_out
assert any(a["Description"] == f"Setting desired instance count to {peak}." for a in activities), activities
assert "-AlarmLow-" in scale_in["Cause"], scale_in
assert all(a["StatusCode"] == "Successful" for a in activities), activities

aas.deregister_scalable_target(**TARGET)
assert aas.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[RESOURCE])["ScalableTargets"] == []
assert aas.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=RESOURCE)["ScalingPolicies"] == []
assert cw.describe_alarms(AlarmNamePrefix=f"TargetTracking-{RESOURCE}-")["MetricAlarms"] == [], "its alarms go with it"
sm.delete_endpoint(EndpointName=ENDPOINT)
sm.get_waiter("endpoint_deleted").wait(EndpointName=ENDPOINT, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
sm.delete_endpoint_config(EndpointConfigName=ENDPOINT)
sm.delete_model(ModelName=ENDPOINT)
log("boto3 autoscaling test passed")
