"""The local stack as a user runs it: ``autotag local`` in a child process, reached over HTTP only
(boto3 against the emulator's endpoint, httpx against the local API)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pytest
from autotag.local.stack import wait_for_state
from autotag.local.state import LocalState
from autotag.store.dynamodb import DynamoImageStore

T = TypeVar("T")
AUTOTAG = str(Path(sys.executable).with_name("autotag"))

FAST_CONFIG: dict[str, Any] = {
    # Short timeouts so a redelivery takes seconds: visibility = 6 x 3 s + 0 s window.
    "functions": {"on_upload": {"timeout_seconds": 3}, "on_event": {"timeout_seconds": 15}},
    "queue": {"max_batching_window_seconds": 0, "max_receive_count": 2},
    "tagging": {"processing": {"safety_margin_seconds": 0.5}},
}


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AUTOTAG, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def wait_for(
    check: Callable[[], T | None], *, timeout: float = 30.0, interval: float = 0.25, what: str = ""
) -> T:
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or check}")
        time.sleep(interval)


def png(color: tuple[int, int, int], size: tuple[int, int] = (48, 32)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg(color: tuple[int, int, int], size: tuple[int, int] = (96, 64)) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, color)
    ImageDraw.Draw(image).ellipse((10, 10, 40, 40), fill=(255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@dataclass
class RunningStack:
    process: subprocess.Popen[bytes]
    state: LocalState
    state_path: Path
    log_path: Path

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.state.endpoint_url,
            region_name=self.state.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    @property
    def bucket(self) -> str:
        return self.state.resources.images_bucket

    def store(self) -> DynamoImageStore:
        return DynamoImageStore(self.client("dynamodb"), self.state.resources.table_name)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, "--state", str(self.state_path), timeout=timeout)

    @contextlib.contextmanager
    def notifications_paused(self) -> Iterator[Any]:
        """The S3 client, with the bucket notifying nobody until the block ends: objects written
        inside predate autotag (what a backfill is for)."""
        s3 = self.client("s3")
        notifications = s3.get_bucket_notification_configuration(Bucket=self.bucket)
        notifications.pop("ResponseMetadata", None)
        s3.put_bucket_notification_configuration(Bucket=self.bucket, NotificationConfiguration={})
        try:
            yield s3
        finally:
            s3.put_bucket_notification_configuration(
                Bucket=self.bucket, NotificationConfiguration=notifications
            )

    def request_tagging(self, key: str) -> None:
        """A Tag Image Requested event for `key` on the stack's bus, as a user's producer sends it."""
        response = self.client("events").put_events(
            Entries=[
                {
                    "Source": "autotag",
                    "DetailType": "Tag Image Requested",
                    "EventBusName": self.state.resources.event_bus_name,
                    "Detail": json.dumps({"bucket": self.bucket, "key": key}),
                }
            ]
        )
        assert response["FailedEntryCount"] == 0

    def subscribe(self) -> str:
        """A debug queue receiving every event autotag publishes (a rule on the bus, as a user adds)."""
        sqs, events = self.client("sqs"), self.client("events")
        name = f"debug-{uuid.uuid4().hex[:8]}"
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        bus = self.state.resources.event_bus_name
        events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps({"source": ["autotag"]}))
        events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "debug", "Arn": arn}])
        return url

    def events_for(self, queue_url: str, key: str, detail_type: str, timeout: float = 30) -> dict[str, Any]:
        sqs = self.client("sqs")
        seen: list[dict[str, Any]] = []

        def find() -> dict[str, Any] | None:
            for message in sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", []):
                seen.append(json.loads(message["Body"]))
            return next(
                (e for e in seen if e.get("detail-type") == detail_type and e["detail"].get("key") == key),
                None,
            )

        return wait_for(find, timeout=timeout, interval=0, what=f"{detail_type} for {key}")

    def wait_record(self, key: str, status: str = "tagged", timeout: float = 30) -> Any:
        store = self.store()

        def check() -> Any:
            record = store.get(self.bucket, key)
            return record if record is not None and record.status.value == status else None

        return wait_for(check, timeout=timeout, what=f"{status} record for {key}")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
                raise AssertionError("autotag local did not stop on its own") from None
        return int(self.process.returncode)


def start_stack(
    directory: Path,
    config: dict[str, Any] | None = None,
    *,
    env: dict[str, str] | None = None,
    workers: int = 2,
) -> RunningStack:
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / "config.json"
    config_path.write_text(json.dumps(config or FAST_CONFIG), encoding="utf-8")
    state_path = directory / "local.json"
    log_path = directory / "local.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                AUTOTAG,
                "local",
                "--config",
                str(config_path),
                "--aws-port",
                "0",
                "--api-port",
                "0",
                "--state",
                str(state_path),
                "--workers",
                str(workers),
                "--log-level",
                "WARNING",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    try:
        state = wait_for_state(state_path, timeout=90, process=process)
    except Exception:
        process.kill()
        raise AssertionError(f"autotag local did not start:\n{log_path.read_text()}") from None
    return RunningStack(process=process, state=state, state_path=state_path, log_path=log_path)


@pytest.fixture
def stack_factory(tmp_path: Path) -> Iterator[Callable[..., RunningStack]]:
    started: list[RunningStack] = []

    def factory(config: dict[str, Any] | None = None, **kwargs: Any) -> RunningStack:
        stack = start_stack(tmp_path / f"stack{len(started)}", config, **kwargs)
        started.append(stack)
        return stack

    yield factory
    for stack in started:
        stack.stop()
