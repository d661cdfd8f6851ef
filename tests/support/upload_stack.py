"""The resources on_upload talks to, created in the AWS emulator, plus a local imagedescriber
server; shared by the on_upload integration tests and the batch benchmark."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from autotag.events import EVENT_SOURCE
from autotag.store.schema import IDEMPOTENCY_TABLE, create_table

from tests.support.aws import Emulator, unique
from tests.support.events import s3_notification, s3_record, sqs_batch, sqs_message
from tests.support.lambda_context import lambda_context
from tests.support.provider_servers import ImageDescriberServer

API_KEY = "test-imagedescriber-key"


@dataclass
class UploadStack:
    emulator: Emulator
    provider: ImageDescriberServer
    bucket: str
    table: str
    idempotency_table: str
    bus: str
    dlq_url: str
    events_queue_url: str
    tag_queue_url: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def s3(self) -> Any:
        return self.emulator.client("s3")

    @property
    def sqs(self) -> Any:
        return self.emulator.client("sqs")

    def upload(
        self, key: str, data: bytes, *, tags: dict[str, str] | None = None, content_type: str = "image/jpeg"
    ) -> tuple[str, str | None]:
        """Put an object (with user tags); returns (ETag without quotes, VersionId)."""
        extra: dict[str, Any] = {"ContentType": content_type}
        if tags:
            extra["Tagging"] = urlencode(tags)
        response = self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, **extra)
        return response["ETag"].strip('"'), response.get("VersionId")

    def message(self, key: str, etag: str, version_id: str | None, **kwargs: Any) -> dict[str, Any]:
        return sqs_message(
            s3_notification(s3_record(self.bucket, key, etag=etag, version_id=version_id)), **kwargs
        )

    def invoke(self, *messages: dict[str, Any], timeout_seconds: float = 60.0) -> dict[str, Any]:
        """Drive the real handler with an SQS batch of these messages."""
        from functions.on_upload import handler

        return handler.handler(sqs_batch(*messages), lambda_context(timeout_seconds=timeout_seconds))

    def object_tags(self, key: str, version_id: str | None = None) -> dict[str, str]:
        extra = {"VersionId": version_id} if version_id else {}
        response = self.s3.get_object_tagging(Bucket=self.bucket, Key=key, **extra)
        return {t["Key"]: t["Value"] for t in response["TagSet"]}

    def drain(self, queue_url: str, *, wait: float = 1.0) -> list[dict[str, Any]]:
        """Every message currently in a queue (received and deleted)."""
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + wait
        while True:
            response = self.sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
            )
            batch = response.get("Messages", [])
            for message in batch:
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            messages.extend(batch)
            if not batch:
                if time.monotonic() >= deadline:
                    return messages
                time.sleep(0.1)

    def bus_events(self, detail_type: str | None = None, *, wait: float = 1.0) -> list[dict[str, Any]]:
        """Events the bus delivered to the test queue via the rule (full EventBridge envelopes)."""
        events = [json.loads(m["Body"]) for m in self.drain(self.events_queue_url, wait=wait)]
        return [e for e in events if detail_type is None or e["detail-type"] == detail_type]


def provider_config(endpoint: str, *, concurrency: int = 10, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "providers": [
            {"name": "imagedescriber", "endpoint": endpoint, "max_attempts": 2, "timeout_seconds": 10}
        ],
        "processing": {"concurrency": concurrency, "safety_margin_seconds": 1.0},
    }
    config.update(overrides)
    return config


@contextmanager
def upload_stack(emulator: Emulator, *, latency: float = 0.0, concurrency: int = 10) -> Iterator[UploadStack]:
    """Create every resource, point the function's environment at them, tear down afterwards."""
    from autotag.upload import reset_upload_processor

    s3, sqs, ddb, events = (emulator.client(s) for s in ("s3", "sqs", "dynamodb", "events"))
    bucket, table, idem, bus = unique("images"), unique("autotag"), unique("idempotency"), unique("bus")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    create_table(ddb, table)
    create_table(ddb, idem, IDEMPOTENCY_TABLE)
    events.create_event_bus(Name=bus)
    dlq_url = sqs.create_queue(QueueName=unique("dlq"))["QueueUrl"]
    events_queue_url = sqs.create_queue(QueueName=unique("bus-events"))["QueueUrl"]
    tag_queue_url = sqs.create_queue(QueueName=unique("tag-queue"))["QueueUrl"]

    def arn(url: str) -> str:
        return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    rule = unique("outcomes")
    events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps({"source": [EVENT_SOURCE]}))
    events.put_targets(
        Rule=rule, EventBusName=bus, Targets=[{"Id": "test-queue", "Arn": arn(events_queue_url)}]
    )
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn(tag_queue_url), "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    provider = ImageDescriberServer(api_key=API_KEY, latency=latency, lifetime=900).start()
    env = {
        "TABLE_NAME": table,
        "IDEMPOTENCY_TABLE_NAME": idem,
        "EVENT_BUS_NAME": bus,
        "DLQ_URL": dlq_url,
        "AUTOTAG_CONFIG": json.dumps(provider_config(provider.url, concurrency=concurrency)),
        "AUTOTAG_SECRET_IMAGEDESCRIBER": json.dumps({"api_key": API_KEY}),
        "AWS_LAMBDA_FUNCTION_NAME": "autotag-on-upload",
    }
    if emulator.endpoint is not None:  # None: AWS answered in process (bench/inprocess_aws.py)
        env["AWS_ENDPOINT_URL"] = emulator.endpoint
    previous = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    reset_upload_processor()
    stack = UploadStack(
        emulator=emulator,
        provider=provider,
        bucket=bucket,
        table=table,
        idempotency_table=idem,
        bus=bus,
        dlq_url=dlq_url,
        events_queue_url=events_queue_url,
        tag_queue_url=tag_queue_url,
        env=env,
    )
    try:
        yield stack
    finally:
        reset_upload_processor()
        provider.stop()
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        events.remove_targets(Rule=rule, EventBusName=bus, Ids=["test-queue"])
        events.delete_rule(Name=rule, EventBusName=bus)
        events.delete_event_bus(Name=bus)
        for url in (dlq_url, events_queue_url, tag_queue_url):
            sqs.delete_queue(QueueUrl=url)
        ddb.delete_table(TableName=table)
        ddb.delete_table(TableName=idem)
        versions = s3.list_object_versions(Bucket=bucket)
        for item in versions.get("Versions", []) + versions.get("DeleteMarkers", []):
            s3.delete_object(Bucket=bucket, Key=item["Key"], VersionId=item["VersionId"])
        s3.delete_bucket(Bucket=bucket)


def reconfigure(stack: UploadStack, **overrides: Any) -> None:
    """Change the function's AUTOTAG_CONFIG (a new deployment) and drop the warm state."""
    from autotag.upload import reset_upload_processor

    os.environ["AUTOTAG_CONFIG"] = json.dumps(provider_config(stack.provider.url, **overrides))
    reset_upload_processor()
