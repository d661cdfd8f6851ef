"""The local stack as the throughput benchmark and the chaos run drive it.

:class:`BenchStack` is :class:`autotag.local.stack.LocalStack` (the AWS emulator, the Lambda-like
function workers, the SQS pollers: exactly what ``autotag local`` runs) plus a record of every
``on_upload`` invocation (its duration as the runtime measured it, which records it carried, which
failed) and a way to find and kill the upload workers. :class:`CountingDescriber` is the
imagedescriber double that also records, per image hash, every call it answered with tags, and can
run a hook when it first sees a chosen image.

Uploads go through boto3 ``put_object`` against the emulator, the way a user's client does; the S3
notification reaches the tag queue by the bucket's own notification configuration.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import select
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlencode

from bench.common import loopback_environment

loopback_environment()

from autotag.deploy.config import DeploymentConfig, FunctionName  # noqa: E402
from autotag.local.provision import emulator_client  # noqa: E402
from autotag.local.sqs_source import BatchOutcome  # noqa: E402
from autotag.local.stack import LocalOptions, LocalStack  # noqa: E402
from autotag.local.stack_output import record_keys  # noqa: E402
from autotag.local.state import LocalState  # noqa: E402
from autotag.store.base import ImageRecord  # noqa: E402
from autotag.store.dynamodb import DynamoImageStore  # noqa: E402

from tests.support.provider_servers import (  # noqa: E402
    FaultKind,
    Faults,
    ImageDescriberServer,
    RecordedRequest,
    Reply,
)

API_KEY = "test-imagedescriber-key"
KILLED = frozenset({"Runtime.ExitError", "Sandbox.Timedout"})
"""Invocation errors that mean the function's process died (killed, or stopped at its timeout)."""


# --- The provider ---------------------------------------------------------------------------------


class CountingDescriber(ImageDescriberServer):
    """imagedescriber double that counts, per image sha256, the answers with tags it sent to a
    caller still waiting (``answered``), apart from those whose caller had gone by the time the
    answer was ready (``undelivered``: the client timed out, or its process was killed), which a
    retry legitimately repeats. The latency is spent before that check, so it is applied here
    rather than by the base server (which waits after deciding the reply)."""

    def __init__(self, *, latency: float = 0.0, **kwargs: Any) -> None:
        kwargs.setdefault("credits", 10**9)
        kwargs.setdefault("api_key", API_KEY)
        super().__init__(latency=0.0, **kwargs)
        self.answer_latency = latency
        self.answered: Counter[str] = Counter()
        self.answered_at: dict[str, list[float]] = {}
        self.undelivered: Counter[str] = Counter()
        self._hooks: list[tuple[int, Callable[[], None]]] = []
        self._current = threading.local()

    def after_answers(self, count: int, hook: Callable[[], None]) -> None:
        """Run `hook` on the first request that arrives once `count` calls have been answered with
        tags (a moment when the caller is certainly mid-batch); that request is dropped unanswered."""
        with self._lock:
            self._hooks.append((count, hook))
            self._hooks.sort(key=lambda item: item[0])

    @property
    def hooks_pending(self) -> int:
        with self._lock:
            return len(self._hooks)

    def route(self, request: RecordedRequest) -> Reply:
        hook = None
        with self._lock:
            if self._hooks and sum(self.answered.values()) >= self._hooks[0][0]:
                hook = self._hooks.pop(0)[1]
        if hook is not None:
            hook()
            return Reply(drop=True)
        reply = super().route(request)
        if self.answer_latency and self._stopping.wait(self.answer_latency):
            return reply
        digest = request.image_sha256
        if digest and reply.status == 200:
            delivered = not _peer_closed(self._current.connection)
            with self._lock:
                if delivered:
                    self.answered[digest] += 1
                    self.answered_at.setdefault(digest, []).append(time.time())
                else:
                    self.undelivered[digest] += 1
        return reply

    def fault_reply(self, kind: FaultKind, request: RecordedRequest) -> Reply:
        reply = super().fault_reply(kind, request)
        return dataclasses.replace(reply, delay=reply.delay + self.answer_latency)

    def _serve(self, handler: Any, body: bytes) -> None:
        self._current.connection = handler.connection
        super()._serve(handler, body)


def _peer_closed(connection: socket.socket) -> bool:
    """True when the client has closed its end (it stopped waiting before the answer was sent).
    A client that is still there keeps its keep-alive connection open (or already sent the next
    request), so there is nothing to read, or data rather than end-of-file."""
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


# --- The stack ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Invocation:
    """One on_upload invocation as the event source mapping saw it."""

    ended_at: float
    duration_ms: float
    records: int
    keys: tuple[str, ...]
    failed_keys: tuple[str, ...]
    error_type: str | None

    @property
    def started_at(self) -> float:
        return self.ended_at - self.duration_ms / 1000

    @property
    def killed(self) -> bool:
        return self.error_type in KILLED


class BenchStack(LocalStack):
    """The local stack, recording each on_upload invocation."""

    def __init__(self, options: LocalOptions) -> None:
        super().__init__(options)
        self.invocations: list[Invocation] = []
        self._invocations_lock = threading.Lock()

    def _log_batch(self, outcome: BatchOutcome) -> None:
        # Called by the poller right after the invocation returned and its messages were deleted.
        ended = time.time()
        failed = set(outcome.failed_ids)
        keys: list[str] = []
        failed_keys: list[str] = []
        for record in outcome.records:
            found = list(record_keys(record))
            keys += found
            if record["messageId"] in failed:
                failed_keys += found
        invocation = Invocation(
            ended_at=ended,
            duration_ms=outcome.invocation.duration_ms,
            records=outcome.received,
            keys=tuple(keys),
            failed_keys=tuple(failed_keys),
            error_type=outcome.invocation.error_type,
        )
        with self._invocations_lock:
            self.invocations.append(invocation)
        super()._log_batch(outcome)

    def upload_worker_pids(self) -> list[int]:
        return self._pools[FunctionName.ON_UPLOAD].pids

    def kill_upload_workers(self) -> list[int]:
        """SIGKILL every on_upload worker, as if its execution environment vanished; the runtime
        starts fresh ones for the next batches."""
        killed = []
        for pid in self.upload_worker_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        return killed


def deployment_config(
    provider_url: str,
    *,
    on_upload_timeout: int = 30,
    provider_timeout: float = 20.0,
    max_receive_count: int = 5,
    batching_window: int = 0,
    safety_margin: float = 1.0,
) -> DeploymentConfig:
    """The default deployment with imagedescriber (pointed at the local double) as the provider.

    The tag queue's visibility timeout follows from the function timeout (6x, AWS's guidance), so a
    short ``on_upload_timeout`` makes redeliveries quick.
    """
    return DeploymentConfig.model_validate(
        {
            "functions": {"on_upload": {"timeout_seconds": on_upload_timeout}},
            "queue": {"max_batching_window_seconds": batching_window, "max_receive_count": max_receive_count},
            "tagging": {
                "providers": [
                    {"name": "imagedescriber", "endpoint": provider_url, "timeout_seconds": provider_timeout}
                ],
                "processing": {"safety_margin_seconds": safety_margin},
            },
        }
    )


@contextlib.contextmanager
def children_output_to(log_path: Path | None) -> Iterator[TextIO]:
    """Send this process's fd 1/2 (inherited by the emulator and function workers, whose JSON logs
    would drown the figures) to `log_path`; yields a stream to the real terminal for our output."""
    if log_path is None:
        yield sys.stdout
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    terminal = io.TextIOWrapper(os.fdopen(os.dup(saved_out), "wb", buffering=0), write_through=True)
    with log_path.open("ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield terminal
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
            terminal.close()


@contextlib.contextmanager
def running_stack(
    config: DeploymentConfig, workdir: Path, *, workers: int = 2, emit: Callable[[str], None] | None = None
) -> Iterator[BenchStack]:
    options = LocalOptions(
        config=config,
        aws_port=0,
        api_port=0,
        state_path=workdir / "local.json",
        upload_workers=workers,
        function_log_level="ERROR",
        secret_values={"imagedescriber": json.dumps({"api_key": API_KEY})},
        emit=emit or (lambda line: None),
    )
    stack = BenchStack(options)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


# --- Inputs -------------------------------------------------------------------------------------


def distinct_jpegs(count: int, *, start: int = 0, size: tuple[int, int] = (640, 480)) -> list[bytes]:
    """`count` photo-like JPEGs, each different (a few base photos, each copy marked by its index)."""
    from PIL import ImageDraw

    from tests.support.images import photo_like

    bases = [photo_like(*size, seed=seed) for seed in range(4)]
    images = []
    for index in range(start, start + count):
        picture = bases[index % len(bases)].copy()
        draw = ImageDraw.Draw(picture)
        for bit in range(16):  # the index as a row of light and dark squares
            shade = 255 if (index >> bit) & 1 else 0
            draw.rectangle((8 + bit * 12, 8, 17 + bit * 12, 17), fill=(shade, 255 - shade, shade))
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=85)
        images.append(buffer.getvalue())
    return images


# --- Driving it -----------------------------------------------------------------------------------


@dataclass
class Upload:
    key: str
    data: bytes = field(repr=False)
    user_tags: dict[str, str] = field(default_factory=dict)
    content_type: str = "image/jpeg"
    etag: str | None = None
    version_id: str | None = None
    uploaded_at: float = 0.0


class Client:
    """boto3 against the running stack's emulator."""

    def __init__(self, state: LocalState) -> None:
        self.state = state
        self.bucket = state.resources.images_bucket
        self.s3 = emulator_client("s3", state.endpoint_url)
        self.sqs = emulator_client("sqs", state.endpoint_url)
        self.store = DynamoImageStore(
            emulator_client("dynamodb", state.endpoint_url), state.resources.table_name
        )

    def put(self, upload: Upload) -> Upload:
        extra: dict[str, Any] = {"ContentType": upload.content_type}
        if upload.user_tags:
            extra["Tagging"] = urlencode(upload.user_tags)
        response = self.s3.put_object(Bucket=self.bucket, Key=upload.key, Body=upload.data, **extra)
        upload.etag = response["ETag"].strip('"')
        upload.version_id = response.get("VersionId")
        upload.uploaded_at = time.time()
        return upload

    def put_all(
        self, uploads: list[Upload], *, threads: int = 4, after: Callable[[Upload], None] | None = None
    ) -> None:
        def one(upload: Upload) -> None:
            self.put(upload)
            if after is not None:
                after(upload)

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, uploads))

    def records(self, keys: list[str], threads: int = 4) -> dict[str, ImageRecord | None]:
        with ThreadPoolExecutor(threads) as pool:
            found = list(pool.map(lambda key: self.store.get(self.bucket, key), keys))
        return dict(zip(keys, found, strict=True))

    def queue_depth(self, queue_url: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return sum(int(v) for v in attributes.values())

    def drain(self, queue_url: str) -> list[dict[str, Any]]:
        """Every message on a queue (the DLQ at the end of a run), deleted as read."""
        messages: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
            ).get("Messages", [])
            if not batch:
                return messages
            messages += batch
            self.sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
            )


__all__ = [
    "BenchStack",
    "Client",
    "CountingDescriber",
    "Faults",
    "Invocation",
    "Upload",
    "children_output_to",
    "deployment_config",
    "running_stack",
]
