from __future__ import annotations

import pytest
from autotag import errors
from autotag.errors import (
    TERMINAL_FOR_IMAGE,
    AllProvidersFailedError,
    AuthError,
    AutotagError,
    BadInputError,
    BucketNotAllowedError,
    ClaimLostError,
    ConfigError,
    ConflictError,
    ContentBlockedError,
    CorruptImageError,
    DecodeMemoryError,
    DecompressionBombError,
    EmptyImageError,
    FetchError,
    FetchTimeoutError,
    ImageNotFoundError,
    ImageNotTaggedError,
    ImageTooLargeError,
    InvalidEventError,
    InvalidImageError,
    InvalidRequestError,
    InvalidS3ReferenceError,
    InvalidSequencerError,
    MalformedJsonError,
    MethodNotAllowedError,
    ModelNotFoundError,
    ModelUnavailableError,
    NotFoundError,
    ObjectBusyError,
    ObjectGoneError,
    ObjectNotFoundError,
    PayloadTooLargeError,
    ProviderBadInputError,
    ProviderError,
    ProviderResponseError,
    ProviderTimeoutError,
    QuotaError,
    RouteMissingError,
    TagWriteRefusedError,
    TerminalProcessingError,
    ThrottledError,
    TransientError,
    UnknownProviderError,
    UnsafeUrlError,
    UnsupportedFormatError,
    UnsupportedMediaTypeError,
    is_retryable,
)
from autotag.models import ProviderOutcome, ProviderStatus, TagResult

from tests.support.errors import example_error

RETRYABLE = [
    ThrottledError,
    TransientError,
    ProviderTimeoutError,
    ProviderResponseError,
    ConflictError,
    ObjectBusyError,
    ClaimLostError,
]
TERMINAL = [
    AuthError,
    QuotaError,
    ContentBlockedError,
    ProviderBadInputError,
    BadInputError,
    InvalidImageError,
    UnsupportedFormatError,
    CorruptImageError,
    EmptyImageError,
    ImageTooLargeError,
    DecompressionBombError,
    DecodeMemoryError,
    UnsafeUrlError,
    InvalidS3ReferenceError,
    NotFoundError,
    ObjectNotFoundError,
    ConfigError,
    UnknownProviderError,
    ImageNotTaggedError,
    FetchError,
    FetchTimeoutError,
    BucketNotAllowedError,
    InvalidEventError,
    InvalidSequencerError,
    InvalidRequestError,
    MalformedJsonError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    MethodNotAllowedError,
    ObjectGoneError,
    ImageNotFoundError,
    RouteMissingError,
    TagWriteRefusedError,
    ModelUnavailableError,
    ModelNotFoundError,
]
DYNAMIC = {AllProvidersFailedError, TerminalProcessingError}
"""Their code (and retryability) is their cause's: tested on their own below."""


@pytest.mark.parametrize("cls", RETRYABLE)
def test_retryable(cls):
    error = example_error(cls)
    assert error.retryable is True
    assert is_retryable(error)


@pytest.mark.parametrize("cls", TERMINAL)
def test_not_retryable(cls):
    error = example_error(cls)
    assert error.retryable is False
    assert not is_retryable(error)


def test_foreign_exceptions_are_not_retryable():
    assert not is_retryable(ValueError("x"))
    assert not is_retryable(TimeoutError())


def test_every_error_class_is_classified_and_codes_are_stable_and_distinct():
    classes: list[type[AutotagError]] = [
        obj for obj in vars(errors).values() if isinstance(obj, type) and issubclass(obj, AutotagError)
    ]
    assert set(classes) - {AutotagError, ProviderError} == set(RETRYABLE) | set(TERMINAL) | DYNAMIC
    # A subclass may keep its parent's code (same meaning to clients); each code is defined once.
    codes = [cls.code for cls in classes if "code" in vars(cls)]
    # ProviderBadInputError shares "bad_input" with BadInputError on purpose: same meaning to clients.
    assert sorted(codes).count("bad_input") == 2
    assert len(set(codes)) == len(codes) - 1
    assert ThrottledError.code == "throttled"
    assert CorruptImageError.code == "corrupt_image"


def test_message_names_the_provider_and_its_code_and_code_can_be_overridden():
    error = QuotaError("monthly quota used", provider="pixlab", provider_code=402, request_id="r-1")
    assert str(error) == "pixlab: monthly quota used [402]"
    assert error.code == "quota"
    assert error.request_id == "r-1"
    assert AuthError("no key", code="auth_config").code == "auth_config"
    assert AuthError("other").code == "auth"  # the override does not leak into the class


def test_throttled_carries_retry_after():
    assert ThrottledError("slow", retry_after=3.0).retry_after == 3.0
    assert ThrottledError("slow").retry_after is None


def test_terminal_for_image():
    for error in (CorruptImageError("x"), ContentBlockedError("x"), ProviderBadInputError("x")):
        assert isinstance(error, TERMINAL_FOR_IMAGE)
    for other in (AuthError("x"), ThrottledError("x"), QuotaError("x")):
        assert not isinstance(other, TERMINAL_FOR_IMAGE)


def _failed(provider: str, code: str, *, retryable: bool) -> ProviderStatus:
    return ProviderStatus(
        provider=provider, status=ProviderOutcome.FAILED, error_code=code, error="no", retryable=retryable
    )


def test_all_providers_failed_takes_the_first_failures_code_and_any_retryability():
    terminal = _failed("a", "quota", retryable=False)
    throttled = _failed("b", "throttled", retryable=True)
    error = AllProvidersFailedError(TagResult(providers=(terminal, throttled)))
    assert error.code == "quota"
    assert error.retryable is True
    assert "a: quota: no; b: throttled: no" in error.message
    assert AllProvidersFailedError(TagResult(providers=(terminal,))).retryable is False
    assert AllProvidersFailedError(TagResult()).code == "provider_error"


def test_terminal_processing_error_carries_its_cause():
    cause = CorruptImageError("truncated")
    error = TerminalProcessingError(None, cause)
    assert (error.code, error.retryable, error.cause, error.record) == ("corrupt_image", False, cause, None)
    assert error.message == "truncated"
