"""Huawei Cloud Image Tagging V2: ``POST /v2/{project_id}/image/tagging``.

Two ways to authenticate, chosen by what the secret holds:

* IAM token: ``username`` + ``password`` + ``domain_name`` (an IAM user). A project-scoped token is
  requested from ``POST /v3/auth/tokens`` (the token is the ``X-Subject-Token`` response header),
  cached in the provider context until close to its expiry (24 h), dropped and fetched again once
  when the gateway says it expired (APIG.0301 / APIG.0307).
* AK/SK: ``access_key`` + ``secret_key`` (+ ``security_token`` for temporary keys). Every request is
  signed with SDK-HMAC-SHA256 (canonical request, ``X-Sdk-Date``, ``Authorization`` header).

Nearly every service error arrives as HTTP 400, internal errors included, so errors are classified
by ``error_code`` (AIS.*, APIG.*, ModelArts.*), not by HTTP status.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import urllib.parse
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from autotag.errors import (
    AuthError,
    ProviderBadInputError,
    ProviderError,
    ProviderResponseError,
    QuotaError,
    ThrottledError,
    TransientError,
)
from autotag.image import ImageConstraints, ImageFormat
from autotag.models import BoundingBox, Tag, TagKind, TagResult
from autotag.providers.base import Capabilities, InputForm, Provider, ProviderRequest
from autotag.providers.http import as_list, error_for_status, json_body, parse_retry_after, send
from autotag.retry import Deadline

DEFAULT_REGION = "ap-southeast-1"
DEFAULT_IAM_ENDPOINT = "https://iam.myhuaweicloud.com"
TOKEN_LIFETIME_SECONDS = 24 * 3600
TOKEN_REFRESH_MARGIN_SECONDS = 3600
URL_EXPIRY_SECONDS = 600
MAX_LIMIT = 150

SIGNING_ALGORITHM = "SDK-HMAC-SHA256"
SDK_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

# --- error codes, by class (https://support.huaweicloud.com/api-image/image_03_0010.html) -------
TOKEN_EXPIRED_CODES = frozenset({"APIG.0301", "APIG.0307"})
THROTTLED_CODES = frozenset({"APIG.0308"})
TRANSIENT_CODES = frozenset(
    {"AIS.0003", "AIS.0505", "AIS.0506", "AIS.0206", "APIG.0201", "AIS.0024", "AIS.0029"}
)
AUTH_CODES = frozenset(
    {
        "AIS.0002",
        "AIS.0004",
        "AIS.0026",
        "APIG.0301",
        "APIG.0303",
        "APIG.0307",
        "ModelArts.0203",
        "ModelArts.4101",
        "ModelArts.4102",
        "ModelArts.4103",
    }
)
QUOTA_CODES = frozenset({"AIS.0005", "AIS.0007", "AIS.0027", "AIS.0031", "AIS.0032", "ModelArts.4204"})
BAD_INPUT_CODES = frozenset(
    {f"AIS.{n:04d}" for n in (*range(10, 16), *range(20, 24), 25, *range(101, 105), *range(501, 505))}
    | {"ModelArts.4104", "ModelArts.4105"}
)
CONFIG_CODES = frozenset({"APIG.0101"})
"""The API does not exist at this endpoint: a wrong region or endpoint, not the image's fault."""

_KINDS = {"object": TagKind.OBJECT, "scene": TagKind.SCENE, "concept": TagKind.CONCEPT}


# --- SDK-HMAC-SHA256 request signing ------------------------------------------------------------


@dataclass(frozen=True)
class AkSk:
    access_key: str
    secret_key: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="~")


def canonical_uri(path: str) -> str:
    """Each path segment percent-encoded; always ends with ``/`` (the gateway's rule)."""
    encoded = "/".join(_quote(segment) for segment in urllib.parse.unquote(path).split("/"))
    return encoded if encoded.endswith("/") else encoded + "/"


def canonical_query(query: str) -> str:
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    return "&".join(f"{_quote(key)}={_quote(value)}" for key, value in sorted(pairs))


def canonical_request(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    body: bytes,
) -> str:
    values = {name.lower(): value.strip() for name, value in headers.items()}
    canonical_headers = "".join(f"{name}:{values[name]}\n" for name in signed_headers)
    return "\n".join(
        [
            method.upper(),
            canonical_uri(path),
            canonical_query(query),
            canonical_headers,
            ";".join(signed_headers),
            hashlib.sha256(body).hexdigest(),
        ]
    )


def string_to_sign(canonical: str, sdk_date: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{SIGNING_ALGORITHM}\n{sdk_date}\n{digest}"


def signature(secret_key: str, text: str) -> str:
    return hmac.new(secret_key.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest()


def sign_headers(
    method: str,
    url: httpx.URL,
    headers: Mapping[str, str],
    body: bytes,
    credentials: AkSk,
    now: datetime,
) -> dict[str, str]:
    """`headers` plus Host, X-Sdk-Date, X-Security-Token (if any) and the Authorization signature.

    Every header given is signed; headers the HTTP client adds later (user-agent, content-length)
    are not, which the gateway allows since the signed list travels with the request.
    """
    signed = dict(headers)
    signed["Host"] = url.netloc.decode("ascii")
    signed["X-Sdk-Date"] = now.astimezone(UTC).strftime(SDK_DATE_FORMAT)
    if credentials.security_token:
        signed["X-Security-Token"] = credentials.security_token
    names = sorted(name.lower() for name in signed)
    canonical = canonical_request(method, url.path, url.query.decode("ascii"), signed, names, body)
    digest = signature(credentials.secret_key, string_to_sign(canonical, signed["X-Sdk-Date"]))
    signed["Authorization"] = (
        f"{SIGNING_ALGORITHM} Access={credentials.access_key}, "
        f"SignedHeaders={';'.join(names)}, Signature={digest}"
    )
    return signed


# --- IAM tokens ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PasswordIdentity:
    username: str
    password: str = field(repr=False)
    domain_name: str
    project_id: str | None
    project_name: str


@dataclass(frozen=True)
class CachedToken:
    value: str = field(repr=False)
    fresh_until: float
    """On the provider clock's monotonic timeline."""
    project_id: str | None


def _parse_time(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def token_lifetime(body: object, wall_now: float) -> float:
    """Seconds the token is valid, from ``expires_at`` (relative to ``issued_at`` when given)."""
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, dict):
        return TOKEN_LIFETIME_SECONDS
    expires = _parse_time(token.get("expires_at"))
    if expires is None:
        return TOKEN_LIFETIME_SECONDS
    issued = _parse_time(token.get("issued_at"))
    return max(0.0, expires - (issued if issued is not None else wall_now))


# --- the provider -------------------------------------------------------------------------------


class HuaweiProvider(Provider):
    name = "huawei"
    constraints = ImageConstraints(
        max_bytes=10_000_000,  # "10 MB" of base64 text; the decimal reading is the stricter one
        base64_counts=True,
        max_side=4096,
        min_side=15,  # the SDK says 15 px, the current doc 1 px
        formats=frozenset({ImageFormat.JPEG, ImageFormat.PNG, ImageFormat.BMP}),  # doc adds WEBP
    )
    capabilities = Capabilities(
        input_forms=(InputForm.BASE64, InputForm.URL),
        languages=("zh", "en"),
        boxes=True,
        auth="IAM token (password) or AK/SK signing (SDK-HMAC-SHA256)",
        rate_limit="10 concurrent calls per account by default (raisable by ticket)",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._token_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    # -- configuration --------------------------------------------------------------------------

    def _option(self, secret: Mapping[str, Any], name: str, default: Any = None) -> Any:
        value = self.config.options.get(name)
        if value is None:
            value = secret.get(name)
        return default if value is None else value

    def _region(self, secret: Mapping[str, Any]) -> str:
        return str(self._option(secret, "region", DEFAULT_REGION))

    def _service_endpoint(self, secret: Mapping[str, Any]) -> str:
        endpoint = self.config.endpoint or f"https://image.{self._region(secret)}.myhuaweicloud.com"
        return endpoint.rstrip("/")

    def _credentials(self, secret: Mapping[str, Any]) -> AkSk | PasswordIdentity:
        if secret.get("access_key") and secret.get("secret_key"):
            return AkSk(
                access_key=str(secret["access_key"]),
                secret_key=str(secret["secret_key"]),
                security_token=secret.get("security_token") or None,
            )
        if secret.get("username") and secret.get("password") and secret.get("domain_name"):
            return PasswordIdentity(
                username=str(secret["username"]),
                password=str(secret["password"]),
                domain_name=str(secret["domain_name"]),
                project_id=self._option(secret, "project_id"),
                project_name=str(self._option(secret, "project_name", self._region(secret))),
            )
        raise AuthError(
            "secret holds neither access_key + secret_key nor username + password + domain_name",
            provider=self.key,
            code="auth_config",
        )

    # -- tagging --------------------------------------------------------------------------------

    async def tag(self, request: ProviderRequest) -> TagResult:
        secret = self.secret()
        credentials = self._credentials(secret)
        deadline = self.call_deadline(request)
        language = "zh" if request.options.lang.lower().startswith("zh") else "en"
        body, seen_size = self._body(request, language)
        payload = json.dumps(body, separators=(",", ":")).encode("utf-8")
        endpoint = self._service_endpoint(secret)
        scrub = _Scrubber(secret)

        if isinstance(credentials, AkSk):
            project_id = self._option(secret, "project_id")
            if not project_id:
                raise AuthError("project_id is required with AK/SK", provider=self.key, code="auth_config")
            response = await self._post(endpoint, str(project_id), payload, deadline, scrub, aksk=credentials)
        else:
            token, fresh = await self._token(credentials, deadline, scrub)
            try:
                response = await self._post_with_token(endpoint, token, credentials, payload, deadline, scrub)
            except AuthError as error:
                # A cached token may have been revoked early: fetch a new one and try once more.
                if fresh or error.provider_code not in TOKEN_EXPIRED_CODES:
                    raise
                self._drop_token(credentials)
                token, _ = await self._token(credentials, deadline, scrub)
                response = await self._post_with_token(endpoint, token, credentials, payload, deadline, scrub)
        return self._result(json_body(response, provider=self.key), language, seen_size)

    def _body(self, request: ProviderRequest, language: str) -> tuple[dict[str, Any], tuple[int, int]]:
        """The request body, and the size of the image Huawei will see (boxes are pixels on it)."""
        options = request.options
        body: dict[str, Any] = {"language": language}
        if options.min_confidence is not None:
            body["threshold"] = round(options.min_confidence * 100, 4)
        if options.max_tags is not None:
            body["limit"] = min(MAX_LIMIT, max(1, options.max_tags))
        url = self._presigned_url(request)
        if url is not None:
            body["url"] = url
            return body, request.source.upright_size
        body["image"] = base64.b64encode(request.image.data).decode("ascii")
        return body, (request.image.width, request.image.height)

    def _presigned_url(self, request: ProviderRequest) -> str | None:
        """A presigned URL of the original, when asked for and the original fits as it is."""
        if not self.config.options.get("use_url") or request.s3 is None or self.context.presign is None:
            return None
        source, limits = request.source, self.constraints
        width, height = source.width, source.height
        fits = (
            source.format in limits.formats
            and max(width, height) <= (limits.max_side or max(width, height))
            and min(width, height) >= (limits.min_side or 0)
            and source.size <= (limits.max_bytes or source.size)
        )
        if not fits:
            return None
        expiry = int(self.config.options.get("url_expiry_seconds", URL_EXPIRY_SECONDS))
        return self.context.presign(request.s3, expiry)

    async def _post_with_token(
        self,
        endpoint: str,
        token: CachedToken,
        identity: PasswordIdentity,
        payload: bytes,
        deadline: Deadline,
        scrub: _Scrubber,
    ) -> httpx.Response:
        project_id = identity.project_id or token.project_id
        if not project_id:
            raise AuthError(
                "project_id is unknown: set it in the options or the secret",
                provider=self.key,
                code="auth_config",
            )
        return await self._post(
            endpoint, project_id, payload, deadline, scrub.adding(token.value), token=token
        )

    async def _post(
        self,
        endpoint: str,
        project_id: str,
        payload: bytes,
        deadline: Deadline,
        scrub: _Scrubber,
        *,
        token: CachedToken | None = None,
        aksk: AkSk | None = None,
    ) -> httpx.Response:
        url = httpx.URL(f"{endpoint}/v2/{urllib.parse.quote(project_id, safe='')}/image/tagging")

        def build() -> httpx.Request:
            headers = {"Content-Type": "application/json"}
            if token is not None:
                headers["X-Auth-Token"] = token.value
            if aksk is not None:
                headers["X-Project-Id"] = project_id
                headers = sign_headers("POST", url, headers, payload, aksk, datetime.now(UTC))
            return httpx.Request("POST", url, headers=headers, content=payload)

        def check(response: httpx.Response) -> None:
            if response.status_code == 200:
                return
            raise self._error(response, scrub)

        return await send(
            self.context.http,
            build,
            provider=self.key,
            deadline=deadline,
            policy=self.retry_policy,
            check=check,
        )

    def _error(self, response: httpx.Response, scrub: _Scrubber) -> ProviderError:
        try:
            body = response.json()
        except ValueError:
            body = None
        code = body.get("error_code") if isinstance(body, dict) else None
        request_id = response.headers.get("x-request-id")
        if isinstance(body, dict) and isinstance(body.get("request_id"), str):
            request_id = body["request_id"]
        if not isinstance(code, str):
            return error_for_status(response, provider=self.key)
        text = scrub(str(body.get("error_msg") or f"HTTP {response.status_code}"))
        kwargs: dict[str, Any] = {"provider": self.key, "provider_code": code, "request_id": request_id}
        if code in THROTTLED_CODES:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            return ThrottledError(text, retry_after=retry_after, **kwargs)
        if code in TRANSIENT_CODES:
            return TransientError(text, **kwargs)
        if code in AUTH_CODES:
            return AuthError(text, **kwargs)
        if code in QUOTA_CODES:
            return QuotaError(text, **kwargs)
        if code in BAD_INPUT_CODES:
            return ProviderBadInputError(text, **kwargs)
        if code in CONFIG_CODES:
            return ProviderError(text, code="provider_config", **kwargs)
        mapped = error_for_status(response, provider=self.key, message=text, provider_code=code)
        mapped.request_id = request_id
        return mapped

    def _result(self, body: Any, language: str, seen_size: tuple[int, int]) -> TagResult:
        result = body.get("result") if isinstance(body, dict) else None
        items = result.get("tags") if isinstance(result, dict) else None
        if not isinstance(items, list):
            if isinstance(body, dict) and isinstance(body.get("error_code"), str):
                raise ProviderResponseError(
                    "HTTP 200 carrying an error", provider=self.key, provider_code=body["error_code"]
                )
            raise ProviderResponseError("response has no result.tags list", provider=self.key)
        tags = [tag for item in items if (tag := self._tag(item, language, seen_size)) is not None]
        return TagResult(tags=tuple(tags))

    def _tag(self, item: Any, language: str, seen_size: tuple[int, int]) -> Tag | None:
        if not isinstance(item, dict):
            return None
        names = _strings(item.get("i18n_tag"))
        name = names.get(language) or item.get("tag") or names.get("en")
        if not isinstance(name, str) or not name.strip():
            return None
        kind_name = item.get("type")
        type_names = _strings(item.get("i18n_type"))
        categories = [kind_name] if isinstance(kind_name, str) and kind_name else []
        categories += [v for v in type_names.values() if v not in categories]
        # `type` is in the requested language; the English name says which kind it is
        kind = _KINDS.get(type_names.get("en", str(kind_name)).lower(), TagKind.LABEL)
        boxes = tuple(
            box
            for instance in as_list(item.get("instances"))
            if (box := _box(instance, seen_size)) is not None
        )
        return Tag(
            name=name,
            confidence=_confidence(item.get("confidence")),
            provider=self.key,
            kind=kind,
            names=names,
            categories=tuple(categories),
            boxes=boxes,
        )

    # -- token cache ----------------------------------------------------------------------------

    def _token_cache(self) -> dict[tuple[str, ...], CachedToken]:
        cache: dict[tuple[str, ...], CachedToken] = self.context.state.setdefault("huawei.tokens", {})
        return cache

    def _cache_key(self, identity: PasswordIdentity) -> tuple[str, ...]:
        scope = identity.project_id or f"name:{identity.project_name}"
        return (self._iam_endpoint(), identity.domain_name, identity.username, scope)

    def _iam_endpoint(self) -> str:
        return str(self.config.options.get("iam_endpoint") or DEFAULT_IAM_ENDPOINT).rstrip("/")

    def _drop_token(self, identity: PasswordIdentity) -> None:
        self._token_cache().pop(self._cache_key(identity), None)

    def on_auth_error(self) -> None:
        """Forget every token this provider cached; the next call asks IAM again."""
        iam = self._iam_endpoint()
        cache = self._token_cache()
        for key in [k for k in cache if k[0] == iam]:
            del cache[key]

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._token_locks.get(loop)
        if lock is None:
            lock = self._token_locks[loop] = asyncio.Lock()
        return lock

    async def _token(
        self, identity: PasswordIdentity, deadline: Deadline, scrub: _Scrubber
    ) -> tuple[CachedToken, bool]:
        """A valid token, and whether it was just issued (a fresh token is not refreshed again)."""
        key = self._cache_key(identity)
        async with self._lock():
            cached = self._token_cache().get(key)
            if cached is not None and cached.fresh_until > self.context.clock.now():
                return cached, False
            token = await self._issue_token(identity, deadline, scrub)
            self._token_cache()[key] = token
            return token, True

    async def _issue_token(
        self, identity: PasswordIdentity, deadline: Deadline, scrub: _Scrubber
    ) -> CachedToken:
        project = {"id": identity.project_id} if identity.project_id else {"name": identity.project_name}
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": identity.username,
                            "password": identity.password,
                            "domain": {"name": identity.domain_name},
                        }
                    },
                },
                "scope": {"project": project},
            }
        }
        payload = json.dumps(body).encode("utf-8")
        url = f"{self._iam_endpoint()}/v3/auth/tokens"

        def build() -> httpx.Request:
            return httpx.Request(
                "POST", url, headers={"Content-Type": "application/json;charset=utf8"}, content=payload
            )

        def check(response: httpx.Response) -> None:
            if response.status_code in (200, 201):
                return
            raise self._iam_error(response, scrub)

        response = await send(
            self.context.http,
            build,
            provider=self.key,
            deadline=deadline,
            policy=self.retry_policy,
            check=check,
        )
        value = response.headers.get("x-subject-token")
        if not value:
            raise ProviderResponseError("IAM answered without an X-Subject-Token header", provider=self.key)
        answer = json_body(response, provider=self.key)
        lifetime = token_lifetime(answer, time.time())
        margin = min(
            float(self.config.options.get("token_refresh_margin_seconds", TOKEN_REFRESH_MARGIN_SECONDS)),
            lifetime / 2,
        )
        project_id = None
        token_info = answer.get("token") if isinstance(answer, dict) else None
        if isinstance(token_info, dict) and isinstance(token_info.get("project"), dict):
            found = token_info["project"].get("id")
            project_id = found if isinstance(found, str) else None
        return CachedToken(
            value=value, fresh_until=self.context.clock.now() + lifetime - margin, project_id=project_id
        )

    def _iam_error(self, response: httpx.Response, scrub: _Scrubber) -> ProviderError:
        try:
            body = response.json()
        except ValueError:
            body = None
        code: str | int | None = None
        if isinstance(body, dict):
            error = body.get("error")
            code = body.get("error_code") or (error.get("code") if isinstance(error, dict) else None)
        status = response.status_code
        text = scrub(f"IAM token request refused (HTTP {status})")
        kwargs: dict[str, Any] = {"provider": self.key, "provider_code": code or status}
        if status in (400, 401, 403, 404):
            return AuthError(text, **kwargs)
        return error_for_status(response, provider=self.key, message=text, provider_code=code or status)


# --- small helpers ------------------------------------------------------------------------------


class _Scrubber:
    """Removes secret values from provider-supplied text before it reaches an error or a log."""

    def __init__(self, secret: Mapping[str, Any], extra: Sequence[str] = ()) -> None:
        self._values = [v for v in (*(str(x) for x in secret.values()), *extra) if len(v) >= 4]

    def adding(self, value: str) -> _Scrubber:
        return _Scrubber({}, (*self._values, value))

    def __call__(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, "***")
        return text[:300]


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v.strip() for k, v in value.items() if isinstance(v, str) and v.strip()}


def _confidence(value: Any) -> float | None:
    """Huawei sends confidences as strings on 0-100 ("37.51")."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number != number:  # NaN
        return None
    return min(1.0, max(0.0, number / 100.0))


def _box(instance: Any, seen_size: tuple[int, int]) -> BoundingBox | None:
    if not isinstance(instance, dict) or not isinstance(instance.get("bounding_box"), dict):
        return None
    box = instance["bounding_box"]
    try:
        left, top = float(box["top_left_x"]), float(box["top_left_y"])
        width, height = float(box["width"]), float(box["height"])
    except (KeyError, TypeError, ValueError):
        return None
    image_width, image_height = seen_size
    if image_width <= 0 or image_height <= 0:
        return None
    return BoundingBox.from_pixels(
        left,
        top,
        width,
        height,
        image_width,
        image_height,
        confidence=_confidence(instance.get("confidence")),
    )
