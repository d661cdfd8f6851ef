"""The local stack's readable log: one line per image, from the outcome events on the bus.

A queue subscribed to the bus (``Image Tagged`` / ``Image Tagging Failed`` / ``Image Tags
Corrected``) is read here, so the
line reflects what subscribers really receive, whichever path (upload, API, bus) tagged the image.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from autotag.events import IMAGE_TAGGED, IMAGE_TAGGING_FAILED, IMAGE_TAGS_CORRECTED

log = logging.getLogger("autotag.local")
SHOWN_TAGS = 6


def _clock(value: object) -> str:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).astimezone().strftime("%H:%M:%S")
        except ValueError:
            pass
    return datetime.now().strftime("%H:%M:%S")


def describe_event(event: dict[str, Any]) -> str | None:
    """The one line for an outcome event (None for anything else)."""
    detail = event.get("detail") or {}
    kind = event.get("detail-type")
    where = f"s3://{detail.get('bucket', '?')}/{detail.get('key', '?')}"
    if kind == IMAGE_TAGGED:
        tags = detail.get("tags") or []
        shown = ", ".join(
            t["name"] if t.get("confidence") is None else f"{t['name']} {t['confidence']:.2f}"
            for t in tags[:SHOWN_TAGS]
        )
        more = detail.get("tag_count", len(tags)) - min(len(tags), SHOWN_TAGS)
        if more > 0:
            shown += f" (+{more})"
        latency = sum((p.get("latency_ms") or 0.0) for p in detail.get("providers") or [])
        timing = "cached" if detail.get("cached") else f"{latency:.0f} ms"
        return f"{_clock(detail.get('tagged_at'))}  tagged  {where}  [{shown or 'no tags'}]  {timing}"
    if kind == IMAGE_TAGGING_FAILED:
        retry = " (retryable)" if detail.get("retryable") else ""
        return (
            f"{_clock(detail.get('failed_at'))}  FAILED  {where}  "
            f"{detail.get('error_code', '?')}: {detail.get('reason', '')}{retry}"
        )
    if kind == IMAGE_TAGS_CORRECTED:
        change = [f"+{t}" for t in detail.get("added") or []] + [f"-{t}" for t in detail.get("removed") or []]
        return (
            f"{_clock(detail.get('corrected_at'))}  corrected  {where}  [{', '.join(change)}]  "
            f"by {detail.get('corrected_by', '?')}"
        )
    return None


class OutcomeMonitor:
    def __init__(self, sqs: Any, queue_url: str, emit: Callable[[str], None]) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.emit = emit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outcome-monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(3)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                response = self.sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                )
            except (BotoCoreError, ClientError):
                self._stop.wait(1.0)
                continue
            messages = response.get("Messages", [])
            for message in messages:
                try:
                    line = describe_event(json.loads(message["Body"]))
                except (ValueError, KeyError, TypeError):
                    line = None
                if line:
                    self.emit(line)
            if messages:
                self.sqs.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
                    ],
                )
