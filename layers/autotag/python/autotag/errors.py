"""The error taxonomy. Every failure autotag reports is one of these types.

Each error has a stable ``code`` (what clients, events and the DLQ carry) and knows whether
retrying can help. Providers map their own error codes onto these classes; the API maps these
classes onto HTTP statuses in one place (``autotag.api.errors``).
"""

from __future__ import annotations

import re

_OBJECT_REPR = re.compile(r"\s*<[^<>]{0,200}? at 0x[0-9a-fA-F]+>")
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{8,16}\b")


def public_text(text: str) -> str:
    """`text` without what only describes this process: object reprs and memory addresses.

    Libraries put them in their messages (Pillow: ``cannot identify image file <_io.BytesIO object
    at 0x7f...>``); every error message passes through here, so none reaches a client, a record,
    an event or a log line meant for users.
    """
    return _ADDRESS.sub("an address", _OBJECT_REPR.sub("", text))


class AutotagError(Exception):
    """Base of every error autotag raises on purpose."""

    code: str = "internal_error"
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        provider: str | None = None,
        provider_code: str | int | None = None,
        request_id: str | None = None,
    ) -> None:
        message = public_text(message)
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.provider = provider
        self.provider_code = provider_code
        self.request_id = request_id

    def __str__(self) -> str:
        origin = f"{self.provider}: " if self.provider else ""
        native = f" [{self.provider_code}]" if self.provider_code is not None else ""
        return f"{origin}{self.message}{native}"


# --- Provider/transport taxonomy -------------------------------------------------------------


class ProviderError(AutotagError):
    """A tagging provider refused or failed the request."""

    code = "provider_error"


class ThrottledError(ProviderError):
    code = "throttled"
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class TransientError(ProviderError):
    """5xx, timeouts, connection failures, provider-side internal errors."""

    code = "transient"
    retryable = True


class ProviderTimeoutError(TransientError):
    code = "provider_timeout"


class AuthError(ProviderError):
    """Bad, expired or missing credentials; not retried (after one credential refresh)."""

    code = "auth"


class QuotaError(ProviderError):
    """Out of credits, monthly quota used up, billing disabled."""

    code = "quota"


class ContentBlockedError(ProviderError):
    code = "content_blocked"


class ProviderBadInputError(ProviderError):
    """The provider rejected the image or the parameters."""

    code = "bad_input"


class ProviderResponseError(TransientError):
    """The provider answered with something we cannot parse (malformed JSON, wrong shape)."""

    code = "bad_provider_response"


# --- Input errors (ours) ---------------------------------------------------------------------


class BadInputError(AutotagError):
    code = "bad_input"


class InvalidImageError(BadInputError):
    code = "invalid_image"


class UnsupportedFormatError(InvalidImageError):
    code = "unsupported_format"


class CorruptImageError(InvalidImageError):
    code = "corrupt_image"


class EmptyImageError(InvalidImageError):
    code = "empty_image"


class ImageTooLargeError(InvalidImageError):
    """Too many bytes, or cannot be made to fit a provider's limits."""

    code = "image_too_large"


class DecompressionBombError(ImageTooLargeError):
    code = "decompression_bomb"


class UnsafeUrlError(BadInputError):
    code = "unsafe_url"


class InvalidS3ReferenceError(BadInputError):
    """S3 refuses the object reference itself (a malformed version id, a version id on an
    unversioned bucket, an invalid key): it will refuse it again, whoever retries."""

    code = "invalid_s3_reference"


class NotFoundError(AutotagError):
    code = "not_found"


class ObjectNotFoundError(NotFoundError):
    """A request names an S3 object (or version) that does not exist."""

    code = "object_not_found"


class ConflictError(AutotagError):
    """The resource is not in a state that allows the change, or kept changing under it."""

    code = "conflict"
    retryable = True


class ImageNotTaggedError(ConflictError):
    """Tags can be corrected on a tagged image only (retry a failed one first)."""

    code = "image_not_tagged"
    retryable = False


class ConfigError(AutotagError):
    code = "invalid_config"


class UnknownProviderError(ConfigError):
    code = "unknown_provider"


TERMINAL_FOR_IMAGE = (BadInputError, ContentBlockedError, ProviderBadInputError)
"""Errors that mean this image will never tag, whatever the retries."""


def is_retryable(error: BaseException) -> bool:
    return isinstance(error, AutotagError) and error.retryable


class DecodeMemoryError(ImageTooLargeError):
    """Decoding the image would take more memory than the function may spend on it."""

    code = "image_too_large_to_decode"
