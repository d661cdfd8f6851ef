"""`make demo`: the whole system on this machine, end to end, then everything stops.

Starts `autotag local` (the same command a user runs), uploads sample images to the emulated
bucket, waits for them to be tagged, prints what autotag stored and wrote, calls the API, shows an
`Image Tagged` event received from the bus and the corrupt file in the dead-letter queue, then stops
the stack. Exits non-zero if any step did not happen.

    uv run python demo/run_demo.py
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote_plus, urlencode

import boto3
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from autotag.local.stack import wait_for_state
from autotag.local.state import LocalState, pid_alive
from autotag.store.base import ImageRecord
from autotag.store.dynamodb import DynamoImageStore
from samples import Sample, api_sample, samples

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
WAIT_SECONDS = 60
SHOWN_TAGS = 8


class DemoFailed(Exception):
    pass


def heading(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 76 - len(text)), flush=True)


def wait_for(check: Callable[[], T | None], what: str, timeout: float = WAIT_SECONDS) -> T:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise DemoFailed(f"timed out after {timeout:.0f}s waiting for {what}")


def table(headers: list[str], rows: list[list[str]], indent: str = "    ") -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = [indent + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append(indent + "  ".join("-" * w for w in widths))
    lines += [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


class Demo:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.state_path = workdir / "local.json"
        self.log_path = workdir / "local.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.state: LocalState | None = None

    # -- the stack

    def start(self) -> LocalState:
        heading("1. autotag local")
        command = [
            str(Path(sys.executable).with_name("autotag")),
            "local",
            "--aws-port", "0",
            "--api-port", "0",
            "--state", str(self.state_path),
            "--quiet",
        ]  # fmt: skip
        print("$ autotag local --aws-port 0 --api-port 0 --quiet   (free ports; functions' JSON logs off)")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        started = time.monotonic()
        self.state = wait_for_state(self.state_path, timeout=90, process=self.process)
        banner = self.log_path.read_text().split("\n\n")[0].strip().splitlines()
        print("\n".join(line for line in banner if "API key" not in line and "#key=" not in line))
        print(f"  API key          {self.state.api_key[:6]}… (in {self.state_path.name})")
        print(f"  ready in {time.monotonic() - started:.1f}s")
        return self.state

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        children = list(self.state.child_pids.values()) if self.state else []
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise DemoFailed("autotag local did not stop on Ctrl-C") from None
        if self.process.returncode != 0:
            raise DemoFailed(f"autotag local exited with status {self.process.returncode}")
        wait_for(lambda: not any(pid_alive(p) for p in children), "the stack's processes to exit", 10)

    def client(self, service: str) -> Any:
        assert self.state is not None
        return boto3.client(
            service,
            endpoint_url=self.state.endpoint_url,
            region_name=self.state.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - the emulator's dummy credentials
        )

    # -- the steps

    def subscribe_debug_queue(self) -> str:
        """What any subscriber does: a rule on the bus, targeting a queue of our own."""
        assert self.state is not None
        sqs, events = self.client("sqs"), self.client("events")
        url = sqs.create_queue(QueueName="demo-subscriber")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        bus = self.state.resources.event_bus_name
        events.put_rule(
            Name="demo-subscriber", EventBusName=bus, EventPattern=json.dumps({"source": ["autotag"]})
        )
        events.put_targets(Rule="demo-subscriber", EventBusName=bus, Targets=[{"Id": "demo", "Arn": arn}])
        return str(url)

    def upload(self, images: list[Sample]) -> None:
        assert self.state is not None
        bucket = self.state.resources.images_bucket
        heading(f"2. upload {len(images)} images to s3://{bucket}/ (plain boto3 against the emulator)")
        s3 = self.client("s3")
        for sample in images:
            extra = {"Tagging": urlencode(sample.user_tags)} if sample.user_tags else {}
            s3.put_object(
                Bucket=bucket, Key=sample.key, Body=sample.data, ContentType=sample.content_type, **extra
            )
            print(f"  put {sample.key:<40} {len(sample.data):>7,} bytes  {sample.about}")

    def wait_for_records(self, images: list[Sample]) -> dict[str, ImageRecord]:
        assert self.state is not None
        heading("3. wait for on_upload (S3 -> SQS -> on_upload, batches of up to 10)")
        store = DynamoImageStore(self.client("dynamodb"), self.state.resources.table_name)
        bucket = self.state.resources.images_bucket
        started = time.monotonic()

        def all_done() -> dict[str, ImageRecord] | None:
            records = {s.key: store.get(bucket, s.key) for s in images}
            done = {
                k: r for k, r in records.items() if r is not None and r.status.value in ("tagged", "failed")
            }
            return done if len(done) == len(images) else None

        records = wait_for(all_done, "every image to be processed")
        print(f"  all {len(images)} processed in {time.monotonic() - started:.1f}s; the stack's log said:")
        for line in self.log_path.read_text().splitlines():
            if "  tagged  " in line or "  FAILED  " in line:
                print("    " + line)
        return records

    def show_records(self, images: list[Sample], records: dict[str, ImageRecord]) -> None:
        assert self.state is not None
        heading("4. what autotag stored and wrote on each object")
        s3 = self.client("s3")
        bucket = self.state.resources.images_bucket
        for sample in images:
            record = records[sample.key]
            size = (
                f"{record.width}x{record.height} {record.content_type}"
                if record.width
                else sample.content_type
            )
            print(f"\n  s3://{bucket}/{sample.key}   [{record.status.value}]  {size}")
            if record.status.value == "failed":
                print(f"    reason: {record.error_code}: {record.error}")
                continue
            rows = [
                [
                    t.name,
                    "-" if t.confidence is None else f"{t.confidence:.2f}",
                    t.kind.value,
                    ", ".join(t.categories),
                ]
                for t in record.tags[:SHOWN_TAGS]
            ]
            print(table(["tag", "confidence", "kind", "category"], rows))
            if len(record.tags) > SHOWN_TAGS:
                print(f"    (+{len(record.tags) - SHOWN_TAGS} more)")
            tag_set = s3.get_object_tagging(Bucket=bucket, Key=sample.key)["TagSet"]
            ours = [f"{t['Key']}={t['Value']}" for t in tag_set if t["Key"].startswith("autotag:")]
            theirs = [f"{t['Key']}={t['Value']}" for t in tag_set if not t["Key"].startswith("autotag:")]
            print(f"    S3 tags ({len(tag_set)}/10): {', '.join(ours) or 'none'}")
            if sample.user_tags:
                print(f"    user's own tags kept: {', '.join(theirs)}")
                if len(theirs) != len(sample.user_tags):
                    raise DemoFailed(f"the user's tags on {sample.key} were not kept: {tag_set}")
            if not record.tags or not ours:
                raise DemoFailed(f"{sample.key} has no tags")
            names = {t.name for t in record.tags}
            if sample.expect and not names & set(sample.expect):
                raise DemoFailed(f"{sample.key}: expected one of {sample.expect}, got {sorted(names)}")

    def call_api(self) -> None:
        assert self.state is not None
        heading("5. POST /v1/tags (the on-demand API, with the API key)")
        image = "data:image/jpeg;base64," + base64.b64encode(api_sample()).decode()
        url = f"{self.state.api_url}v1/tags"
        print(f'  $ curl -X POST {url} -H "x-api-key: …" -d \'{{"image": "data:image/jpeg;base64,…", '
              '"options": {"max_tags": 5}}\'')  # fmt: skip
        response = httpx.post(
            url,
            json={"image": image, "options": {"max_tags": 5}},
            headers={"x-api-key": self.state.api_key},
            timeout=30,
        )
        body = response.json()
        print(f"  HTTP {response.status_code}  request_id {body.get('request_id')}")
        if response.status_code != 200:
            raise DemoFailed(f"POST /v1/tags answered {response.status_code}: {body}")
        print(f"  image: {body['image']['width']}x{body['image']['height']} {body['image']['format']}")
        print("  tags:  " + ", ".join(f"{t['name']} ({t['confidence']:.2f})" for t in body["tags"]))
        refused = httpx.post(url, json={"image": image}, timeout=10)
        print(f"  without the key: HTTP {refused.status_code} {refused.text}")
        if refused.status_code != 403:
            raise DemoFailed("the API accepted a request without the API key")

    def show_event(self, queue_url: str) -> None:
        heading("6. an 'Image Tagged' event, as a subscriber to the bus receives it")
        sqs = self.client("sqs")
        received: list[dict[str, Any]] = []

        def tagged_event() -> dict[str, Any] | None:
            messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            received.extend(json.loads(m["Body"]) for m in messages.get("Messages", []))
            return next((e for e in received if e.get("detail-type") == "Image Tagged"), None)

        event = wait_for(tagged_event, "an Image Tagged event")
        detail = {k: v for k, v in event["detail"].items() if v is not None}
        # Compact for the terminal: one line per tag and per provider status.
        detail["tags"] = [json.dumps(t, separators=(",", ":")) for t in detail["tags"][:3]]
        if event["detail"]["tag_count"] > 3:
            detail["tags"].append(f"... {event['detail']['tag_count'] - 3} more")
        detail["providers"] = [json.dumps(p, separators=(",", ":")) for p in detail["providers"]]
        shown = {k: event[k] for k in ("source", "detail-type", "time") if k in event} | {"detail": detail}
        text = json.dumps(shown, indent=2, ensure_ascii=False)
        text = text.replace('\\"', '"').replace('"{', "{").replace('}"', "}")
        print("\n".join("  " + line for line in text.splitlines()))
        kinds = sorted({e.get("detail-type", "?") for e in received})
        print(f"  (received {len(received)} events so far: {', '.join(kinds)})")

    def show_dlq(self, corrupt: Sample) -> None:
        assert self.state is not None
        heading("7. the corrupt file in the dead-letter queue, with its reason")
        sqs = self.client("sqs")
        url = self.state.resources.dlq_url

        def dead_letter() -> dict[str, Any] | None:
            messages = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
            ).get("Messages", [])
            for message in messages:
                sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
                for record in json.loads(message["Body"]).get("Records", []):
                    if unquote_plus(record["s3"]["object"]["key"]) == corrupt.key:
                        return message
            return None

        message = wait_for(dead_letter, f"{corrupt.key} in the DLQ")
        attributes = {k: v.get("StringValue") for k, v in message["MessageAttributes"].items()}
        print(f"  queue  {url.rsplit('/', 1)[1]}")
        for name in ("key", "error_code", "error_reason", "failed_at"):
            print(f"  {name:<13}{attributes.get(name)}")
        print("  (fix the cause, then `autotag redrive` puts it back on the tag queue)")

    def show_console(self, tagged_key: str, failed_key: str) -> None:
        assert self.state is not None
        heading("8. the web console in headless Chromium: a tag added in the page, screenshots")
        from console_shots import capture

        bucket = self.state.resources.images_bucket
        for path in capture(self.state.api_url, self.state.api_key, bucket, tagged_key, failed_key):
            print(f"  saved {path.relative_to(ROOT)}")
        store = DynamoImageStore(self.client("dynamodb"), self.state.resources.table_name)
        record = store.get(bucket, tagged_key)
        if record is not None and record.corrections:
            tags = self.client("s3").get_object_tagging(Bucket=bucket, Key=tagged_key)["TagSet"]
            print(f"  s3://{bucket}/{tagged_key} object tags now: {', '.join(t['Key'] for t in tags)}")

    def run(self) -> None:
        images = samples()
        self.start()
        queue_url = self.subscribe_debug_queue()
        self.upload(images)
        records = self.wait_for_records(images)
        corrupt = images[-1]
        if records[corrupt.key].status.value != "failed":
            raise DemoFailed(f"{corrupt.key} should have failed")
        if [k for k, r in records.items() if k != corrupt.key and r.status.value != "tagged"]:
            raise DemoFailed("not every valid image was tagged")
        self.show_records(images, records)
        self.call_api()
        self.show_event(queue_url)
        self.show_dlq(corrupt)
        self.show_console(next(k for k, r in records.items() if r.status.value == "tagged"), corrupt.key)
        heading("9. Ctrl-C")
        self.stop()
        print("  autotag local stopped; no process left behind")


def main() -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="autotag-demo-") as directory:
        demo = Demo(Path(directory))
        try:
            demo.run()
        except (DemoFailed, Exception) as error:  # any failure ends the demo with a clear line
            print(f"\ndemo FAILED: {type(error).__name__}: {error}", file=sys.stderr)
            if demo.log_path.exists():
                print("--- last lines of autotag local's log ---", file=sys.stderr)
                print("\n".join(demo.log_path.read_text().splitlines()[-25:]), file=sys.stderr)
            return 1
        finally:
            if demo.process is not None and demo.process.poll() is None:
                demo.process.send_signal(signal.SIGINT)
                try:
                    demo.process.wait(30)
                except subprocess.TimeoutExpired:
                    demo.process.kill()
    print(f"\ndemo finished in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    raise SystemExit(main())
