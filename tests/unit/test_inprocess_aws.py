"""The benchmarks' in-process AWS (bench/inprocess_aws.py): requests are answered inside the
process after the configured latency, and a request it cannot answer is refused, never sent."""

from __future__ import annotations

import time

import boto3
import pytest

from bench.inprocess_aws import InProcessAws, RequestLeftProcessError


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    started = InProcessAws(latency={"dynamodb.PutItem": 0.05}).start()
    yield started
    started.stop()


def test_requests_are_answered_in_process_after_their_latency(aws):
    ddb = aws.client("dynamodb")
    ddb.create_table(
        TableName="t",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    aws.active = True
    began = time.perf_counter()
    ddb.put_item(TableName="t", Item={"id": {"S": "a"}})
    assert time.perf_counter() - began >= 0.05
    assert aws.slept == {"dynamodb.PutItem": 0.05}
    assert ddb.get_item(TableName="t", Key={"id": {"S": "a"}})["Item"] == {"id": {"S": "a"}}


def test_a_request_moto_cannot_answer_is_refused_not_sent(aws):
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url="http://127.0.0.1:9")
    with pytest.raises(RequestLeftProcessError):
        client.list_tables()
