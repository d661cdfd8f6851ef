"""SQS as Lambda and the AWS tools use it, for tests and the chaos run driven by plain boto3.

- :func:`receive_all` / :func:`lambda_records`: what Lambda's event source mapping hands on_upload
  (the messages S3 itself sent to the tag queue, in Lambda's record shape).
- :func:`move_messages`: a DLQ redrive as ``aws sqs start-message-move-task`` does it. The emulator
  (moto) does not implement StartMessageMoveTask, so it is done the way SQS does it: every message
  is received from the DLQ, sent to the destination with its body and message attributes unchanged
  (a new message: new id, receive count 1), then deleted from the DLQ.
"""

from __future__ import annotations

import time
from typing import Any

from tests.support.events import REGION


def receive_all(sqs: Any, queue_url: str, *, wait: float = 1.0, delete: bool = True) -> list[dict[str, Any]]:
    """Every message currently visible in a queue (deleted once received, unless `delete` is false)."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + wait
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        for message in batch:
            if delete:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        messages.extend(batch)
        if not batch:
            if time.monotonic() >= deadline or messages:
                return messages
            time.sleep(0.1)


def _attribute(value: dict[str, Any]) -> dict[str, Any]:
    return {
        "stringValue": value.get("StringValue"),
        "binaryValue": value.get("BinaryValue"),
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": value.get("DataType", "String"),
    }


def lambda_records(messages: list[dict[str, Any]], queue_arn: str) -> list[dict[str, Any]]:
    """Received SQS messages as the records of Lambda's SQS event."""
    return [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": m.get("Attributes", {}),
            "messageAttributes": {k: _attribute(v) for k, v in m.get("MessageAttributes", {}).items()},
            "md5OfBody": m.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": REGION,
        }
        for m in messages
    ]


def move_messages(sqs: Any, source_url: str, destination_url: str) -> int:
    """Move every message of `source_url` (a DLQ) to `destination_url`, as StartMessageMoveTask does."""
    moved = 0
    while True:
        batch = sqs.receive_message(
            QueueUrl=source_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not batch:
            return moved
        for message in batch:
            extra: dict[str, Any] = {}
            if message.get("MessageAttributes"):
                extra["MessageAttributes"] = message["MessageAttributes"]
            sqs.send_message(QueueUrl=destination_url, MessageBody=message["Body"], **extra)
            sqs.delete_message(QueueUrl=source_url, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
