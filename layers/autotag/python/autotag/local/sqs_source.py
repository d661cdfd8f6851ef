"""Event-source pollers: what Lambda's event source mappings do, against the emulator's queues.

:class:`SqsEventSource` is the SQS mapping: receive up to ``batch_size`` messages, hand them to the
function as one SQS event, delete only what succeeded (``ReportBatchItemFailures``: the ids in
``batchItemFailures`` stay on the queue; an error or a timeout keeps the whole batch), and never
touch the visibility timeout, so failed messages come back when it expires and the queue's redrive
policy moves them to the DLQ after ``maxReceiveCount`` receives (the emulator applies it on receive,
as SQS does).

:class:`EventBridgeQueueSource` stands in for an EventBridge rule whose target is a function: the
local rule targets a queue instead, and each message (one EventBridge event) is one asynchronous
invocation; a failed invocation is retried when the message becomes visible again.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from autotag.local.lambda_workers import FunctionPool, Invocation
from autotag.local.state import ACCOUNT_ID, REGION

log = logging.getLogger("autotag.local")

RECEIVE_WAIT_SECONDS = 1
"""Short long-polls keep shutdown prompt; the emulator costs nothing when idle."""


@dataclass(frozen=True)
class BatchOutcome:
    """What happened to one batch, for the stack's log."""

    function: str
    received: int
    failed_ids: tuple[str, ...]
    invocation: Invocation
    records: tuple[dict[str, Any], ...]


def lambda_message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """boto3's MessageAttributes → the camelCase shape Lambda puts in SQS records."""
    converted: dict[str, Any] = {}
    for name, value in attributes.items():
        binary = value.get("BinaryValue")
        converted[name] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": base64.b64encode(binary).decode() if binary is not None else None,
            "stringListValues": list(value.get("StringListValues", [])),
            "binaryListValues": [base64.b64encode(b).decode() for b in value.get("BinaryListValues", [])],
            "dataType": value.get("DataType", "String"),
        }
        converted[name] = {k: v for k, v in converted[name].items() if v is not None}
    return converted


def sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": lambda_message_attributes(message.get("MessageAttributes", {})),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def failed_message_ids(invocation: Invocation, batch_ids: list[str]) -> set[str]:
    """The messages that must stay on the queue, by Lambda's ReportBatchItemFailures rules."""
    if not invocation.ok:
        return set(batch_ids)
    payload = invocation.payload
    if payload is None or (isinstance(payload, dict) and not payload.get("batchItemFailures")):
        return set()
    if not isinstance(payload, dict) or not isinstance(payload.get("batchItemFailures"), list):
        return set(batch_ids)  # an unreadable response fails the whole batch
    failed: set[str] = set()
    for item in payload["batchItemFailures"]:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not identifier or identifier not in batch_ids:
            return set(batch_ids)  # an empty or unknown id fails the whole batch
        failed.add(identifier)
    return failed


class _Poller:
    def __init__(self, sqs: Any, queue_url: str, function: FunctionPool, *, concurrency: int = 1) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.function = function
        self.concurrency = concurrency
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.queue_arn = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]

    def start(self) -> None:
        for index in range(self.concurrency):
            thread = threading.Thread(
                target=self._run, name=f"{self.function.spec.name}-poller-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def request_stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except (BotoCoreError, ClientError) as exc:
                if self._stop.is_set():
                    return
                log.warning("%s: cannot read %s: %s", self.function.spec.name, self.queue_url, exc)
                self._stop.wait(1.0)

    def _receive(self, count: int) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=RECEIVE_WAIT_SECONDS,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )

    def poll_once(self) -> None:
        raise NotImplementedError


class SqsEventSource(_Poller):
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        function: FunctionPool,
        *,
        batch_size: int = 10,
        max_batching_window_seconds: float = 0.0,
        report_batch_item_failures: bool = True,
        concurrency: int = 1,
        on_batch: Callable[[BatchOutcome], None] | None = None,
    ) -> None:
        super().__init__(sqs, queue_url, function, concurrency=concurrency)
        self.batch_size = batch_size
        self.max_batching_window_seconds = max_batching_window_seconds
        self.report_batch_item_failures = report_batch_item_failures
        self.on_batch = on_batch

    def _gather(self) -> list[dict[str, Any]]:
        """Up to batch_size messages; after the first, keep gathering for the batching window."""
        messages = self._receive(min(10, self.batch_size))
        if not messages:
            return []
        window_ends = time.monotonic() + self.max_batching_window_seconds
        while len(messages) < self.batch_size and time.monotonic() < window_ends and not self._stop.is_set():
            messages.extend(self._receive(min(10, self.batch_size - len(messages))))
        return messages

    def poll_once(self) -> None:
        messages = self._gather()
        if not messages:
            return
        records = [sqs_record(m, self.queue_arn) for m in messages]
        invocation = self.function.invoke({"Records": records})
        ids = [m["MessageId"] for m in messages]
        if self.report_batch_item_failures:
            failed = failed_message_ids(invocation, ids)
        else:
            failed = set(ids) if not invocation.ok else set()
        self._delete([m for m in messages if m["MessageId"] not in failed])
        if self.on_batch:
            with contextlib.suppress(Exception):
                self.on_batch(
                    BatchOutcome(
                        function=self.function.spec.name,
                        received=len(messages),
                        failed_ids=tuple(i for i in ids if i in failed),
                        invocation=invocation,
                        records=tuple(records),
                    )
                )


def complete_event(event: dict[str, Any]) -> dict[str, Any]:
    """Fill in envelope fields EventBridge always sends but the emulator's queue targets omit
    (``account``; ``time`` as an ISO timestamp, not epoch seconds), so functions see real events."""
    if not isinstance(event, dict):
        return event
    completed = dict(event)
    completed.setdefault("version", "0")
    completed.setdefault("account", ACCOUNT_ID)
    completed.setdefault("region", REGION)
    completed.setdefault("resources", [])
    when = completed.get("time")
    if isinstance(when, int | float):
        completed["time"] = datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return completed


class EventBridgeQueueSource(_Poller):
    """One EventBridge event per message → one asynchronous invocation."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        function: FunctionPool,
        *,
        concurrency: int = 1,
        on_invoke: Callable[[dict[str, Any], Invocation], None] | None = None,
    ) -> None:
        super().__init__(sqs, queue_url, function, concurrency=concurrency)
        self.on_invoke = on_invoke

    def poll_once(self) -> None:
        for message in self._receive(10):
            if self._stop.is_set():
                return  # not deleted: it becomes visible again for the next run
            try:
                event = json.loads(message["Body"])
            except json.JSONDecodeError:
                log.warning(
                    "%s: dropping a message that is not an EventBridge event", self.function.spec.name
                )
                self._delete([message])
                continue
            invocation = self.function.invoke(complete_event(event))
            if invocation.ok:
                self._delete([message])
            if self.on_invoke:
                with contextlib.suppress(Exception):
                    self.on_invoke(event, invocation)
