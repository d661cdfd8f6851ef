"""The provider interface: what a tagging backend declares, receives and returns."""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from autotag.config import ProviderConfig
from autotag.credentials import Secret, SecretSource
from autotag.image import ImageConstraints, PreparedImage, S3Location, SourceImage
from autotag.models import ProviderOutcome, ProviderStatus, Tag, TagResult
from autotag.retry import SYSTEM_CLOCK, Clock, Deadline, RetryPolicy

if TYPE_CHECKING:
    import httpx  # the client is made by autotag.providers.http, loaded on first use


class InputForm(StrEnum):
    BYTES = "bytes"
    BASE64 = "base64"
    DATA_URL = "data_url"
    URL = "url"
    S3 = "s3"


class Capabilities(BaseModel):
    model_config = ConfigDict(frozen=True)

    input_forms: tuple[InputForm, ...]
    languages: tuple[str, ...] | None = None
    """Language codes the provider answers in; None means English only with no choice."""
    confidences: bool = True
    boxes: bool = False
    captions: bool = False
    classification: bool = False
    prompt: bool = False
    needs_network: bool = True
    attributes_only: bool = False
    """Its tags describe the file (colours, orientation, camera), not what the picture shows: merged
    results list them after the content tags of other providers."""
    auth: str = "api key"
    rate_limit: str | None = None
    default_rate_limit_per_minute: float | None = None


Presigner = Callable[[S3Location, int], str]
"""Makes a presigned GET URL for an S3 object, valid for N seconds."""


@dataclass
class ProviderContext:
    """What a provider may use: shared HTTP client, credentials, clock, AWS access."""

    http: httpx.AsyncClient
    credentials: SecretSource
    clock: Clock = SYSTEM_CLOCK
    presign: Presigner | None = None
    boto3_session: Any = None
    """A boto3 Session for AWS-backed providers (None: boto3's default session)."""
    aws_endpoint_url: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    """Process-wide provider state (e.g. cached tokens), keyed by provider id."""


@dataclass(frozen=True)
class EffectiveOptions:
    """Request options merged over the provider's configuration."""

    lang: str
    min_confidence: float | None
    max_tags: int | None
    prompt: str | None = None
    choices: tuple[str, ...] | None = None
    single: bool | None = None


@dataclass(frozen=True)
class ProviderRequest:
    image: PreparedImage
    """The image made fit for this provider's constraints."""
    source: SourceImage
    """The original (for EXIF and for providers that read the original size)."""
    options: EffectiveOptions
    deadline: Deadline
    s3: S3Location | None = None
    """Where the original lives, when it is an S3 object (providers may read it there)."""


class Provider(ABC):
    """One tagging backend. Subclasses set the class attributes and implement :meth:`tag`."""

    name: ClassVar[str]
    constraints: ClassVar[ImageConstraints]
    capabilities: ClassVar[Capabilities]
    default_endpoint: ClassVar[str | None] = None

    def __init__(self, config: ProviderConfig, context: ProviderContext) -> None:
        self.config = config
        self.context = context

    @property
    def key(self) -> str:
        return self.config.key

    @property
    def endpoint(self) -> str:
        endpoint = self.config.endpoint or self.default_endpoint
        if not endpoint:
            raise ValueError(f"provider {self.key} has no endpoint")
        return endpoint.rstrip("/")

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.config.max_attempts)

    def call_deadline(self, request: ProviderRequest) -> Deadline:
        """The request's deadline shortened to this provider's budget (``timeout_seconds``, retries
        included)."""
        return request.deadline.within(self.config.timeout_seconds)

    def secret(self, *, refresh: bool = False) -> Secret:
        return self.context.credentials.get(self.config, refresh=refresh)

    async def send(
        self,
        build: Callable[[], httpx.Request],
        *,
        deadline: Deadline,
        check: Callable[[httpx.Response], None] | None = None,
        policy: RetryPolicy | None = None,
    ) -> httpx.Response:
        """One HTTP call through the shared client, with this provider's retries (see
        :func:`autotag.providers.http.send`; loaded here, on first use, not at cold start)."""
        from autotag.providers.http import send

        return await send(
            self.context.http,
            build,
            provider=self.key,
            deadline=deadline,
            policy=policy or self.retry_policy,
            check=check,
        )

    async def send_json(
        self,
        url: str,
        body: object,
        *,
        headers: dict[str, str],
        deadline: Deadline,
        check: Callable[[httpx.Response], None] | None = None,
    ) -> httpx.Response:
        """POST ``body`` as JSON through :meth:`send` (encoded once, a fresh request per attempt)."""
        import httpx

        payload = json.dumps(body).encode()

        def build() -> httpx.Request:
            return httpx.Request(
                "POST", url, content=payload, headers={"content-type": "application/json", **headers}
            )

        return await self.send(build, deadline=deadline, check=check)

    def on_auth_error(self) -> None:  # noqa: B027 - optional hook
        """Drop cached credentials/tokens; the pipeline then retries once with fresh ones."""

    @abstractmethod
    async def tag(self, request: ProviderRequest) -> TagResult:
        """Tag one image. Raise a :class:`autotag.errors.ProviderError` subclass on failure.

        Return normalized tags (confidence 0..1 or None, boxes 0..1); the pipeline applies
        min_confidence/max_tags again after normalizing and records latency and status.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release provider-held resources."""


class LocalProvider(Provider):
    """A provider that computes its tags in-process: :meth:`tags_for` runs in a worker thread so the
    event loop (and the other providers' calls) keep going."""

    async def tag(self, request: ProviderRequest) -> TagResult:
        tags = await asyncio.to_thread(self.tags_for, request)
        status = ProviderStatus(provider=self.key, status=ProviderOutcome.OK, tag_count=len(tags))
        return TagResult(tags=tuple(tags), providers=(status,))

    @abstractmethod
    def tags_for(self, request: ProviderRequest) -> list[Tag]:
        """The tags for one image (blocking work is fine here)."""
