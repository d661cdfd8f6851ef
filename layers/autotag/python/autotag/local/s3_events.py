"""S3 event notifications in the emulator, made to carry what real S3 puts in them.

moto's notifications leave out ``sequencer`` and ``versionId`` (SQS, SNS, Lambda targets) and give
every EventBridge ``Object Created`` event the same constant ``sequencer``. Real S3 gives each event
a hexadecimal ``sequencer`` that grows with every PUT or DELETE of a key, and the object's
``versionId`` when the bucket is versioned; autotag orders events for a key by the sequencer (see
:mod:`autotag.ordering`), so the local stack and the integration tests' emulator must do the same.

:func:`install` patches moto's notification builders in the process that runs moto (the local
stack's emulator child, or a test's in-process server). Sequencers come from one process-wide
monotonic clock, so they increase per key (and globally), as S3's do.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from typing import Any

from autotag.events import S3_EVENT_SOURCE

SEQUENCER_DIGITS = 18
"""Real S3 sequencers seen in the wild are 16-18 hexadecimal digits (e.g. ``0055AED6DCD90281E5``)."""

_lock = threading.Lock()
_last = 0
_installed = False


def next_sequencer() -> str:
    """A sequencer greater than every one handed out before in this process."""
    global _last
    with _lock:
        _last = max(_last + 1, time.time_ns())
        return f"{_last:0{SEQUENCER_DIGITS}X}"


def _versioned(bucket: Any) -> bool:
    return bool(getattr(bucket, "is_versioned", False))


def install() -> None:
    """Patch moto (idempotent): every S3 notification carries a fresh sequencer and, for versioned
    buckets, the object's versionId."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    from moto.s3 import notifications

    original_event = notifications._get_s3_event

    def get_s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
        event: dict[str, Any] = original_event(event_name, bucket, key, notification_id)
        for record in event.get("Records", []):
            obj = record["s3"]["object"]
            obj["sequencer"] = _sequencer_of(key)
            if _versioned(bucket) and key.version_id not in (None, "null"):
                obj["versionId"] = key.version_id
        return event

    def send_event_bridge_message(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
        # moto's own builder, with the object's real sequencer (and version id only when versioned).
        try:
            from moto.events.models import events_backends
            from moto.events.utils import _BASE_EVENT_MESSAGE

            event = copy.deepcopy(_BASE_EVENT_MESSAGE)
            event["detail-type"] = notifications._detail_type(event_name)
            event["source"] = S3_EVENT_SOURCE
            event["account"] = account_id
            event["time"] = notifications.unix_time()
            event["region"] = bucket.region_name
            event["resources"] = [bucket.arn]
            obj: dict[str, Any] = {
                "key": key.name,
                "size": key.size,
                "etag": key.etag.replace('"', ""),
                "sequencer": _sequencer_of(key),
            }
            if _versioned(bucket) and key.version_id not in (None, "null"):
                obj["version-id"] = key.version_id
            event["detail"] = {
                "version": "0",
                "bucket": {"name": bucket.name},
                "object": obj,
                "request-id": "N4N7GDK58NMKJ12R",
                "requester": account_id,
                "source-ip-address": "127.0.0.1",
                "reason": event_name.split(":")[1],
            }
            backend = events_backends[account_id][bucket.region_name]
            for event_bus in backend.event_buses.values():
                for rule in event_bus.rules.values():
                    rule.send_to_targets(event, transform_input=False)
        except Exception:  # noqa: S110 - asynchronous in AWS: a failed delivery never fails the PUT
            pass

    notifications._get_s3_event = get_s3_event
    notifications._send_event_bridge_message = send_event_bridge_message


def _sequencer_of(key: Any) -> str:
    """One sequencer per object write: every notification target of the same PUT sees the same one."""
    existing = getattr(key, "_autotag_sequencer", None)
    if isinstance(existing, str):
        return existing
    sequencer = next_sequencer()
    with contextlib.suppress(AttributeError):  # a key type without attributes: a fresh one each time
        key._autotag_sequencer = sequencer
    return sequencer
