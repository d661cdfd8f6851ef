"""The provider doubles themselves: scripting, faults, image rules, recording, shutdown."""

from __future__ import annotations

import base64
import hashlib
import threading
import time

import httpx
import pytest

from tests.integration.providers.seed_provider_kit import image_bytes
from tests.support.provider_servers import (
    CoreVizServer,
    Faults,
    ImageDescriberServer,
    ImageKitServer,
    PixLabServer,
    Reply,
)

pytestmark = pytest.mark.integration

KEY = "k-123"


def describe(client: httpx.Client, server: ImageDescriberServer, data: bytes) -> httpx.Response:
    return client.post(
        f"{server.url}/api/v1/generate_tags",
        json={"image": "data:image/jpeg;base64," + base64.b64encode(data).decode(), "lang": "en"},
        headers={"authorization": f"Bearer {KEY}"},
    )


def test_binds_loopback_and_stops_with_the_block():
    with ImageDescriberServer(api_key=KEY) as server:
        url = server.url
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(url + "/nope").status_code == 401  # no key: auth is checked first
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/nope", timeout=1)


def test_script_queue_is_used_in_order_then_normal_behaviour():
    with ImageDescriberServer(api_key=KEY) as server, httpx.Client() as client:
        server.script(Reply.json({"code": 5050}, 500), Reply(status=200, body="not json"))
        data = image_bytes()
        assert describe(client, server, data).status_code == 500
        assert describe(client, server, data).text == "not json"
        assert describe(client, server, data).json()["code"] == 0
        assert server.calls == 3


def test_scripted_reply_limited_to_a_path_waits_for_that_path():
    with ImageKitServer() as server, httpx.Client() as client:
        server.script(Reply.json({"x": 1}, 418), path="/v1/files/")
        assert client.post(server.url + "/api/v1/files/upload").status_code == 401  # not scripted
        assert client.get(server.url + "/v1/files/abc/details").status_code == 418


def test_fault_rates_are_deterministic_for_a_seed():
    def statuses(seed: int) -> list[int]:
        faults = Faults(error_rate=0.3, throttle_rate=0.2, malformed_rate=0.1, retry_after=2, seed=seed)
        with ImageDescriberServer(api_key=KEY, faults=faults) as server, httpx.Client() as client:
            return [describe(client, server, image_bytes()).status_code for _ in range(40)]

    first, again = statuses(7), statuses(7)
    assert first == again
    assert 500 in first
    assert 429 in first
    assert 200 in first
    assert 8 <= first.count(500) <= 20


def test_throttle_fault_carries_retry_after_and_the_provider_code():
    with ImageDescriberServer(api_key=KEY, faults=Faults(throttle_rate=1.0, retry_after=3)) as server:
        response = describe(httpx.Client(), server, image_bytes())
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.json()["code"] == 1004


def test_image_rules_fail_until_recovered():
    bad, good = image_bytes(color=(1, 2, 3)), image_bytes(color=(9, 9, 9))
    digest = hashlib.sha256(bad).hexdigest()
    with ImageDescriberServer(api_key=KEY) as server, httpx.Client() as client:
        server.fail_images({digest})
        assert describe(client, server, bad).json()["code"] == 5050
        assert describe(client, server, good).json()["code"] == 0
        server.recover()
        assert describe(client, server, bad).json()["code"] == 0
        assert [r.image_sha256 == digest for r in server.requests] == [True, False, True]


def test_latency_and_hang_released_on_stop():
    server = ImageDescriberServer(api_key=KEY, faults=Faults(hang_rate=1.0, hang_seconds=60)).start()
    errors: list[BaseException] = []

    def client_call() -> None:
        try:
            describe(httpx.Client(timeout=30), server, image_bytes())
        except httpx.HTTPError as exc:
            errors.append(exc)

    thread = threading.Thread(target=client_call)
    thread.start()
    assert server.wait_for_calls(1)
    started = time.monotonic()
    server.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert time.monotonic() - started < 5
    assert errors  # the hanging request was dropped, not answered


def test_lifetime_stops_a_forgotten_server():
    server = ImageDescriberServer(api_key=KEY, lifetime=0.3).start()
    url = server.url
    time.sleep(0.8)
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=1)


def test_records_multipart_fields_and_files():
    with PixLabServer(api_key=KEY) as server:
        data = image_bytes()
        response = httpx.post(
            server.url + "/tagimg", data={"key": KEY}, files={"file": ("a.jpg", data, "image/jpeg")}
        )
        assert response.json()["status"] == 200
        sent = server.last
        assert sent.form == {"key": KEY}
        assert sent.files["file"].filename == "a.jpg"
        assert sent.files["file"].data == data
        assert sent.image == data
        assert server.calls_to("/tagimg", "POST") == 1


def test_concurrent_calls_are_all_counted():
    with CoreVizServer(api_key=KEY, latency=0.05) as server:

        def hit() -> None:
            httpx.post(
                server.url + "/api/ai/tag", json={"image": "https://x/y.jpg"}, headers={"x-api-key": KEY}
            )

        threads = [threading.Thread(target=hit) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert server.calls == 12
