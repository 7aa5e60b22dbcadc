"""boto3 against perfsize's simulator: a serverless endpoint, as issue 16's "done when" asks.

Creates a serverless endpoint (ServerlessConfig: 2048 MB, MaxConcurrency 2), invokes it, sees the cold
start in CloudWatch's ModelSetupTime, and is throttled (ThrottlingException) by a burst past
MaxConcurrency. The test profile gives the model a 2 s set-up time, so the burst arrives while a cold
worker is still setting up.

Usage: python3 boto3_serverless.py SIMULATOR_URL
"""
import datetime
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import botocore.config
from botocore.exceptions import ClientError

url = sys.argv[1]
session = boto3.session.Session(aws_access_key_id="AKIDTEST", aws_secret_access_key="secret", region_name="us-west-2")
sm = session.client("sagemaker", endpoint_url=url)
cw = session.client("cloudwatch", endpoint_url=url)
# Traffic under test is never retried: every throttle must be seen. Enough connections for the burst.
rt = session.client("sagemaker-runtime", endpoint_url=url,
                    config=botocore.config.Config(retries={"total_max_attempts": 1}, max_pool_connections=16))

NAME = "boto3-serverless"

sm.create_model(ModelName=NAME, ExecutionRoleArn="arn:aws:iam::123456789012:role/test",
                PrimaryContainer={"Image": "123456789012.dkr.ecr.us-west-2.amazonaws.com/model:1"})
sm.create_endpoint_config(EndpointConfigName=NAME, ProductionVariants=[{
    "VariantName": "AllTraffic", "ModelName": NAME,
    "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 2}}])
sm.create_endpoint(EndpointName=NAME, EndpointConfigName=NAME)
for _ in range(300):
    endpoint = sm.describe_endpoint(EndpointName=NAME)
    if endpoint["EndpointStatus"] != "Creating":
        break
    time.sleep(0.1)
assert endpoint["EndpointStatus"] == "InService", endpoint["EndpointStatus"]
variant = endpoint["ProductionVariants"][0]
assert variant["CurrentServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 2}, variant


def invoke():
    try:
        rt.invoke_endpoint(EndpointName=NAME, ContentType="application/json", Body=b"{}")["Body"].read()
        return "ok"
    except ClientError as e:
        return e.response["Error"]["Code"]


started = time.monotonic()
assert invoke() == "ok"
assert time.monotonic() - started >= 2.0, "the first invocation met a cold worker"

now = datetime.datetime.now(datetime.timezone.utc)
setup = cw.get_metric_statistics(
    Namespace="AWS/SageMaker", MetricName="ModelSetupTime",
    Dimensions=[{"Name": "EndpointName", "Value": NAME}, {"Name": "VariantName", "Value": "AllTraffic"}],
    StartTime=now - datetime.timedelta(minutes=5), EndTime=now + datetime.timedelta(minutes=1),
    Period=3600, Statistics=["SampleCount", "Maximum"])["Datapoints"]
assert len(setup) == 1 and setup[0]["SampleCount"] == 1.0, setup
assert setup[0]["Maximum"] == 2_000_000.0 and setup[0]["Unit"] == "Microseconds", setup

with ThreadPoolExecutor(max_workers=6) as pool:
    answers = list(pool.map(lambda _: invoke(), range(6)))
assert answers.count("ok") <= 2, answers
assert "ThrottlingException" in answers, answers
assert set(answers) <= {"ok", "ThrottlingException"}, answers
print("boto3 serverless:", answers)
