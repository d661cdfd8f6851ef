"""The chaos run (``make chaos``) at a tenth of its size: 100 uploads through the local stack with
provider faults (500 / 429 + Retry-After / timeouts), corrupt files, files deleted before they are
processed, notifications delivered twice and on_upload workers killed mid-batch. Every object must
be accounted for, no object version may be tagged by the provider twice, and user tags survive."""

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
    assert report.kills["kill_events"] == 2, report.kills
    assert report.kills["invocations_died"] >= 1, report.kills
    assert report.kills["workers_now"] == plan.workers, report.kills
    assert report.ok, report.problems
