"""Unit tests are pure: no sockets except the Unix socketpair asyncio's event loop needs."""

from __future__ import annotations

import pytest
import urllib3  # noqa: F401 - imported before sockets close: it probes IPv6 support once on import
from pytest_socket import disable_socket, enable_socket


@pytest.fixture(autouse=True)
def _no_network():
    disable_socket(allow_unix_socket=True)
    yield
    enable_socket()
