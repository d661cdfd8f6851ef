"""PixLab adapter against a local server speaking seeds/002 (``tagimg``)."""

from __future__ import annotations

import pytest
from autotag import errors
from autotag.config import ProviderConfig
from autotag.image import ImageFormat, S3Location
from autotag.providers.base import ProviderContext
from autotag.providers.pixlab import PixLabProvider

from tests.integration.providers.seed_provider_kit import (
    attempts_for,
    call,
    documented_failures,
    make_images,
)
from tests.support.fakes import StaticCredentials
from tests.support.provider_servers import PixLabServer, Reply

pytestmark = pytest.mark.integration

KEY = "pixlab-key-5c0ffee"
SECRET = {"api_key": KEY}
OBJECT = S3Location(bucket="photos", key="park.jpg")


@pytest.fixture
def server():
    with PixLabServer(api_key=KEY) as running:
        yield running


def test_documented_success_by_multipart_upload_with_key_field(server):
    images = make_images()
    result = call(PixLabProvider, server.url, secret=SECRET, images=images).ok

    sent = server.last
    assert (sent.method, sent.path) == ("POST", "/tagimg")
    assert sent.header("content-type").startswith("multipart/form-data; boundary=")
    assert sent.form == {"key": KEY}
    assert sent.files["file"].data == images[1].data
    assert sent.files["file"].content_type == "image/jpeg"
    assert sent.files["file"].filename == "image.jpg"
    assert sent.query == {}  # the key never travels in the URL
    assert sent.header("www-authenticate") is None

    assert [(t.name, t.confidence) for t in result.tags] == [
        ("tree", 0.97),
        ("grass", 0.91),
        ("sky", 0.84),
        ("road", 0.41),
    ]
    assert result.providers[0].details["image_input"] == "upload"


def test_key_in_the_www_authenticate_header(server):
    result = call(PixLabProvider, server.url, secret=SECRET, provider_options={"key_in": "header"}).ok
    assert result.tags
    assert server.last.header("www-authenticate") == KEY
    assert "key" not in server.last.form


def test_url_mode_sends_a_presigned_url_as_json(server):
    presigned: list[tuple[S3Location, int]] = []

    def presign(location: S3Location, seconds: int) -> str:
        presigned.append((location, seconds))
        return f"https://photos.s3.example/{location.key}?sig=1"

    outcome = call(
        PixLabProvider,
        server.url,
        secret=SECRET,
        provider_options={"image_input": "url"},
        presign=presign,
        s3=OBJECT,
    )
    assert outcome.ok.providers[0].details["image_input"] == "url"
    assert server.last.json == {"img": "https://photos.s3.example/park.jpg?sig=1", "key": KEY}
    assert presigned == [(OBJECT, 900)]


def test_url_mode_without_an_s3_object_uploads(server):
    outcome = call(PixLabProvider, server.url, secret=SECRET, provider_options={"image_input": "url"})
    assert outcome.ok.providers[0].details["image_input"] == "upload"
    assert server.last.files


def test_percent_confidences_are_detected_and_scaled():
    with PixLabServer(api_key=KEY, confidence_scale=100) as server:
        result = call(PixLabProvider, server.url, secret=SECRET).ok
    assert [t.confidence for t in result.tags] == [0.97, 0.91, 0.84, 0.41]
    assert result.providers[0].details["confidence_scale"] == 100.0


def test_string_confidences_and_duplicates(server):
    server.script(
        Reply.json(
            {
                "status": 200,
                "tags": [
                    {"name": "Dog", "confidence": "0.5"},
                    {"name": "dog", "confidence": 0.9},
                    {"name": " ", "confidence": 0.9},
                    {"confidence": 0.2},
                ],
            }
        )
    )
    result = call(PixLabProvider, server.url, secret=SECRET).ok
    assert [(t.name, t.confidence) for t in result.tags] == [("dog", 0.9)]


@pytest.mark.parametrize(
    ("status", "error_type", "code", "retryable"),
    documented_failures(
        bad_input=(400, 404, 415),
        auth=(401, 403),
        quota=(402,),
        throttled=(429,),
        transient=(500, 503),
        provider_error=(302,),
    ),
)
def test_json_status_errors_on_http_200(server, status, error_type, code, retryable):
    server.script(*[PixLabServer.error(status, f"problem {status}")] * 3)
    outcome = call(PixLabProvider, server.url, secret=SECRET, max_attempts=attempts_for(retryable))
    error = outcome.failed_as(error_type, code, retryable)
    assert error.provider_code == status
    assert f"problem {status}" in str(error)
    assert server.calls == 1


def test_wrong_key_is_auth_from_the_json_status(server):
    error = call(PixLabProvider, server.url, secret={"api_key": "other"}).failed(errors.AuthError)
    assert "Invalid API key" in str(error)
    assert server.calls == 1


def test_not_an_image_is_bad_input(server):
    images = make_images(data=b"plain text", fmt=ImageFormat.JPEG)
    call(PixLabProvider, server.url, secret=SECRET, images=images).failed(errors.ProviderBadInputError)


def test_request_id_header_is_kept(server):
    server.script(Reply(body={"status": 200, "tags": []}, headers={"x-request-id": "px-1"}))
    assert call(PixLabProvider, server.url, secret=SECRET).ok.providers[0].details["request_id"] == "px-1"


def test_success_status_without_tags_is_a_response_error(server):
    server.script(Reply.json({"status": 200}))
    call(PixLabProvider, server.url, secret=SECRET, max_attempts=1).failed(errors.ProviderResponseError)


@pytest.mark.parametrize("options", [{"key_in": "query"}, {"image_input": "base64"}])
def test_bad_options_are_config_errors(options):
    config = ProviderConfig(name="pixlab", options=options)
    context = ProviderContext(http=None, credentials=StaticCredentials({}))  # type: ignore[arg-type]
    with pytest.raises(errors.ConfigError):
        PixLabProvider(config, context)
