"""The one mapping from errors to HTTP: statuses, stable codes, Retry-After, no internal detail."""

from __future__ import annotations

import json

import pytest
from autotag.api.errors import DOCUMENTED_STATUSES, error_body, error_response, status_for
from autotag.errors import (
    AllProvidersFailedError,
    AuthError,
    AutotagError,
    BadInputError,
    BucketNotAllowedError,
    ConfigError,
    ContentBlockedError,
    CorruptImageError,
    DecodeMemoryError,
    DecompressionBombError,
    EmptyImageError,
    FetchError,
    FetchTimeoutError,
    ImageNotFoundError,
    ImageTooLargeError,
    InvalidRequestError,
    MalformedJsonError,
    MethodNotAllowedError,
    ObjectBusyError,
    ObjectNotFoundError,
    PayloadTooLargeError,
    ProviderBadInputError,
    ProviderResponseError,
    ProviderTimeoutError,
    QuotaError,
    ThrottledError,
    TransientError,
    UnknownProviderError,
    UnsafeUrlError,
    UnsupportedFormatError,
    UnsupportedMediaTypeError,
)
from autotag.models import ProviderOutcome, ProviderStatus, TagResult


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (InvalidRequestError("bad"), 400, "invalid_request"),
        (BadInputError("bad base64", code="bad_base64"), 400, "bad_base64"),
        (UnsafeUrlError("private"), 400, "unsafe_url"),
        (UnknownProviderError("nope"), 400, "unknown_provider"),
        (BucketNotAllowedError("no"), 403, "bucket_not_allowed"),
        (ImageNotFoundError("none"), 404, "image_not_found"),
        (PayloadTooLargeError("big"), 413, "payload_too_large"),
        (ImageTooLargeError("big"), 413, "image_too_large"),
        (DecompressionBombError("bomb"), 413, "decompression_bomb"),
        (UnsupportedFormatError("svg"), 415, "unsupported_format"),
        (UnsupportedMediaTypeError("xml"), 415, "unsupported_media_type"),
        (CorruptImageError("cut"), 422, "corrupt_image"),
        (EmptyImageError("empty"), 422, "empty_image"),
        (FetchError("404"), 422, "fetch_failed"),
        (FetchTimeoutError("slow"), 422, "fetch_timeout"),
        (ContentBlockedError("nsfw"), 422, "content_blocked"),
        (ProviderBadInputError("format"), 422, "bad_input"),
        (ThrottledError("slow down", retry_after=2.2), 429, "throttled"),
        (ObjectBusyError("another event is being processed", retry_after=4.0), 429, "object_busy"),
        (ObjectNotFoundError("no such version"), 404, "object_not_found"),
        (ProviderTimeoutError("timeout"), 504, "provider_timeout"),
        (TransientError("500"), 502, "transient"),
        (ProviderResponseError("garbage"), 502, "bad_provider_response"),
        (AuthError("key"), 502, "auth"),
        (QuotaError("credits"), 502, "quota"),
        (ConfigError("misconfigured"), 500, "internal_error"),
        (AutotagError("unexpected"), 500, "internal_error"),
        (MalformedJsonError("{"), 400, "malformed_json"),
        (MethodNotAllowedError("PUT", allow=["POST"]), 405, "method_not_allowed"),
        (DecodeMemoryError("1 GiB"), 413, "image_too_large_to_decode"),
    ],
)
def test_status_and_code(error, status, code):
    got_status, body, headers = error_body(error, "req-1")
    assert (int(got_status), body.code, body.request_id) == (status, code, "req-1")
    assert int(got_status) in DOCUMENTED_STATUSES
    assert headers["X-Request-Id"] == "req-1"


def test_405_names_the_allowed_methods():
    _, _, headers = error_body(MethodNotAllowedError("no", allow=["GET", "POST"]), "req-1")
    assert headers["Allow"] == "GET, POST"


def _all_failed(*statuses: ProviderStatus) -> AllProvidersFailedError:
    return AllProvidersFailedError(TagResult(providers=statuses))


def _failed(code: str, retryable: bool) -> ProviderStatus:
    return ProviderStatus(provider="p", status=ProviderOutcome.FAILED, error_code=code, retryable=retryable)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("throttled", 429),
        ("provider_timeout", 504),
        ("deadline", 504),
        ("content_blocked", 422),
        ("auth", 502),
        ("transient", 502),
        ("something_new", 502),
    ],
)
def test_when_every_provider_failed_the_first_failure_decides(code, status):
    assert int(status_for(_all_failed(_failed(code, True), _failed("auth", False)))) == status


def test_429_always_has_retry_after():
    _, _, headers = error_body(ThrottledError("x", retry_after=2.2), "r")
    assert headers["Retry-After"] == "3"
    _, _, headers = error_body(ThrottledError("x"), "r")
    assert int(headers["Retry-After"]) >= 1
    _, _, headers = error_body(_all_failed(_failed("throttled", True)), "r")
    assert int(headers["Retry-After"]) >= 1


def test_500_hides_the_message():
    status, body, _ = error_body(ConfigError("table autotag-xyz missing, secret arn:aws:..."), "req-9")
    assert int(status) == 500
    assert "arn:aws" not in body.message
    assert "autotag-xyz" not in body.message
    assert "req-9" in body.message


def test_error_response_is_a_complete_json_answer():
    response = error_response(PayloadTooLargeError("too big"), "req-2")
    assert response.status_code == 413
    assert response.content_type == "application/json"
    assert response.headers["X-Request-Id"] == "req-2"
    assert json.loads(str(response.body)) == {
        "code": "payload_too_large",
        "message": "too big",
        "request_id": "req-2",
    }


def test_validation_details_are_carried():
    from autotag.api.models import ErrorDetail

    error = InvalidRequestError(
        "x", details=[ErrorDetail(loc=["body", "url"], type="string_type", message="m")]
    )
    _, body, _ = error_body(error, "r")
    assert body.details is not None
    assert body.details[0].loc == ["body", "url"]
