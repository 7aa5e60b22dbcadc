"""boto3 against perfsize's simulator: create, describe, invoke, list and read metrics, delete.

Usage: python3 boto3_smoke.py SIMULATOR_URL
"""
import sys
import time

import boto3

url = sys.argv[1]
session = boto3.session.Session(aws_access_key_id="AKIDTEST", aws_secret_access_key="secret", region_name="us-west-2")
sm = session.client("sagemaker", endpoint_url=url)
rt = session.client("sagemaker-runtime", endpoint_url=url)
cw = session.client("cloudwatch", endpoint_url=url)

sm.create_model(ModelName="boto3-model", ExecutionRoleArn="arn:aws:iam::123456789012:role/test",
                PrimaryContainer={"Image": "123456789012.dkr.ecr.us-west-2.amazonaws.com/model:1"})
sm.create_endpoint_config(EndpointConfigName="boto3-config", ProductionVariants=[{
    "VariantName": "AllTraffic", "ModelName": "boto3-model", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
sm.create_endpoint(EndpointName="boto3-endpoint", EndpointConfigName="boto3-config")
for _ in range(100):
    status = sm.describe_endpoint(EndpointName="boto3-endpoint")["EndpointStatus"]
    if status != "Creating":
        break
    time.sleep(0.1)
assert status == "InService", status

answer = rt.invoke_endpoint(EndpointName="boto3-endpoint", ContentType="application/json", Body=b'{"x": 1}')
assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
assert answer["InvokedProductionVariant"] == "AllTraffic"
answer["Body"].read()

try:
    rt.invoke_endpoint(EndpointName="no-such-endpoint", Body=b"{}")
    raise AssertionError("invoking a missing endpoint must fail")
except rt.exceptions.ValidationError:
    pass

now = time.time()
metrics = cw.get_metric_data(StartTime=now - 300, EndTime=now + 60, MetricDataQueries=[{
    "Id": "inv", "MetricStat": {"Metric": {"Namespace": "AWS/SageMaker", "MetricName": "Invocations", "Dimensions": [
        {"Name": "EndpointName", "Value": "boto3-endpoint"}, {"Name": "VariantName", "Value": "AllTraffic"}]},
        "Period": 60, "Stat": "Sum"}}])
assert sum(metrics["MetricDataResults"][0]["Values"]) == 1, metrics["MetricDataResults"]

# ListMetrics and GetMetricStatistics, as dashboards and scripts call them.
listed = cw.list_metrics(Namespace="AWS/SageMaker", Dimensions=[{"Name": "EndpointName", "Value": "boto3-endpoint"}])
assert sorted(m["MetricName"] for m in listed["Metrics"]) == [
    "ConcurrentRequestsPerModel", "Invocation4XXErrors", "Invocation5XXErrors", "Invocations",
    "InvocationsPerInstance", "ModelLatency", "OverheadLatency"], listed["Metrics"]
dimensions = [{"Name": "EndpointName", "Value": "boto3-endpoint"}, {"Name": "VariantName", "Value": "AllTraffic"}]
assert all(m["Dimensions"] == dimensions for m in listed["Metrics"]), listed["Metrics"]
pages = cw.get_paginator("list_metrics").paginate(RecentlyActive="PT3H")
assert sum(len(page["Metrics"]) for page in pages) == 9, "and CPUUtilization, MemoryUtilization"

window = {"StartTime": now - 300, "EndTime": now + 60, "Period": 60}
stats = cw.get_metric_statistics(Namespace="AWS/SageMaker", MetricName="Invocations", Dimensions=dimensions,
                                 Statistics=["Sum", "SampleCount"], **window)
assert stats["Label"] == "Invocations", stats
assert sum(d["Sum"] for d in stats["Datapoints"]) == 1, stats["Datapoints"]
assert all(d["Unit"] == "None" and d["Timestamp"] for d in stats["Datapoints"]), stats["Datapoints"]
latency = cw.get_metric_statistics(Namespace="AWS/SageMaker", MetricName="ModelLatency", Dimensions=dimensions,
                                   ExtendedStatistics=["p99"], **window)["Datapoints"]
assert latency and all(d["Unit"] == "Microseconds" and d["ExtendedStatistics"]["p99"] > 0 for d in latency), latency
try:
    cw.get_metric_statistics(Namespace="AWS/SageMaker", MetricName="Invocations", Dimensions=dimensions,
                             Statistics=["Sum"], ExtendedStatistics=["p99"], **window)
    raise AssertionError("Statistics and ExtendedStatistics together must be refused")
except cw.exceptions.InvalidParameterCombinationException:
    pass

# botocore's waiter relies on the exact "not found" error.
sm.delete_endpoint(EndpointName="boto3-endpoint")
sm.get_waiter("endpoint_deleted").wait(EndpointName="boto3-endpoint", WaiterConfig={"Delay": 1, "MaxAttempts": 20})
sm.delete_endpoint_config(EndpointConfigName="boto3-config")
sm.delete_model(ModelName="boto3-model")
assert sm.list_endpoints()["Endpoints"] == []
print("boto3 smoke test passed")
