"""The operations CLI's pure parts: s3:// URLs, record formatting, backfill checkpoints, and Ctrl-C
during start-up."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from autotag.cli.ops import format_record
from autotag.cli.tag import parse_s3_uri
from autotag.errors import BadInputError
from autotag.image import S3Location
from autotag.ops.backfill import BackfillReport, Checkpoint, load_checkpoint, parse_s3_url, save_checkpoint
from autotag.store.base import ImageRecord, ImageStatus


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://b/photos/what?.jpg", ("b", "photos/what?.jpg")),
        ("s3://b/photos/#1 best.jpg", ("b", "photos/#1 best.jpg")),
        ("s3://b/a%20b?x=1#y", ("b", "a%20b?x=1#y")),
        ("s3://b//leading-slash.jpg", ("b", "/leading-slash.jpg")),
        ("s3://b/prefix/", ("b", "prefix/")),
        ("s3://b", ("b", "")),
        ("S3://b/k", ("b", "k")),
    ],
)
def test_s3_urls_keep_the_key_verbatim(url, expected):
    assert parse_s3_url(url) == expected


@pytest.mark.parametrize("key", ["what?.jpg", "#1 best.jpg", "a%20b?x=1#y.png"])
def test_autotag_tag_reads_s3_keys_verbatim_too(key):
    assert parse_s3_uri(f"s3://b/{key}") == S3Location("b", key)


@pytest.mark.parametrize("url", ["https://b/k", "s3:/b/k", "s3:///k", "b/k", ""])
def test_not_s3_urls_are_bad_input(url):
    with pytest.raises(BadInputError):
        parse_s3_url(url)


def test_a_skipped_record_says_why():
    record = ImageRecord(bucket="b", key="k.jpg", status=ImageStatus.SKIPPED, error="object no longer exists")
    assert "status    skipped  (object no longer exists)" in format_record(record)
    failed = ImageRecord(
        bucket="b", key="k.jpg", status=ImageStatus.FAILED, error_code="corrupt_image", error="x"
    )
    assert "status    failed  corrupt_image: x" in format_record(failed)
    tagged = ImageRecord(bucket="b", key="k.jpg", status=ImageStatus.TAGGED)
    assert "status    tagged\n" in format_record(tagged)


def _checkpoint(instance_id: str | None) -> Checkpoint:
    return Checkpoint(
        target="t",
        instance_id=instance_id,
        tag_queue_url="q",
        last_key="k9",
        enqueued=9,
        updated_at=datetime.now(UTC),
    )


def test_checkpoint_resumes_only_on_the_same_instance(tmp_path):
    path = tmp_path / "c.json"
    assert load_checkpoint(path, "t", "one", "q") == (None, None)  # none yet
    save_checkpoint(path, _checkpoint("one"))
    checkpoint, why = load_checkpoint(path, "t", "one", "q")
    assert checkpoint is not None
    assert checkpoint.last_key == "k9"
    assert why is None
    checkpoint, why = load_checkpoint(path, "t", "two", "q")
    assert checkpoint is None
    assert why is not None
    assert "earlier instance" in why
    assert load_checkpoint(path, "other target", "one", "q") == (None, None)
    checkpoint, why = load_checkpoint(path, "t", "one", "another queue")
    assert checkpoint is None
    assert why is not None


def test_a_checkpoint_without_an_instance_is_not_resumed(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"target": "t", "last_key": "k", "updated_at": "2026-01-01T00:00:00Z"}')
    checkpoint, why = load_checkpoint(path, "t", "one", "q")
    assert checkpoint is None
    assert why is not None


def test_a_resumed_summary_counts_the_interrupted_run():
    report = BackfillReport(enqueued=10, resumed=_checkpoint("one"))
    assert report.summary() == (
        "10 enqueued, 0 already tagged (skipped) (resumed after 'k9'; before it, the interrupted run "
        "enqueued 9 and skipped 0 already tagged)"
    )


INTERRUPT_ON_IMPORT = """
import sys

class Interrupt:
    # Ctrl-C arriving while a command module is being imported (start-up).
    def find_spec(self, name, path=None, target=None):
        if name == sys.argv[1]:
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, Interrupt())
from autotag.cli import main
sys.exit(main(["providers"]))
"""


@pytest.mark.parametrize("module", ["autotag.cli.tag", "autotag.cli.local", "autotag.cli.ops", "boto3"])
def test_ctrl_c_during_start_up_exits_130_without_a_traceback(module):
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPT_ON_IMPORT, module],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parent,
    )
    assert done.returncode == 130, done.stderr
    assert done.stderr == ""
    assert done.stdout == ""
