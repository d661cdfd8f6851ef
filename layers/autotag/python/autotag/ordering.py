"""Which events may change an image's record: S3's ``sequencer`` orders them, a claim serializes them.

Every S3 event notification carries a ``sequencer``: a hexadecimal string that grows with every
PUT or DELETE of one key (S3 documents it as comparable only for the same key, after left-padding
the shorter one with zeros). The image record keeps the sequencer of the event it reflects, and a
conditional write on the record itself decides what an event may do (no separate idempotency
record, so no extra AWS call per image):

- an event **newer** than the record (or the first one) is processed;
- the **same** event again (a duplicate delivery) is acknowledged without work, unless the record
  is ``failed`` (a redrive, by ``autotag redrive``, ``aws sqs start-message-move-task`` or any
  other tool, or a duplicate of a failed event: evaluated again) or the message is a deliberate
  replay (``replay_id`` attribute);
- an event **older** than the record never overwrites it (``stale``: acknowledged, logged).

While an event is processed its processor holds a *claim* on the record (a token with an expiry,
written by the same conditional write). Another delivery of the same event, or a later event for
the key, finds the claim and is retried later (``object_busy``), so one event per key is in flight
and no provider is called twice for one event; an event older than the claimed one is stale.

Requests (``Tag Image Requested``, ``POST /v1/tags`` with ``store``) and notifications without a
sequencer (backfill) are *unordered*: they take the claim, tag the object as it is now, and keep
the record's sequencer.
"""

from __future__ import annotations

import string
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from autotag.errors import InvalidSequencerError, ObjectBusyError
from autotag.store.base import ImageRecord, ImageStatus

SEQUENCER_WIDTH = 64
"""Sequencers are compared left-padded to this many hex digits (S3's have 16 to 18)."""
_HEX = frozenset(string.hexdigits)


def normalize_sequencer(value: str | None) -> str | None:
    """The sequencer as stored and compared: upper-case hex, left-padded to :data:`SEQUENCER_WIDTH`."""
    if value is None or not value.strip():
        return None
    text = value.strip().upper()
    if len(text) > SEQUENCER_WIDTH or not set(text) <= _HEX:
        raise InvalidSequencerError(f"the S3 event's sequencer {value[:80]!r} is not a hexadecimal string")
    return text.rjust(SEQUENCER_WIDTH, "0")


def compare_sequencers(a: str, b: str) -> int:
    """-1, 0 or 1 as S3 sequencer `a` is older than, the same as, or newer than `b` (same key)."""
    left, right = normalize_sequencer(a), normalize_sequencer(b)
    assert left is not None
    assert right is not None
    return (left > right) - (left < right)


@dataclass(frozen=True)
class EventOrder:
    """Where an event stands: its S3 sequencer (None: unordered) and whether it is a replay."""

    sequencer: str | None = None
    replay: bool = False

    def __post_init__(self) -> None:
        normalize_sequencer(self.sequencer)  # refuse a malformed one up front

    @property
    def normalized(self) -> str | None:
        return normalize_sequencer(self.sequencer)


class Disposition(StrEnum):
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    STALE = "stale"


@dataclass(frozen=True)
class Refusal:
    """Why an event may not take the claim (``busy`` is raised as :class:`ObjectBusyError`)."""

    disposition: Disposition | None
    reason: str
    record: ImageRecord | None = None
    retry_after: float | None = None

    def raise_if_busy(self) -> None:
        if self.disposition is None:
            raise ObjectBusyError(self.reason, retry_after=self.retry_after)


def decide(
    order: EventOrder,
    *,
    record: ImageRecord | None,
    stored_sequencer: str | None,
    claim_until: float | None,
    claim_sequencer: str | None,
    now: float,
) -> Refusal | None:
    """None when `order` may claim the record; else why not. The one statement of the rules (the
    DynamoDB store's condition expression says the same; its refusals are classified here)."""
    mine = order.normalized
    if claim_until is not None and claim_until >= now:
        if mine is not None and claim_sequencer is not None and claim_sequencer > mine:
            return Refusal(Disposition.STALE, "a newer event for this key is being processed", record)
        return Refusal(
            None, "another event for this image is being processed", record, max(1.0, claim_until - now)
        )
    if mine is None or stored_sequencer is None:
        return None
    if stored_sequencer > mine:
        return Refusal(Disposition.STALE, "the record already reflects a newer event for this key", record)
    failed = record is not None and record.status is ImageStatus.FAILED
    if stored_sequencer == mine and not order.replay and not failed:
        return Refusal(Disposition.DUPLICATE, "this event was processed already", record)
    return None


@dataclass(frozen=True)
class Claim:
    """The right to write one image's record, until ``until`` (epoch seconds)."""

    bucket: str
    key: str
    order: EventOrder
    until: float
    previous: ImageRecord | None
    """The record as it was when claimed."""
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    snapshot: Any = field(default=None, compare=False, repr=False)
    """Store-specific state of the item as claimed (the DynamoDB store keeps its raw item)."""
