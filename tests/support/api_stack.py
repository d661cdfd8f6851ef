"""The resources the tag_api and on_event handlers need, made in the AWS emulator, plus the local
imagedescriber server and a fake slice of the internet for URL sources.

`api_stack(emulator)` sets the function environment the way the stack does (TABLE_NAME,
EVENT_BUS_NAME, IMAGES_BUCKET, ALLOWED_BUCKETS, DLQ_URL, AUTOTAG_CONFIG, the provider secret),
installs an API runtime whose URL fetcher resolves names only through `FakeDns` and connects only
through `LoopbackInternet` (anything else fails the test), and undoes it all at the end.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from autotag.fetch import fetch_image_url
from autotag.store.schema import IDEMPOTENCY_TABLE, create_table

from tests.support.aws import Emulator, unique
from tests.support.events import load_event, s3_notification, s3_record, sqs_batch, sqs_message
from tests.support.https_server import FakeDns, ImageHost, LoopbackInternet
from tests.support.lambda_context import lambda_context
from tests.support.provider_servers import ImageDescriberServer

PUBLIC_IMAGE_HOST = "93.184.215.14"
PUBLIC_REDIRECTOR = "93.184.215.15"


@dataclass
class HttpReply:
    status: int
    headers: dict[str, str]
    body: str

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def rest_event(
    method: str,
    path: str,
    *,
    body: str | None = None,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    """A REST proxy event built from the sample in events/ (API Gateway's exact shape)."""
    event = copy.deepcopy(load_event("apigw_post_tags"))
    merged = {k: v for k, v in event["headers"].items() if k != "Content-Type"}
    if body is not None:
        merged["Content-Type"] = "application/json"
    merged.update(headers or {})
    event.update(
        httpMethod=method,
        path=path,
        body=base64.b64encode(body.encode()).decode() if (base64_body and body is not None) else body,
        isBase64Encoded=base64_body,
        headers=merged,
        multiValueHeaders={k: [v] for k, v in merged.items()},
        queryStringParameters=query or None,
        multiValueQueryStringParameters={k: [v] for k, v in query.items()} if query else None,
        pathParameters={"proxy": path.lstrip("/")},
    )
    event["requestContext"].update(
        httpMethod=method, path="/prod" + path, requestId=str(uuid.uuid4()), resourcePath="/{proxy+}"
    )
    return event


@dataclass
class ApiStack:
    emulator: Emulator
    bucket: str
    other_bucket: str
    table: str
    bus: str
    events_queue_url: str
    dlq_url: str
    provider: ImageDescriberServer
    web: ImageHost
    internet: LoopbackInternet
    dns: FakeDns

    def s3(self) -> Any:
        return self.emulator.client("s3")

    def put_image(
        self, key: str, data: bytes, content_type: str = "image/jpeg", bucket: str | None = None
    ) -> dict:
        return self.s3().put_object(
            Bucket=bucket or self.bucket, Key=key, Body=data, ContentType=content_type
        )

    def invoke(self, event: dict[str, Any]) -> HttpReply:
        from functions.tag_api.handler import handler

        response = handler(event, lambda_context("autotag-tag-api", timeout_seconds=29))
        assert set(response) >= {"statusCode", "body"}, response
        headers = {k.lower(): str(v) for k, v in (response.get("headers") or {}).items()}
        for name, values in (response.get("multiValueHeaders") or {}).items():
            headers.setdefault(name.lower(), str(values[0]))
        return HttpReply(int(response["statusCode"]), headers, response.get("body") or "")

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> HttpReply:
        text = body if isinstance(body, str) or body is None else json.dumps(body)
        return self.invoke(rest_event(method, path, body=text, **kwargs))

    def image_path(self, bucket: str, key: str) -> str:
        # API Gateway REST puts the decoded path in the proxy event.
        return f"/v1/images/{bucket}/{key}"

    def drain_events(self, *, wait: float = 3.0, expect: int = 1) -> list[dict[str, Any]]:
        """Outcome events the bus delivered to the capture queue (at least `expect`, or after `wait`)."""
        sqs = self.emulator.client("sqs")
        found: list[dict[str, Any]] = []
        until = time.monotonic() + wait
        while time.monotonic() < until and len(found) < expect:
            reply = sqs.receive_message(
                QueueUrl=self.events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            )
            for message in reply.get("Messages", []):
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.events_queue_url, ReceiptHandle=message["ReceiptHandle"])
            if len(found) < expect:
                time.sleep(0.1)
        return found

    def on_event(self, event: Any) -> dict[str, Any]:
        """Invoke the real on_event handler as EventBridge does (one event, asynchronously)."""
        from functions.on_event.handler import handler

        return handler(event, lambda_context("autotag-on-event", timeout_seconds=60))

    def on_upload(
        self, key: str, etag: str, version_id: str | None = None, *, sequencer: str = ""
    ) -> dict[str, Any]:
        """Invoke the real on_upload handler with the SQS batch an upload of `key` produces (a new
        event, unless `sequencer` names one)."""
        from functions.on_upload.handler import handler

        record = s3_record(self.bucket, key, etag=etag, version_id=version_id, sequencer=sequencer)
        batch = sqs_batch(sqs_message(s3_notification(record)))
        return handler(batch, lambda_context("autotag-on-upload", timeout_seconds=60))

    def dead_letters(self, *, wait: float = 2.0) -> list[dict[str, Any]]:
        sqs = self.emulator.client("sqs")
        until = time.monotonic() + wait
        while time.monotonic() < until:
            reply = sqs.receive_message(
                QueueUrl=self.dlq_url,
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            )
            if reply.get("Messages"):
                return list(reply["Messages"])
            time.sleep(0.1)
        return []


def _reset_functions() -> None:
    """Drop every function's warm state (service, clients, settings) so the environment is re-read."""
    from autotag.api.settings import get_api_settings
    from autotag.subscriber import reset_subscriber
    from autotag.upload import reset_upload_processor

    reset_upload_processor()
    reset_subscriber()
    get_api_settings.cache_clear()


@contextlib.contextmanager
def api_stack(emulator: Emulator) -> Iterator[ApiStack]:
    from autotag.api.backend import build_backend, set_backend
    from autotag.config import get_config

    s3, ddb, events, sqs = (emulator.client(name) for name in ("s3", "dynamodb", "events", "sqs"))
    bucket, other_bucket = unique("images"), unique("elsewhere")
    table, idempotency, bus = unique("autotag"), unique("idempotency"), unique("autotag-bus")
    for name in (bucket, other_bucket):
        s3.create_bucket(Bucket=name)
    create_table(ddb, table)
    create_table(ddb, idempotency, IDEMPOTENCY_TABLE)
    events.create_event_bus(Name=bus)
    queue_url = sqs.create_queue(QueueName=unique("bus-capture"))["QueueUrl"]
    dlq_url = sqs.create_queue(QueueName=unique("event-dlq"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    rule = unique("capture")
    events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps({"source": ["autotag"]}))
    events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "capture", "Arn": queue_arn}])

    provider = ImageDescriberServer()
    with (
        provider,
        ImageHost(("images.example.com", "redirect.example.com")) as web,
        pytest.MonkeyPatch.context() as mp,
    ):
        internet = LoopbackInternet.serving(web, PUBLIC_IMAGE_HOST, PUBLIC_REDIRECTOR)
        dns = FakeDns(
            {
                "images.example.com": [PUBLIC_IMAGE_HOST],
                "redirect.example.com": [PUBLIC_REDIRECTOR],
                "intranet.example.com": ["10.20.30.40"],
                "metadata.example.com": ["169.254.169.254"],
                "dual.example.com": [PUBLIC_IMAGE_HOST, "fd00::5"],
            }
        )
        env = {
            "TABLE_NAME": table,
            "IDEMPOTENCY_TABLE_NAME": idempotency,
            "EVENT_BUS_NAME": bus,
            "IMAGES_BUCKET": bucket,
            "ALLOWED_BUCKETS": bucket,
            "DLQ_URL": dlq_url,
            "AUTOTAG_CONFIG": json.dumps(
                {
                    "providers": [{"name": "imagedescriber", "endpoint": provider.url, "max_attempts": 1}],
                    # Every path calls the provider, so results compare without cache effects.
                    "cache": {"enabled": False},
                }
            ),
            "AUTOTAG_SECRET_IMAGEDESCRIBER": json.dumps({"api_key": provider.api_key}),
        }
        for name, value in env.items():
            mp.setenv(name, value)
        _reset_functions()

        def fetcher(url: str, timeout: float) -> bytes:
            return fetch_image_url(
                url,
                max_bytes=get_config().limits.max_bytes,
                timeout=timeout,
                resolver=dns,
                transport=internet,
                ssl_context=web.client_ssl_context(),
            )

        set_backend(build_backend(fetcher=fetcher))
        try:
            yield ApiStack(
                emulator=emulator,
                bucket=bucket,
                other_bucket=other_bucket,
                table=table,
                bus=bus,
                events_queue_url=queue_url,
                dlq_url=dlq_url,
                provider=provider,
                web=web,
                internet=internet,
                dns=dns,
            )
        finally:
            set_backend(None)
            _reset_functions()
            events.remove_targets(Rule=rule, EventBusName=bus, Ids=["capture"])
            events.delete_rule(Name=rule, EventBusName=bus)
            events.delete_event_bus(Name=bus)
            for url in (queue_url, dlq_url):
                sqs.delete_queue(QueueUrl=url)
            ddb.delete_table(TableName=table)
            ddb.delete_table(TableName=idempotency)
            for name in (bucket, other_bucket):
                for item in s3.list_objects_v2(Bucket=name).get("Contents", []):
                    s3.delete_object(Bucket=name, Key=item["Key"])
                s3.delete_bucket(Bucket=name)
