"""imagedescriber adapter against a local server speaking seeds/000 (the AI Image Tag API)."""

from __future__ import annotations

import base64

import pytest
from autotag import errors
from autotag.image import ImageFormat
from autotag.providers.imagedescriber import ImageDescriberProvider

from tests.integration.providers.seed_provider_kit import (
    attempts_for,
    call,
    documented_failures,
    image_bytes,
    make_images,
    options,
)
from tests.support.provider_servers import ImageDescriberServer, Reply

pytestmark = pytest.mark.integration

KEY = "idk-live-7f3a9c1e5b"
SECRET = {"api_key": KEY}


@pytest.fixture
def server():
    with ImageDescriberServer(api_key=KEY) as running:
        yield running


def documented_success() -> Reply:
    """The response body of the document, with concrete values."""
    return Reply.json(
        {
            "code": 0,
            "message": "success",
            "request_id": "req-0a1b2c",
            "data": {
                "tags": {
                    "tags": ["sunset", "beach", "ocean", "Sunset"],
                    "title": "Golden hour at the beach",
                    "description": "The sun sets over a calm ocean with waves rolling onto the sand.",
                },
                "credits": {"amount": "1", "remaining": "249"},
            },
        }
    )


def test_documented_success_and_the_request_sent(server):
    server.script(documented_success())
    images = make_images()

    result = call(ImageDescriberProvider, server.url, secret=SECRET, images=images).ok

    sent = server.last
    assert (sent.method, sent.path) == ("POST", "/api/v1/generate_tags")
    assert sent.header("authorization") == f"Bearer {KEY}"
    assert sent.header("content-type") == "application/json"
    assert sent.json["lang"] == "en"
    assert sent.json["image"] == "data:image/jpeg;base64," + base64.b64encode(images[1].data).decode()
    assert sent.image == images[1].data

    assert [t.name for t in result.tags] == ["sunset", "beach", "ocean"]  # "Sunset" is the same tag
    assert all(t.confidence is None and t.provider == "imagedescriber" for t in result.tags)
    assert result.title == "Golden hour at the beach"
    assert (result.description or "").startswith("The sun sets")
    details = result.providers[0].details
    assert details["request_id"] == "req-0a1b2c"
    assert details["credits_consumed"] == 1
    assert details["credits_remaining"] == 249
    assert details["lang"] == "en"


def test_default_server_answer_counts_credits_down(server):
    first = call(ImageDescriberProvider, server.url, secret=SECRET).ok
    second = call(ImageDescriberProvider, server.url, secret=SECRET).ok
    assert [t.name for t in first.tags] == ["cat", "pet", "whiskers", "indoor"]
    assert first.providers[0].details["credits_remaining"] == 99
    assert second.providers[0].details["credits_remaining"] == 98
    assert len(str(first.providers[0].details["request_id"])) == 32


@pytest.mark.parametrize(
    ("requested", "sent_lang", "fallback"),
    [("ja", "ja", False), ("zh-CN", "zh", True), ("KO", "ko", False), ("pt", "en", True)],
)
def test_language_mapping(server, requested, sent_lang, fallback):
    server.localized["ja"] = ["猫", "ペット"]
    outcome = call(ImageDescriberProvider, server.url, secret=SECRET, request_options=options(lang=requested))
    result = outcome.ok
    assert server.last.json["lang"] == sent_lang
    details = result.providers[0].details
    assert details["lang"] == sent_lang
    assert ("lang_requested" in details) is fallback
    if sent_lang == "ja":
        assert [t.name for t in result.tags] == ["猫", "ペット"]
        assert result.tags[0].names == {"ja": "猫"}


def test_png_and_webp_are_sent_with_their_media_type(server):
    for fmt in (ImageFormat.PNG, ImageFormat.WEBP):
        assert call(ImageDescriberProvider, server.url, secret=SECRET, images=make_images(fmt=fmt)).ok.tags
        assert server.last.json["image"].startswith(f"data:image/{fmt.value};base64,")


def test_constraints_and_capabilities_declare_the_documented_limits():
    constraints = ImageDescriberProvider.constraints
    assert constraints.max_bytes == 4_000_000
    assert constraints.base64_counts
    assert constraints.formats == {ImageFormat.JPEG, ImageFormat.PNG, ImageFormat.WEBP}
    assert ImageDescriberProvider.capabilities.default_rate_limit_per_minute == 30
    assert set(ImageDescriberProvider.capabilities.languages or ()) == {
        "en",
        "zh",
        "fr",
        "de",
        "es",
        "ja",
        "ko",
    }


ERROR_CASES = documented_failures(
    auth=(1002, 1003),
    throttled=(1004,),
    bad_input=(1005, 2004),
    quota=(2002,),
    content_blocked=(2003,),
    transient=(2005, 5050),
)


@pytest.mark.parametrize("http_status", [None, 200], ids=["http-error-status", "http-200"])
@pytest.mark.parametrize(("code", "error_type", "error_code", "retryable"), ERROR_CASES)
def test_every_documented_error_code(server, code, error_type, error_code, retryable, http_status):
    server.script(ImageDescriberServer.error(code, http_status=http_status))
    server.script(*[ImageDescriberServer.error(code, http_status=http_status)] * 2)

    outcome = call(ImageDescriberProvider, server.url, secret=SECRET, max_attempts=attempts_for(retryable))
    error = outcome.failed_as(error_type, error_code, retryable)

    assert error.provider_code == code
    assert error.request_id
    assert len(error.request_id) == 32
    assert error.request_id in str(error)
    assert server.calls == 1


def test_missing_authorization_is_1002_and_bad_key_is_1003(server):
    error = call(ImageDescriberProvider, server.url, secret={"api_key": "wrong-key"}).failed(errors.AuthError)
    assert error.provider_code == 1003
    assert "wrong-key" not in str(error)
    assert server.calls == 1


def test_missing_secret_is_a_config_auth_error_without_a_call(server):
    error = call(ImageDescriberProvider, server.url, secret={}).failed(errors.AuthError)
    assert error.code == "auth_config"
    assert server.calls == 0


def test_out_of_credits_is_quota(server):
    server.credits = 0
    error = call(ImageDescriberProvider, server.url, secret=SECRET).failed(errors.QuotaError)
    assert error.provider_code == 2002


def test_transient_code_is_retried_then_succeeds(server):
    server.script(ImageDescriberServer.error(5050), ImageDescriberServer.error(2005, http_status=200))
    result = call(ImageDescriberProvider, server.url, secret=SECRET).ok
    assert result.tags
    assert server.calls == 3


def test_undocumented_code_is_a_terminal_provider_error(server):
    server.script(ImageDescriberServer.error(4242, "something new", http_status=200))
    error = call(ImageDescriberProvider, server.url, secret=SECRET).failed(errors.ProviderError)
    assert type(error) is errors.ProviderError
    assert not error.retryable
    assert "something new" in str(error)


def test_success_code_without_data_is_a_response_error(server):
    server.script(Reply.json({"code": 0, "message": "success"}))
    call(ImageDescriberProvider, server.url, secret=SECRET, max_attempts=1).failed(
        errors.ProviderResponseError
    )


def test_server_rejects_non_image_payloads_as_2004(server):
    source, prepared = make_images(data=b"not an image at all")
    error = call(ImageDescriberProvider, server.url, secret=SECRET, images=(source, prepared)).failed(
        errors.ProviderBadInputError
    )
    assert error.provider_code == 2004


def test_large_images_still_go_as_one_data_url(server):
    data = image_bytes(900, 700)
    images = make_images(data=data, width=900, height=700)
    assert call(ImageDescriberProvider, server.url, secret=SECRET, images=images).ok.tags
    assert server.last.image == data
