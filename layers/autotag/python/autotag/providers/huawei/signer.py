"""SDK-HMAC-SHA256 request signing for Huawei Cloud's API Gateway (AK/SK authentication): the
canonical request, the string to sign, the signature and the ``Authorization`` header."""

from __future__ import annotations

import hashlib
import hmac
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

SIGNING_ALGORITHM = "SDK-HMAC-SHA256"
SDK_DATE_FORMAT = "%Y%m%dT%H%M%SZ"


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
