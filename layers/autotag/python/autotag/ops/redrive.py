"""Redrive: move messages from a dead-letter queue back to the queue they came from.

A message is re-sent with its body unchanged (the original S3 notification or event), without the
attributes the DLQ added (``error_code``, ``error_reason``, ...), and deleted from the DLQ only
after the send succeeded, so nothing is lost if the run stops half way. ``codes`` limits the move
to messages whose ``error_code`` attribute is one of them; the others are made visible again at
once. Messages SQS itself moved after ``maxReceiveCount`` receives carry no error code (shown as
``retries_exhausted``).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from autotag.dlq import DeadLetter, message_attributes
from autotag.requeue import REPLAY_ATTRIBUTE

NO_CODE = "retries_exhausted"
"""The code shown for messages SQS moved to the DLQ itself (no reason attached)."""
HOLD_SECONDS = 120
"""Visibility while a run holds messages, so one run never sees the same message twice."""

_DLQ_ATTRIBUTES = frozenset(message_attributes(DeadLetter(body="", error_code="x", reason="x")))


@dataclass
class RedriveReport:
    moved: Counter[str] = field(default_factory=Counter)
    kept: Counter[str] = field(default_factory=Counter)
    failed: int = 0

    @property
    def moved_total(self) -> int:
        return sum(self.moved.values())

    @property
    def kept_total(self) -> int:
        return sum(self.kept.values())

    def summary(self) -> str:
        def detail(counts: Counter[str]) -> str:
            return ", ".join(f"{code}: {n}" for code, n in sorted(counts.items()))

        text = f"moved {self.moved_total} message(s) back"
        if self.moved:
            text += f" ({detail(self.moved)})"
        if self.kept:
            text += f"; left {self.kept_total} in the DLQ ({detail(self.kept)})"
        if self.failed:
            text += f"; {self.failed} could not be moved"
        return text


def error_code_of(message: dict[str, Any]) -> str:
    attribute = message.get("MessageAttributes", {}).get("error_code")
    return str(attribute.get("StringValue")) if attribute else NO_CODE


def to_queue(sqs: Any, queue_url: str) -> Callable[[dict[str, Any]], None]:
    """Send a dead letter back to its source queue (the tag queue)."""

    def send(message: dict[str, Any]) -> None:
        attributes = {
            name: value
            for name, value in message.get("MessageAttributes", {}).items()
            if name not in _DLQ_ATTRIBUTES and name not in ("bucket", "key", "source_message_id")
        }
        attributes["redriven_at"] = {"DataType": "String", "StringValue": str(int(time.time()))}
        # A replay, not a duplicate: it must get past the idempotency record of the failed attempt.
        attributes[REPLAY_ATTRIBUTE] = {"DataType": "String", "StringValue": uuid.uuid4().hex}
        sqs.send_message(QueueUrl=queue_url, MessageBody=message["Body"], MessageAttributes=attributes)

    return send


def to_bus(events: Any, bus_name: str) -> Callable[[dict[str, Any]], None]:
    """Put a dead-lettered EventBridge event back on the bus (the event DLQ)."""

    def send(message: dict[str, Any]) -> None:
        event = json.loads(message["Body"])
        entry = {
            "Source": event["source"],
            "DetailType": event["detail-type"],
            "Detail": json.dumps(event.get("detail", {})),
            "Resources": event.get("resources", []),
            "EventBusName": bus_name,
        }
        response = events.put_events(Entries=[entry])
        if response.get("FailedEntryCount"):
            raise RedriveSendError(str(response["Entries"][0].get("ErrorMessage")))

    return send


class RedriveSendError(Exception):
    pass


@dataclass
class Redrive:
    sqs: Any
    dlq_url: str
    send: Callable[[dict[str, Any]], None]
    codes: frozenset[str] = frozenset()
    limit: int | None = None
    dry_run: bool = False
    on_message: Callable[[str, dict[str, Any]], None] | None = None

    def run(self) -> RedriveReport:
        report = RedriveReport()
        held: list[dict[str, Any]] = []
        seen: set[str] = set()
        empty_receives = 0
        try:
            while empty_receives < 2:
                if self.limit is not None and report.moved_total >= self.limit:
                    break
                response = self.sqs.receive_message(
                    QueueUrl=self.dlq_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=1,
                    VisibilityTimeout=HOLD_SECONDS,
                    MessageAttributeNames=["All"],
                    AttributeNames=["All"],
                )
                messages = [m for m in response.get("Messages", []) if m["MessageId"] not in seen]
                if not messages:
                    empty_receives += 1
                    continue
                empty_receives = 0
                for message in messages:
                    seen.add(message["MessageId"])
                    code = error_code_of(message)
                    wanted = not self.codes or code in self.codes
                    over_limit = self.limit is not None and report.moved_total >= self.limit
                    if not wanted or over_limit or self.dry_run:
                        (report.moved if self.dry_run and wanted and not over_limit else report.kept)[
                            code
                        ] += 1
                        held.append(message)
                        continue
                    if self._move(message):
                        report.moved[code] += 1
                        if self.on_message:
                            self.on_message(code, message)
                    else:
                        report.failed += 1
                        held.append(message)
        finally:
            self._release(held)
        return report

    def _move(self, message: dict[str, Any]) -> bool:
        try:
            self.send(message)
        except (BotoCoreError, ClientError, RedriveSendError, ValueError, KeyError, TypeError):
            return False
        self.sqs.delete_message(QueueUrl=self.dlq_url, ReceiptHandle=message["ReceiptHandle"])
        return True

    def _release(self, held: list[dict[str, Any]]) -> None:
        """Messages looked at but not moved become visible again now, not after HOLD_SECONDS."""
        for start in range(0, len(held), 10):
            chunk = held[start : start + 10]
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.dlq_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                    for i, m in enumerate(chunk)
                ],
            )
