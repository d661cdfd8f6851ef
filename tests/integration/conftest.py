"""Fixtures the integration modules share: one stack a module, built in the AWS emulator and
torn down after the module's last test.

`stack` is the API stack (the tag_api and on_event handlers, `tests.support.api_stack`) unless the
module names another builder in ``STACK`` (``STACK = upload_stack`` for the on_upload modules).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from autotag.store.dynamodb import DynamoImageStore

from tests.support.api_stack import api_stack


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, aws_emulator: Any) -> Iterator[Any]:
    build = getattr(request.module, "STACK", api_stack)
    with build(aws_emulator) as built:
        yield built


@pytest.fixture(scope="module")
def openapi(stack: Any) -> dict[str, Any]:
    """The API's own OpenAPI document, as GET /v1/openapi.json serves it."""
    reply = stack.call("GET", "/v1/openapi.json")
    assert reply.status == 200
    return reply.json


@pytest.fixture
def store(stack: Any) -> DynamoImageStore:
    """The stack's image table, read the way the functions read it."""
    return DynamoImageStore(stack.emulator.client("dynamodb"), stack.table)


@pytest.fixture
def fresh_uploads(stack: Any) -> None:
    """An upload stack as new: the provider back to its default answer, every queue empty."""
    stack.provider.reset()
    stack.provider.tags = ["cat", "pet", "whiskers", "indoor"]
    for url in (stack.events_queue_url, stack.dlq_url, stack.tag_queue_url):
        stack.drain(url, wait=0)
