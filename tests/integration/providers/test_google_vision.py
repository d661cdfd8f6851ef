"""Google Cloud Vision adapter against a local double of ``POST /v1/images:annotate``."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from autotag import errors
from autotag.config import ProviderConfig
from autotag.image import ImageFormat, S3Location
from autotag.models import TagKind, TagResult
from autotag.providers.base import ProviderContext, ProviderRequest
from autotag.providers.google_vision import GoogleVisionProvider
from autotag.providers.http import make_client

from tests.integration.providers.seed_provider_kit import closed_port
from tests.support.fakes import StaticCredentials
from tests.support.provider_servers_cloud import (
    GOOGLE_LABELS,
    GoogleVisionServer,
    Reply,
    cloud_request,
    failed,
    google_error,
    google_image_error,
    image_data,
    ok,
    run,
)

pytestmark = pytest.mark.integration

KEY = "AIzaTestKey-0123456789abcdefghijklmno"


@pytest.fixture
def vision() -> Iterator[GoogleVisionServer]:
    with GoogleVisionServer(api_key=KEY) as server:
        yield server


def config_for(endpoint: str, **fields: Any) -> ProviderConfig:
    return ProviderConfig(name="google_vision", endpoint=endpoint, **fields)


def call(
    config: ProviderConfig,
    request: ProviderRequest | None = None,
    *,
    secret: dict[str, Any] | None = None,
    **context: Any,
) -> TagResult | errors.ProviderError:
    credentials = StaticCredentials({"google_vision": secret if secret is not None else {"api_key": KEY}})

    async def go() -> TagResult | errors.ProviderError:
        async with make_client() as http:
            provider = GoogleVisionProvider(
                config, ProviderContext(http=http, credentials=credentials, **context)
            )
            try:
                return await provider.tag(request or cloud_request())
            except errors.ProviderError as error:
                return error

    return run(go)


# --- success ------------------------------------------------------------------------------------


def test_label_detection_request_and_result(vision: GoogleVisionServer) -> None:
    request = cloud_request(max_tags=5, lang="fr")

    result = ok(call(config_for(vision.url), request))

    assert [(t.name, t.confidence) for t in result.tags] == [
        (label["description"], pytest.approx(label["score"])) for label in GOOGLE_LABELS
    ]
    assert all(t.kind is TagKind.LABEL and t.provider == "google_vision" for t in result.tags)
    assert result.tags[0].names == {"en": "Street"}  # English only, whatever was asked

    sent = vision.last
    assert (sent.method, sent.path) == ("POST", "/v1/images:annotate")
    assert sent.param("key") == KEY
    assert sent.header("content-type") == "application/json; charset=utf-8"
    (entry,) = sent.json["requests"]
    assert base64.b64decode(entry["image"]["content"]) == request.image.data
    assert entry["features"] == [{"type": "LABEL_DETECTION", "maxResults": 5}]
    assert "imageContext" not in entry  # labels cannot be localized


def test_max_results_defaults_and_model_option(vision: GoogleVisionServer) -> None:
    ok(call(config_for(vision.url, options={"model": "builtin/latest"}), cloud_request()))
    assert vision.last.json["requests"][0]["features"] == [
        {"type": "LABEL_DETECTION", "maxResults": 50, "model": "builtin/latest"}
    ]


def test_object_localization_polygons_become_boxes(vision: GoogleVisionServer) -> None:
    result = ok(call(config_for(vision.url, options={"objects": True}), cloud_request(max_tags=10)))

    features = vision.last.json["requests"][0]["features"]
    assert features == [
        {"type": "LABEL_DETECTION", "maxResults": 10},
        {"type": "OBJECT_LOCALIZATION", "maxResults": 10},
    ]
    by_name = {t.name: t for t in result.tags}
    wheel = by_name["Bicycle wheel"]
    assert wheel.kind is TagKind.OBJECT
    assert wheel.confidence == pytest.approx(0.89648587)
    (box,) = wheel.boxes
    assert (box.left, box.top) == pytest.approx((0.32076266, 0.78941387))
    assert (box.width, box.height) == pytest.approx((0.43812272 - 0.32076266, 0.97331065 - 0.78941387))
    assert box.confidence == pytest.approx(0.89648587)
    (bike,) = by_name["Bicycle"].boxes  # missing x in the JSON is 0
    assert (bike.left, bike.top, bike.width) == pytest.approx((0.0, 0.6616471, 0.9004392))
    street = by_name["Street"]  # label and object of one name → one tag with the box
    assert street.kind is TagKind.LABEL
    assert street.confidence == pytest.approx(0.87294734)
    (whole,) = street.boxes
    assert (whole.left, whole.top, whole.width, whole.height) == (0.0, 0.0, 1.0, 1.0)
    assert len(result.tags) == len(GOOGLE_LABELS) + 2


def test_key_in_header_mode(vision: GoogleVisionServer) -> None:
    ok(call(config_for(vision.url, options={"api_key_in": "header"})))
    assert vision.last.header("x-goog-api-key") == KEY
    assert vision.last.query == {}


def test_url_mode_and_fallback_to_bytes_when_google_cannot_fetch(vision: GoogleVisionServer) -> None:
    location = S3Location("photos", "a.jpg")
    config = config_for(vision.url, options={"use_url": True})
    presign = lambda where, seconds: "https://photos.s3.example.test/a.jpg?sig=1"  # noqa: E731

    ok(call(config, cloud_request(s3=location), presign=presign))
    assert vision.last.json["requests"][0]["image"] == {
        "source": {"imageUri": "https://photos.s3.example.test/a.jpg?sig=1"}
    }

    vision.script(google_image_error(14, "We can not access the URL currently. Please download the content."))
    request = cloud_request(s3=location)
    result = ok(call(config, request, presign=presign))
    assert result.tags
    first, second = vision.requests[-2:]
    assert "source" in first.json["requests"][0]["image"]
    assert base64.b64decode(second.json["requests"][0]["image"]["content"]) == request.image.data


# --- errors -------------------------------------------------------------------------------------

HTTP_ERRORS: list[tuple[Reply, type[errors.ProviderError], bool]] = [
    (
        google_error(
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
            reason="API_KEY_INVALID",
        ),
        errors.AuthError,
        False,
    ),
    (
        google_error(400, "INVALID_ARGUMENT", "Request payload size exceeds the limit: 10485760 bytes."),
        errors.ProviderBadInputError,
        False,
    ),
    (
        google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."),
        errors.AuthError,
        False,
    ),
    (
        google_error(
            403,
            "PERMISSION_DENIED",
            "Cloud Vision API has not been used in project 1 before or it is disabled.",
            reason="SERVICE_DISABLED",
        ),
        errors.AuthError,
        False,
    ),
    (
        google_error(
            403,
            "PERMISSION_DENIED",
            "This API method requires billing to be enabled.",
            reason="BILLING_DISABLED",
        ),
        errors.QuotaError,
        False,
    ),
    (
        google_error(
            429,
            "RESOURCE_EXHAUSTED",
            "Quota exceeded for quota metric 'Requests' and limit 'Requests per day'.",
            reason="RATE_LIMIT_EXCEEDED",
            metadata={"quota_limit": "DefaultRequestsPerDayPerProject", "quota_unit": "1/d/{project}"},
        ),
        errors.QuotaError,
        False,
    ),
    (google_error(500, "INTERNAL", "Internal error encountered."), errors.TransientError, True),
    (google_error(503, "UNAVAILABLE", "The service is currently unavailable."), errors.TransientError, True),
    (google_error(504, "DEADLINE_EXCEEDED", "Deadline exceeded."), errors.TransientError, True),
]


@pytest.mark.parametrize(
    ("reply", "expected", "retryable"), HTTP_ERRORS, ids=lambda v: getattr(v, "status", None)
)
def test_http_errors_are_mapped(
    vision: GoogleVisionServer, reply: Reply, expected: type[errors.ProviderError], retryable: bool
) -> None:
    vision.script(reply)
    error = failed(call(config_for(vision.url, max_attempts=1)))
    assert type(error) is expected
    assert error.retryable is retryable
    assert error.provider_code == reply.body["error"]["status"]
    assert reply.body["error"]["message"] in str(error)


def test_a_wrong_key_is_refused_by_the_server_as_an_auth_error(vision: GoogleVisionServer) -> None:
    error = failed(call(config_for(vision.url), secret={"api_key": "AIzaWrongKey-zzzzzzzzzzzzzzzzzzzzzzz"}))
    assert isinstance(error, errors.AuthError)
    assert "API_KEY_INVALID" in str(error)
    assert vision.calls == 1  # not retried


def test_missing_key_is_a_configuration_error(vision: GoogleVisionServer) -> None:
    error = failed(call(config_for(vision.url), secret={}))
    assert error.code == "auth_config"
    assert vision.calls == 0


PER_IMAGE_ERRORS: list[tuple[int, type[errors.ProviderError], bool]] = [
    (3, errors.ProviderBadInputError, False),
    (5, errors.ProviderBadInputError, False),
    (7, errors.AuthError, False),
    (8, errors.ThrottledError, True),
    (13, errors.TransientError, True),
    (14, errors.TransientError, True),
    (16, errors.AuthError, False),
]


@pytest.mark.parametrize(("code", "expected", "retryable"), PER_IMAGE_ERRORS)
def test_per_image_errors_inside_http_200(
    vision: GoogleVisionServer, code: int, expected: type[errors.ProviderError], retryable: bool
) -> None:
    vision.script(google_image_error(code, f"image failed with {code}"))
    error = failed(call(config_for(vision.url, max_attempts=1)))
    assert type(error) is expected
    assert error.retryable is retryable
    assert error.provider_code == code
    assert f"image failed with {code}" in str(error)


def test_bad_image_data_from_the_server(vision: GoogleVisionServer) -> None:
    error = failed(call(config_for(vision.url), cloud_request(data=b"not an image at all")))
    assert isinstance(error, errors.ProviderBadInputError)
    assert "Bad image data" in str(error)
    assert vision.calls == 1


def test_partial_error_keeps_the_annotations_that_came_back(vision: GoogleVisionServer) -> None:
    vision.script(
        Reply.json(
            {
                "responses": [
                    {
                        "labelAnnotations": [{"mid": "/m/0bt9lr", "description": "Dog", "score": 0.97}],
                        "error": {"code": 13, "message": "object localization failed"},
                    }
                ]
            }
        )
    )
    result = ok(call(config_for(vision.url, options={"objects": True})))
    assert [t.name for t in result.tags] == ["Dog"]


def test_wrong_shape(vision: GoogleVisionServer) -> None:
    vision.script(Reply.json({"responses": []}))
    assert isinstance(failed(call(config_for(vision.url))), errors.ProviderResponseError)


# --- the key stays out of logs and errors -------------------------------------------------------


def test_api_key_never_in_logs_or_errors(
    vision: GoogleVisionServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    outcomes = [
        call(config_for(vision.url)),
        call(config_for(vision.url), secret={"api_key": "AIzaWrongKey-yyyyyyyyyyyyyyyyyyyyyyy"}),
        call(config_for(f"http://127.0.0.1:{closed_port()}", max_attempts=1)),
    ]
    vision.script(google_error(400, "INVALID_ARGUMENT", f"bad request for key {KEY}"))
    outcomes.append(call(config_for(vision.url)))
    with GoogleVisionServer(api_key=KEY, latency=2.0) as slow:
        outcomes.append(call(config_for(slow.url, timeout_seconds=0.3)))

    refusals = [o for o in outcomes if isinstance(o, errors.ProviderError)]
    assert len(refusals) == 4
    assert "HTTP Request: POST" in caplog.text  # httpx did log the calls, with the key blanked
    for text in [caplog.text, *(str(e) for e in refusals), *(repr(e) for e in refusals)]:
        assert KEY not in text
        assert "AIzaWrongKey-yyyyyyyyyyyyyyyyyyyyyyy" not in text


def test_cli_tag_json_against_the_double(
    vision: GoogleVisionServer,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`autotag tag IMG --provider google_vision --config cfg.toml --json`: the path a user takes."""
    from autotag.cli import main

    image = tmp_path / "street.png"
    image.write_bytes(image_data(320, 240, ImageFormat.PNG))
    config = tmp_path / "cfg.toml"
    config.write_text(f'[[providers]]\nname = "google_vision"\nendpoint = "{vision.url}"\n')
    monkeypatch.setenv("AUTOTAG_SECRET_GOOGLE_VISION", json.dumps({"api_key": KEY}))

    status = main(["tag", str(image), "--provider", "google_vision", "--config", str(config), "--json"])

    assert status == 0
    document = json.loads(capsys.readouterr().out)
    assert [t["name"] for t in document["tags"]] == [label["description"] for label in GOOGLE_LABELS]
    assert vision.last.param("key") == KEY
