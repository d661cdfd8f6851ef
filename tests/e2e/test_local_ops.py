"""What a user meets driving the local stack with plain boto3, the AWS CLI, curl and the ops CLI:
mixed-case suffixes, `autotag show` on awkward keys and missing records, a Tag Image Requested for
a key that never existed, a backfill checkpoint across a restart, Ctrl-C during start-up, and the
README's quick-start commands exactly as written (ports changed)."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from autotag.local.stack import wait_for_state

from tests.e2e.conftest import AUTOTAG, FAST_CONFIG, RunningStack, jpeg, png, start_stack, wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CONFIG = copy.deepcopy(FAST_CONFIG)
CONFIG["tagging"]["filters"] = {"include_prefixes": ["photos/", "uploads/"]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("ops"), CONFIG)
    yield running
    assert running.stop() == 0


def dead_letters(stack: RunningStack, queue_url: str, *, key: str, timeout: float = 30) -> dict:
    sqs = stack.client("sqs")
    seen: list[dict] = []

    def find() -> dict | None:
        for message in sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
        ).get("Messages", []):
            seen.append(message)
        for message in seen:
            attributes = {k: v.get("StringValue") for k, v in message.get("MessageAttributes", {}).items()}
            if attributes.get("key") == key:
                return attributes
        return None

    return wait_for(find, timeout=timeout, interval=0, what=f"dead letter for {key}")


# --- 4. Suffix filters are case-insensitive -------------------------------------------------------


def test_mixed_case_suffixes_under_a_watched_prefix_are_tagged(stack: RunningStack) -> None:
    s3 = stack.client("s3")
    config = s3.get_bucket_notification_configuration(Bucket=stack.bucket)
    rules = [
        {r["Name"].lower(): r["Value"] for r in c.get("Filter", {}).get("Key", {}).get("FilterRules", [])}
        for c in config["QueueConfigurations"]
    ]
    # By prefix only: S3 matches suffixes case-sensitively.
    assert sorted(rules, key=str) == [{"prefix": "photos/"}, {"prefix": "uploads/"}]

    keys = ["photos/IMG_0001.Jpg", "photos/scan.pNg", "photos/IMG_0002.JPEG"]
    for key in keys:
        s3.put_object(
            Bucket=stack.bucket, Key=key, Body=jpeg((200, 40, 40)) if "J" in key else png((1, 2, 3))
        )
    s3.put_object(Bucket=stack.bucket, Key="photos/notes.txt", Body=b"not an image")
    s3.put_object(Bucket=stack.bucket, Key="elsewhere/IMG_0003.Jpg", Body=jpeg((1, 2, 3)))
    for key in keys:
        assert stack.wait_record(key).tags
    time.sleep(2)
    store = stack.store()
    assert store.get(stack.bucket, "photos/notes.txt") is None  # skipped by the function, unread
    assert store.get(stack.bucket, "elsewhere/IMG_0003.Jpg") is None  # outside the prefix
    assert (
        stack.client("sqs").get_queue_attributes(
            QueueUrl=stack.state.resources.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
        == "0"
    )


@pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI is not installed")
def test_mixed_case_upload_with_the_aws_cli(stack: RunningStack, tmp_path: Path) -> None:
    photo = tmp_path / "IMG_0004.Jpg"
    photo.write_bytes(jpeg((30, 30, 220)))
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    env["AWS_DEFAULT_REGION"] = stack.state.region
    done = subprocess.run(
        [
            "aws",
            "--endpoint-url",
            stack.state.endpoint_url,
            "s3",
            "cp",
            str(photo),
            f"s3://{stack.bucket}/photos/",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert stack.wait_record("photos/IMG_0004.Jpg").status.value == "tagged"


# --- 8. The ops CLI tells the truth ---------------------------------------------------------------


@pytest.mark.parametrize("key", ["photos/what?.jpg", "photos/#1 best.jpg", "photos/a%20b?x=1#y.jpg"])
def test_show_finds_keys_with_url_characters(stack: RunningStack, key: str) -> None:
    stack.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=jpeg((90, 160, 60)))
    stack.wait_record(key)
    shown = stack.cli("show", f"s3://{stack.bucket}/{key}")
    assert shown.returncode == 0, shown.stderr
    assert f"image     s3://{stack.bucket}/{key}" in shown.stdout
    assert "status    tagged" in shown.stdout
    as_json = stack.cli("show", f"s3://{stack.bucket}/{key}", "--json")
    assert json.loads(as_json.stdout)["key"] == key


def test_show_of_a_missing_record_is_the_documented_error_line(stack: RunningStack) -> None:
    for extra in ([], ["--json"]):
        shown = stack.cli("show", f"s3://{stack.bucket}/photos/never.jpg", *extra)
        assert shown.returncode == 1
        assert shown.stdout == ""
        assert re.fullmatch(
            r"autotag: error: not_found: no record for s3://\S+/photos/never\.jpg .*\n", shown.stderr
        )


def test_show_says_why_a_record_is_skipped(stack: RunningStack) -> None:
    # An S3 notification for an object deleted before it was processed (sent as S3 would).
    key = "photos/deleted before tagging.jpg"
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": stack.state.region,
        "eventTime": "2026-01-01T00:00:00.000Z",
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "tag-queue-0",
            "bucket": {"name": stack.bucket, "arn": f"arn:aws:s3:::{stack.bucket}"},
            "object": {"key": "photos/deleted+before+tagging.jpg", "size": 10, "eTag": "0" * 32},
        },
    }
    stack.client("sqs").send_message(
        QueueUrl=stack.state.resources.tag_queue_url, MessageBody=json.dumps({"Records": [record]})
    )
    stack.wait_record(key, status="skipped")
    shown = stack.cli("show", f"s3://{stack.bucket}/{key}")
    assert shown.returncode == 0, shown.stderr
    assert "status    skipped  (object no longer exists)" in shown.stdout


def test_tag_image_requested_for_a_key_that_never_existed_reaches_the_event_dlq(stack: RunningStack) -> None:
    key = "photos/never existed.jpg"
    stack.request_tagging(key)
    letter = dead_letters(stack, stack.state.resources.extra["event_dlq_url"], key=key)
    assert letter["error_code"] == "object_not_found"
    assert "does not exist" in letter["error_reason"]
    assert stack.store().get(stack.bucket, key) is None  # no silent "skipped" record


def _existing_objects(stack: RunningStack, count: int) -> list[str]:
    """Objects written while the bucket sends no notifications (they predate autotag)."""
    keys = [f"photos/old/{i:03d}.png" for i in range(count)]
    with stack.notifications_paused() as s3:
        for i, key in enumerate(keys):
            s3.put_object(Bucket=stack.bucket, Key=key, Body=png((i, 99, 7), (8, 8)))
    return keys


def test_a_backfill_checkpoint_is_not_resumed_after_the_local_stack_restarts(tmp_path: Path) -> None:
    from autotag.ops.backfill import Backfill, BackfillReport
    from autotag.ops.target import local_target
    from autotag.store.dynamodb import DynamoImageStore

    directory, checkpoints = tmp_path / "stack", tmp_path / "checkpoints"
    first = start_stack(directory, CONFIG)
    try:
        _existing_objects(first, 30)
        url = f"s3://{first.bucket}/photos/old/"
        target = local_target(first.state_path)

        def interrupt(report: BackfillReport) -> None:
            if report.listed == 25:  # Ctrl-C after two batches of 10 were sent and checkpointed
                raise KeyboardInterrupt

        job = Backfill(
            target=target,
            store=DynamoImageStore(target.client("dynamodb"), target.table_name),
            url=url,
            checkpoint_dir=checkpoints,
            on_progress=interrupt,
        )
        with pytest.raises(KeyboardInterrupt):
            job.run()
        assert len(list(checkpoints.glob("*.json"))) == 1
    finally:
        assert first.stop() == 0

    second = start_stack(directory, CONFIG)  # same state file, same names: a new, empty stack
    try:
        assert second.state.instance_id != first.state.instance_id
        assert second.client("s3").list_objects_v2(Bucket=second.bucket).get("KeyCount") == 0
        keys = _existing_objects(second, 30)
        done = second.cli("backfill", url, "--checkpoint-dir", str(checkpoints))
        assert done.returncode == 0, done.stderr
        assert "resuming after" not in done.stderr
        assert "earlier instance of this target" in done.stderr
        assert done.stdout.strip().endswith("30 enqueued, 0 already tagged (skipped)")
        for key in keys:
            second.wait_record(key, timeout=60)
    finally:
        assert second.stop() == 0


def test_ctrl_c_during_start_up_prints_no_traceback() -> None:
    interrupted = 0
    for delay in (0.3, 0.6, 1.0, 1.5, 2.5):
        process = subprocess.Popen(
            [AUTOTAG, "providers", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        assert "Traceback" not in err, err
        assert process.returncode in (0, 130, -signal.SIGINT), (process.returncode, err)
        if process.returncode == 130:
            # Interrupted before the command started (silent) or while it ran (one line): never more.
            assert err in ("", "autotag: interrupted\n"), err
            interrupted += 1
    assert interrupted, "no run was interrupted during start-up: raise the delays' range"


def test_ctrl_c_while_the_local_stack_starts_stops_it_cleanly(tmp_path: Path) -> None:
    state = tmp_path / "local.json"
    process = subprocess.Popen(
        [AUTOTAG, "local", "--aws-port", "0", "--api-port", "0", "--state", str(state), "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    time.sleep(1.5)
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=90)
    assert "Traceback" not in out, out
    assert process.returncode in (0, 130), out
    assert not state.exists()


# --- 9. The README's quick start, as written --------------------------------------------------------


def readme_quick_start() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    [block] = [b for b in re.findall(r"```bash\n(.*?)```", text, re.S) if "make local" in b]
    lines = block.replace("\\\n", " ").splitlines()
    return [line for line in lines if line.strip() and not line.lstrip().startswith(("#", "make "))]


def test_readme_quick_start_runs_as_written(tmp_path: Path) -> None:
    commands = readme_quick_start()
    assert [c.split()[0] for c in commands] == ["export", "aws", "uv", "uv", "curl"]
    # `make local`, on free ports instead of 4566 / 3000 (other stacks run on this machine).
    process = subprocess.Popen(
        [AUTOTAG, "local", "--aws-port", "0", "--api-port", "0", "-q"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        state = wait_for_state(tmp_path / ".autotag" / "local.json", timeout=90, process=process)
        aws, api = urlsplit(state.endpoint_url).netloc, urlsplit(state.api_url).netloc
        (tmp_path / "photo.jpg").write_bytes(jpeg((20, 40, 230)))
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["PATH"] = f"{Path(AUTOTAG).parent}{os.pathsep}{env['PATH']}"
        outputs = []
        for command in commands:
            line = (
                command.replace("127.0.0.1:4566", aws)
                .replace("127.0.0.1:3000", api)
                .replace("<key>", state.api_key)
                .replace("uv run autotag", "autotag")  # the project's environment, as uv run would
            )
            if line.startswith("export "):
                env.update(part.split("=", 1) for part in line.split("#")[0].split()[1:])
                continue
            if line.startswith("aws ") and shutil.which("aws", path=env["PATH"]) is None:
                pytest.skip("the AWS CLI is not installed")
            done = subprocess.run(
                ["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
            )
            assert done.returncode == 0, (line, done.stdout, done.stderr)
            outputs.append(done.stdout)
            if line.startswith("aws "):
                # The upload is tagged before the next line looks at it.
                wait_for(
                    lambda: (
                        "status    tagged"
                        in subprocess.run(
                            ["autotag", "show", "s3://autotag-local-images/photos/photo.jpg"],
                            cwd=tmp_path,
                            env=env,
                            capture_output=True,
                            text=True,
                        ).stdout
                    ),
                    timeout=60,
                    what="photo.jpg tagged",
                )
        _, show, search, curl = outputs
        assert "status    tagged" in show
        assert "photos/photo.jpg" in search  # a blue photo carries the tag "blue"
        answer = json.loads(curl)
        assert answer["tags"], answer
        assert answer["source"]
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(60)


def test_the_config_the_local_stack_loads_validates(tmp_path: Path) -> None:
    # `autotag local` with no --config loads config/default.toml (the README quick start above);
    # `autotag config validate` accepts that very file.
    done = subprocess.run(
        [AUTOTAG, "config", "validate", "config/default.toml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "config/default.toml: ok (deployment config, stack Autotag; 2 provider(s): efficientnet, basic)\n"
    )
