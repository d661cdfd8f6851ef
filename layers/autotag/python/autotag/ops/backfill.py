"""Backfill: put the objects already in a bucket on the tag queue, as S3 would have on upload.

Each message is an S3 event notification for one object (the body on_upload parses for uploads),
so backfilled objects take exactly the upload path: filters, de-duplication, retries, DLQ. Objects
whose stored record matches the object's current ETag are skipped unless ``force``.

Resumable: after every batch sent, a checkpoint file records the last key handled; a run over the
same target resumes after it (listing with ``StartAfter``) and the checkpoint is removed once the
listing is done. A checkpoint is bound to the target's identity (its queue, bucket and instance:
the CloudFormation stack id, or the id of one start of the local stack, whose state lives in
memory), so one written against an earlier instance is reported and not resumed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from autotag.config import ObjectFilters
from autotag.errors import BadInputError
from autotag.image import split_s3_url
from autotag.ops.target import Target
from autotag.requeue import REPLAY_ATTRIBUTE, already_tagged, notification_body
from autotag.store.base import ImageStore

SQS_BATCH = 10
DEFAULT_CHECKPOINT_DIR = Path(".autotag") / "backfill"


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/key-or-prefix`` → (bucket, key or prefix), the key verbatim (``?``, ``#`` and
    ``%`` are part of it)."""
    parts = split_s3_url(url)
    if parts is None:
        raise BadInputError(f"expected s3://bucket[/prefix], got {url!r}")
    return parts


class Checkpoint(BaseModel):
    target: str
    """What is backfilled: the target's resources, the URL and ``force``."""
    instance_id: str | None
    """Which instance of the target (see :attr:`Target.instance_id`)."""
    tag_queue_url: str
    last_key: str
    enqueued: int = 0
    skipped: int = 0
    filtered: int = 0
    updated_at: datetime


def checkpoint_identity(target: Target, url: str, *, force: bool) -> str:
    """What a checkpoint is for: the target, its bucket, the URL and ``force``. The target's
    instance and queue are checked separately, to say why a checkpoint is not resumed."""
    return "|".join((target.description, target.images_bucket, url, f"force={force}"))


def checkpoint_path(directory: Path, target: str) -> Path:
    digest = hashlib.sha256(target.encode()).hexdigest()[:16]
    return directory / f"{digest}.json"


def load_checkpoint(
    path: Path, target: str, instance_id: str | None, tag_queue_url: str
) -> tuple[Checkpoint | None, str | None]:
    """The checkpoint to resume from; else None, and why an existing checkpoint is not used."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"cannot read the checkpoint {path} ({exc.strerror}); starting from the beginning"
    try:
        checkpoint = Checkpoint.model_validate_json(text)
    except ValueError:
        return None, f"the checkpoint {path} is not one this version wrote; starting from the beginning"
    if checkpoint.target != target:
        return None, None
    if checkpoint.instance_id != instance_id or checkpoint.tag_queue_url != tag_queue_url:
        return None, (
            f"the checkpoint {path} (last key {checkpoint.last_key!r}, "
            f"{checkpoint.updated_at.isoformat(timespec='seconds')}) was written against an earlier "
            "instance of this target (a restarted local stack starts empty); not resuming it: "
            "starting from the beginning"
        )
    return checkpoint, None


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(checkpoint.model_dump_json(indent=2), encoding="utf-8")
    temporary.replace(path)


@dataclass
class BackfillReport:
    listed: int = 0
    enqueued: int = 0
    skipped: int = 0
    filtered: int = 0
    failed: int = 0
    resumed_after: str | None = None
    resumed: Checkpoint | None = None
    """The interrupted run's checkpoint this run continued."""
    checkpoint_ignored: str | None = None
    """Why an existing checkpoint was not resumed."""
    skipped_by_status: dict[str, int] = field(default_factory=dict)
    ceiling_reached: int | None = None
    """The budget ceiling that stopped the run (its checkpoint is kept: a later run continues)."""

    def summary(self) -> str:
        parts = [f"{self.enqueued} enqueued", f"{self.skipped} already tagged (skipped)"]
        if self.filtered:
            parts.append(f"{self.filtered} excluded by the filters")
        if self.failed:
            parts.append(f"{self.failed} could not be sent")
        if self.ceiling_reached is not None:
            parts.append(f"stopped at the budget ceiling of {self.ceiling_reached} object(s)")
        summary = ", ".join(parts)
        if self.resumed is not None:
            summary += (
                f" (resumed after {self.resumed.last_key!r}; before it, the interrupted run enqueued "
                f"{self.resumed.enqueued} and skipped {self.resumed.skipped} already tagged)"
            )
        return summary


def list_objects(
    s3: Any, bucket: str, prefix: str, start_after: str | None = None
) -> Iterator[dict[str, Any]]:
    paginator = s3.get_paginator("list_objects_v2")
    arguments: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "PaginationConfig": {"PageSize": 1000}}
    if start_after:
        arguments["StartAfter"] = start_after
    for page in paginator.paginate(**arguments):
        yield from page.get("Contents", [])


def count_objects(s3: Any, bucket: str, prefix: str, filters: ObjectFilters, start_after: str | None) -> int:
    return sum(1 for o in list_objects(s3, bucket, prefix, start_after) if filters.accepts(o["Key"]))


@dataclass
class Backfill:
    target: Target
    store: ImageStore
    url: str
    force: bool = False
    checkpoint_dir: Path = DEFAULT_CHECKPOINT_DIR
    restart: bool = False
    on_progress: Callable[[BackfillReport], None] | None = None
    on_start: Callable[[int | None, BackfillReport], None] | None = None
    count_first: bool = True
    max_objects: int | None = None
    """Budget ceiling: send at most this many objects in this run."""
    report: BackfillReport = field(default_factory=BackfillReport)
    _run_id: str = field(default_factory=lambda: uuid.uuid4().hex, init=False)

    @property
    def _attributes(self) -> dict[str, dict[str, str]]:
        attributes = {"origin": {"DataType": "String", "StringValue": "backfill"}}
        if self.force:
            # Forced: tag again even objects whose outcome the upload path still remembers.
            attributes[REPLAY_ATTRIBUTE] = {"DataType": "String", "StringValue": self._run_id}
        return attributes

    def run(self) -> BackfillReport:
        bucket, prefix = parse_s3_url(self.url)
        s3 = self.target.client("s3")
        sqs = self.target.client("sqs")
        region = s3.meta.region_name or "us-east-1"
        filters = self.target.config.tagging.filters
        target = self.target
        identity = checkpoint_identity(target, self.url, force=self.force)
        path = checkpoint_path(self.checkpoint_dir, identity)
        report = self.report
        checkpoint = self._resume(path, identity)
        start_after = checkpoint.last_key if checkpoint else None
        total = count_objects(s3, bucket, prefix, filters, start_after) if self.count_first else None
        if self.on_start:
            self.on_start(total, report)

        pending: list[tuple[str, str]] = []  # (key, body)
        last_key = start_after

        def flush() -> None:
            nonlocal pending
            if pending:
                self._send(sqs, pending)
                pending = []
            if last_key is not None:
                save_checkpoint(
                    path,
                    Checkpoint(
                        target=identity,
                        instance_id=target.instance_id,
                        tag_queue_url=target.tag_queue_url,
                        last_key=last_key,
                        # Cumulative over the interrupted runs this one continues.
                        enqueued=report.enqueued + (checkpoint.enqueued if checkpoint else 0),
                        skipped=report.skipped + (checkpoint.skipped if checkpoint else 0),
                        filtered=report.filtered + (checkpoint.filtered if checkpoint else 0),
                        updated_at=datetime.now(UTC),
                    ),
                )

        for obj in list_objects(s3, bucket, prefix, start_after):
            if self._at_ceiling(len(pending)):
                break
            key = obj["Key"]
            report.listed += 1
            if not filters.accepts(key):
                report.filtered += 1
                last_key = key
                continue
            etag = obj.get("ETag")
            status = None if self.force else already_tagged(self.store, bucket, key, etag)
            if status is not None:
                report.skipped += 1
                report.skipped_by_status[status] = report.skipped_by_status.get(status, 0) + 1
            else:
                pending.append(
                    (key, notification_body(bucket, key, size=obj.get("Size"), etag=etag, region=region))
                )
            last_key = key
            if len(pending) >= SQS_BATCH:
                flush()
            if self.on_progress:
                self.on_progress(report)
        flush()
        self._forget_checkpoint(path)
        return report

    def _resume(self, path: Path, identity: str) -> Checkpoint | None:
        """The interrupted run's checkpoint to continue, if it was written against this target."""
        if self.restart:
            return None
        report, target = self.report, self.target
        checkpoint, report.checkpoint_ignored = load_checkpoint(
            path, identity, target.instance_id, target.tag_queue_url
        )
        if checkpoint:
            report.resumed_after = checkpoint.last_key
            report.resumed = checkpoint
        return checkpoint

    def _forget_checkpoint(self, path: Path) -> None:
        """The listing is done (kept when a budget ceiling stopped it: the next run continues)."""
        if self.report.ceiling_reached is None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _at_ceiling(self, pending: int) -> bool:
        report = self.report
        if self.max_objects is None or report.enqueued + report.failed + pending < self.max_objects:
            return False
        report.ceiling_reached = self.max_objects
        return True

    def _send(self, sqs: Any, pending: list[tuple[str, str]]) -> None:
        entries = [
            {
                "Id": str(index),
                "MessageBody": body,
                "MessageAttributes": self._attributes,
            }
            for index, (_, body) in enumerate(pending)
        ]
        response = sqs.send_message_batch(QueueUrl=self.target.tag_queue_url, Entries=entries)
        failed = response.get("Failed", [])
        self.report.enqueued += len(entries) - len(failed)
        self.report.failed += len(failed)
