"""boto3 against perfsize's simulator: response streaming, as a Python user reads an LLM endpoint.

Creates two endpoints — one on a type whose streams run to the end, one on a type whose streams
break midway (the test profile sets stream_broken_rate = 1 for it) — reads a TGI-style stream and an
OpenAI-style chat stream to the end with invoke_endpoint_with_response_stream, counting tokens from
what the stream carries, and sees the broken stream end in ModelStreamError after it started.

Usage: python3 boto3_stream.py SIMULATOR_URL
"""
import json
import sys
import time

import boto3
import botocore.config
from botocore.exceptions import ClientError, EventStreamError

url = sys.argv[1]
session = boto3.session.Session(aws_access_key_id="AKIDTEST", aws_secret_access_key="secret", region_name="us-west-2")
sm = session.client("sagemaker", endpoint_url=url)
# Traffic under test is never retried.
rt = session.client("sagemaker-runtime", endpoint_url=url, config=botocore.config.Config(retries={"total_max_attempts": 1}))

STREAMING, BROKEN = "boto3-llm", "boto3-llm-broken"


def deploy(name, instance_type):
    sm.create_model(ModelName=name, ExecutionRoleArn="arn:aws:iam::123456789012:role/test",
                    PrimaryContainer={"Image": "123456789012.dkr.ecr.us-west-2.amazonaws.com/tgi:1"})
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": name, "InstanceType": instance_type, "InitialInstanceCount": 1}])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)


def wait_in_service(name):
    for _ in range(300):
        status = sm.describe_endpoint(EndpointName=name)["EndpointStatus"]
        if status != "Creating":
            break
        time.sleep(0.1)
    assert status == "InService", status


def stream(name, body):
    return rt.invoke_endpoint_with_response_stream(EndpointName=name, ContentType="application/json",
                                                   Body=json.dumps(body).encode())


class Reader:
    """Reads a stream's PayloadParts and splits what they carry into server-sent events: a part may in
    general end anywhere, so the events are cut from the bytes, not from the parts."""

    def __init__(self):
        self.parts = 0
        self.buffer = b""
        self.events = []

    def read(self, response):
        for event in response["Body"]:
            self.parts += 1
            self.buffer += event["PayloadPart"]["Bytes"]
            *complete, self.buffer = self.buffer.split(b"\n\n")
            for line in complete:
                data = line.decode().removeprefix("data:").strip()
                self.events.append(data if data == "[DONE]" else json.loads(data))
        assert self.buffer == b"", self.buffer


def tokens_in(text):
    """The simulator's tokens are four characters each."""
    assert len(text) % 4 == 0, text
    return len(text) // 4


deploy(STREAMING, "ml.g5.xlarge")
deploy(BROKEN, "ml.g5.2xlarge")
wait_in_service(STREAMING)
wait_in_service(BROKEN)

# TGI/LMI: one event a part, the last with the whole text and details.generated_tokens.
response = stream(STREAMING, {"inputs": "Tell me a story about a cat.", "parameters": {"max_new_tokens": 10}})
assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
assert response["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/vnd.amazon.eventstream"
assert response["ContentType"] == "text/event-stream", response
assert response["InvokedProductionVariant"] == "AllTraffic", response
tgi = Reader()
tgi.read(response)
counted = sum(tokens_in(event["token"]["text"]) for event in tgi.events)
assert counted == 10, tgi.events
assert tgi.parts == 4, f"10 tokens in parts of 3: {tgi.parts} parts"
assert tgi.events[-1]["details"]["generated_tokens"] == 10, tgi.events[-1]
assert tokens_in(tgi.events[-1]["generated_text"]) == 10, tgi.events[-1]

# OpenAI chat completions: deltas, then usage and [DONE].
response = stream(STREAMING, {"model": "llama", "messages": [{"role": "user", "content": "Hello there!"}],
                              "max_tokens": 7, "stream": True})
chat = Reader()
chat.read(response)
assert chat.events[-1] == "[DONE]", chat.events
chunks = [e for e in chat.events[:-1] if e["choices"]]
content = "".join(e["choices"][0]["delta"].get("content", "") for e in chunks)
assert tokens_in(content) == 7, content
assert chunks[-1]["choices"][0]["finish_reason"] == "length", chunks[-1]
usage = chat.events[-2]["usage"]
assert usage == {"prompt_tokens": 3, "completion_tokens": 7, "total_tokens": 10}, usage

# A stream that breaks midway: parts first, then ModelStreamError.
response = stream(BROKEN, {"inputs": "Tell me a story.", "parameters": {"max_new_tokens": 30}})
broken = Reader()
try:
    broken.read(response)
    raise AssertionError(f"the stream ended without an error after {broken.parts} parts")
except EventStreamError as e:
    assert e.response["Error"]["Code"] == "ModelStreamError", e.response
    assert e.response["Error"]["Message"], e.response
assert broken.parts >= 1, "the error came after the stream started"

# Before any stream: the runtime's usual errors.
try:
    stream("no-such-endpoint", {"inputs": "x"})
    raise AssertionError("streaming from a missing endpoint must fail")
except rt.exceptions.ValidationError:
    pass
try:
    stream(STREAMING, {"inputs": "x", "parameters": {"max_new_tokens": 100000}})
    raise AssertionError("a request longer than the context must fail")
except rt.exceptions.ModelError as e:
    assert e.response["OriginalStatusCode"] == 422, e.response
except ClientError as e:
    raise AssertionError(e.response)

for name in (STREAMING, BROKEN):
    sm.delete_endpoint(EndpointName=name)
print("boto3 streaming: ok")
