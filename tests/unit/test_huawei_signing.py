"""SDK-HMAC-SHA256 signing vectors (Huawei API Gateway) and token lifetime parsing."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import httpx
import pytest
from autotag.providers.huawei.codes import (
    AUTH_CODES,
    BAD_INPUT_CODES,
    CONFIG_CODES,
    QUOTA_CODES,
    THROTTLED_CODES,
    TRANSIENT_CODES,
)
from autotag.providers.huawei.signer import (
    AkSk,
    canonical_query,
    canonical_request,
    canonical_uri,
    sign_headers,
    string_to_sign,
)
from autotag.providers.huawei.token import token_lifetime

PROJECT = "0f51a9e00c80f40f2f3cc00be3572e74"
URL = httpx.URL(f"https://image.ap-southeast-1.myhuaweicloud.com/v2/{PROJECT}/image/tagging")
BODY = b'{"image":"/9j/4AAQSkZJRg==","language":"en","limit":5}'
WHEN = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
KEYS = AkSk(access_key="QTWAOYTTINDUT2QVKYUC", secret_key="MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc")

EXPECTED_CANONICAL = (
    "POST\n"
    f"/v2/{PROJECT}/image/tagging/\n"  # always ends with a slash
    "\n"  # no query
    "content-type:application/json\n"
    "host:image.ap-southeast-1.myhuaweicloud.com\n"
    f"x-project-id:{PROJECT}\n"
    "x-sdk-date:20240102T030405Z\n"
    "\n"
    "content-type;host;x-project-id;x-sdk-date\n" + hashlib.sha256(BODY).hexdigest()
)


def sign() -> dict[str, str]:
    headers = {"Content-Type": "application/json", "X-Project-Id": PROJECT}
    return sign_headers("POST", URL, headers, BODY, KEYS, WHEN)


def test_canonical_request_matches_the_gateway_layout() -> None:
    headers = {
        "Content-Type": " application/json ",  # values are trimmed
        "Host": "image.ap-southeast-1.myhuaweicloud.com",
        "X-Project-Id": PROJECT,
        "X-Sdk-Date": "20240102T030405Z",
    }
    names = ["content-type", "host", "x-project-id", "x-sdk-date"]
    assert canonical_request("post", URL.path, "", headers, names, BODY) == EXPECTED_CANONICAL


def test_signature_recomputed_by_hand() -> None:
    signed = sign()

    to_sign = "SDK-HMAC-SHA256\n20240102T030405Z\n" + hashlib.sha256(EXPECTED_CANONICAL.encode()).hexdigest()
    assert string_to_sign(EXPECTED_CANONICAL, "20240102T030405Z") == to_sign
    expected = hmac.new(KEYS.secret_key.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    assert signed["Authorization"] == (
        "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, "
        f"SignedHeaders=content-type;host;x-project-id;x-sdk-date, Signature={expected}"
    )
    assert signed["X-Sdk-Date"] == "20240102T030405Z"
    assert signed["Host"] == "image.ap-southeast-1.myhuaweicloud.com"


def test_signature_golden_value() -> None:
    """Pinned so an accidental change to canonicalization shows up as a diff here."""
    assert sign()["Authorization"].rsplit("Signature=", 1)[1] == (
        "551d9e9f008ddd8f7fa95f2f52d981165a53cd5e2283157ebf15664c8ce06c01"
    )


def test_any_change_to_the_request_changes_the_signature() -> None:
    base = sign()["Authorization"]
    headers = {"Content-Type": "application/json", "X-Project-Id": PROJECT}
    variants = [
        sign_headers("POST", URL, headers, BODY + b" ", KEYS, WHEN),
        sign_headers("PUT", URL, headers, BODY, KEYS, WHEN),
        sign_headers("POST", URL.copy_with(path="/v2/other/image/tagging"), headers, BODY, KEYS, WHEN),
        sign_headers("POST", URL, {**headers, "Content-Type": "text/plain"}, BODY, KEYS, WHEN),
        sign_headers("POST", URL, headers, BODY, KEYS, WHEN.replace(second=6)),
        sign_headers("POST", URL, headers, BODY, AkSk(KEYS.access_key, KEYS.secret_key + "x"), WHEN),
    ]
    assert all(v["Authorization"] != base for v in variants)


def test_host_keeps_a_non_default_port() -> None:
    signed = sign_headers("POST", httpx.URL("http://127.0.0.1:8080/v2/p/image/tagging"), {}, b"", KEYS, WHEN)
    assert signed["Host"] == "127.0.0.1:8080"


def test_temporary_credentials_sign_the_security_token() -> None:
    keys = AkSk(KEYS.access_key, KEYS.secret_key, security_token="sts-token")
    signed = sign_headers("POST", URL, {"Content-Type": "application/json"}, BODY, keys, WHEN)
    assert signed["X-Security-Token"] == "sts-token"
    assert "SignedHeaders=content-type;host;x-sdk-date;x-security-token," in signed["Authorization"]


def test_secrets_are_not_in_reprs() -> None:
    keys = AkSk("AK", "very-secret-sk", "very-secret-token")
    assert "very-secret" not in repr(keys)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", "/"),
        ("", "/"),
        ("/v2/p/image/tagging", "/v2/p/image/tagging/"),
        ("/v2/p/image/tagging/", "/v2/p/image/tagging/"),
        ("/a b/c~d/e+f", "/a%20b/c~d/e%2Bf/"),
        ("/a%20b/%E4%BA%BA", "/a%20b/%E4%BA%BA/"),  # decoded first, then encoded once
    ],
)
def test_canonical_uri(path: str, expected: str) -> None:
    assert canonical_uri(path) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ""),
        ("b=2&a=1", "a=1&b=2"),
        ("a=2&a=1", "a=1&a=2"),
        ("q=a b&x=", "q=a%20b&x="),
        ("k=%2F~", "k=%2F~"),
    ],
)
def test_canonical_query(query: str, expected: str) -> None:
    assert canonical_query(query) == expected


def test_token_lifetime_from_issued_and_expires() -> None:
    body = {
        "token": {"issued_at": "2024-01-02T03:00:00.000000Z", "expires_at": "2024-01-03T03:00:00.000000Z"}
    }
    assert token_lifetime(body, wall_now=0.0) == 24 * 3600


def test_token_lifetime_from_expires_and_the_clock() -> None:
    expires = datetime(2024, 1, 2, 4, 0, tzinfo=UTC)
    body = {"token": {"expires_at": "2024-01-02T04:00:00Z"}}
    assert token_lifetime(body, wall_now=expires.timestamp() - 600) == 600


@pytest.mark.parametrize("body", [{}, {"token": {}}, {"token": {"expires_at": "soon"}}, None])
def test_token_lifetime_defaults_to_a_day(body: object) -> None:
    assert token_lifetime(body, wall_now=0.0) == 24 * 3600


def test_each_error_code_has_exactly_one_class() -> None:
    groups = [THROTTLED_CODES, TRANSIENT_CODES, QUOTA_CODES, BAD_INPUT_CODES, CONFIG_CODES]
    seen: set[str] = set()
    for group in groups:
        assert not seen & group
        seen |= group
    assert not seen & AUTH_CODES
    assert {
        "AIS.0010",
        "AIS.0015",
        "AIS.0020",
        "AIS.0023",
        "AIS.0025",
        "AIS.0501",
        "AIS.0504",
    } <= BAD_INPUT_CODES
