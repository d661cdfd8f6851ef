"""The chaos run (``make chaos``) at a tenth of its size: 100 uploads through the local stack with
provider faults (500 / 429 + Retry-After / timeouts), corrupt files, files deleted before they are
processed, notifications delivered twice and out of order, the same bytes uploaded again, A -> B -> A
overwrites, on_upload workers killed mid-batch, and the DLQ moved back to the tag queue as
``aws sqs start-message-move-task`` moves it. Every object must be accounted for, no image may be
tagged by the provider twice, every record must describe the current object with its tags on it,
no redriven message may be swallowed, and user tags (even under autotag's prefix) survive."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bench.chaos import ChaosPlan, print_report, run

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(480)]


def test_small_chaos_run_loses_nothing(tmp_path: Path) -> None:
    plan = ChaosPlan(uploads=100, seed=11, kills=2, on_upload_timeout=6, timeout=360.0)
    output = io.StringIO()

    report = run(plan, out=output, workdir=tmp_path)
    print_report(report, output)
    text = output.getvalue()
    print(text)

    assert report.settled, text
    assert report.counts["lost"] == 0, text
    assert "lost: 0" in text
    assert sum(report.counts.get(k, 0) for k in ("tagged", "failed", "skipped")) == plan.uploads
    # Corrupt files fail terminally with a reason (and a DLQ letter, or the record would be lost).
    assert report.outcomes_by_kind["corrupt"].get("failed") == 3, report.outcomes_by_kind
    assert set(report.failure_reasons) <= {
        "invalid_image",
        "corrupt_image",
        "unsupported_format",
        "retries exhausted (moved to the DLQ by the queue)",
    }, report.failure_reasons
    assert report.provider["duplicate_calls_unexplained"] == 0, report.provider
    assert report.user_tags["expected"] > 0
    assert report.user_tags["preserved"] == report.user_tags["expected"], report.user_tags
    assert "user tags kept: " in text
    # Each PUT its own event, in whatever order and however often it arrives.
    ordering = report.ordering
    assert (ordering["same_bytes_reuploads"], ordering["a_b_a_overwrites"]) == (5, 3), ordering
    assert report.counts["out_of_order_notifications_sent"] == 8, report.counts
    assert ordering["overwritten_tagged"] == ordering["overwritten"] == 8, ordering
    assert ordering["stale_records"] == 0, ordering
    assert ordering["tags_missing"] == 0, ordering
    assert ordering["records_checked"] >= 90, ordering
    # Redrive by a message move: the corrupt files' letters (at least) went back and were processed.
    assert report.redrive["moved"] >= 3, report.redrive
    assert report.redrive["swallowed"] == 0, report.redrive
    assert report.redrive["processed_again"] == report.redrive["keys"], report.redrive
    assert report.kills["kill_events"] == 2, report.kills
    assert report.kills["invocations_died"] >= 1, report.kills
    assert report.kills["workers_now"] == plan.workers, report.kills
    assert report.ok, report.problems
