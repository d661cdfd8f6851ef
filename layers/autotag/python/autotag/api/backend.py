"""What the API routes run on: the shared service (tagging with its result cache, store mode,
records), the object reader, the URL fetcher and the presigner. Built once per process, on first
use (never at import); tests install their own with :func:`set_backend`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from autotag.api.settings import ApiSettings, get_api_settings
from autotag.config import AutotagConfig, get_config
from autotag.corrections import CorrectionOutcome, CorrectionRequest, CorrectionService
from autotag.errors import (
    FetchError,
    ObjectGoneError,
    ObjectNotFoundError,
    TerminalProcessingError,
    TransientError,
)
from autotag.fetch import check_url, fetch_image_url
from autotag.image import PreparedImage, S3Location, SourceImage
from autotag.intake.checks import inspect_image
from autotag.models import TagOptions, TagResult
from autotag.objects import ObjectInfo, ObjectStorage
from autotag.retry import Deadline, RetryPolicy
from autotag.s3tags import ObjectTagWriter
from autotag.settings import RuntimeSettings, get_settings
from autotag.store.base import ImageRecord, ImageStatus, ImageStore
from autotag.tagging import TaggingService
from autotag.thumbnails import thumbnail
from autotag.wiring import build_service

UrlFetcher = Callable[[str, float], bytes]
"""(url, timeout seconds) -> the image bytes; SSRF-safe (autotag.fetch)."""
Presigner = Callable[[str, str, str, int], str]
"""(bucket, key, content type, expires in seconds) -> a presigned PUT URL."""


API_RETRY = RetryPolicy(max_attempts=2, base_delay=0.2, max_delay=1.0, max_retry_after=1.0)
"""The tag step's retry while a client waits: one quick retry (under a second) of a retryable
failure, then the error (429 with Retry-After, 502, 504) goes back for the client to act on; a
known Retry-After over a second is never slept through in the request."""


@dataclass
class ApiBackend:
    """The services the API routes call: one per process (:func:`get_backend`)."""

    settings: RuntimeSettings
    config: AutotagConfig
    api: ApiSettings
    service: TaggingService
    """The process's one pipeline: its Tagger, event loop and result cache serve every route."""
    fetcher: UrlFetcher
    presigner: Presigner

    @property
    def store(self) -> ImageStore:
        return self.service.store

    @property
    def objects(self) -> ObjectStorage:
        return self.service.objects

    def tag_image(
        self, image: SourceImage, options: TagOptions, *, deadline: Deadline, s3: S3Location | None = None
    ) -> TagResult:
        """Images the API does not store (inline, URL, s3 without store): cached by content hash."""
        return self.service.tag_image(image, options, deadline=deadline, s3=s3, retry=API_RETRY)

    def fetch_url(self, url: str, *, deadline: Deadline) -> bytes:
        timeout = min(self.api.url_fetch_timeout_seconds, deadline.remaining())
        if timeout <= 0:
            raise TransientError("no time left to fetch the URL", code="deadline")
        return self.fetcher(url, timeout)

    def _head(self, location: S3Location) -> ObjectInfo:
        # A reference S3 refuses (malformed version id) raises InvalidS3ReferenceError: a 400.
        info = self.objects.head(location)
        if info is None:
            raise ObjectNotFoundError(f"{location.uri} does not exist")
        return info

    def read_object(self, location: S3Location) -> SourceImage:
        info = self._head(location)
        try:
            data = self.objects.read(location, etag=info.etag, max_bytes=self.config.limits.max_bytes)
        except ObjectGoneError:
            raise ObjectNotFoundError(f"{location.uri} does not exist") from None
        return inspect_image(data, limits=self.config.limits)

    def process_object(self, location: S3Location, options: TagOptions, *, deadline: Deadline) -> ImageRecord:
        """Store mode: the shared per-object pipeline (record, object tags, events). A request error
        (unknown provider, an object or version that does not exist) leaves the record as it is."""
        try:
            record = self.service.process_object(location, options=options, deadline=deadline)
        except TerminalProcessingError as error:
            # Recorded as failed and announced by the service; the client gets the cause.
            raise error.cause from error
        if record.status is ImageStatus.SKIPPED:
            raise ObjectNotFoundError(f"{location.uri}: {record.error or 'object not found'}")
        return record

    def correct_tags(self, bucket: str, key: str, request: CorrectionRequest) -> CorrectionOutcome:
        """Record people's decisions, bring the object's S3 tags in line, announce the correction."""
        service = CorrectionService(
            store=self.store,
            tag_writer=ObjectTagWriter(self.objects),
            policy=self.config.s3_tags,
            publisher=self.service.publisher,
        )
        return service.correct(bucket, key, request)

    def thumbnail(self, location: S3Location, side: int) -> PreparedImage:
        return thumbnail(self.read_object(location), side)

    def presign_put(self, bucket: str, key: str, *, content_type: str, expires_in: int) -> str:
        return self.presigner(bucket, key, content_type, expires_in)


def default_fetcher(url: str, timeout: float) -> bytes:
    if get_api_settings().url_sources == "off":
        return offline_fetcher(url, timeout)
    return fetch_image_url(url, max_bytes=get_config().limits.max_bytes, timeout=timeout)


URL_SOURCES_OFF = "URL sources are turned off in this deployment (URL_SOURCES=off)"


def _no_resolver(host: str, port: int) -> list[str]:
    raise FetchError(URL_SOURCES_OFF)


def offline_fetcher(url: str, timeout: float) -> bytes:
    """URL_SOURCES=off: the URL is checked as always (a refused URL is still unsafe_url), then
    refused without a DNS lookup or a connection."""
    check_url(url, resolver=_no_resolver)
    raise FetchError(URL_SOURCES_OFF)


def build_backend(*, fetcher: UrlFetcher | None = None) -> ApiBackend:
    """The runtime wired to AWS from the function's settings and config (the service is the
    process-wide one, :func:`autotag.wiring.build_service`; ``reset_service()`` closes it)."""
    from autotag.wiring import aws_clients

    s3 = aws_clients().client("s3")

    def presign_put(bucket: str, key: str, content_type: str, expires_in: int) -> str:
        params: dict[str, Any] = {"Bucket": bucket, "Key": key, "ContentType": content_type}
        return str(s3.generate_presigned_url("put_object", Params=params, ExpiresIn=expires_in))

    return ApiBackend(
        settings=get_settings(),
        config=get_config(),
        api=get_api_settings(),
        service=build_service(),
        fetcher=fetcher or default_fetcher,
        presigner=presign_put,
    )


_lock = threading.Lock()
_runtime: ApiBackend | None = None


def get_backend() -> ApiBackend:
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = build_backend()
        return _runtime


def set_backend(runtime: ApiBackend | None) -> None:
    """Install a runtime (tests), or None to build the default again on next use. The service it
    holds is the shared one: ``autotag.wiring.reset_service()`` closes that."""
    global _runtime
    with _lock:
        _runtime = runtime
