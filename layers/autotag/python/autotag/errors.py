"""The error taxonomy: the one catalog of every error type autotag raises on purpose.

Each error has a stable ``code`` (what clients, events and the DLQ carry) and knows whether
retrying can help. Providers map their own error codes onto these classes, and adapters map their
SDK's errors (the S3 adapter, :mod:`autotag.objects`); the API maps these classes onto HTTP
statuses in one place (``autotag.api.errors``), on_batch onto Batch Operations result codes
(``autotag.batch_tasks.result_code_for``). Sections: providers and transport, input, the API's
requests, not found, processing an object, configuration.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the catalog imports nothing of ours at run time
    from autotag.api.models import ErrorDetail
    from autotag.models import TagResult
    from autotag.store.base import ImageRecord

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


# --- Providers and transport -----------------------------------------------------------------


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


class AllProvidersFailedError(AutotagError):
    """No provider produced a result (``result`` holds each one's failure). Its code is the first
    failure's; retryable when any failure was."""

    def __init__(self, result: TagResult) -> None:
        failures = result.failed
        first = failures[0] if failures else None
        reason = "; ".join(f"{f.provider}: {f.error_code}: {f.error}" for f in failures) or "no provider ran"
        super().__init__(
            f"every provider failed ({reason})", code=first.error_code if first else "provider_error"
        )
        self.result = result
        self.retryable = any(f.retryable for f in failures)


# --- Input ------------------------------------------------------------------------------------


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


class FetchError(BadInputError):
    """The URL was allowed but could not be fetched (status, timeout, connection, TLS)."""

    code = "fetch_failed"


class FetchTimeoutError(FetchError):
    code = "fetch_timeout"


class InvalidS3ReferenceError(BadInputError):
    """S3 refuses the object reference itself (a malformed version id, a version id on an
    unversioned bucket, an invalid key): it will refuse it again, whoever retries."""

    code = "invalid_s3_reference"


class BucketNotAllowedError(BadInputError):
    """The bucket is not one this deployment tags (the API answers 403)."""

    code = "bucket_not_allowed"


class InvalidEventError(BadInputError):
    """An event or queue message that is not what the function accepts (shape, sequencer)."""

    code = "invalid_event"


class InvalidSequencerError(InvalidEventError):
    """An S3 event's ``sequencer`` is not a hexadecimal string."""


# --- Requests at the API edge ----------------------------------------------------------------


class InvalidRequestError(BadInputError):
    """The request does not match the documented schema."""

    code = "invalid_request"

    def __init__(self, message: str, *, details: Sequence[ErrorDetail] = (), code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.details = list(details)


class MalformedJsonError(InvalidRequestError):
    """The body is not a JSON object this API can read."""

    code = "malformed_json"


class PayloadTooLargeError(BadInputError):
    code = "payload_too_large"


class UnsupportedMediaTypeError(BadInputError):
    code = "unsupported_media_type"


class MethodNotAllowedError(BadInputError):
    """The path exists, not with this method; `allow` lists the methods it has."""

    code = "method_not_allowed"

    def __init__(self, message: str, *, allow: Sequence[str]) -> None:
        super().__init__(message)
        self.allow = list(allow)


# --- Not found -------------------------------------------------------------------------------


class NotFoundError(AutotagError):
    code = "not_found"


class ObjectNotFoundError(NotFoundError):
    """A request names an S3 object (or version) that does not exist."""

    code = "object_not_found"


class ObjectGoneError(NotFoundError):
    """The object (or the version asked for) no longer exists: deleted between the event and the
    read (the storage adapter's answer; the service records the event as skipped)."""

    code = "object_gone"


class ImageNotFoundError(NotFoundError):
    code = "image_not_found"


class RouteMissingError(NotFoundError):
    code = "route_not_found"


class ConflictError(AutotagError):
    """The resource is not in a state that allows the change, or kept changing under it."""

    code = "conflict"
    retryable = True


class ImageNotTaggedError(ConflictError):
    """Tags can be corrected on a tagged image only (retry a failed one first)."""

    code = "image_not_tagged"
    retryable = False


# --- Processing an object ---------------------------------------------------------------------


class ObjectBusyError(ThrottledError):
    """Another event for this key is being processed: retry after it (SQS redelivery, Lambda retry,
    or the client's own retry after ``retry_after`` seconds)."""

    code = "object_busy"


class ClaimLostError(AutotagError):
    """The claim expired and another processor took the record over before this one wrote it."""

    code = "claim_lost"
    retryable = True


class TagWriteRefusedError(AutotagError):
    """S3 refused to read or write an object's tag set (access denied, invalid tag, a method the
    bucket does not allow). Tagging is a courtesy on top of the stored record: the refusal is
    recorded with the record, not fatal (``s3_code`` is S3's error code)."""

    code = "s3_tagging_refused"

    def __init__(self, message: str, *, s3_code: str) -> None:
        super().__init__(message)
        self.s3_code = s3_code


class TerminalProcessingError(AutotagError):
    """The object cannot be tagged as it is. Already recorded as failed and announced (``record``),
    unless S3 refused the reference itself (``record`` is None: recording a failure under the
    object's key would overwrite the record of a version that exists); the caller sends the source
    message to the DLQ and reports it processed."""

    retryable = False

    def __init__(self, record: ImageRecord | None, cause: AutotagError) -> None:
        super().__init__((record.error if record else None) or str(cause), code=cause.code)
        self.record = record
        self.cause = cause


# --- Configuration ----------------------------------------------------------------------------


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


class ModelUnavailableError(ProviderError):
    """The vision model cannot run here: its runtime is not installed, or (subclass) its file is not
    built or attached. Terminal for this provider; the other providers' tags are kept."""

    code = "model_unavailable"


class ModelNotFoundError(ModelUnavailableError):
    """No model file where it was looked for."""
