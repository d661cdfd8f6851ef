"""AWS Rekognition ``DetectLabels`` (and, with ``moderation: true``, ``DetectModerationLabels``).

boto3 is synchronous, so calls run in a worker thread. Retries are botocore's *standard* mode
(throttling and 5xx with backoff); the client is built on first use from the context's boto3
session, never at import. An image already in S3 (and within Rekognition's S3 limits) is passed
as ``S3Object`` so its bytes never travel through the function; otherwise the prepared bytes go.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import boto3
from botocore import exceptions as boto
from botocore.config import Config

from autotag.errors import (
    AuthError,
    ProviderBadInputError,
    ProviderError,
    ProviderTimeoutError,
    QuotaError,
    ThrottledError,
    TransientError,
)
from autotag.image import ImageConstraints, ImageFormat
from autotag.models import BoundingBox, ProviderOutcome, ProviderStatus, Tag, TagKind, TagResult
from autotag.providers.base import Capabilities, InputForm, Provider, ProviderRequest
from autotag.providers.failures import provider_error, status_class
from autotag.providers.redaction import redact_library_logs
from autotag.providers.responses import parse
from autotag.providers.responses.rekognition import (
    DetectLabelsResponse,
    DetectModerationLabelsResponse,
    Instance,
    Named,
)

S3_OBJECT_MAX_BYTES = 15 * 1024 * 1024
CONNECT_TIMEOUT_SECONDS = 3.0

THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "TooManyRequestsException",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
    }
)
BAD_INPUT_CODES = frozenset(
    {
        "InvalidImageFormatException",
        "ImageTooLargeException",
        "InvalidParameterException",
        "InvalidS3ObjectException",
        "ValidationException",
    }
)
AUTH_CODES = frozenset(
    {
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "InvalidClientTokenId",
        "MissingAuthenticationToken",
    }
)
EXPIRED_CODES = frozenset({"ExpiredTokenException", "ExpiredToken", "RequestExpired"})
"""Temporary credentials ran out: the client is rebuilt so fresh credentials are picked up."""
QUOTA_CODES = frozenset({"HumanLoopQuotaExceededException", "ServiceQuotaExceededException"})
CONFIG_CODES = frozenset({"ResourceNotFoundException", "ResourceNotReadyException"})


class RekognitionProvider(Provider):
    name = "rekognition"
    constraints = ImageConstraints(
        max_bytes=5 * 1024 * 1024,  # Image.Bytes; S3 objects may be 15 MB
        max_side=10_000,
        min_side=80,
        formats=frozenset({ImageFormat.JPEG, ImageFormat.PNG}),
    )
    capabilities = Capabilities(
        input_forms=(InputForm.BYTES, InputForm.S3),
        boxes=True,
        auth="IAM (SigV4, the function's role)",
        rate_limit="per-account TPS quota per region (Service Quotas)",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client: Any = None
        self._client_lock = threading.Lock()

    @property
    def client(self) -> Any:
        """The boto3 Rekognition client, built on first use (thread-safe, then shared)."""
        with self._client_lock:
            if self._client is None:
                self._client = self._build_client()
            return self._client

    def _build_client(self) -> Any:
        redact_library_logs()
        options = self.config.options
        session = self.context.boto3_session or boto3.session.Session()
        config = Config(
            # total_max_attempts counts the first call (botocore's max_attempts counts retries only)
            retries={"mode": "standard", "total_max_attempts": self.config.max_attempts},
            connect_timeout=float(options.get("connect_timeout_seconds", CONNECT_TIMEOUT_SECONDS)),
            read_timeout=self.config.timeout_seconds,
            user_agent_extra="autotag",
        )
        return session.client(
            "rekognition",
            region_name=options.get("region"),
            endpoint_url=self.config.endpoint or self.context.aws_endpoint_url,
            config=config,
        )

    def on_auth_error(self) -> None:
        """Rebuild the client next time (its credentials may have expired or rotated)."""
        with self._client_lock:
            self._client = None

    # -- tagging --------------------------------------------------------------------------------

    async def tag(self, request: ProviderRequest) -> TagResult:
        image = self._image(request)
        labels_params = self._labels_params(request, image)
        moderation = bool(self.config.options.get("moderation"))
        try:
            return await self._tag_with(request, labels_params, moderation)
        except ProviderBadInputError as error:
            if error.provider_code != "InvalidS3ObjectException" or "S3Object" not in image:
                raise
            # Rekognition cannot read the object (other region, no access): send the bytes instead.
            fallback = self._labels_params(request, {"Bytes": request.image.data})
            return await self._tag_with(request, fallback, moderation)

    async def _tag_with(
        self, request: ProviderRequest, params: dict[str, Any], moderation: bool
    ) -> TagResult:
        calls = [self._call(request, "detect_labels", params)]
        if moderation:
            moderation_params: dict[str, Any] = {"Image": params["Image"]}
            if "MinConfidence" in params:
                moderation_params["MinConfidence"] = params["MinConfidence"]
            calls.append(self._call(request, "detect_moderation_labels", moderation_params))
        answers = await asyncio.gather(*calls)
        labels = parse(
            DetectLabelsResponse, answers[0], provider=self.key, what="DetectLabels answer has no Labels list"
        )
        tags = self._labels(labels)
        if moderation:
            tags += self._moderation(
                parse(
                    DetectModerationLabelsResponse,
                    answers[1],
                    provider=self.key,
                    what="DetectModerationLabels answer has no list",
                )
            )
        details: dict[str, str | int | float | bool | None] = {}
        if labels.LabelModelVersion is not None:
            details["label_model_version"] = labels.LabelModelVersion
        result = TagResult(tags=tuple(tags))
        if details:
            status = ProviderStatus(provider=self.key, status=ProviderOutcome.OK, details=details)
            result = result.model_copy(update={"providers": (status,)})
        return result

    def _image(self, request: ProviderRequest) -> dict[str, Any]:
        source, location = request.source, request.s3
        fits_s3 = (
            location is not None
            and self.config.options.get("use_s3", True)
            and source.size <= S3_OBJECT_MAX_BYTES
            and source.format in self.constraints.formats
            and max(source.width, source.height) <= (self.constraints.max_side or 0)
            and min(source.width, source.height) >= (self.constraints.min_side or 0)
        )
        if fits_s3 and location is not None:
            s3_object = {"Bucket": location.bucket, "Name": location.key}
            if location.version_id:
                s3_object["Version"] = location.version_id
            return {"S3Object": s3_object}
        return {"Bytes": request.image.data}

    def _labels_params(self, request: ProviderRequest, image: dict[str, Any]) -> dict[str, Any]:
        options = request.options
        params: dict[str, Any] = {"Image": image}
        if options.max_tags is not None:
            params["MaxLabels"] = max(0, options.max_tags)
        if options.min_confidence is not None:
            params["MinConfidence"] = round(options.min_confidence * 100, 4)
        return params

    async def _call(self, request: ProviderRequest, operation: str, params: dict[str, Any]) -> Any:
        remaining = request.deadline.cap(self.config.timeout_seconds * max(1, self.config.max_attempts))
        if remaining <= 0:
            raise ProviderTimeoutError("deadline reached", provider=self.key)
        method: Callable[..., Any] = getattr(self.client, operation)
        try:
            return await asyncio.wait_for(asyncio.to_thread(method, **params), timeout=remaining)
        except TimeoutError:
            raise ProviderTimeoutError(f"{operation} did not answer in time", provider=self.key) from None
        except Exception as exc:  # botocore's errors are mapped in one place
            raise self._error(exc, operation) from None

    def _error(self, exc: Exception, operation: str) -> Exception:
        if isinstance(exc, boto.ClientError):
            return self._client_error(exc)
        if isinstance(exc, (boto.ConnectTimeoutError, boto.ReadTimeoutError)):
            return ProviderTimeoutError(f"{operation} timed out ({type(exc).__name__})", provider=self.key)
        if isinstance(exc, (boto.EndpointConnectionError, boto.ConnectionClosedError, boto.HTTPClientError)):
            return TransientError(f"{operation}: connection failed ({type(exc).__name__})", provider=self.key)
        if isinstance(exc, (boto.NoCredentialsError, boto.PartialCredentialsError)):
            return AuthError("no AWS credentials available", provider=self.key, code="auth_config")
        if isinstance(exc, boto.ParamValidationError):
            return ProviderBadInputError(f"{operation}: invalid parameters", provider=self.key)
        if isinstance(exc, boto.BotoCoreError):
            return TransientError(f"{operation} failed ({type(exc).__name__})", provider=self.key)
        return exc

    def _client_error(self, exc: Any) -> ProviderError:
        error = exc.response.get("Error", {})
        metadata = exc.response.get("ResponseMetadata", {})
        code = str(error.get("Code") or "")
        message = str(error.get("Message") or code or "request failed")[:300]
        status = int(metadata.get("HTTPStatusCode") or 0)
        if code in THROTTLING_CODES:
            error_class: type[ProviderError] = ThrottledError
        elif code in TRANSIENT_CODES:
            error_class = TransientError
        elif code in BAD_INPUT_CODES:
            error_class = ProviderBadInputError
        elif code in AUTH_CODES or code in EXPIRED_CODES:
            error_class = AuthError
        elif code in QUOTA_CODES:
            error_class = QuotaError
        elif code in CONFIG_CODES:
            error_class = ProviderError
        else:
            error_class = status_class(status, default=ProviderBadInputError)
        return provider_error(
            error_class,
            message,
            provider=self.key,
            provider_code=code or status,
            request_id=metadata.get("RequestId"),
            code="provider_config" if code in CONFIG_CODES else None,
        )

    # -- normalizing ----------------------------------------------------------------------------

    def _labels(self, answer: DetectLabelsResponse) -> list[Tag]:
        tags = []
        for label in answer.Labels:
            name = label.Name.strip()
            boxes = tuple(box for instance in label.Instances if (box := _box(instance)) is not None)
            tags.append(
                Tag(
                    name=name,
                    confidence=_confidence(label.Confidence),
                    provider=self.key,
                    kind=TagKind.OBJECT if boxes else TagKind.LABEL,
                    names={"en": name},
                    parents=_names(label.Parents),
                    aliases=_names(label.Aliases),
                    categories=_names(label.Categories),
                    boxes=boxes,
                )
            )
        return tags

    def _moderation(self, answer: DetectModerationLabelsResponse) -> list[Tag]:
        return [
            Tag(
                name=label.Name.strip(),
                confidence=_confidence(label.Confidence),
                provider=self.key,
                kind=TagKind.MODERATION,
                parents=(label.ParentName,) if label.ParentName else (),
            )
            for label in answer.ModerationLabels
        ]


def _names(items: list[Named]) -> tuple[str, ...]:
    return tuple(item.Name.strip() for item in items)


def _confidence(value: float | None) -> float | None:
    return None if value is None else min(1.0, max(0.0, value / 100.0))


def _box(instance: Instance) -> BoundingBox | None:
    box = instance.BoundingBox
    if box is None:
        return None
    # ratios of the image size; they may run past the frame, hence the clamp
    return BoundingBox.clamped(box.Left, box.Top, box.Width, box.Height, _confidence(instance.Confidence))
