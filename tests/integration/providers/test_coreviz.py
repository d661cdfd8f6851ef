"""CoreViz adapter against a local server speaking seeds/001 (``POST /api/ai/tag``)."""

from __future__ import annotations

import base64
import dataclasses

import pytest
from autotag import errors
from autotag.image import S3Location
from autotag.models import TagKind
from autotag.providers.coreviz import CoreVizProvider

from tests.integration.providers.seed_provider_kit import (
    attempts_for,
    call,
    documented_failures,
    make_images,
    options,
)
from tests.support.provider_servers import CoreVizServer, Reply

pytestmark = pytest.mark.integration

KEY = "cvz-secret-91d2e8a4"
SECRET = {"api_key": KEY}
OBJECT = S3Location(bucket="photos", key="2024/cat.jpg", version_id="v1")


def presigner(calls: list[tuple[S3Location, int]]):
    def presign(location: S3Location, seconds: int) -> str:
        calls.append((location, seconds))
        return f"https://{location.bucket}.s3.amazonaws.example/{location.key}?X-Amz-Expires={seconds}"

    return presign


@pytest.fixture
def server():
    with CoreVizServer(api_key=KEY) as running:
        yield running


def test_documented_basic_tagging_with_a_data_url(server):
    images = make_images()
    result = call(CoreVizProvider, server.url, secret=SECRET, images=images).ok

    sent = server.last
    assert (sent.method, sent.path) == ("POST", "/api/ai/tag")
    assert sent.header("x-api-key") == KEY
    assert sent.header("authorization") is None
    assert sent.header("content-type") == "application/json"
    assert sent.json == {"image": "data:image/jpeg;base64," + base64.b64encode(images[1].data).decode()}

    assert [(t.name, t.confidence) for t in result.tags] == [
        ("person", 0.95),
        ("outdoor", 0.87),
        ("nature", 0.82),
    ]
    assert result.classification is None
    assert result.providers[0].details["image_input"] == "data_url"


def test_presigned_url_for_an_unchanged_s3_object(server):
    presigned: list[tuple[S3Location, int]] = []
    outcome = call(
        CoreVizProvider,
        server.url,
        secret=SECRET,
        s3=OBJECT,
        presign=presigner(presigned),
        provider_options={"presign_seconds": 120},
    )
    assert outcome.ok.providers[0].details["image_input"] == "presigned_url"
    assert presigned == [(OBJECT, 120)]
    assert server.last.json["image"] == "https://photos.s3.amazonaws.example/2024/cat.jpg?X-Amz-Expires=120"


def test_data_url_when_the_image_was_reencoded_or_configured(server):
    source, prepared = make_images()
    reencoded = (source, dataclasses.replace(prepared, reencoded=True))
    presigned: list[tuple[S3Location, int]] = []
    presign = presigner(presigned)
    outcome = call(CoreVizProvider, server.url, secret=SECRET, s3=OBJECT, presign=presign, images=reencoded)
    assert outcome.ok.tags
    assert server.last.json["image"].startswith("data:image/jpeg;base64,")
    outcome = call(
        CoreVizProvider,
        server.url,
        secret=SECRET,
        s3=OBJECT,
        presign=presign,
        provider_options={"image_input": "data_url"},
    )
    assert outcome.ok.tags
    assert server.last.json["image"].startswith("data:image/jpeg;base64,")
    assert presigned == []


def test_prompt_is_sent_and_its_tags_returned(server):
    server.prompt_tags["identify all animals in the image"] = [("cat", 0.9), ("dog", 0.4)]
    opts = options(prompt="identify all animals in the image")
    result = call(CoreVizProvider, server.url, secret=SECRET, request_options=opts).ok
    assert server.last.json["prompt"] == "identify all animals in the image"
    assert [t.name for t in result.tags] == ["cat", "dog"]


def test_documented_single_classification(server):
    server.script(
        Reply.json(
            {
                "classification": "invoice",
                "confidence": 0.92,
                "all_scores": [
                    {"choice": "receipt", "score": 0.15},
                    {"choice": "invoice", "score": 0.92},
                    {"choice": "contract", "score": 0.08},
                    {"choice": "other", "score": 0.05},
                ],
            }
        )
    )
    opts = options(choices=("receipt", "invoice", "contract", "other"), single=True)
    result = call(CoreVizProvider, server.url, secret=SECRET, request_options=opts).ok

    assert server.last.json["choices"] == ["receipt", "invoice", "contract", "other"]
    assert server.last.json["single"] is True
    classification = result.classification
    assert classification is not None
    assert (classification.label, classification.confidence) == ("invoice", 0.92)
    assert [(s.choice, s.score) for s in classification.scores] == [
        ("receipt", 0.15),
        ("invoice", 0.92),
        ("contract", 0.08),
        ("other", 0.05),
    ]
    assert classification.provider == "coreviz"
    (tag,) = result.tags
    assert (tag.name, tag.kind, tag.categories) == ("invoice", TagKind.CONCEPT, ("classification",))


def test_multi_classification_without_a_winner_field_picks_the_best_score(server):
    server.scores = {"cat": 0.7, "dog": 0.2}
    opts = options(choices=("cat", "dog", "bird"), single=False)
    result = call(CoreVizProvider, server.url, secret=SECRET, request_options=opts).ok
    assert server.last.json["single"] is False
    assert result.classification is not None
    assert (result.classification.label, result.classification.confidence) == ("cat", 0.7)
    assert len(result.classification.scores) == 3


def test_tags_as_plain_strings_have_no_confidence():
    with CoreVizServer(api_key=KEY, tag_style="strings") as server:
        result = call(CoreVizProvider, server.url, secret=SECRET).ok
    assert [(t.name, t.confidence) for t in result.tags] == [
        ("person", None),
        ("outdoor", None),
        ("nature", None),
    ]


def test_defensive_parsing_of_mixed_and_percentage_tags(server):
    server.script(
        Reply.json(
            {
                "tags": [
                    "sky",
                    {"name": "Tree", "score": 88},
                    {"label": "tree", "confidence": 40},
                    {"tag": "", "confidence": 50},
                    {"confidence": 0.5},
                    42,
                ]
            }
        )
    )
    result = call(CoreVizProvider, server.url, secret=SECRET).ok
    assert [(t.name, t.confidence) for t in result.tags] == [("sky", None), ("Tree", 0.88)]


@pytest.mark.parametrize(
    ("status", "error_type", "code", "retryable"),
    documented_failures(bad_input=(400, 422), auth=(401,), throttled=(429,), transient=(500, 502, 503)),
)
def test_documented_error_statuses(server, status, error_type, code, retryable):
    server.script(
        *[CoreVizServer.error(status, headers={"x-request-id": "cv-req-77"})] * 3,
    )
    outcome = call(CoreVizProvider, server.url, secret=SECRET, max_attempts=attempts_for(retryable))
    error = outcome.failed_as(error_type, code, retryable)
    assert error.provider_code == status
    assert error.request_id == "cv-req-77"
    assert "cv-req-77" in str(error)
    assert server.calls == 1


def test_wrong_key_is_auth_and_the_message_says_why(server):
    error = call(CoreVizProvider, server.url, secret={"api_key": "nope-key"}).failed(errors.AuthError)
    assert "Invalid or missing API key" in str(error)
    assert "nope-key" not in str(error)


def test_server_side_422_for_an_unreadable_image(server):
    images = make_images(data=b"\x00\x01 not an image")
    error = call(CoreVizProvider, server.url, secret=SECRET, images=images).failed(
        errors.ProviderBadInputError
    )
    assert error.provider_code == 422


def test_json_without_tags_or_classification_is_a_response_error(server):
    server.script(Reply.json({"result": "ok"}))
    call(CoreVizProvider, server.url, secret=SECRET, max_attempts=1).failed(errors.ProviderResponseError)
