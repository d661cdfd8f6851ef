"""What every HTTP provider does the same way, run against each provider's local double: a body
that is not JSON, a slow answer, throttling with Retry-After, a 5xx, a refused connection and a
wrong key. Provider-specific mappings (body codes, error envelopes) stay in each provider's file.

The one difference kept on purpose: Google Vision and Huawei read their body after the retry loop
(a body that is not JSON is not asked for again), the others inside it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from autotag import errors
from autotag.providers.base import Provider
from autotag.providers.coreviz import CoreVizProvider
from autotag.providers.google_vision import GoogleVisionProvider
from autotag.providers.huawei.provider import HuaweiProvider
from autotag.providers.imagedescriber import ImageDescriberProvider
from autotag.providers.imagekit import ImageKitProvider
from autotag.providers.pixlab import PixLabProvider

from tests.integration.providers.seed_provider_kit import Outcome, call, closed_port
from tests.support.provider_servers import (
    CoreVizServer,
    ImageDescriberServer,
    ImageKitServer,
    PixLabServer,
    ProviderServer,
    Reply,
)
from tests.support.provider_servers_cloud import GoogleVisionServer, HuaweiServer, google_error

pytestmark = pytest.mark.integration

KEY = "contract-key-5e1f09c2a7"
GOOGLE_KEY = "AIzaContractKey-0123456789abcdefghij"


@dataclass(frozen=True)
class Contract:
    provider: type[Provider]
    start: Callable[..., ProviderServer]
    """Starts the provider's double (keyword arguments: ``latency``)."""
    secret: Callable[[Any], dict[str, Any]]
    wrong_secret: Callable[[Any], dict[str, Any]]
    throttled: Callable[[Mapping[str, str]], Reply]
    """The provider's throttling answer, with these headers."""
    path: Callable[[Any], str]
    """The path the tagging call goes to."""
    options: Callable[[Any], dict[str, Any]] = field(default=lambda server: {})
    malformed_attempts: int = 3
    """Requests made for a body that is not JSON, with three attempts allowed."""

    def call(self, server: Any, **kwargs: Any) -> Outcome:
        return self.call_at(server.url, self.secret(server), options=self.options(server), **kwargs)

    def call_at(
        self, endpoint: str, secret: dict[str, Any], *, options: dict[str, Any], **kwargs: Any
    ) -> Outcome:
        return call(self.provider, endpoint, secret=secret, provider_options=options, **kwargs)


def _huawei_secret(server: HuaweiServer) -> dict[str, Any]:
    return {"access_key": server.access_key, "secret_key": server.secret_key, "project_id": server.project_id}


def _keyed(
    provider: type[Provider],
    double: Callable[..., ProviderServer],
    *,
    wrong_key: str,
    throttled: Callable[[Mapping[str, str]], Reply],
    path: str,
    key_name: str = "api_key",
    key: str = KEY,
    **rest: Any,
) -> Contract:
    """A provider whose secret is one key, which its double takes under the same name."""
    return Contract(
        provider,
        start=lambda **kw: double(**{key_name: key}, **kw),
        secret=lambda server: {key_name: key},
        wrong_secret=lambda server: {key_name: wrong_key},
        throttled=throttled,
        path=lambda server: path,
        **rest,
    )


CONTRACTS: dict[str, Contract] = {
    "coreviz": _keyed(
        CoreVizProvider,
        CoreVizServer,
        wrong_key="wrong-coreviz-key",
        throttled=lambda headers: CoreVizServer.error(429, headers=headers),
        path="/api/ai/tag",
    ),
    "pixlab": _keyed(
        PixLabProvider,
        PixLabServer,
        wrong_key="wrong-pixlab-key",
        throttled=lambda headers: PixLabServer.error(
            429, "Too many requests", http_status=429, headers=headers
        ),
        path="/tagimg",
    ),
    "imagedescriber": _keyed(
        ImageDescriberProvider,
        ImageDescriberServer,
        wrong_key="wrong-imagedescriber-key",
        throttled=lambda headers: ImageDescriberServer.error(1004, headers=headers),
        path="/api/v1/generate_tags",
    ),
    "imagekit": _keyed(
        ImageKitProvider,
        ImageKitServer,
        key_name="private_key",
        wrong_key="private_wrong_imagekit",
        throttled=lambda headers: ImageKitServer.error(429, "Too many requests", headers),
        path="/api/v1/files/upload",
        options=lambda server: {"upload_endpoint": server.url, "poll_interval_seconds": 0.05},
    ),
    "google_vision": _keyed(
        GoogleVisionProvider,
        GoogleVisionServer,
        key=GOOGLE_KEY,
        wrong_key="AIzaWrongKey-zzzzzzzzzzzzzzzzzzzzzzz",
        throttled=lambda headers: google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded", **headers),
        path="/v1/images:annotate",
        malformed_attempts=1,
    ),
    "huawei": Contract(
        HuaweiProvider,
        start=lambda **kw: HuaweiServer(**kw),
        secret=_huawei_secret,
        wrong_secret=lambda server: {**_huawei_secret(server), "secret_key": "wrong-huawei-secret-key"},
        throttled=lambda headers: HuaweiServer.error(
            "APIG.0308", "The request is throttled", headers=headers
        ),
        path=lambda server: server.tagging_path,
        options=lambda server: {"iam_endpoint": server.url},
        malformed_attempts=1,
    ),
}


@pytest.fixture(params=sorted(CONTRACTS))
def contract(request: pytest.FixtureRequest) -> Contract:
    return CONTRACTS[request.param]


@pytest.fixture
def server(contract: Contract):
    with contract.start() as running:
        yield running


@pytest.mark.parametrize(
    "body", ["<html>gateway</html>", "[" * 100_000 + "]" * 100_000], ids=["html", "nested-too-deep"]
)
def test_a_body_that_is_not_json_is_a_retryable_response_error(
    contract: Contract, server: Any, body: str
) -> None:
    path = contract.path(server)
    server.script(*[Reply(status=200, body=body)] * 3, path=path)
    error = contract.call(server, max_attempts=3).failed(errors.ProviderResponseError)
    assert error.code == "bad_provider_response"
    assert error.retryable
    assert server.calls_to(path) == contract.malformed_attempts


def test_a_slow_answer_is_a_timeout_within_the_budget(contract: Contract) -> None:
    with contract.start(latency=3.0) as slow:
        outcome = contract.call(slow, timeout_seconds=0.5)
    error = outcome.failed(errors.ProviderTimeoutError)
    assert error.retryable
    assert outcome.seconds < 2.0


def test_throttling_carries_retry_after_and_the_retry_waits_for_it(contract: Contract, server: Any) -> None:
    path = contract.path(server)
    server.script(contract.throttled({"Retry-After": "1"}), path=path)
    error = contract.call(server, max_attempts=1).failed(errors.ThrottledError)
    assert error.code == "throttled"
    assert error.retry_after == 1.0

    server.script(contract.throttled({"Retry-After": "1"}), path=path)
    assert contract.call(server, max_attempts=2).ok is not None
    first, second = [r for r in server.requests if r.path.startswith(path)][-2:]
    assert second.received_at - first.received_at >= 0.95


def test_a_5xx_is_retried_then_succeeds(contract: Contract, server: Any) -> None:
    path = contract.path(server)
    server.script(Reply(status=503, body="<html>bad gateway</html>"), path=path)
    assert contract.call(server, max_attempts=2).ok is not None
    assert server.calls_to(path) == 2


def test_a_refused_connection_is_transient(contract: Contract) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    secret = contract.secret(_NoServer(dead))
    options = contract.options(_NoServer(dead))
    error = contract.call_at(dead, secret, options=options, max_attempts=1).failed(errors.TransientError)
    assert type(error) is errors.TransientError
    assert "connection failed" in str(error)
    for value in secret.values():
        assert str(value) not in str(error)


def test_a_wrong_key_is_an_auth_error_not_retried_and_not_echoed(contract: Contract, server: Any) -> None:
    wrong = contract.wrong_secret(server)
    error = contract.call_at(server.url, wrong, options=contract.options(server)).failed(errors.AuthError)
    assert error.code == "auth"
    assert not error.retryable
    assert server.calls_to(contract.path(server)) == 1
    for value in wrong.values():
        if len(str(value)) >= 8:
            assert str(value) not in str(error)
            assert str(value) not in repr(error)


@dataclass(frozen=True)
class _NoServer:
    """Stands in for a double that is not running (a refused connection)."""

    url: str
    access_key: str = "AKCONTRACT"
    secret_key: str = "SK-contract-secret"
    project_id: str = "contract-project"
    tagging_path: str = "/v2/contract-project/image/tagging"
