"""ImageKit AI auto-tagging: upload the image to the user's library with auto-tagging extensions.

ImageKit is not a standalone tagger: the image is uploaded (``POST {upload}/api/v1/files/upload``,
multipart) into a configurable folder under a unique name with ``extensions``
(``google-auto-tagging`` and/or ``aws-auto-tagging``, each with ``minConfidence`` 0-100 and
``maxTags`` 0-30). Tags come back in ``AITags`` with their ``source``; an extension still
``pending`` is polled through the file's details (``GET {api}/v1/files/{fileId}/details``) until
it settles or the deadline passes; ``failed`` is final. The file is deleted afterwards
(``DELETE {api}/v1/files/{fileId}``) unless ``delete_after`` is false.

Secret: ``{"private_key": "private_…"}`` (HTTP Basic: the key as user name, empty password).
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Callable

import httpx
from aws_lambda_powertools import Logger

from autotag.config import ProviderConfig
from autotag.errors import (
    ConfigError,
    ProviderError,
    ProviderResponseError,
    ProviderTimeoutError,
    TransientError,
)
from autotag.image import ImageConstraints, ImageFormat
from autotag.models import ProviderOutcome, ProviderStatus, Tag, TagResult
from autotag.providers.base import Capabilities, InputForm, Provider, ProviderContext, ProviderRequest
from autotag.providers.failures import (
    error_text,
    find_request_id,
    parse_retry_after,
    provider_error,
    status_class,
)
from autotag.providers.responses import numeric, parse, parse_optional
from autotag.providers.responses.imagekit import AITag, ErrorBody, FileAnswer
from autotag.retry import Deadline, RetryPolicy

logger = Logger(service="autotag", child=True)

EXTENSIONS = ("google-auto-tagging", "aws-auto-tagging")
UPLOAD_PATH = "/api/v1/files/upload"
FILES_PATH = "/v1/files"
DEFAULT_UPLOAD_ENDPOINT = "https://upload.imagekit.io"
DEFAULT_FOLDER = "/autotag"
DEFAULT_MAX_TAGS = 10
MAX_TAGS_LIMIT = 30
DEFAULT_POLL_SECONDS = 1.0
CLEANUP_SECONDS = 5.0
"""Time allowed to delete the uploaded file, even when tagging ran out of time."""
REQUEST_ID_HEADERS = ("x-ik-requestid", "x-request-id")


class ImageKitProvider(Provider):
    name = "imagekit"
    default_endpoint = "https://api.imagekit.io"
    # The extensions hand the image to Rekognition and Cloud Vision: stay within Rekognition's
    # 5 MB for image bytes and the formats both accept.
    constraints = ImageConstraints(
        max_bytes=5_000_000,
        formats=frozenset({ImageFormat.JPEG, ImageFormat.PNG}),
    )
    capabilities = Capabilities(
        input_forms=(InputForm.BYTES,),
        auth="HTTP Basic with the private key",
        rate_limit="per account (HTTP 429); extension units per plan",
    )

    def __init__(self, config: ProviderConfig, context: ProviderContext) -> None:
        super().__init__(config, context)
        options = config.options
        names = options.get("extensions", ["google-auto-tagging"])
        if isinstance(names, str):
            names = [names]
        if not names or not all(n in EXTENSIONS for n in names):
            raise ConfigError(f"{config.key}: options.extensions must be a non-empty list of {EXTENSIONS}")
        self.extensions: tuple[str, ...] = tuple(dict.fromkeys(names))
        self.upload_endpoint = str(options.get("upload_endpoint", DEFAULT_UPLOAD_ENDPOINT)).rstrip("/")
        self.folder = "/" + str(options.get("folder", DEFAULT_FOLDER)).strip("/")
        self.delete_after = bool(options.get("delete_after", True))
        self.poll_seconds = float(options.get("poll_interval_seconds", DEFAULT_POLL_SECONDS))
        self.private_file = bool(options.get("private_file", False))

    async def tag(self, request: ProviderRequest) -> TagResult:
        (private_key,) = self.secret().require("private_key", provider=self.key)
        authorization = "Basic " + base64.b64encode(f"{private_key}:".encode()).decode()
        deadline = self.call_deadline(request)
        uploaded, request_id = await self._upload(request, authorization, deadline, private_key)
        file_id = uploaded.fileId
        if not file_id:
            raise ProviderResponseError("upload answer has no fileId", provider=self.key)
        details: dict[str, str | int | float | bool | None] = {"file_id": file_id}
        if request_id is not None:
            details["request_id"] = request_id
        try:
            settled, polls = await self._settle(uploaded, file_id, authorization, deadline, private_key)
        finally:
            if self.delete_after:
                details["deleted"] = await self._delete(file_id, authorization, private_key)
        details["polls"] = polls
        statuses = self._statuses(settled)
        details.update({f"extension:{name}": status for name, status in statuses.items()})
        if all(status == "failed" for status in statuses.values()):
            raise ProviderError(
                f"every auto-tagging extension failed ({', '.join(statuses)}; file {file_id})",
                provider=self.key,
                provider_code="extension_failed",
            )
        tags = self._tags(settled.AITags, {n for n, s in statuses.items() if s == "success"})
        status = ProviderStatus(
            provider=self.key, status=ProviderOutcome.OK, tag_count=len(tags), details=details
        )
        return TagResult(tags=tuple(tags), providers=(status,))

    # -- calls

    async def _upload(
        self, request: ProviderRequest, authorization: str, deadline: Deadline, secret: str
    ) -> tuple[FileAnswer, str | None]:
        opts = request.options
        min_confidence = 0 if opts.min_confidence is None else round(opts.min_confidence * 100)
        max_tags = DEFAULT_MAX_TAGS if opts.max_tags is None else min(opts.max_tags, MAX_TAGS_LIMIT)
        extensions = json.dumps(
            [{"name": n, "minConfidence": min_confidence, "maxTags": max_tags} for n in self.extensions]
        )
        image = request.image
        file_name = unique_file_name(image.data, image.format)
        fields = {
            "fileName": file_name,
            "folder": self.folder,
            "useUniqueFileName": "true",
            "isPrivateFile": "true" if self.private_file else "false",
            "extensions": extensions,
        }
        url = f"{self.upload_endpoint}{UPLOAD_PATH}"

        def build() -> httpx.Request:
            return httpx.Request(
                "POST",
                url,
                data=fields,
                files={"file": (file_name, image.data, image.content_type)},
                headers={"authorization": authorization},
            )

        return await self._call(build, deadline, secret, self.retry_policy)

    async def _settle(
        self,
        uploaded: FileAnswer,
        file_id: str,
        authorization: str,
        deadline: Deadline,
        secret: str,
    ) -> tuple[FileAnswer, int]:
        """Poll the file's details while any requested extension is pending."""
        current, polls = uploaded, 0
        url = f"{self.endpoint}{FILES_PATH}/{file_id}/details"
        while pending := [n for n, s in self._statuses(current).items() if s == "pending"]:
            still_pending = TransientError(
                f"auto-tagging still pending at the deadline ({', '.join(pending)}; file {file_id})",
                provider=self.key,
                code="extension_pending",
            )
            if deadline.remaining() <= self.poll_seconds:
                raise still_pending
            await deadline.clock.sleep(self.poll_seconds)
            polls += 1
            try:
                current, _ = await self._call(
                    lambda: httpx.Request("GET", url, headers={"authorization": authorization}),
                    deadline,
                    secret,
                    self.retry_policy,
                )
            except (ProviderTimeoutError, TransientError) as error:
                # The deadline ran out at or during a poll: the extension is what we waited for.
                if isinstance(error, ProviderTimeoutError) or error.code == "deadline":
                    raise still_pending from None
                raise
        return current, polls

    async def _delete(self, file_id: str, authorization: str, secret: str) -> bool:
        url = f"{self.endpoint}{FILES_PATH}/{file_id}"
        try:
            await self._call(
                lambda: httpx.Request("DELETE", url, headers={"authorization": authorization}),
                Deadline.after(min(CLEANUP_SECONDS, self.config.timeout_seconds), self.context.clock),
                secret,
                RetryPolicy(max_attempts=2),
            )
        except ProviderError as error:
            logger.warning(
                "could not delete the uploaded file",
                extra={
                    "provider": self.key,
                    "file_id": file_id,
                    "error_code": error.code,
                    "error": str(error),
                },
            )
            return False
        return True

    async def _call(
        self, build: Callable[[], httpx.Request], deadline: Deadline, secret: str, policy: RetryPolicy
    ) -> tuple[FileAnswer, str | None]:
        """The answer (empty for 204) and the provider's request id."""
        response = await self.send(
            build, deadline=deadline, check=lambda r: self._check(r, secret=secret), policy=policy
        )
        request_id = find_request_id(response, REQUEST_ID_HEADERS)
        if response.status_code == 204 or not response.content:
            return FileAnswer(), request_id
        return parse(FileAnswer, response.json(), provider=self.key, what="response is not JSON"), request_id

    def _check(self, response: httpx.Response, *, secret: str) -> None:
        if response.is_error:
            raise self._status_error(response, secret=secret)
        if response.status_code == 204 or not response.content:
            return
        if parse_optional(FileAnswer, response) is None:
            raise ProviderResponseError(
                f"response is not JSON (HTTP {response.status_code})",
                provider=self.key,
                request_id=find_request_id(response, REQUEST_ID_HEADERS),
            )

    def _status_error(self, response: httpx.Response, *, secret: str) -> ProviderError:
        status = response.status_code
        request_id = find_request_id(response, REQUEST_ID_HEADERS)
        body = parse_optional(ErrorBody, response)
        detail = body.message if body is not None else None
        return provider_error(
            status_class(status, default=ProviderResponseError),
            error_text(f"HTTP {status}", detail, secrets=(secret,), request_id=request_id),
            provider=self.key,
            provider_code=status,
            request_id=request_id,
            retry_after=_retry_after(response),
        )

    # -- results

    def _statuses(self, body: FileAnswer) -> dict[str, str]:
        """Status of each requested extension; a missing status with tags from it counts as success."""
        reported = body.extensionStatus or {}
        sources = {t.source for t in body.AITags}
        statuses: dict[str, str] = {}
        for name in self.extensions:
            status = reported.get(name)
            if status not in ("success", "failed", "pending"):
                status = "success" if name in sources else "unknown"
            statuses[name] = status
        return statuses

    def _tags(self, items: list[AITag], sources: set[str]) -> list[Tag]:
        pairs: list[tuple[str, float | None, str]] = []
        for item in items:
            name, source = item.name, item.source
            if name and name.strip() and (source in sources or not source):
                pairs.append((name, item.confidence, source or ""))
        # Documented values are percentages (e.g. 98.52); any value above 1 confirms the scale.
        scale = 100.0 if any(c is not None and c > 1.0 for _, c, _ in pairs) or not pairs else 1.0
        merged: dict[str, Tag] = {}
        for name, confidence, source in pairs:
            unit = None if confidence is None else min(1.0, max(0.0, confidence / scale))
            tag = Tag(name=name, confidence=unit, provider=self.key, categories=(source,) if source else ())
            current = merged.get(tag.key)
            if current is None:
                merged[tag.key] = tag
                continue
            best, other = (tag, current) if (unit or 0) > (current.confidence or 0) else (current, tag)
            categories = tuple(dict.fromkeys(best.categories + other.categories))
            merged[tag.key] = best.model_copy(update={"categories": categories})
        return sorted(merged.values(), key=lambda t: -(t.confidence or 0))


def unique_file_name(data: bytes, image_format: ImageFormat) -> str:
    """Content prefix (to find the file by image) plus a random part (never overwrite)."""
    extension = "jpg" if image_format is ImageFormat.JPEG else image_format.value
    return f"autotag-{hashlib.sha256(data).hexdigest()[:16]}-{uuid.uuid4().hex[:8]}.{extension}"


def _retry_after(response: httpx.Response) -> float | None:
    seconds = parse_retry_after(response.headers.get("retry-after"))
    if seconds is not None:
        return seconds
    reset_ms = numeric(response.headers.get("x-ratelimit-reset"))
    return None if reset_ms is None else max(0.0, reset_ms / 1000)
