"""Fault injection through the local stack: every object must end up accounted for.

N uploads (boto3 ``put_object`` to the emulator; the bucket's notification feeds the tag queue;
the SQS poller drives the real ``on_upload`` handler in its worker processes) while:

- the imagedescriber double answers 10 % of calls with HTTP 500, 5 % with 429 + ``Retry-After``
  and lets 2 % hang past the client's timeout;
- 3 % of the files are corrupt (JPEG name and content type, garbage bytes);
- 1 % are deleted (that version, permanently) right after upload, before they are processed;
- 10 % of the S3 notifications are delivered twice (the very body S3 sent, read from a second
  "tap" queue on the bucket's notifications, sent to the tag queue again, some at once, some up to
  10 s later);
- 5 % of the images are uploaded again with the same bytes, and 3 % are overwritten A -> B -> A
  (each PUT its own S3 event; S3 drops the object's tags on every overwrite);
- for every object uploaded more than once, the first PUT's notification is delivered again after
  the later ones (out of order: an older event must never overwrite a newer record);
- 10 % of the objects carry user tags from the upload, one of them under autotag's own prefix
  (``autotag:favourite``, a tag autotag never wrote: it must be kept);
- the ``on_upload`` workers are SIGKILLed mid-batch a few times (at the moment a provider call is
  in flight); the runtime starts fresh workers, and the killed batch comes back after the
  queue's visibility timeout.

When the queue has drained, every DLQ message is moved back to the tag queue the way
``aws sqs start-message-move-task`` does (the emulator lacks that API: receive, send with body and
attributes unchanged, delete), and the run waits for the queue to drain again: every moved message
must be processed again (not swallowed).

At the end every object is one of: tagged, failed (record with the reason, and a DLQ letter), or
skipped (deleted before processing). Anything else is lost. It prints ``lost: 0`` or fails (exit
status 1), with provider calls vs images, duplicate provider calls for the same image (calls
answered with tags, per image hash; must be 0 apart from calls whose answer died with a killed
worker, which are counted separately; the same bytes uploaded again are answered by the cache),
stale records (a record that does not describe the current object, or a tagged record whose tags
are not on the current object: must be 0), redriven messages swallowed (must be 0) and user tags
kept (must be all).

    uv run python -m bench.chaos [--uploads 1000] [--seed 7] [--timeout 900]

Stops by itself: short visibility timeouts, and a global timeout after which it reports and fails.
Writes bench/results/chaos.json; the stack's own output goes to bench/results/chaos-stack.log.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from autotag.store.base import ImageRecord
from botocore.exceptions import ClientError

from bench.common import RESULTS, ROOT, machine, write_result
from bench.harness import (
    BenchStack,
    Client,
    CountingDescriber,
    Faults,
    Upload,
    children_output_to,
    deployment_config,
    distinct_jpegs,
    running_stack,
)

PROVIDER_FAULTS = Faults(error_rate=0.10, throttle_rate=0.05, hang_rate=0.02, retry_after=1.0)


@dataclass(frozen=True)
class ChaosPlan:
    uploads: int = 1000
    seed: int = 7
    provider_faults: Faults = PROVIDER_FAULTS
    """The imagedescriber double's faults (its hang outlasts the client's timeout; seeded by `seed`)."""
    corrupt_rate: float = 0.03
    delete_rate: float = 0.01
    duplicate_rate: float = 0.10
    reupload_rate: float = 0.05
    """Images uploaded a second time with the same bytes."""
    aba_rate: float = 0.03
    """Images overwritten with other bytes, then with the first bytes again."""
    user_tag_rate: float = 0.10
    redrive: bool = True
    """Move the DLQ back to the tag queue once the queue has drained (StartMessageMoveTask)."""
    kills: int = 4
    on_upload_timeout: int = 10
    """Seconds; the tag queue's visibility timeout is 6x this (AWS's guidance)."""
    provider_timeout: float = 1.0
    timeout: float = 900.0
    """Global limit of the run, after which it reports what it has and fails."""
    workers: int = 2


@dataclass
class ChaosObject:
    upload: Upload
    kind: str  # "image" | "corrupt" | "deleted"
    duplicated: bool = False
    sha256: str | None = None
    outcome: str = "lost"
    reason: str | None = None
    then: list[bytes] = field(default_factory=list, repr=False)
    """Bytes PUT to the same key after the first upload, in order (same bytes; or B then A)."""
    overwrite: str | None = None  # "same_bytes" | "a_b_a"
    puts: list[Upload] = field(default_factory=list, repr=False)
    """Every PUT made to the key, in order."""


@dataclass
class ChaosReport:
    plan: ChaosPlan
    counts: dict[str, int] = field(default_factory=dict)
    outcomes_by_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    failure_reasons: dict[str, int] = field(default_factory=dict)
    provider: dict[str, Any] = field(default_factory=dict)
    user_tags: dict[str, Any] = field(default_factory=dict)
    ordering: dict[str, Any] = field(default_factory=dict)
    redrive: dict[str, Any] = field(default_factory=dict)
    kills: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    settled: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "plan": dataclasses.asdict(self.plan),
            "ok": self.ok,
            "problems": self.problems,
            "seconds": round(self.seconds, 1),
            "settled": self.settled,
            "counts": self.counts,
            "outcomes_by_kind": self.outcomes_by_kind,
            "lost": self.lost,
            "failure_reasons": self.failure_reasons,
            "provider": self.provider,
            "user_tags": self.user_tags,
            "ordering": self.ordering,
            "redrive": self.redrive,
            "kills": self.kills,
        }


def corrupt_bytes(rng: random.Random, size: int = 4096) -> bytes:
    """Starts like a JPEG (so it is not rejected by its name or type) and is garbage after."""
    return b"\xff\xd8\xff\xe0" + bytes(rng.randrange(256) for _ in range(size))


MIXED_CASE_SUFFIXES = (".jpg", ".JPG", ".Jpg", ".jpeG")
"""Keys end in every case: each must be tagged or failed with a reason like ``.jpg`` (docs/config.md)."""


def plan_objects(plan: ChaosPlan, rng: random.Random) -> list[ChaosObject]:
    import hashlib

    count = plan.uploads
    indexes = list(range(count))
    rng.shuffle(indexes)
    n_corrupt = round(count * plan.corrupt_rate)
    n_deleted = round(count * plan.delete_rate)
    corrupt = set(indexes[:n_corrupt])
    deleted = set(indexes[n_corrupt : n_corrupt + n_deleted])
    duplicated = set(rng.sample(range(count), round(count * plan.duplicate_rate)))
    tagged_by_user = set(rng.sample(range(count), round(count * plan.user_tag_rate)))
    plain = indexes[n_corrupt + n_deleted :]
    n_same, n_aba = round(count * plan.reupload_rate), round(count * plan.aba_rate)
    same_bytes = set(plain[:n_same])
    a_b_a = set(plain[n_same : n_same + n_aba])
    images = iter(distinct_jpegs(count - n_corrupt, start=20_000, size=(320, 240)))
    others = iter(distinct_jpegs(n_aba, start=60_000, size=(320, 240)))
    objects = []
    for index in range(count):
        kind = "corrupt" if index in corrupt else "deleted" if index in deleted else "image"
        data = corrupt_bytes(rng) if kind == "corrupt" else next(images)
        user_tags = (
            {"owner": "team-a", "project": f"p{index % 7}", "autotag:favourite": "yes"}
            if index in tagged_by_user
            else {}
        )
        obj = ChaosObject(
            upload=Upload(
                key=f"chaos/obj-{index:05d}{MIXED_CASE_SUFFIXES[index % len(MIXED_CASE_SUFFIXES)]}",
                data=data,
                user_tags=user_tags,
            ),
            kind=kind,
            duplicated=index in duplicated,
            sha256=hashlib.sha256(data).hexdigest(),
        )
        if index in same_bytes:
            obj.overwrite, obj.then = "same_bytes", [data]
        elif index in a_b_a:
            obj.overwrite, obj.then = "a_b_a", [next(others), data]
        objects.append(obj)
    return objects


class Chaos:
    def __init__(self, plan: ChaosPlan, stack: BenchStack, provider: CountingDescriber, out: TextIO) -> None:
        assert stack.state is not None
        self.plan = plan
        self.stack = stack
        self.provider = provider
        self.out = out
        self.client = Client(stack.state)
        self.queue_url = stack.state.resources.tag_queue_url
        self.dlq_url = stack.state.resources.dlq_url
        self.rng = random.Random(plan.seed)
        self.kill_log: list[dict[str, Any]] = []
        self._duplicates_sent = 0
        self._out_of_order_sent = 0
        self.tap_url: str | None = None
        self.tap_bodies: dict[tuple[str, str | None], str] = {}
        self.redriven: dict[str, Any] = {}
        self.started = time.time()
        self._lock = threading.Lock()

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    # -- faults

    def kill(self) -> None:
        pids = self.stack.kill_upload_workers()
        self.kill_log.append({"at": time.time(), "pids": pids})
        self.say(f"  killed on_upload workers {pids} mid-batch")

    def after_upload(self, obj: ChaosObject) -> None:
        upload = obj.upload
        obj.puts.append(dataclasses.replace(upload))
        if obj.kind == "deleted":
            self.client.s3.delete_object(
                Bucket=self.client.bucket, Key=upload.key, VersionId=upload.version_id
            )

    def install_tap(self) -> None:
        """A second queue on the bucket's notifications: what S3 sent, body for body (the tag queue's
        own messages are the functions' to consume)."""
        s3, sqs, bucket = self.client.s3, self.client.sqs, self.client.bucket
        self.tap_url = sqs.create_queue(QueueName=f"chaos-tap-{self.plan.seed}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.tap_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        configuration = s3.get_bucket_notification_configuration(Bucket=bucket)
        configuration.pop("ResponseMetadata", None)
        configuration.setdefault("QueueConfigurations", []).append(
            {"Id": "chaos-tap", "QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}
        )
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=configuration)

    def collect_tap(self, expected: int, timeout: float = 60.0) -> None:
        assert self.tap_url is not None
        end = time.monotonic() + timeout
        while len(self.tap_bodies) < expected and time.monotonic() < end:
            for message in self.client.drain(self.tap_url):
                body = json.loads(message["Body"])
                for record in body.get("Records", []):
                    obj = record["s3"]["object"]
                    key = _unquote(obj["key"])
                    self.tap_bodies[(key, obj.get("versionId"))] = message["Body"]
            time.sleep(0.2)

    def overwrite(self, obj: ChaosObject) -> None:
        """The follow-up PUTs to the same key (same user tags, as `aws s3 cp --tagging` would)."""
        for data in obj.then:
            time.sleep(self.rng.uniform(0.0, 1.0))
            upload = Upload(key=obj.upload.key, data=data, user_tags=obj.upload.user_tags)
            obj.puts.append(self.client.put(upload))

    def redeliver(self, objects: list[ChaosObject]) -> None:
        """Duplicates (the first PUT's body again) and, for keys PUT more than once, the first PUT's
        body after the later ones (out of order)."""
        for obj in objects:
            first = obj.puts[0]
            body = self.tap_bodies.get((first.key, first.version_id))
            if body is None:
                continue
            if obj.duplicated:
                delay = self.rng.choice((0, 0, 2, 5, 10))
                self.client.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body, DelaySeconds=delay)
                self._duplicates_sent += 1
            if len(obj.puts) > 1:
                delay = self.rng.choice((1, 3, 6))
                self.client.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body, DelaySeconds=delay)
                self._out_of_order_sent += 1

    # -- the run

    def run(self) -> ChaosReport:
        plan = self.plan
        report = ChaosReport(plan=plan)
        objects = plan_objects(plan, self.rng)
        by_key = {o.upload.key: o for o in objects}
        valid = sum(1 for o in objects if o.kind == "image")
        for number in range(1, plan.kills + 1):  # spread over the run, each while a batch is in flight
            self.provider.after_answers(valid * number // (plan.kills + 1), self.kill)
        self.install_tap()
        started = self.started = time.time()
        deadline = time.monotonic() + plan.timeout
        kinds = Counter(o.kind for o in objects)
        faults = plan.provider_faults
        self.say(
            f"chaos: {plan.uploads} uploads ({valid} images, {kinds['corrupt']} corrupt, "
            f"{kinds['deleted']} deleted before processing, "
            f"{sum(o.duplicated for o in objects)} notifications sent twice, "
            f"{sum(o.overwrite == 'same_bytes' for o in objects)} same-bytes re-uploads, "
            f"{sum(o.overwrite == 'a_b_a' for o in objects)} A-B-A overwrites, "
            f"{sum(bool(o.upload.user_tags) for o in objects)} with user tags); provider faults "
            f"{faults.error_rate:.0%} HTTP 500, {faults.throttle_rate:.0%} 429, "
            f"{faults.hang_rate:.0%} timeouts; "
            f"{plan.kills} kills"
        )
        self.client.put_all([o.upload for o in objects], after=lambda u: self.after_upload(by_key[u.key]))
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(self.overwrite, [o for o in objects if o.then]))
        self.collect_tap(sum(len(o.puts) for o in objects))
        self.redeliver(objects)
        self.say(f"  uploaded in {time.time() - started:.1f}s; waiting for the queue to drain")
        report.settled = self.wait_settled(deadline)
        if plan.redrive:
            report.redrive = self.redrive_by_move(objects, deadline)
            report.settled = report.settled and report.redrive["settled"]
        report.seconds = time.time() - started
        self.account(objects, report)
        return report

    def redrive_by_move(self, objects: list[ChaosObject], deadline: float) -> dict[str, Any]:
        """Every DLQ message back to the tag queue, as StartMessageMoveTask moves it; each must be
        processed again (its key's record rewritten), not swallowed as a duplicate."""
        keys = [o.upload.key for o in objects]
        before = {k: (r.updated_at if r else None) for k, r in self.client.records(keys).items()}
        letters = self.client.drain(self.dlq_url)
        moved_keys: list[str] = []
        for message in letters:
            attributes = {
                k: v.get("StringValue", "") for k, v in message.get("MessageAttributes", {}).items()
            }
            extra = (
                {"MessageAttributes": message["MessageAttributes"]}
                if message.get("MessageAttributes")
                else {}
            )
            self.client.sqs.send_message(QueueUrl=self.queue_url, MessageBody=message["Body"], **extra)
            moved_keys.extend(_letter_keys(message["Body"], attributes))
        self.say(f"  redrive: moved {len(letters)} DLQ message(s) back to the tag queue; waiting again")
        self.redriven = {k: before.get(k) for k in moved_keys}
        return {"moved": len(letters), "keys": len(self.redriven), "settled": self.wait_settled(deadline)}

    def account_redrive(
        self,
        records: dict[str, ImageRecord | None],
        letters: dict[str, list[dict[str, str]]],
        report: ChaosReport,
    ) -> None:
        """A moved message was processed again when its key's record was written again, or (no
        record to write: S3 refused the reference, or the retries ran out again) its letter is back."""
        processed, swallowed = 0, []
        for key, before in self.redriven.items():
            record = records.get(key)
            if (record is not None and record.updated_at != before) or (record is None and key in letters):
                processed += 1
            else:
                swallowed.append(key)
        report.redrive.update(
            processed_again=processed, swallowed=len(swallowed), swallowed_keys=sorted(swallowed)[:20]
        )

    def wait_settled(self, deadline: float) -> bool:
        """Until the tag queue is empty (nothing visible, in flight or delayed) on three checks in a
        row with no invocation in between, or the global deadline."""
        quiet = 0
        seen = len(self.stack.invocations)
        last_report = 0.0
        while time.monotonic() < deadline:
            time.sleep(2.0)
            depth = self.client.queue_depth(self.queue_url)
            invocations = len(self.stack.invocations)
            quiet = quiet + 1 if depth == 0 and invocations == seen else 0
            seen = invocations
            if time.monotonic() - last_report > 15:
                last_report = time.monotonic()
                calls = self.provider.calls
                self.say(f"  queue {depth} message(s), {invocations} invocations, provider calls {calls}")
            if quiet >= 3:
                return True
        return False

    # -- accounting

    def account(self, objects: list[ChaosObject], report: ChaosReport) -> None:
        plan = self.plan
        keys = [o.upload.key for o in objects]
        records = self.client.records(keys)
        letters: dict[str, list[dict[str, str]]] = {}
        for message in self.client.drain(self.dlq_url):
            attributes = {
                k: v.get("StringValue", "") for k, v in message.get("MessageAttributes", {}).items()
            }
            for key in _letter_keys(message["Body"], attributes):
                letters.setdefault(key, []).append(attributes)

        reasons: Counter[str] = Counter()
        for obj in objects:
            key = obj.upload.key
            record = records.get(key)
            letter = letters.get(key)
            status = record.status.value if record is not None else None
            if status == "tagged" and record is not None and record.tags:
                obj.outcome = "tagged"
            elif status == "skipped":
                obj.outcome, obj.reason = "skipped", record.error if record else None
            elif status == "failed" and letter:
                obj.outcome = "failed"
                obj.reason = f"{letter[-1].get('error_code', '?')}: {letter[-1].get('error_reason', '')}"
            elif letter:  # SQS moved it after maxReceiveCount: retries exhausted
                obj.outcome, obj.reason = "failed", "retries exhausted (moved to the DLQ by the queue)"
            else:
                obj.outcome = "lost"
                obj.reason = f"record {status or 'missing'}, no DLQ letter"
            if obj.outcome == "failed":
                code = (obj.reason or "").split(":")[0]
                reasons[code] += 1
        report.counts = dict(Counter(o.outcome for o in objects))
        report.counts.setdefault("lost", 0)
        kinds: dict[str, Counter[str]] = {}
        for obj in objects:
            kinds.setdefault(obj.kind, Counter())[obj.outcome] += 1
        report.outcomes_by_kind = {kind: dict(counter) for kind, counter in kinds.items()}
        report.failure_reasons = dict(reasons)
        report.lost = [f"{o.upload.key} ({o.kind}): {o.reason}" for o in objects if o.outcome == "lost"]

        self.account_provider(objects, report)
        self.account_user_tags(objects, report)
        self.account_ordering(objects, records, report)
        if self.plan.redrive:
            self.account_redrive(records, letters, report)
        invocations = self.stack.invocations
        report.kills = {
            "kill_events": len(self.kill_log),
            "workers_killed": sum(len(k["pids"]) for k in self.kill_log),
            "invocations": len(invocations),
            "invocations_died": sum(1 for i in invocations if i.killed),
            "workers_now": len(self.stack.upload_worker_pids()),
        }
        report.counts["duplicate_notifications_sent"] = self._duplicates_sent
        report.counts["out_of_order_notifications_sent"] = self._out_of_order_sent

        if report.counts["lost"]:
            report.problems.append(f"lost: {report.counts['lost']}")
        if report.provider["duplicate_calls_unexplained"]:
            report.problems.append(
                f"duplicate provider calls: {report.provider['duplicate_calls_unexplained']}"
            )
        if report.user_tags["preserved"] != report.user_tags["expected"]:
            report.problems.append(
                f"user tags preserved on {report.user_tags['preserved']} of {report.user_tags['expected']}"
            )
        if report.ordering["stale_records"]:
            report.problems.append(f"stale records: {report.ordering['stale_records']}")
        if report.ordering["tags_missing"]:
            report.problems.append(
                f"tagged records whose tags are not on the object: {report.ordering['tags_missing']}"
            )
        if report.redrive.get("swallowed"):
            report.problems.append(f"redriven messages swallowed: {report.redrive['swallowed']}")
        if len(self.kill_log) < plan.kills:
            report.problems.append(f"only {len(self.kill_log)} of {plan.kills} kills happened")
        if not report.settled:
            report.problems.append(f"the queue did not drain within {plan.timeout:.0f}s")

    def account_provider(self, objects: list[ChaosObject], report: ChaosReport) -> None:
        answered, answered_at = self.provider.answered, self.provider.answered_at
        killed_keys = {
            key.split("/", 3)[3]
            for i in self.stack.invocations
            if i.killed
            for key in i.keys
            if key.count("/") >= 3
        }
        by_sha = {o.sha256: o for o in objects if o.sha256}
        duplicates = explained = 0
        duplicated_keys = []
        for digest, calls in answered.items():
            if calls <= 1:
                continue
            obj = by_sha.get(digest)
            extra = calls - 1
            duplicates += extra
            if obj is not None and obj.upload.key in killed_keys:
                explained += extra
            else:
                key = obj.upload.key if obj else digest
                uri = f"s3://{self.client.bucket}/{key}"
                duplicated_keys.append(
                    {
                        "key": key,
                        "answered_at": [round(t - self.started, 2) for t in answered_at[digest]],
                        "invocations": [
                            {
                                "start": round(i.started_at - self.started, 2),
                                "end": round(i.ended_at - self.started, 2),
                                "error": i.error_type,
                                "failed_here": uri in i.failed_keys,
                            }
                            for i in self.stack.invocations
                            if uri in i.keys
                        ],
                    }
                )
        images = sum(1 for o in objects if o.kind != "corrupt")
        report.provider = {
            "requests": self.provider.calls,
            "answered_with_tags": sum(answered.values()),
            "answers_undelivered": sum(self.provider.undelivered.values()),
            "images_answered": len(answered),
            "images_uploaded": len(objects),
            "valid_images": images,
            "requests_per_image": round(self.provider.calls / max(1, images), 3),
            "duplicate_calls_total": duplicates,
            "duplicate_calls_after_kill": explained,
            "duplicate_calls_unexplained": duplicates - explained,
            "duplicated_keys": duplicated_keys[:20],
        }

    def account_ordering(
        self, objects: list[ChaosObject], records: dict[str, ImageRecord | None], report: ChaosReport
    ) -> None:
        """Every record describes the current object (version and bytes), and a tagged record's
        object tags are on the current object (S3 drops them on each overwrite)."""

        def check(obj: ChaosObject) -> str | None:
            key = obj.upload.key
            try:
                head = self.client.s3.head_object(Bucket=self.client.bucket, Key=key)
            except ClientError:  # deleted: nothing current to describe
                return "deleted"
            record = records.get(key)
            if record is None:
                return "no_record"  # counted as lost (or failed by the queue) elsewhere
            if record.version_id != head.get("VersionId") or record.etag != head["ETag"].strip('"'):
                return "stale"
            if record.status.value == "tagged" and record.s3_tags and record.s3_tags.written:
                tags = self.client.s3.get_object_tagging(Bucket=self.client.bucket, Key=key)["TagSet"]
                present = {t["Key"]: t["Value"] for t in tags}
                if any(present.get(k) != v for k, v in record.s3_tags.written.items()):
                    return "tags_missing"
            return None

        with ThreadPoolExecutor(4) as pool:
            verdicts = list(pool.map(check, objects))
        stale = [o.upload.key for o, v in zip(objects, verdicts, strict=True) if v == "stale"]
        missing = [o.upload.key for o, v in zip(objects, verdicts, strict=True) if v == "tags_missing"]
        overwritten = [o for o in objects if len(o.puts) > 1]
        report.ordering = {
            "same_bytes_reuploads": sum(1 for o in objects if o.overwrite == "same_bytes"),
            "a_b_a_overwrites": sum(1 for o in objects if o.overwrite == "a_b_a"),
            "overwritten_tagged": sum(1 for o in overwritten if o.outcome == "tagged"),
            "overwritten": len(overwritten),
            "records_checked": sum(1 for v in verdicts if v not in ("deleted", "no_record")),
            "stale_records": len(stale),
            "tags_missing": len(missing),
            "stale_keys": stale[:20],
            "tags_missing_keys": missing[:20],
        }

    def account_user_tags(self, objects: list[ChaosObject], report: ChaosReport) -> None:
        expected = preserved = 0
        broken = []
        for obj in objects:
            if not obj.upload.user_tags or obj.kind == "deleted":
                continue
            expected += 1
            tag_set = self.client.s3.get_object_tagging(Bucket=self.client.bucket, Key=obj.upload.key)[
                "TagSet"
            ]
            tags = {t["Key"]: t["Value"] for t in tag_set}
            if all(tags.get(k) == v for k, v in obj.upload.user_tags.items()):
                preserved += 1
            else:
                broken.append(obj.upload.key)
        autotag_written = sum(1 for o in objects if o.outcome == "tagged" and o.upload.user_tags)
        report.user_tags = {
            "expected": expected,
            "preserved": preserved,
            "also_tagged_by_autotag": autotag_written,
            "broken": broken[:20],
        }


def _unquote(key: str) -> str:
    from urllib.parse import unquote_plus

    return unquote_plus(key)


def _letter_keys(body: str, attributes: dict[str, str]) -> list[str]:
    if attributes.get("key"):
        return [attributes["key"]]
    from urllib.parse import unquote_plus

    try:
        data = json.loads(body)
    except ValueError:
        return []
    return [unquote_plus(r["s3"]["object"]["key"]) for r in data.get("Records", []) if "s3" in r]


def run(plan: ChaosPlan, *, out: TextIO, workdir: Path) -> ChaosReport:
    hang_seconds = plan.provider_timeout + 2.0  # past the client's timeout
    faults = dataclasses.replace(plan.provider_faults, hang_seconds=hang_seconds, seed=plan.seed)
    provider = CountingDescriber(latency=0.1, faults=faults, lifetime=plan.timeout + 300).start()
    config = deployment_config(
        provider.url,
        on_upload_timeout=plan.on_upload_timeout,
        provider_timeout=plan.provider_timeout,
        safety_margin=0.5,
    )
    try:
        with running_stack(config, workdir, workers=plan.workers) as stack:
            return Chaos(plan, stack, provider, out).run()
    finally:
        provider.stop()


def print_report(report: ChaosReport, out: TextIO) -> None:
    counts, provider, tags, kills = report.counts, report.provider, report.user_tags, report.kills
    print(
        f"\nchaos run: {report.plan.uploads} uploads in {report.seconds:.0f}s (settled: {report.settled})",
        file=out,
    )
    for kind, outcomes in sorted(report.outcomes_by_kind.items()):
        print(f"  {kind:<8} " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())), file=out)
    print(
        f"tagged: {counts.get('tagged', 0)}  failed (in the DLQ, with reason): {counts.get('failed', 0)}  "
        f"skipped: {counts.get('skipped', 0)}",
        file=out,
    )
    print(
        "failure reasons: " + ", ".join(f"{k} {v}" for k, v in sorted(report.failure_reasons.items())),
        file=out,
    )
    print(
        f"provider calls: {provider['requests']} requests for {provider['valid_images']} decodable images "
        f"({provider['requests_per_image']} per image, faults and retries included); answered with tags: "
        f"{provider['answered_with_tags']} for {provider['images_answered']} distinct images "
        f"(+{provider['answers_undelivered']} answers whose caller had gone: timed out or killed)",
        file=out,
    )
    print(
        f"duplicate provider calls for the same image: {provider['duplicate_calls_unexplained']} "
        f"(plus {provider['duplicate_calls_after_kill']} re-calls whose first answer died with a killed "
        "worker)",
        file=out,
    )
    print(
        f"duplicate notifications sent: {counts.get('duplicate_notifications_sent', 0)}; kills: "
        f"{kills['kill_events']} events, {kills['workers_killed']} workers SIGKILLed, "
        f"{kills['invocations_died']} invocations died and were redelivered; workers running now: "
        f"{kills['workers_now']}",
        file=out,
    )
    ordering, redrive = report.ordering, report.redrive
    print(
        f"overwrites: {ordering['same_bytes_reuploads']} same-bytes re-uploads, "
        f"{ordering['a_b_a_overwrites']} A-B-A; {ordering['overwritten_tagged']} of "
        f"{ordering['overwritten']} overwritten keys tagged; out-of-order notifications sent: "
        f"{counts.get('out_of_order_notifications_sent', 0)}",
        file=out,
    )
    print(
        f"stale records: {ordering['stale_records']} (records describing another object than the "
        f"current one, of {ordering['records_checked']} checked); tagged records whose tags are not on "
        f"the object: {ordering['tags_missing']}",
        file=out,
    )
    if redrive:
        print(
            f"redrive by message move: {redrive['moved']} moved, {redrive['processed_again']} of "
            f"{redrive['keys']} keys processed again, swallowed: {redrive['swallowed']}",
            file=out,
        )
    share = 100.0 * tags["preserved"] / tags["expected"] if tags["expected"] else 100.0
    print(f"user tags kept: {tags['preserved']} of {tags['expected']} ({share:.0f} %)", file=out)
    for duplicate in provider["duplicated_keys"]:
        print(f"  DUPLICATE {json.dumps(duplicate)}", file=out)
    for line in report.lost[:20]:
        print(f"  LOST {line}", file=out)
    for key in ordering["stale_keys"]:
        print(f"  STALE {key}", file=out)
    print(f"lost: {counts.get('lost', 0)}", file=out)
    if report.problems:
        print("FAILED: " + "; ".join(report.problems), file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--uploads", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=900.0, help="global limit, seconds")
    args = parser.parse_args(argv)
    plan = ChaosPlan(uploads=args.uploads, seed=args.seed, kills=args.kills, timeout=args.timeout)
    log = RESULTS / "chaos-stack.log"
    log.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="autotag-chaos-") as tmp, children_output_to(log) as out:
        report = run(plan, out=out, workdir=Path(tmp))
    print_report(report, __import__("sys").stdout)
    path = write_result("chaos", report.as_dict() | {"machine": machine(), "log": str(log.relative_to(ROOT))})
    print(f"wrote {path.relative_to(ROOT)}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
