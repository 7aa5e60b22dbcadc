"""boto3 against perfsize's simulator: S3 and asynchronous inference, as a Python user drives them.

Stages an input in S3, creates an asynchronous endpoint, invokes it with InvokeEndpointAsync, polls
HeadObject until the output exists, reads it, reads the asynchronous CloudWatch metrics (and that
Invocations is not among them), provokes a failure file with a missing input, then deletes the
objects, the buckets and the endpoint. Along the way: S3's errors, ListObjectsV2 paging, and the
same bucket addressed virtual-host-style (`Host: bucket.localhost:port`).

Usage: python3 boto3_async.py SIMULATOR_URL
"""
import json
import socket
import sys
import time

import boto3
import botocore.config
from botocore.exceptions import ClientError

url = sys.argv[1]
session = boto3.session.Session(aws_access_key_id="AKIDTEST", aws_secret_access_key="secret", region_name="us-east-1")
s3 = session.client("s3", endpoint_url=url)
sm = session.client("sagemaker", endpoint_url=url)
rt = session.client("sagemaker-runtime", endpoint_url=url)
cw = session.client("cloudwatch", endpoint_url=url)

INPUTS, OUTPUTS = "perfsize-inputs", "perfsize-outputs"
ENDPOINT, REALTIME = "boto3-async", "boto3-realtime"
started = time.monotonic()


def log(message):
    print(f"[{time.monotonic() - started:5.1f}s] {message}", flush=True)


def poll(what, predicate, deadline_s=60):
    """Polls predicate() every 0.2 s until it returns something truthy; fails after deadline_s."""
    give_up = time.monotonic() + deadline_s
    while time.monotonic() < give_up:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {deadline_s} s")


def error_code(call, **kwargs):
    try:
        call(**kwargs)
    except ClientError as e:
        return e.response["Error"]["Code"]
    raise AssertionError(f"{call.__name__}({kwargs}) succeeded")


def exists(bucket, key):
    try:
        return s3.head_object(Bucket=bucket, Key=key)
    except ClientError as e:
        assert e.response["Error"]["Code"] == "404", e.response  # HeadObject's 404 has no body
        return None


def key_of(uri):
    assert uri.startswith(f"s3://{OUTPUTS}/"), uri
    return uri[len(f"s3://{OUTPUTS}/"):]


# --- S3 --------------------------------------------------------------------------------------
for bucket in (INPUTS, OUTPUTS):
    s3.create_bucket(Bucket=bucket)
# us-east-1 answers 200 to re-creating your own bucket, for legacy compatibility.
assert s3.create_bucket(Bucket=INPUTS)["ResponseMetadata"]["HTTPStatusCode"] == 200
assert error_code(s3.create_bucket, Bucket="Not_A_Bucket") == "InvalidBucketName"
eu = session.client("s3", endpoint_url=url, region_name="eu-west-1")
eu.create_bucket(Bucket="perfsize-eu", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
assert error_code(eu.create_bucket, Bucket="perfsize-eu",
                  CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}) == "BucketAlreadyOwnedByYou"
assert s3.head_bucket(Bucket="perfsize-eu")["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == "eu-west-1"
eu.delete_bucket(Bucket="perfsize-eu")
assert error_code(s3.head_bucket, Bucket="perfsize-eu") == "404"

payload = json.dumps({"features": [1.0, 2.0, 3.0]}).encode()
put = s3.put_object(Bucket=INPUTS, Key="requests/one.json", Body=payload, ContentType="application/json")
head = s3.head_object(Bucket=INPUTS, Key="requests/one.json")
assert head["ETag"] == put["ETag"] and head["ContentLength"] == len(payload), head
assert head["ContentType"] == "application/json" and head["LastModified"], head
assert s3.get_object(Bucket=INPUTS, Key="requests/one.json", Range="bytes=0-10")["Body"].read() == payload[:11]
assert error_code(s3.get_object, Bucket=INPUTS, Key="requests/none.json") == "NoSuchKey"
assert error_code(s3.get_object, Bucket="perfsize-nowhere", Key="k") == "NoSuchBucket"

for i in range(5):
    s3.put_object(Bucket=INPUTS, Key=f"batch/{i}.json", Body=payload)
pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=INPUTS, PaginationConfig={"PageSize": 2}))
assert [page["KeyCount"] for page in pages] == [2, 2, 2], [page["KeyCount"] for page in pages]
assert [o["Key"] for page in pages for o in page["Contents"]][-1] == "requests/one.json"
top = s3.list_objects_v2(Bucket=INPUTS, Delimiter="/")
assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["batch/", "requests/"] and top["KeyCount"] == 2, top
after = s3.list_objects_v2(Bucket=INPUTS, Prefix="batch/", StartAfter="batch/2.json")
assert [o["Key"] for o in after["Contents"]] == ["batch/3.json", "batch/4.json"], after

# The same bucket, virtual-host-style: boto3 sends `Host: perfsize-inputs.localhost:PORT`. The
# machine need not resolve *.localhost, so this process resolves it to the simulator itself.
resolve = socket.getaddrinfo
socket.getaddrinfo = lambda host, *a, **k: resolve("127.0.0.1" if host.endswith(".localhost") else host, *a, **k)
port = url.rsplit(":", 1)[1]
virtual = session.client("s3", endpoint_url=f"http://localhost:{port}",
                         config=botocore.config.Config(s3={"addressing_style": "virtual"}))
virtual.put_object(Bucket=INPUTS, Key="virtual/hello.txt", Body=b"hello")
assert s3.get_object(Bucket=INPUTS, Key="virtual/hello.txt")["Body"].read() == b"hello"
assert virtual.get_object(Bucket=INPUTS, Key="requests/one.json")["Body"].read() == payload
log("S3 answers as S3 does, path- and virtual-host-style")

# --- an asynchronous endpoint ----------------------------------------------------------------
sm.create_model(ModelName=ENDPOINT, ExecutionRoleArn="arn:aws:iam::123456789012:role/test",
                PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/model:1"})
variant = {"VariantName": "AllTraffic", "ModelName": ENDPOINT, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
async_config = {
    "OutputConfig": {"S3OutputPath": f"s3://{OUTPUTS}/results/", "S3FailurePath": f"s3://{OUTPUTS}/failures/"},
    "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 2},
}
try:
    sm.create_endpoint_config(EndpointConfigName="too-concurrent", ProductionVariants=[variant], AsyncInferenceConfig={
        **async_config, "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 1001}})
    raise AssertionError("MaxConcurrentInvocationsPerInstance above 1000 must be refused")
except ClientError as e:
    assert e.response["Error"]["Code"] == "ValidationException", e.response
    assert "less than or equal to 1000" in e.response["Error"]["Message"], e.response
sm.create_endpoint_config(EndpointConfigName=ENDPOINT, ProductionVariants=[variant], AsyncInferenceConfig=async_config)
assert sm.describe_endpoint_config(EndpointConfigName=ENDPOINT)["AsyncInferenceConfig"] == async_config
sm.create_endpoint_config(EndpointConfigName=REALTIME, ProductionVariants=[variant])
sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=ENDPOINT)
sm.create_endpoint(EndpointName=REALTIME, EndpointConfigName=REALTIME)
for name in (ENDPOINT, REALTIME):
    poll(f"{name} in service", lambda: sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService")
assert sm.describe_endpoint(EndpointName=ENDPOINT)["AsyncInferenceConfig"] == async_config

answer = rt.invoke_endpoint_async(EndpointName=ENDPOINT, InputLocation=f"s3://{INPUTS}/requests/one.json",
                                  ContentType="application/json", RequestTTLSeconds=600, InvocationTimeoutSeconds=60)
assert answer["ResponseMetadata"]["HTTPStatusCode"] == 202, answer
inference_id = answer["InferenceId"]
assert answer["OutputLocation"] == f"s3://{OUTPUTS}/results/{inference_id}.out", answer
assert answer["FailureLocation"] == f"s3://{OUTPUTS}/failures/{inference_id}-error.out", answer
poll("the output", lambda: exists(OUTPUTS, key_of(answer["OutputLocation"])))
result = json.loads(s3.get_object(Bucket=OUTPUTS, Key=key_of(answer["OutputLocation"]))["Body"].read())
assert result["variant"] == "AllTraffic" and "prediction" in result, result
assert exists(OUTPUTS, key_of(answer["FailureLocation"])) is None
log(f"{inference_id} answered in {answer['OutputLocation']}")

named = rt.invoke_endpoint_async(EndpointName=ENDPOINT, InputLocation=f"s3://{INPUTS}/batch/0.json",
                                 InferenceId="my-request-1")
assert named["InferenceId"] == "my-request-1" and named["OutputLocation"].endswith("/results/my-request-1.out"), named
poll("the named output", lambda: exists(OUTPUTS, "results/my-request-1.out"))

# A missing input is found when processing starts: 202 now, a failure file later.
missing = rt.invoke_endpoint_async(EndpointName=ENDPOINT, InputLocation=f"s3://{INPUTS}/requests/gone.json")
poll("the failure file", lambda: exists(OUTPUTS, key_of(missing["FailureLocation"])))
failure = json.loads(s3.get_object(Bucket=OUTPUTS, Key=key_of(missing["FailureLocation"]))["Body"].read())
assert failure["InferenceId"] == missing["InferenceId"] and "gone.json" in failure["Message"], failure
assert exists(OUTPUTS, key_of(missing["OutputLocation"])) is None
log(f"a missing input fails into {missing['FailureLocation']}")

# Each kind of endpoint refuses the other kind of invocation.
try:
    rt.invoke_endpoint(EndpointName=ENDPOINT, ContentType="application/json", Body=payload)
    raise AssertionError("InvokeEndpoint on an asynchronous endpoint must fail")
except rt.exceptions.ValidationError as e:
    assert "InvokeEndpointAsync" in str(e), e
try:
    rt.invoke_endpoint_async(EndpointName=REALTIME, InputLocation=f"s3://{INPUTS}/requests/one.json")
    raise AssertionError("InvokeEndpointAsync on a real-time endpoint must fail")
except rt.exceptions.ValidationError as e:
    assert "asynchronous" in str(e), e
# botocore checks the TTL's range itself; with its checks off, the simulator's answer shows.
unchecked = session.client("sagemaker-runtime", endpoint_url=url, config=botocore.config.Config(parameter_validation=False))
try:
    unchecked.invoke_endpoint_async(EndpointName=ENDPOINT, InputLocation=f"s3://{INPUTS}/x", RequestTTLSeconds=30)
    raise AssertionError("a TTL under 60 s must be refused")
except unchecked.exceptions.ValidationError as e:
    assert "requestTTLSeconds" in str(e), e

# --- CloudWatch ----------------------------------------------------------------------------
endpoint_only = [{"Name": "EndpointName", "Value": ENDPOINT}]
variant_dimensions = endpoint_only + [{"Name": "VariantName", "Value": "AllTraffic"}]


def sums():
    now = time.time()
    queries = [{"Id": f"q{i}", "MetricStat": {"Metric": {"Namespace": "AWS/SageMaker", "MetricName": name,
                                                         "Dimensions": dimensions}, "Period": 60, "Stat": stat}}
               for i, (name, dimensions, stat) in enumerate([
                   ("InvocationsProcessed", variant_dimensions, "Sum"),
                   ("InvocationFailures", variant_dimensions, "Sum"),
                   ("RequestDownloadFailures", variant_dimensions, "Sum"),
                   ("TimeInBacklog", variant_dimensions, "SampleCount"),
                   ("ApproximateBacklogSize", endpoint_only, "SampleCount"),
                   ("Invocations", variant_dimensions, "Sum"),
               ])]
    results = cw.get_metric_data(StartTime=now - 300, EndTime=now + 60, MetricDataQueries=queries)["MetricDataResults"]
    return [sum(r["Values"]) for r in results]


# The output lands before the worker records the request: poll until the figures are in.
figures = poll("the asynchronous metrics", lambda: (lambda f: f if f[0] >= 2 and f[1] >= 1 and f[4] > 0 else None)(sums()))
processed, failures, download_failures, in_backlog, looks, invocations = figures
assert (processed, failures, download_failures, invocations) == (2, 1, 1, 0), figures
assert in_backlog == 3, "the three requests that left the backlog for processing"
listed = cw.list_metrics(Namespace="AWS/SageMaker", Dimensions=[{"Name": "EndpointName", "Value": ENDPOINT}])["Metrics"]
names = {m["MetricName"] for m in listed}
for published in ["ApproximateBacklogSize", "ApproximateBacklogSizePerInstance", "ApproximateAgeOfOldestRequest",
                  "HasBacklogWithoutCapacity", "InvocationsProcessed", "InvocationFailures", "TimeInBacklog",
                  "TotalProcessingTime", "ModelLatency"]:
    assert published in names, (published, sorted(names))
assert not names & {"Invocations", "InvocationsPerInstance", "OverheadLatency"}, sorted(names)
backlog = [m for m in listed if m["MetricName"] == "ApproximateBacklogSize"]
assert [m["Dimensions"] for m in backlog] == [endpoint_only], backlog
now = time.time()
stats = cw.get_metric_statistics(Namespace="AWS/SageMaker", MetricName="HasBacklogWithoutCapacity",
                                 Dimensions=endpoint_only, StartTime=now - 300, EndTime=now + 60, Period=60,
                                 Statistics=["Maximum"])["Datapoints"]
assert stats and all(d["Maximum"] == 0 and d["Unit"] == "Count" for d in stats), "an instance served all along"
log(f"metrics: {processed:.0f} processed, {failures:.0f} failed, {looks:.0f} looks at the backlog")

# --- teardown ------------------------------------------------------------------------------
for name in (ENDPOINT, REALTIME):
    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    sm.delete_endpoint_config(EndpointConfigName=name)
sm.delete_model(ModelName=ENDPOINT)
assert error_code(s3.delete_bucket, Bucket=OUTPUTS) == "BucketNotEmpty"
for bucket in (INPUTS, OUTPUTS):
    keys = [{"Key": o["Key"]} for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])]
    deleted = s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    assert not deleted.get("Errors") and not deleted.get("Deleted"), deleted  # Quiet: nothing to report
    s3.delete_bucket(Bucket=bucket)
assert s3.list_buckets()["Buckets"] == []
assert sm.list_endpoints()["Endpoints"] == []
log("boto3 async test passed")
