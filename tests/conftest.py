"""Test-wide guards: no AWS credentials, no instance metadata, and no AWS endpoint but loopback.

Any boto3 client a test forgets to point at the emulator goes to a closed loopback port and fails
there, instead of sending a packet anywhere else.
"""

from __future__ import annotations

import os

import pytest

from tests.support.loopback_env import LOOPBACK_AWS_ENV

SAFE_ENV = {
    **LOOPBACK_AWS_ENV,
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "autotag-tests",
    "POWERTOOLS_SERVICE_NAME": "autotag",
    "POWERTOOLS_DEV": "false",
}
for _name, _value in SAFE_ENV.items():
    os.environ[_name] = _value
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture(scope="session")
def aws_emulator():
    """The AWS emulator (moto server) on 127.0.0.1, shared by the session's integration tests."""
    from tests.support.aws import Emulator

    emulator = Emulator.start()
    previous = os.environ.get("AWS_ENDPOINT_URL")
    os.environ["AWS_ENDPOINT_URL"] = emulator.endpoint
    try:
        yield emulator
    finally:
        if previous is not None:
            os.environ["AWS_ENDPOINT_URL"] = previous
        emulator.stop()
