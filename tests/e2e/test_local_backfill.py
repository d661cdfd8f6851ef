"""`autotag backfill` over objects that were in the bucket before autotag watched it: every one is
tagged exactly once (counted at the provider), and a second run enqueues none."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.conftest import FAST_CONFIG, RunningStack, png, start_stack, wait_for
from tests.support.provider_servers import ImageDescriberServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

API_KEY = "e2e-backfill-key"
COUNT = 500


@pytest.fixture(scope="module")
def provider() -> Iterator[ImageDescriberServer]:
    with ImageDescriberServer(api_key=API_KEY, tags=("archive", "photo"), credits=10 * COUNT) as server:
        yield server


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, provider: ImageDescriberServer) -> Iterator[RunningStack]:
    config = copy.deepcopy(FAST_CONFIG)
    config["functions"]["on_upload"]["timeout_seconds"] = 30
    config["tagging"]["providers"] = [{"name": "imagedescriber", "endpoint": provider.url}]
    running = start_stack(
        tmp_path_factory.mktemp("backfill"),
        config,
        env={"AUTOTAG_SECRET_IMAGEDESCRIBER": json.dumps({"api_key": API_KEY})},
    )
    yield running
    assert running.stop() == 0


def upload_existing_objects(stack: RunningStack, count: int) -> list[str]:
    """Objects that predate autotag: written while the bucket has no notification configured."""
    keys = [f"archive/{i:04d}.png" for i in range(count)]
    with stack.notifications_paused() as s3, ThreadPoolExecutor(8) as pool:
        # Distinct pixels: every object is a different image (no content-hash cache hits).
        list(
            pool.map(
                lambda i: s3.put_object(
                    Bucket=stack.bucket, Key=keys[i], Body=png((i % 256, i // 256, 77), (8, 8))
                ),
                range(count),
            )
        )
        s3.put_object(Bucket=stack.bucket, Key="archive/notes.txt", Body=b"not an image")  # filtered out
    return keys


def test_backfill_tags_every_existing_object_once_and_a_second_run_enqueues_none(
    stack: RunningStack, provider: ImageDescriberServer, tmp_path
) -> None:
    keys = upload_existing_objects(stack, COUNT)
    time.sleep(2)
    assert provider.calls == 0  # nothing was tagged on its own

    started = time.monotonic()
    first = stack.cli(
        "backfill", f"s3://{stack.bucket}/archive/", "--checkpoint-dir", str(tmp_path), timeout=300
    )
    assert first.returncode == 0, first.stderr
    assert f"{COUNT} enqueued, 0 already tagged (skipped), 1 excluded by the filters" in first.stdout
    assert "ETA" in first.stderr
    assert "/s" in first.stderr

    wait_for(lambda: provider.calls >= COUNT, timeout=240, interval=1, what=f"{COUNT} provider calls")
    store = stack.store()
    wait_for(
        lambda: all(
            (r := store.get(stack.bucket, k)) is not None and r.status.value == "tagged" for k in keys[-20:]
        ),
        timeout=60,
        what="the last records",
    )
    elapsed = time.monotonic() - started
    missing = [k for k in keys if (r := store.get(stack.bucket, k)) is None or r.status.value != "tagged"]
    assert missing == []

    second = stack.cli(
        "backfill", f"s3://{stack.bucket}/archive/", "--checkpoint-dir", str(tmp_path), timeout=300
    )
    assert second.returncode == 0, second.stderr
    assert f"0 enqueued, {COUNT} already tagged (skipped)" in second.stdout
    time.sleep(3)
    assert provider.calls == COUNT, "each object was sent to the provider exactly once"
    print(f"backfill of {COUNT} objects tagged in {elapsed:.1f}s")


def test_an_interrupted_backfill_resumes_after_its_checkpoint(stack: RunningStack, tmp_path) -> None:
    from datetime import UTC, datetime

    from autotag.ops.backfill import Checkpoint, checkpoint_identity, checkpoint_path, save_checkpoint
    from autotag.ops.target import local_target

    s3 = stack.client("s3")
    notifications = s3.get_bucket_notification_configuration(Bucket=stack.bucket)
    notifications.pop("ResponseMetadata", None)
    s3.put_bucket_notification_configuration(Bucket=stack.bucket, NotificationConfiguration={})
    for i in range(30):
        s3.put_object(Bucket=stack.bucket, Key=f"resume/{i:04d}.png", Body=png((i, 200, 200), (8, 8)))
    s3.put_bucket_notification_configuration(Bucket=stack.bucket, NotificationConfiguration=notifications)
    url = f"s3://{stack.bucket}/resume/"
    # What a run stopped after resume/0014.png left behind.
    target = local_target(stack.state_path)
    identity = checkpoint_identity(target, url, force=False)
    save_checkpoint(
        checkpoint_path(tmp_path, identity),
        Checkpoint(
            target=identity,
            instance_id=target.instance_id,
            tag_queue_url=target.tag_queue_url,
            last_key="resume/0014.png",
            enqueued=15,
            updated_at=datetime.now(UTC),
        ),
    )

    resumed = stack.cli("backfill", url, "--checkpoint-dir", str(tmp_path))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after resume/0014.png" in resumed.stderr
    assert "15 enqueued, 0 already tagged (skipped) (resumed after 'resume/0014.png'" in resumed.stdout
    assert not checkpoint_path(tmp_path, identity).exists()  # done: the next run starts over
    stack.wait_record("resume/0029.png")
    assert stack.store().get(stack.bucket, "resume/0014.png") is None
