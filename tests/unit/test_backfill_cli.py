"""`autotag backfill`'s engine and verb arguments are checked before any deployment is looked up."""

from __future__ import annotations

import pytest
from autotag.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["backfill", "status"], "bad_input: usage: autotag backfill status JOB"),
        (["backfill", "cancel"], "bad_input: usage: autotag backfill cancel JOB"),
        (
            ["backfill", "s3://b/p", "--manifest", "s3://x/manifest.json"],
            "bad_input: --manifest: only with --engine batch-operations",
        ),
        (
            ["backfill", "s3://b/p", "--created-after", "2020-01-01", "--smaller-than", "5"],
            "--created-after, --smaller-than: only with --engine batch-operations",
        ),
        (["backfill", "s3://b/p", "job-1"], "bad_input: unexpected argument 'job-1'"),
    ],
)
def test_misused_arguments_are_refused_with_a_clear_error(argv, message, capsys, tmp_path):
    status = main([*argv, "--state", str(tmp_path / "none.json")])
    assert status == 1
    err = capsys.readouterr().err
    assert err.startswith("autotag: error: ")
    assert message in err


def test_created_after_must_be_a_time(capsys):
    with pytest.raises(SystemExit):
        main(["backfill", "s3://b/p", "--engine", "batch-operations", "--created-after", "yesterday"])
    assert "not an ISO 8601 time: 'yesterday'" in capsys.readouterr().err
