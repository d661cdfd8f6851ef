"""ImageKit adapter against a local server speaking seeds/003 (upload + AI auto-tagging)."""

from __future__ import annotations

import base64
import json
import re

import pytest
from autotag import errors
from autotag.config import ProviderConfig
from autotag.providers.base import ProviderContext
from autotag.providers.imagekit import ImageKitProvider

from tests.integration.providers.seed_provider_kit import (
    attempts_for,
    call,
    closed_port,
    documented_failures,
    make_images,
    options,
)
from tests.support.fakes import StaticCredentials
from tests.support.provider_servers import ExtensionPlan, ImageKitServer, Reply

pytestmark = pytest.mark.integration

KEY = "private_lkJ8s9QmZ2"
SECRET = {"private_key": KEY}
BOTH = ["google-auto-tagging", "aws-auto-tagging"]


@pytest.fixture
def server():
    with ImageKitServer(private_key=KEY) as running:
        yield running


def tag(server, *, extensions=None, request_options=None, **kwargs):
    provider_options = {
        "upload_endpoint": server.url,
        "extensions": extensions or BOTH,
        "poll_interval_seconds": 0.05,
        **kwargs.pop("provider_options", {}),
    }
    return call(
        ImageKitProvider,
        kwargs.pop("endpoint", server.url),
        secret=SECRET,
        provider_options=provider_options,
        request_options=request_options or options(min_confidence=0.5, max_tags=5),
        **kwargs,
    )


def test_documented_upload_with_both_extensions(server):
    images = make_images()
    result = tag(server, images=images).ok

    upload, delete = server.requests
    assert (upload.method, upload.path) == ("POST", "/api/v1/files/upload")
    assert upload.header("authorization") == "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
    assert upload.files["file"].data == images[1].data
    assert re.fullmatch(r"autotag-[0-9a-f]{16}-[0-9a-f]{8}\.jpg", upload.form["fileName"])
    assert upload.form["folder"] == "/autotag"
    assert upload.form["useUniqueFileName"] == "true"
    assert json.loads(upload.form["extensions"]) == [
        {"name": "google-auto-tagging", "minConfidence": 50, "maxTags": 5},
        {"name": "aws-auto-tagging", "minConfidence": 50, "maxTags": 5},
    ]

    by_name = {t.name.casefold(): t for t in result.tags}
    assert set(by_name) == {"toy", "teddy bear", "red", "stuffed toy", "art", "sweets", "heart", "plush"}
    toy = by_name["toy"]
    assert toy.confidence == pytest.approx(0.9852)
    assert set(toy.categories) == {"aws-auto-tagging", "google-auto-tagging"}
    assert by_name["red"].categories == ("google-auto-tagging",)
    assert by_name["teddy bear"].confidence == pytest.approx(0.9852)
    assert result.tags[0].confidence >= result.tags[-1].confidence

    file_id = result.providers[0].details["file_id"]
    assert (delete.method, delete.path) == ("DELETE", f"/v1/files/{file_id}")
    assert delete.header("authorization") == upload.header("authorization")
    assert server.deleted == [file_id]
    details = result.providers[0].details
    assert details["deleted"] is True
    assert details["extension:google-auto-tagging"] == "success"
    assert details["extension:aws-auto-tagging"] == "success"
    assert details["polls"] == 0


def test_thresholds_map_to_extension_parameters(server):
    strict = options(min_confidence=0.8, max_tags=50)
    assert tag(server, extensions=["aws-auto-tagging"], request_options=strict).ok.tags
    assert json.loads(server.requests[0].form["extensions"]) == [
        {"name": "aws-auto-tagging", "minConfidence": 80, "maxTags": 30}
    ]
    assert tag(server, extensions=["aws-auto-tagging"], request_options=options()).ok.tags
    assert json.loads(server.requests[2].form["extensions"]) == [
        {"name": "aws-auto-tagging", "minConfidence": 0, "maxTags": 10}
    ]


def test_pending_extension_is_polled_until_it_settles(server):
    server.plans["aws-auto-tagging"].status = "pending"
    server.plans["aws-auto-tagging"].pending_polls = 3
    result = tag(server).ok

    details = result.providers[0].details
    assert details["polls"] == 3
    assert details["extension:aws-auto-tagging"] == "success"
    assert server.calls_to("/v1/files/", "GET") == 3
    detail_paths = {r.path for r in server.requests if r.method == "GET"}
    assert detail_paths == {f"/v1/files/{details['file_id']}/details"}
    assert "Plush" in {t.name for t in result.tags}


def test_pending_past_the_deadline_is_transient_and_the_file_is_still_deleted(server):
    server.plans["google-auto-tagging"].status = "pending"
    server.plans["google-auto-tagging"].pending_polls = 10_000
    outcome = tag(server, timeout_seconds=0.6)
    error = outcome.failed(errors.TransientError)
    assert error.code == "extension_pending"
    assert error.retryable
    assert "google-auto-tagging" in str(error)
    assert len(server.deleted) == 1
    assert server.files == {}


def test_failed_extension_is_recorded_and_the_other_kept(server):
    server.plans["google-auto-tagging"] = ExtensionPlan([("Toy", 90.0)], status="failed")
    result = tag(server).ok
    details = result.providers[0].details
    assert details["extension:google-auto-tagging"] == "failed"
    assert details["extension:aws-auto-tagging"] == "success"
    assert {c for t in result.tags for c in t.categories} == {"aws-auto-tagging"}


def test_pending_that_ends_failed_is_terminal_for_that_extension(server):
    server.plans["aws-auto-tagging"] = ExtensionPlan([], status="pending", final="failed", pending_polls=1)
    result = tag(server).ok
    assert result.providers[0].details["extension:aws-auto-tagging"] == "failed"
    assert result.tags


def test_every_extension_failed_is_a_terminal_error(server):
    for plan in server.plans.values():
        plan.status = "failed"
    error = tag(server).failed(errors.ProviderError)
    assert not error.retryable
    assert error.provider_code == "extension_failed"
    assert len(server.deleted) == 1


def test_keep_the_file_when_delete_after_is_false(server):
    result = tag(server, provider_options={"delete_after": False, "folder": "shop/tagged/"}).ok
    assert server.calls == 1
    (stored,) = server.files.values()
    assert stored.folder == "/shop/tagged"
    assert "deleted" not in result.providers[0].details


def test_upload_and_api_endpoints_are_separate(server):
    # The API base is unreachable: a synchronous answer with delete_after false never needs it.
    outcome = tag(
        server, endpoint=f"http://127.0.0.1:{closed_port()}", provider_options={"delete_after": False}
    )
    assert outcome.ok.tags
    assert server.calls == 1


def test_delete_failure_does_not_lose_the_tags(server):
    server.script(*[ImageKitServer.error(500, "boom")] * 2, path="/v1/files/")
    result = tag(server).ok
    assert result.tags
    assert result.providers[0].details["deleted"] is False
    assert server.calls_to("/v1/files/", "DELETE") == 2


@pytest.mark.parametrize(
    ("status", "error_type", "code", "retryable"),
    documented_failures(bad_input=(400, 404), auth=(401, 403), throttled=(429,), transient=(500, 503)),
)
def test_upload_error_statuses(server, status, error_type, code, retryable):
    server.script(
        *[
            Reply(
                status=status,
                body={"message": f"nope {status}", "help": ""},
                headers={"x-ik-requestid": "ik-9"},
            )
        ]
        * 3
    )
    error = tag(server, max_attempts=attempts_for(retryable)).failed_as(error_type, code, retryable)
    assert error.provider_code == status
    assert error.request_id == "ik-9"
    assert f"nope {status}" in str(error)
    assert server.calls == 1


def test_rate_limit_reset_header_when_no_retry_after(server):
    server.script(ImageKitServer.error(429, "Too many requests", {"X-RateLimit-Reset": "1000"}))
    assert tag(server).ok.tags
    first, second = server.requests[:2]
    assert second.received_at - first.received_at >= 0.95


@pytest.mark.parametrize("extensions", [[], ["clarifai-auto-tagging"], "nonsense"])
def test_bad_extension_options_are_config_errors(extensions):
    config = ProviderConfig(name="imagekit", options={"extensions": extensions})
    context = ProviderContext(http=None, credentials=StaticCredentials({}))  # type: ignore[arg-type]
    with pytest.raises(errors.ConfigError):
        ImageKitProvider(config, context)
