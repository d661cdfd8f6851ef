"""What the API routes run on: the shared service (store mode, records), a tagger for images that
are not stored, the object reader, the URL fetcher and the presigner. Built once per process, on
first use (never at import); tests install their own with :func:`set_runtime`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from autotag.api.settings import ApiSettings, get_api_settings
from autotag.config import AutotagConfig, get_config
from autotag.errors import NotFoundError, TransientError
from autotag.fetch import fetch_image_url
from autotag.image import S3Location, SourceImage
from autotag.intake import inspect_image
from autotag.models import TagOptions, TagResult
from autotag.objects import ObjectGoneError, ObjectInfo, ObjectStorage
from autotag.retry import Deadline
from autotag.service import BackgroundLoop, TagEngine, TaggingService, TerminalProcessingError, build_service
from autotag.settings import RuntimeSettings, get_settings
from autotag.store.base import ImageRecord, ImageStatus, ImageStore

UrlFetcher = Callable[[str, float], bytes]
"""(url, timeout seconds) -> the image bytes; SSRF-safe (autotag.fetch)."""
Presigner = Callable[[str, str, str, int], str]
"""(bucket, key, content type, expires in seconds) -> a presigned PUT URL."""


class ObjectNotFoundError(NotFoundError):
    code = "object_not_found"


@dataclass
class ApiRuntime:
    settings: RuntimeSettings
    config: AutotagConfig
    api: ApiSettings
    service: TaggingService
    tagger: TagEngine
    """Tags images the API does not store (inline, URL, s3 without store)."""
    fetcher: UrlFetcher
    presigner: Presigner
    loop: BackgroundLoop = field(default_factory=BackgroundLoop)

    @property
    def store(self) -> ImageStore:
        return self.service.store

    @property
    def objects(self) -> ObjectStorage:
        return self.service.objects

    def tag_image(
        self, image: SourceImage, options: TagOptions, *, deadline: Deadline, s3: S3Location | None = None
    ) -> TagResult:
        coro = self.tagger.tag(image, options, deadline=deadline, s3=s3)
        return self.loop.run(coro, timeout=deadline.remaining() + 1.0)

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
        """Store mode: the shared per-object pipeline (record, object tags, events)."""
        self._head(location)
        try:
            record = self.service.process_object(location, options=options, deadline=deadline)
        except TerminalProcessingError as error:
            # Recorded as failed and announced by the service; the client gets the cause.
            raise error.cause from error
        if record.status is ImageStatus.SKIPPED:
            raise ObjectNotFoundError(f"{location.uri}: {record.error or 'object not found'}")
        return record

    def presign_put(self, bucket: str, key: str, *, content_type: str, expires_in: int) -> str:
        return self.presigner(bucket, key, content_type, expires_in)

    def close(self) -> None:
        self.loop.close()


def default_fetcher(url: str, timeout: float) -> bytes:
    return fetch_image_url(url, max_bytes=get_config().limits.max_bytes, timeout=timeout)


def build_runtime(*, fetcher: UrlFetcher | None = None) -> ApiRuntime:
    """The runtime wired to AWS from the function's settings and config (the service is shared)."""
    from autotag.credentials import Credentials
    from autotag.pipeline import Tagger
    from autotag.providers.base import ProviderContext
    from autotag.providers.http import make_client
    from autotag.service import aws_clients

    config, settings = get_config(), get_settings()
    s3 = aws_clients().client("s3")

    def presign_get(location: S3Location, seconds: int) -> str:
        params = {"Bucket": location.bucket, "Key": location.key}
        if location.version_id:
            params["VersionId"] = location.version_id
        return str(s3.generate_presigned_url("get_object", Params=params, ExpiresIn=seconds))

    def presign_put(bucket: str, key: str, content_type: str, expires_in: int) -> str:
        params: dict[str, Any] = {"Bucket": bucket, "Key": key, "ContentType": content_type}
        return str(s3.generate_presigned_url("put_object", Params=params, ExpiresIn=expires_in))

    context = ProviderContext(
        http=make_client(),
        credentials=Credentials(),
        presign=presign_get,
        aws_endpoint_url=settings.aws_endpoint_url,
    )
    return ApiRuntime(
        settings=settings,
        config=config,
        api=get_api_settings(),
        service=build_service(),
        tagger=Tagger(config, context),
        fetcher=fetcher or default_fetcher,
        presigner=presign_put,
    )


_lock = threading.Lock()
_runtime: ApiRuntime | None = None


def get_runtime() -> ApiRuntime:
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = build_runtime()
        return _runtime


def set_runtime(runtime: ApiRuntime | None) -> None:
    """Install a runtime (tests), or None to build the default again on next use."""
    global _runtime
    with _lock:
        previous, _runtime = _runtime, runtime
    if previous is not None and previous is not runtime:
        previous.close()
