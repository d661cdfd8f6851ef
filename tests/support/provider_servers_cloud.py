"""Local doubles of the cloud tagging APIs: Huawei Image Tagging V2 (+ IAM), Google Cloud Vision
``images:annotate``, and a Rekognition JSON endpoint for botocore over real HTTP.

All build on :class:`tests.support.provider_servers.ProviderServer` (127.0.0.1, free port,
scriptable replies, latency, request log, call counts). Each one checks credentials the way the
real service does, so a request the adapter builds wrongly is refused here too:

* :class:`HuaweiServer` issues IAM tokens (``POST /v3/auth/tokens`` → 201 + ``X-Subject-Token``),
  accepts ``X-Auth-Token`` for tokens it issued (``expire_tokens()`` makes the gateway answer
  APIG.0307), and verifies SDK-HMAC-SHA256 signatures by recomputing them from the bytes received.
* :class:`GoogleVisionServer` checks the API key (``?key=`` or ``x-goog-api-key``) and answers in
  Google's error envelope, including per-image errors inside an HTTP 200.
* :class:`RekognitionServer` speaks AWS JSON 1.1 for scripted errors and slow answers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote, unquote

from autotag.errors import ProviderError
from autotag.image import ImageFormat, PreparedImage, S3Location, SourceImage
from autotag.models import TagResult
from autotag.providers.base import EffectiveOptions, ProviderRequest
from autotag.retry import Deadline

from tests.support.images import solid_bytes
from tests.support.provider_servers import ProviderServer, RecordedRequest, Reply, image_kind

T = TypeVar("T")

# --- Huawei Image Tagging V2 + IAM -------------------------------------------------------------

HUAWEI_DOC_SUCCESS: dict[str, Any] = {
    "result": {
        "tags": [
            {
                "confidence": "37.51",
                "instances": [
                    {
                        "confidence": "92.38",
                        "bounding_box": {
                            "height": 133.32496056189905,
                            "top_left_x": 53.134917332575874,
                            "top_left_y": 254.21347984900842,
                            "width": 117.5866567171537,
                        },
                    }
                ],
                "tag": "Person",
                "i18n_tag": {"en": "person", "zh": "Chinese character for person"},
                "type": "Human",
                "i18n_type": {"en": "Human", "zh": "Chinese characters for human"},
            }
        ]
    }
}
"""The documented 200 example, verbatim (seeds/004)."""

HUAWEI_ERROR_STATUS = {
    "APIG.0101": 404,
    "APIG.0201": 504,
    "APIG.0301": 401,
    "APIG.0303": 401,
    "APIG.0307": 401,
    "APIG.0308": 429,
}
"""Gateway errors carry their own HTTP status; AIS errors are all HTTP 400 (as documented)."""

SIGNATURE_HEADER = re.compile(
    r"^SDK-HMAC-SHA256\s+Access=(?P<access>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),"
    r"\s*Signature=(?P<signature>[0-9a-f]+)$"
)


@dataclass(frozen=True)
class HuaweiTag:
    en: str
    zh: str
    confidence: float
    type_en: str = "object"
    type_zh: str = "物体"
    boxes: tuple[tuple[float, float, float, float, float], ...] = ()
    """(left, top, width, height, confidence) in pixels / 0-100."""


class HuaweiServer(ProviderServer):
    """IAM + the image tagging API on one server (point both endpoints at :attr:`url`)."""

    name = "huawei"
    IAM_PATH = "/v3/auth/tokens"

    def __init__(
        self,
        *,
        project_id: str = "0f51a9e00c80f40f2f3cc00be3572e74",
        region: str = "ap-southeast-1",
        username: str = "tagger",
        password: str = "iam-Passw0rd!test",
        domain_name: str = "example-domain",
        access_key: str = "HPUATESTACCESSKEY01",
        secret_key: str = "testSecretKeyForSigning0123456789abcdef",
        security_token: str | None = None,
        token_lifetime: timedelta = timedelta(hours=24),
        tags: Iterable[HuaweiTag] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.project_id = project_id
        self.region = region
        self.username = username
        self.password = password
        self.domain_name = domain_name
        self.access_key = access_key
        self.secret_key = secret_key
        self.security_token = security_token
        self.token_lifetime = token_lifetime
        self.tags = list(
            tags
            if tags is not None
            else (
                HuaweiTag("person", "人", 92.5, "object", "物体", ((10.0, 8.0, 20.0, 30.0, 88.0),)),
                HuaweiTag("dog", "狗", 81.25, "object", "物体", ((30.0, 20.0, 40.0, 30.0, 79.5),)),
                HuaweiTag("park", "公园", 64.0, "scene", "场景"),
                HuaweiTag("leisure", "休闲", 41.5, "concept", "概念"),
            )
        )
        self._tokens: dict[str, bool] = {}
        """Issued token → still valid."""
        self.signature_failures: list[str] = []
        """Why each rejected signature was rejected."""

    # -- helpers for tests

    @staticmethod
    def error(
        code: str,
        message: str = "error",
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        status = status or HUAWEI_ERROR_STATUS.get(code, 400)
        return Reply.json({"error_code": code, "error_msg": message}, status, **dict(headers or {}))

    def expire_tokens(self) -> None:
        """Tokens issued so far now get APIG.0307 (as after a password change)."""
        with self._lock:
            for token in self._tokens:
                self._tokens[token] = False

    @property
    def issued_tokens(self) -> list[str]:
        with self._lock:
            return list(self._tokens)

    @property
    def tagging_path(self) -> str:
        return f"/v2/{self.project_id}/image/tagging"

    # -- auth

    def authorized(self, request: RecordedRequest) -> bool:
        if request.path == self.IAM_PATH:
            return True  # IAM checks the password in route()
        token = request.header("x-auth-token")
        if token is not None:
            with self._lock:
                return self._tokens.get(token, False)
        return self.verify_signature(request)

    def unauthorized_reply(self, request: RecordedRequest) -> Reply:
        token = request.header("x-auth-token")
        if token is not None:
            with self._lock:
                known = token in self._tokens
            if known:
                return self.error("APIG.0307", "The token must be updated.")
            return self.error("APIG.0301", "Incorrect IAM authentication information: decrypt token fail")
        if request.header("authorization") is None:
            return self.error("APIG.0301", "Incorrect IAM authentication information: x-auth-token not found")
        return self.error("APIG.0303", "Incorrect app authentication information: verify aksk signature fail")

    def verify_signature(self, request: RecordedRequest) -> bool:
        """Recompute the SDK-HMAC-SHA256 signature from what was received (independently of the
        adapter's signer), so any canonicalization difference fails here."""
        reason = self._signature_problem(request)
        if reason is not None:
            with self._lock:
                self.signature_failures.append(reason)
        return reason is None

    def _signature_problem(self, request: RecordedRequest) -> str | None:
        match = SIGNATURE_HEADER.match(request.header("authorization") or "")
        if match is None:
            return "malformed Authorization header"
        if match["access"] != self.access_key:
            return "unknown access key"
        signed = match["signed"].split(";")
        if signed != sorted(signed) or not {"host", "x-sdk-date", "content-type"} <= set(signed):
            return "signed headers must be sorted and include content-type, host, x-sdk-date"
        if any(request.header(name) is None for name in signed):
            return "a signed header is missing"
        if self.security_token is not None and (
            "x-security-token" not in signed or request.header("x-security-token") != self.security_token
        ):
            return "temporary credentials need a signed X-Security-Token"
        sdk_date = request.header("x-sdk-date") or ""
        try:
            when = datetime.strptime(sdk_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            return "bad X-Sdk-Date"
        if abs((datetime.now(UTC) - when).total_seconds()) > 15 * 60:
            return "X-Sdk-Date more than 15 minutes off"
        segments = [quote(part, safe="~") for part in unquote(request.path).split("/")]
        uri = "/".join(segments)
        if not uri.endswith("/"):
            uri += "/"
        query_pairs = sorted((key, value) for key, values in request.query.items() for value in values)
        query = "&".join(quote(k, safe="~") + "=" + quote(v, safe="~") for k, v in query_pairs)
        header_lines = ""
        for name in signed:
            header_lines += name + ":" + (request.header(name) or "").strip() + "\n"
        canonical = (
            f"{request.method}\n{uri}\n{query}\n{header_lines}\n{';'.join(signed)}\n"
            f"{hashlib.sha256(request.body).hexdigest()}"
        )
        to_sign = "SDK-HMAC-SHA256\n" + sdk_date + "\n" + hashlib.sha256(canonical.encode()).hexdigest()
        expected = hmac.new(self.secret_key.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, match["signature"]):
            return "signature mismatch"
        return None

    def image_of(self, request: RecordedRequest) -> bytes | None:
        body = request.json if isinstance(request.json, dict) else {}
        image = body.get("image")
        if not isinstance(image, str) or not image:
            return None
        return base64.b64decode(image, validate=True)

    def error_reply(self) -> Reply:
        return self.error("AIS.0506", "Internal error")

    def throttle_reply(self, seconds: float) -> Reply:
        return self.error("APIG.0308", "The request is throttled", headers={"Retry-After": "1"})

    # -- routes

    def route(self, request: RecordedRequest) -> Reply:
        if request.method == "POST" and request.path == self.IAM_PATH:
            return self._issue_token(request)
        if request.method == "POST" and request.path == self.tagging_path:
            return self._tag(request)
        return self.error("APIG.0101", "The API does not exist or has not been published in the environment")

    def _issue_token(self, request: RecordedRequest) -> Reply:
        body = request.json if isinstance(request.json, dict) else {}
        auth: dict[str, Any] = body["auth"] if isinstance(body.get("auth"), dict) else {}
        identity = auth.get("identity") or {}
        user = ((identity.get("password") or {}).get("user")) or {}
        project = (auth.get("scope") or {}).get("project") or {}
        refused = Reply.json(
            {
                "error": {
                    "code": 401,
                    "message": "The username or password is wrong.",
                    "title": "Unauthorized",
                }
            },
            401,
        )
        if identity.get("methods") != ["password"]:
            return Reply.json(
                {"error": {"code": 400, "message": "Invalid identity", "title": "Bad Request"}}, 400
            )
        if (
            user.get("name") != self.username
            or user.get("password") != self.password
            or (user.get("domain") or {}).get("name") != self.domain_name
        ):
            return refused
        if project.get("id") not in (None, self.project_id) or project.get("name") not in (None, self.region):
            return Reply.json(
                {"error": {"code": 404, "message": "project not found", "title": "Not Found"}}, 404
            )
        if not project:
            return Reply.json(
                {"error": {"code": 400, "message": "a project scope is required", "title": "Bad Request"}},
                400,
            )
        token = "MIIT" + secrets.token_urlsafe(48)
        issued = datetime.now(UTC)
        with self._lock:
            self._tokens[token] = True
        answer = {
            "token": {
                "methods": ["password"],
                "issued_at": issued.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "expires_at": (issued + self.token_lifetime).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "project": {
                    "id": self.project_id,
                    "name": self.region,
                    "domain": {"id": "d0000000000000000000000000000001", "name": self.domain_name},
                },
                "user": {"name": self.username, "domain": {"name": self.domain_name}},
            }
        }
        return Reply.json(answer, 201, **{"X-Subject-Token": token})

    def _tag(self, request: RecordedRequest) -> Reply:
        body = request.json
        if not isinstance(body, dict):
            return self.error("AIS.0014", "The JSON format of the request body is incorrect.")
        image, url = body.get("image") or "", body.get("url") or ""
        if bool(image) == bool(url):
            return self.error("AIS.0011", "Configure either image or url.")
        if image:
            try:
                data = base64.b64decode(image, validate=True)
            except (binascii.Error, ValueError):
                return self.error("AIS.0015", "Base64 decoding failed.")
            if len(image) > 10 * 1024 * 1024:
                return self.error("AIS.0504", "The image size exceeds the limit.")
            if image_kind(data) not in ("jpeg", "png", "bmp", "webp"):
                return self.error("AIS.0502", "The image format is not supported.")
        elif not str(url).startswith(("http://", "https://")):
            return self.error("AIS.0022", "The URL is invalid.")
        language = body.get("language", "zh")
        if language not in ("zh", "en"):
            return self.error("AIS.0501", "Invalid parameter: language")
        threshold = body.get("threshold", 0.0)
        limit = body.get("limit", 50)
        if not isinstance(threshold, (int, float)) or not 0 <= threshold <= 100:
            return self.error("AIS.0501", "Invalid parameter: threshold")
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 150:
            return self.error("AIS.0501", "Invalid parameter: limit")
        kept = sorted((t for t in self.tags if t.confidence >= threshold), key=lambda t: -t.confidence)
        tags = []
        for tag in kept[:limit]:
            item: dict[str, Any] = {
                "confidence": f"{tag.confidence:.2f}",
                "type": tag.type_en if language == "en" else tag.type_zh,
                "tag": tag.en if language == "en" else tag.zh,
                "i18n_tag": {"en": tag.en, "zh": tag.zh},
                "i18n_type": {"en": tag.type_en, "zh": tag.type_zh},
            }
            if tag.boxes:
                item["instances"] = [
                    {
                        "confidence": f"{c:.2f}",
                        "bounding_box": {"top_left_x": x, "top_left_y": y, "width": w, "height": h},
                    }
                    for x, y, w, h, c in tag.boxes
                ]
            tags.append(item)
        return Reply.json({"result": {"tags": tags}})


# --- Google Cloud Vision images:annotate ------------------------------------------------------

GOOGLE_LABELS: tuple[dict[str, Any], ...] = (
    {"mid": "/m/01c8br", "description": "Street", "score": 0.87294734, "topicality": 0.87294734},
    {"mid": "/m/06pg22", "description": "Snapshot", "score": 0.8523099, "topicality": 0.8523099},
    {"mid": "/m/0dx1j", "description": "Town", "score": 0.8481104, "topicality": 0.8481104},
    {"mid": "/m/01d74z", "description": "Night", "score": 0.80408716, "topicality": 0.80408716},
    {"mid": "/m/01lwf0", "description": "Alley", "score": 0.7133322, "topicality": 0.7133322},
)
GOOGLE_OBJECTS: tuple[dict[str, Any], ...] = (
    {
        "mid": "/m/01bqk0",
        "name": "Bicycle wheel",
        "score": 0.89648587,
        "languageCode": "en",
        "boundingPoly": {
            "normalizedVertices": [
                {"x": 0.32076266, "y": 0.78941387},
                {"x": 0.43812272, "y": 0.78941387},
                {"x": 0.43812272, "y": 0.97331065},
                {"x": 0.32076266, "y": 0.97331065},
            ]
        },
    },
    {
        "mid": "/m/0199g",
        "name": "Bicycle",
        "score": 0.886761,
        "languageCode": "en",
        # proto3 JSON leaves out zero coordinates: the first vertex is (0, 0.6616471)
        "boundingPoly": {
            "normalizedVertices": [
                {"y": 0.6616471},
                {"x": 0.9004392, "y": 0.6616471},
                {"x": 0.9004392, "y": 0.9851424},
                {"y": 0.9851424},
            ]
        },
    },
    {
        "mid": "/m/01c8br",
        "name": "Street",
        "score": 0.61,
        "languageCode": "en",
        "boundingPoly": {"normalizedVertices": [{}, {"x": 1}, {"x": 1, "y": 1}, {"y": 1}]},
    },
)


def google_error(
    code: int,
    status: str,
    message: str,
    *,
    reason: str | None = None,
    metadata: Mapping[str, str] | None = None,
    **headers: str,
) -> Reply:
    """Google's HTTP error envelope, with an ErrorInfo detail when `reason` is given."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if reason is not None:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "googleapis.com",
                "metadata": {"service": "vision.googleapis.com", **dict(metadata or {})},
            }
        ]
    return Reply.json({"error": error}, code, **headers)


def google_image_error(code: int, message: str) -> Reply:
    """A per-image error inside an HTTP 200 (``responses[0].error`` is a google.rpc.Status)."""
    return Reply.json({"responses": [{"error": {"code": code, "message": message}}]})


class GoogleVisionServer(ProviderServer):
    name = "google_vision"
    PATH = "/v1/images:annotate"

    def __init__(self, *, api_key: str = "AIzaTestKey-0123456789abcdefghijklmno", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key
        self.labels = [dict(label) for label in GOOGLE_LABELS]
        self.objects = [dict(obj) for obj in GOOGLE_OBJECTS]

    @staticmethod
    def key_of(request: RecordedRequest) -> str | None:
        return request.param("key") or request.header("x-goog-api-key")

    def authorized(self, request: RecordedRequest) -> bool:
        return self.key_of(request) == self.api_key

    def unauthorized_reply(self, request: RecordedRequest) -> Reply:
        if self.key_of(request) is None:
            return google_error(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established identity).",
            )
        return google_error(
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
            reason="API_KEY_INVALID",
        )

    def image_of(self, request: RecordedRequest) -> bytes | None:
        try:
            content = request.json["requests"][0]["image"]["content"]
        except (KeyError, IndexError, TypeError):
            return None
        return base64.b64decode(content, validate=True)

    def error_reply(self) -> Reply:
        return google_error(503, "UNAVAILABLE", "The service is currently unavailable.")

    def throttle_reply(self, seconds: float) -> Reply:
        return google_error(
            429,
            "RESOURCE_EXHAUSTED",
            "Quota exceeded for quota metric 'Requests' and limit 'Requests per minute'.",
            reason="RATE_LIMIT_EXCEEDED",
            metadata={"quota_limit": "DefaultRequestsPerMinutePerProject"},
            **{"Retry-After": "1"},
        )

    def route(self, request: RecordedRequest) -> Reply:
        if request.method != "POST" or request.path != self.PATH:
            return google_error(404, "NOT_FOUND", "Requested entity was not found.")
        body = request.json
        entries = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(entries, list) or not 1 <= len(entries) <= 16:
            return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        return Reply.json({"responses": [self._annotate(entry) for entry in entries]})

    def _annotate(self, entry: Any) -> dict[str, Any]:
        image = entry.get("image") if isinstance(entry, dict) else None
        if not isinstance(image, dict):
            return {"error": {"code": 3, "message": "image is required"}}
        if "content" in image:
            try:
                data = base64.b64decode(image["content"], validate=True)
            except (binascii.Error, ValueError, TypeError):
                return {"error": {"code": 3, "message": "Bad image data."}}
            if image_kind(data) is None:
                return {"error": {"code": 3, "message": "Bad image data."}}
        elif not str((image.get("source") or {}).get("imageUri", "")).startswith(("http", "gs://")):
            return {"error": {"code": 3, "message": "image.source is invalid"}}
        answer: dict[str, Any] = {}
        for feature in entry.get("features") or []:
            limit = int(feature.get("maxResults") or 10)
            if feature.get("type") == "LABEL_DETECTION":
                answer["labelAnnotations"] = self.labels[:limit]
            elif feature.get("type") == "OBJECT_LOCALIZATION":
                answer["localizedObjectAnnotations"] = self.objects[:limit]
        return answer


# --- Rekognition over AWS JSON 1.1 -------------------------------------------------------------


def aws_json_error(code: str, message: str, status: int = 400, **headers: str) -> Reply:
    """An AWS JSON 1.1 error (botocore reads the code from ``__type``)."""
    body = {"__type": f"com.amazonaws.rekognition#{code}", "Message": message}
    return Reply(
        status=status,
        body=body,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "x-amzn-RequestId": secrets.token_hex(8),
            **headers,
        },
    )


class RekognitionServer(ProviderServer):
    """Answers ``RekognitionService.DetectLabels`` and ``DetectModerationLabels`` (endpoint_url of
    a boto3 client), for what the AWS emulator cannot do: moderation, scripted errors, throttling
    and slow answers. ``labels`` / ``moderation_labels`` are the answers' lists."""

    name = "rekognition"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.labels: list[dict[str, Any]] = [
            {"Name": "Dog", "Confidence": 97.5, "Parents": [{"Name": "Animal"}, {"Name": "Pet"}]},
        ]
        self.moderation_labels: list[dict[str, Any]] = [
            {"Name": "Violence", "ParentName": "", "Confidence": 88.0, "TaxonomyLevel": 1},
            {"Name": "Weapons", "ParentName": "Violence", "Confidence": 81.5, "TaxonomyLevel": 2},
        ]

    def operations(self) -> list[str]:
        return [(r.header("x-amz-target") or "").rpartition(".")[2] for r in self.requests]

    def route(self, request: RecordedRequest) -> Reply:
        target = request.header("x-amz-target") or ""
        if not (request.header("authorization") or "").startswith("AWS4-HMAC-SHA256 Credential="):
            return aws_json_error("MissingAuthenticationTokenException", "Missing Authentication Token", 403)
        body = request.json if isinstance(request.json, dict) else {}
        if not isinstance(body.get("Image"), dict):
            return aws_json_error("InvalidParameterException", "Request has invalid parameters")
        headers = {"Content-Type": "application/x-amz-json-1.1"}
        if target == "RekognitionService.DetectLabels":
            answer = {"Labels": self.labels, "LabelModelVersion": "3.0"}
            return Reply(status=200, body=answer, headers=headers)
        if target == "RekognitionService.DetectModerationLabels":
            answer = {"ModerationLabels": self.moderation_labels, "ModerationModelVersion": "7.0"}
            return Reply(status=200, body=answer, headers=headers)
        return aws_json_error("UnknownOperationException", f"unknown target {target}")


# --- Test helpers ------------------------------------------------------------------------------


def image_data(width: int = 640, height: int = 480, fmt: ImageFormat = ImageFormat.JPEG) -> bytes:
    return solid_bytes((90, 140, 200), width, height, fmt)


def cloud_request(
    *,
    width: int = 640,
    height: int = 480,
    fmt: ImageFormat = ImageFormat.JPEG,
    data: bytes | None = None,
    lang: str = "en",
    min_confidence: float | None = None,
    max_tags: int | None = None,
    s3: S3Location | None = None,
    seconds: float = 10.0,
    source_size: tuple[int, int] | None = None,
) -> ProviderRequest:
    """A request as the pipeline makes it; `source_size` makes the original differ from the
    prepared image (as after a downscale)."""
    data = data if data is not None else image_data(width, height, fmt)
    source_width, source_height = source_size or (width, height)
    source = SourceImage(
        data=data,
        format=fmt,
        width=source_width,
        height=source_height,
        sha256=hashlib.sha256(data).hexdigest(),
    )
    prepared = PreparedImage(data=data, format=fmt, width=width, height=height, reencoded=False)
    return ProviderRequest(
        image=prepared,
        source=source,
        options=EffectiveOptions(lang=lang, min_confidence=min_confidence, max_tags=max_tags),
        deadline=Deadline.after(seconds),
        s3=s3,
    )


def run(make: Callable[[], Awaitable[T]]) -> T:
    """Run one coroutine in a fresh event loop (tests are sync; the adapters are async)."""

    async def main() -> T:
        return await make()

    return asyncio.run(main())


def ok(outcome: TagResult | ProviderError) -> TagResult:
    """The result of a call that should have succeeded."""
    assert isinstance(outcome, TagResult), f"expected a result, got {outcome!r}"
    return outcome


def failed(outcome: TagResult | ProviderError) -> ProviderError:
    """The error of a call that should have failed."""
    assert isinstance(outcome, ProviderError), f"expected an error, got {outcome!r}"
    return outcome
