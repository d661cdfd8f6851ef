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

import base64
import json
import urllib.parse
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from autotag.errors import AuthError, ProviderResponseError
from autotag.image import ImageConstraints, ImageFormat
from autotag.models import BoundingBox, Tag, TagKind, TagResult
from autotag.providers.base import Capabilities, InputForm, Provider, ProviderRequest
from autotag.providers.http import json_body
from autotag.providers.huawei.codes import TOKEN_EXPIRED_CODES, service_error
from autotag.providers.huawei.signer import AkSk, sign_headers
from autotag.providers.huawei.token import (
    DEFAULT_IAM_ENDPOINT,
    TOKEN_REFRESH_MARGIN_SECONDS,
    CachedToken,
    IamTokens,
    PasswordIdentity,
)
from autotag.providers.redaction import Scrubber
from autotag.providers.responses import read
from autotag.providers.responses.huawei import ErrorBody, Instance, TaggingResponse, TagItem
from autotag.retry import Deadline

DEFAULT_REGION = "ap-southeast-1"
URL_EXPIRY_SECONDS = 600
MAX_LIMIT = 150

_KINDS = {"object": TagKind.OBJECT, "scene": TagKind.SCENE, "concept": TagKind.CONCEPT}


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
        options = self.config.options
        self.tokens = IamTokens(
            provider=self.key,
            endpoint=str(options.get("iam_endpoint") or DEFAULT_IAM_ENDPOINT),
            context=self.context,
            policy=self.retry_policy,
            refresh_margin=float(options.get("token_refresh_margin_seconds", TOKEN_REFRESH_MARGIN_SECONDS)),
        )

    def on_auth_error(self) -> None:
        """Forget every token this provider cached; the next call asks IAM again."""
        self.tokens.forget_all()

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
        scrub = Scrubber(secret.values())

        if isinstance(credentials, AkSk):
            project_id = self._option(secret, "project_id")
            if not project_id:
                raise AuthError("project_id is required with AK/SK", provider=self.key, code="auth_config")
            response = await self._post(endpoint, str(project_id), payload, deadline, scrub, aksk=credentials)
        else:
            token, fresh = await self.tokens.get(credentials, deadline, scrub)
            try:
                response = await self._post_with_token(endpoint, token, credentials, payload, deadline, scrub)
            except AuthError as error:
                # A cached token may have been revoked early: fetch a new one and try once more.
                if fresh or error.provider_code not in TOKEN_EXPIRED_CODES:
                    raise
                self.tokens.drop(credentials)
                token, _ = await self.tokens.get(credentials, deadline, scrub)
                response = await self._post_with_token(endpoint, token, credentials, payload, deadline, scrub)
        return self._result(response, language, seen_size)

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
        scrub: Scrubber,
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
        scrub: Scrubber,
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
            raise service_error(response, provider=self.key, scrub=scrub)

        return await self.send(build, deadline=deadline, check=check)

    def _result(self, response: httpx.Response, language: str, seen_size: tuple[int, int]) -> TagResult:
        body = json_body(response, provider=self.key)
        answer = read(TaggingResponse, body)
        if answer is None:
            refusal = read(ErrorBody, body)
            if refusal is not None and refusal.error_code is not None:
                raise ProviderResponseError(
                    "HTTP 200 carrying an error", provider=self.key, provider_code=refusal.error_code
                )
            raise ProviderResponseError("response has no result.tags list", provider=self.key)
        tags = (self._tag(item, language, seen_size) for item in answer.result.tags)
        return TagResult(tags=tuple(tag for tag in tags if tag is not None))

    def _tag(self, item: TagItem, language: str, seen_size: tuple[int, int]) -> Tag | None:
        names = item.i18n_tag
        name = names.get(language) or item.tag or names.get("en")
        if not name or not name.strip():
            return None
        kind_name = item.type
        type_names = item.i18n_type
        categories = [kind_name] if kind_name else []
        categories += [v for v in type_names.values() if v not in categories]
        # `type` is in the requested language; the English name says which kind it is
        kind = _KINDS.get(type_names.get("en", str(kind_name)).lower(), TagKind.LABEL)
        boxes = tuple(box for instance in item.instances if (box := _box(instance, seen_size)) is not None)
        return Tag(
            name=name,
            confidence=_confidence(item.confidence),
            provider=self.key,
            kind=kind,
            names=names,
            categories=tuple(categories),
            boxes=boxes,
        )


def _confidence(value: float | None) -> float | None:
    """Huawei sends confidences as strings on 0-100 ("37.51")."""
    return None if value is None else min(1.0, max(0.0, value / 100.0))


def _box(instance: Instance, seen_size: tuple[int, int]) -> BoundingBox | None:
    box = instance.bounding_box
    image_width, image_height = seen_size
    if image_width <= 0 or image_height <= 0:
        return None
    return BoundingBox.from_pixels(
        box.top_left_x,
        box.top_left_y,
        box.width,
        box.height,
        image_width,
        image_height,
        confidence=_confidence(instance.confidence),
    )
