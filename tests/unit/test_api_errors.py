"""The one mapping from errors to HTTP: statuses, stable codes, Retry-After, no internal detail."""

from __future__ import annotations

import json

import pytest
from autotag import errors
from autotag.api.errors import DOCUMENTED_STATUSES, error_body, error_response, status_for
from autotag.models import ProviderOutcome, ProviderStatus, TagResult


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (errors.InvalidRequestError("bad"), 400, "invalid_request"),
        (errors.BadInputError("bad base64", code="bad_base64"), 400, "bad_base64"),
        (errors.UnsafeUrlError("private"), 400, "unsafe_url"),
        (errors.UnknownProviderError("nope"), 400, "unknown_provider"),
        (errors.BucketNotAllowedError("no"), 403, "bucket_not_allowed"),
        (errors.ImageNotFoundError("none"), 404, "image_not_found"),
        (errors.PayloadTooLargeError("big"), 413, "payload_too_large"),
        (errors.ImageTooLargeError("big"), 413, "image_too_large"),
        (errors.DecompressionBombError("bomb"), 413, "decompression_bomb"),
        (errors.UnsupportedFormatError("svg"), 415, "unsupported_format"),
        (errors.UnsupportedMediaTypeError("xml"), 415, "unsupported_media_type"),
        (errors.CorruptImageError("cut"), 422, "corrupt_image"),
        (errors.EmptyImageError("empty"), 422, "empty_image"),
        (errors.FetchError("404"), 422, "fetch_failed"),
        (errors.FetchTimeoutError("slow"), 422, "fetch_timeout"),
        (errors.ContentBlockedError("nsfw"), 422, "content_blocked"),
        (errors.ProviderBadInputError("format"), 422, "bad_input"),
        (errors.ThrottledError("slow down", retry_after=2.2), 429, "throttled"),
        (errors.ObjectBusyError("another event is being processed", retry_after=4.0), 429, "object_busy"),
        (errors.ObjectNotFoundError("no such version"), 404, "object_not_found"),
        (errors.ProviderTimeoutError("timeout"), 504, "provider_timeout"),
        (errors.TransientError("500"), 502, "transient"),
        (errors.ProviderResponseError("garbage"), 502, "bad_provider_response"),
        (errors.AuthError("key"), 502, "auth"),
        (errors.QuotaError("credits"), 502, "quota"),
        (errors.ConfigError("misconfigured"), 500, "internal_error"),
        (errors.AutotagError("unexpected"), 500, "internal_error"),
        (errors.MalformedJsonError("{"), 400, "malformed_json"),
        (errors.MethodNotAllowedError("PUT", allow=["POST"]), 405, "method_not_allowed"),
        (errors.DecodeMemoryError("1 GiB"), 413, "image_too_large_to_decode"),
    ],
)
def test_status_and_code(error, status, code):
    got_status, body, headers = error_body(error, "req-1")
    assert (int(got_status), body.code, body.request_id) == (status, code, "req-1")
    assert int(got_status) in DOCUMENTED_STATUSES
    assert headers["X-Request-Id"] == "req-1"


def test_405_names_the_allowed_methods():
    _, _, headers = error_body(errors.MethodNotAllowedError("no", allow=["GET", "POST"]), "req-1")
    assert headers["Allow"] == "GET, POST"


def _all_failed(*statuses: ProviderStatus) -> errors.AllProvidersFailedError:
    return errors.AllProvidersFailedError(TagResult(providers=statuses))


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
    _, _, headers = error_body(errors.ThrottledError("x", retry_after=2.2), "r")
    assert headers["Retry-After"] == "3"
    _, _, headers = error_body(errors.ThrottledError("x"), "r")
    assert int(headers["Retry-After"]) >= 1
    _, _, headers = error_body(_all_failed(_failed("throttled", True)), "r")
    assert int(headers["Retry-After"]) >= 1


def test_500_hides_the_message():
    status, body, _ = error_body(errors.ConfigError("table autotag-xyz missing, secret arn:aws:..."), "req-9")
    assert int(status) == 500
    assert "arn:aws" not in body.message
    assert "autotag-xyz" not in body.message
    assert "req-9" in body.message


def test_error_response_is_a_complete_json_answer():
    response = error_response(errors.PayloadTooLargeError("too big"), "req-2")
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

    error = errors.InvalidRequestError(
        "x", details=[ErrorDetail(loc=["body", "url"], type="string_type", message="m")]
    )
    _, body, _ = error_body(error, "r")
    assert body.details is not None
    assert body.details[0].loc == ["body", "url"]
