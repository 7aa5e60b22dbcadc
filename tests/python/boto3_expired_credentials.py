"""boto3 against a simulator whose profile expires one access key: calls
signed with AKIDEXPIRED are refused with ExpiredTokenException on the
control plane, the runtime and CloudWatch alike; another key's are served.

Usage: python3 boto3_expired_credentials.py SIMULATOR_URL
"""
import sys

import boto3
import botocore.config
import botocore.exceptions

url = sys.argv[1]


def clients(key):
    session = boto3.session.Session(aws_access_key_id=key, aws_secret_access_key="secret", region_name="us-west-2")
    once = botocore.config.Config(retries={"max_attempts": 1})
    return [session.client(service, endpoint_url=url, config=once) for service in ("sagemaker", "sagemaker-runtime", "cloudwatch")]


sm, rt, cw = clients("AKIDEXPIRED")
for name, call in [("ListEndpoints", sm.list_endpoints),
                   ("InvokeEndpoint", lambda: rt.invoke_endpoint(EndpointName="any", Body=b"{}")),
                   ("ListMetrics", cw.list_metrics)]:
    try:
        call()
        raise AssertionError(f"{name} signed with an expired key must be refused")
    except botocore.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == "ExpiredTokenException", (name, e.response)

sm, rt, cw = clients("AKIDFRESH")
assert sm.list_endpoints()["Endpoints"] == []
cw.list_metrics()
