"""Schemathesis against the local API, from the OpenAPI document the API serves, with every check.

`autotag local` runs as a user runs it (the local API gateway in front of tag_api in its own
worker, the AWS emulator, the offline `basic` provider); schemathesis reads
``GET /v1/openapi.json`` and drives every operation through its phases (the schema's examples,
boundary coverage, random fuzzing, stateful sequences) with all of its checks: no 5xx, every
status and header the document lists, every body valid against its schema, bad input refused,
good input accepted, unsupported methods refused, authentication not ignored.

Bounded in examples per operation so the run takes well under two minutes (``SCHEMATHESIS_EXAMPLES``
raises it; ``make fuzz`` runs this test). URL sources are checked but never fetched
(URL_SOURCES=off): no DNS lookup or connection leaves the machine.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import FAST_CONFIG, RunningStack, start_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(400)]

SCHEMATHESIS = str(Path(sys.executable).with_name("st"))
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "30"))
CONFIG = copy.deepcopy(FAST_CONFIG)
# Generous throttles: the fuzzer is one client sending as fast as it can.
CONFIG["api"] = {"rate_limit": 1000, "burst_limit": 1000, "stage_rate_limit": 1000, "stage_burst_limit": 1000}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("schemathesis"), CONFIG, env={"URL_SOURCES": "off"})
    yield running
    running.stop()


def test_schemathesis_finds_no_failure_with_every_check(stack: RunningStack, tmp_path: Path) -> None:
    base = stack.state.api_url.rstrip("/")
    report = tmp_path / "report"
    command = [
        SCHEMATHESIS,
        "--config-file",
        str(Path(__file__).with_name("schemathesis.toml")),
        "run",
        f"{base}/v1/openapi.json",
        "--url",
        base,
        "--checks",
        "all",
        "--header",
        f"x-api-key: {stack.state.api_key}",
        "--max-examples",
        str(EXAMPLES),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--seed",
        os.environ.get("SCHEMATHESIS_SEED", "20261201"),
        "--report",
        "junit",
        "--report-dir",
        str(report),
    ]
    # In tmp_path: schemathesis keeps a cache directory where it runs.
    done = subprocess.run(command, capture_output=True, text=True, timeout=360, check=False, cwd=tmp_path)
    print(done.stdout[-20000:])
    failures = f"{done.stdout[-12000:]}\n{done.stderr[-3000:]}"
    assert done.returncode == 0, f"schemathesis found failures:\n{failures}"
    assert " passed" in done.stdout, done.stdout[-3000:]
