"""S3, DynamoDB, EventBridge and SQS answered inside the benchmark's process, after a latency
like AWS's, so a benchmark measures autotag rather than the emulator's HTTP server.

moto's in-process mock (``mock_aws``) answers each request from botocore's ``before-send`` event,
so the real adapters run unchanged: boto3 builds, signs and sends the request, moto parses it and
answers, botocore parses the answer. :class:`InProcessAws` takes the place of moto's hook: it
sleeps for the operation's latency (the sleep releases the GIL, as waiting on a socket does), has
moto answer, and refuses any request moto cannot answer, so nothing leaves the process.

What the latencies stand for (one request, same Region, warm connection):

- DynamoDB: "single-digit millisecond performance at any scale" (https://aws.amazon.com/dynamodb/):
  5 ms for a read, 8 ms for a write, 15 ms for TransactWriteItems (a transaction does two
  underlying writes per item: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html).
- S3 GetObject: 100 ms, the low end of the 100-200 ms first-byte latency in AWS's S3 performance
  guidance (https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance-design-patterns.html);
  other S3 requests (HEAD, tagging) 30 ms, the typical time to first byte Quickwit measured on
  standard S3 (https://quickwit.io/blog/s3-express-speculations: "up to 30ms", tails near 80 ms).
- EventBridge PutEvents: 40 ms ("tens of ms"; the Amazon Key team reports 80 ms p90 end to end,
  publish to delivery, on EventBridge: https://aws.amazon.com/blogs/architecture/ , Feb 2026).
- SQS: 20 ms per request (only the DLQ path sends from the function).

These are round figures for a fair comparison, not a promise; the table is in :data:`LATENCY`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
from botocore.handlers import BUILTIN_HANDLERS
from moto import mock_aws
from moto.core.models import botocore_stubber

REGION = "us-east-1"

DYNAMODB_READ, DYNAMODB_WRITE, DYNAMODB_TRANSACTION = 0.005, 0.008, 0.015
LATENCY: dict[str, float] = {
    "dynamodb.GetItem": DYNAMODB_READ,
    "dynamodb.BatchGetItem": DYNAMODB_READ,
    "dynamodb.Query": DYNAMODB_READ * 2,
    "dynamodb.PutItem": DYNAMODB_WRITE,
    "dynamodb.UpdateItem": DYNAMODB_WRITE,
    "dynamodb.DeleteItem": DYNAMODB_WRITE,
    "dynamodb.BatchWriteItem": DYNAMODB_WRITE,
    "dynamodb.TransactWriteItems": DYNAMODB_TRANSACTION,
    "dynamodb.TransactGetItems": DYNAMODB_TRANSACTION,
    "s3.GetObject": 0.100,
    "s3.HeadObject": 0.030,
    "s3.GetObjectTagging": 0.030,
    "s3.PutObjectTagging": 0.030,
    "eventbridge.PutEvents": 0.040,
    "sqs.SendMessage": 0.020,
    "sqs.SendMessageBatch": 0.020,
}
DEFAULT_LATENCY = 0.030
"""Any other request (none on the upload path)."""


_patched = threading.Lock()
_PATCHED: list[bool] = []


def _item_level_transaction_backups_once() -> None:
    """The local emulator's fix for moto's TransactWriteItems (a deep copy of the whole table per
    item), so moto's time does not grow with the table during a run."""
    from autotag.local.emulator import _item_level_transaction_backups

    with _patched:
        if not _PATCHED:
            _item_level_transaction_backups()
            _PATCHED.append(True)


class RequestLeftProcessError(RuntimeError):
    """A request the in-process AWS did not answer would have been sent over the network."""


class InProcessAws:
    """The in-process AWS, with the same face as ``tests.support.aws.Emulator`` (``client``,
    ``resource``, ``endpoint`` — None: clients use AWS's own URLs, which moto intercepts)."""

    endpoint = None

    def __init__(self, latency: dict[str, float] | None = None) -> None:
        self.latency = dict(LATENCY if latency is None else latency)
        self.active = False
        """Latencies apply only while True (set it around the timed part; setup runs at full speed)."""
        self.slept: dict[str, float] = {}
        self.emulation_seconds = 0.0
        """CPU seconds moto spent answering while active: work AWS does on its side, not the function."""
        self._lock = threading.Lock()
        self._moto_lock = threading.Lock()
        self._mock: Any = None
        self._answer_hook: tuple[str, Callable[..., Any]] = ("before-send", self._answer)
        self._position: int | None = None

    def start(self) -> InProcessAws:
        _item_level_transaction_backups_once()
        self._mock = mock_aws()
        self._mock.start()
        # In place of moto's own hook, for every client created from now on.
        self._position = next(i for i, h in enumerate(BUILTIN_HANDLERS) if h[1] is botocore_stubber)
        BUILTIN_HANDLERS[self._position] = self._answer_hook
        return self

    def stop(self) -> None:
        if self._position is not None and BUILTIN_HANDLERS[self._position] == self._answer_hook:
            BUILTIN_HANDLERS[self._position] = ("before-send", botocore_stubber)
        self._position = None
        if self._mock is not None:
            self._mock.stop()
            self._mock = None

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION)

    def resource(self, service: str) -> Any:
        return boto3.resource(service, region_name=REGION)

    def _answer(self, event_name: str, request: Any, **kwargs: Any) -> Any:
        if self.active:
            # event_name: before-send.<service-id>.<Operation>
            _, service, operation = event_name.split(".", 2)
            name = f"{service}.{operation}"
            seconds = self.latency.get(name, DEFAULT_LATENCY)
            with self._lock:
                self.slept[name] = self.slept.get(name, 0.0) + seconds
            time.sleep(seconds)
        with self._moto_lock:  # moto's backends are not thread-safe; its CPU is GIL-bound anyway
            started = time.thread_time()  # this thread's CPU: what moto itself costs
            response = botocore_stubber(event_name=event_name, request=request, **kwargs)
            if self.active:
                self.emulation_seconds += time.thread_time() - started
        if response is None:
            raise RequestLeftProcessError(f"not answered in process: {request.method} {request.url}")
        return response
