"""Huawei Image Tagging V2 adapter against a local double of IAM + the tagging API (seeds/004)."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from autotag import errors
from autotag.config import AutotagConfig, ProviderConfig
from autotag.fanout import Tagger
from autotag.image import ImageFormat, S3Location
from autotag.models import ProviderOutcome, TagKind, TagOptions, TagResult
from autotag.providers.base import ProviderContext, ProviderRequest
from autotag.providers.http import make_client
from autotag.providers.huawei.provider import HuaweiProvider
from autotag.retry import Deadline

from tests.integration.providers.seed_provider_kit import closed_port
from tests.support.fakes import StaticCredentials
from tests.support.provider_servers_cloud import (
    HUAWEI_DOC_SUCCESS,
    HuaweiServer,
    Reply,
    cloud_request,
    failed,
    image_data,
    ok,
    run,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def huawei() -> Iterator[HuaweiServer]:
    with HuaweiServer() as server:
        yield server


def token_secret(server: HuaweiServer, **changes: Any) -> dict[str, Any]:
    return {
        "username": server.username,
        "password": server.password,
        "domain_name": server.domain_name,
        "project_id": server.project_id,
        "region": server.region,
        **changes,
    }


def aksk_secret(server: HuaweiServer, **changes: Any) -> dict[str, Any]:
    return {
        "access_key": server.access_key,
        "secret_key": server.secret_key,
        "project_id": server.project_id,
        **changes,
    }


def provider_config(
    server: HuaweiServer | None, *, endpoint: str | None = None, **fields: Any
) -> ProviderConfig:
    url = endpoint or (server.url if server else None)
    options = {"iam_endpoint": url, **fields.pop("options", {})}
    return ProviderConfig(name="huawei", endpoint=url, options=options, **fields)


class Session:
    """One provider instance, used for several calls in one event loop (as in one Lambda)."""

    def __init__(self, config: ProviderConfig, secret: dict[str, Any], **context: Any) -> None:
        self.config = config
        self.credentials = StaticCredentials({"huawei": secret})
        self.context = context
        self.state: dict[str, Any] = {}

    def calls(
        self, *requests: ProviderRequest, between: Any = None
    ) -> list[TagResult | errors.ProviderError]:
        async def go() -> list[TagResult | errors.ProviderError]:
            async with make_client() as http:
                context = ProviderContext(
                    http=http, credentials=self.credentials, state=self.state, **self.context
                )
                provider = HuaweiProvider(self.config, context)
                outcomes: list[TagResult | errors.ProviderError] = []
                for index, request in enumerate(requests):
                    if index and between is not None:
                        between(provider)
                    try:
                        outcomes.append(await provider.tag(request))
                    except errors.ProviderError as error:
                        outcomes.append(error)
                return outcomes

        return run(go)

    def call(self, request: ProviderRequest | None = None) -> TagResult | errors.ProviderError:
        return self.calls(request or cloud_request())[0]


# --- success ------------------------------------------------------------------------------------


def test_documented_success_example_is_normalized(huawei: HuaweiServer) -> None:
    huawei.script(Reply.json(HUAWEI_DOC_SUCCESS), path=huawei.tagging_path)
    request = cloud_request(width=640, height=480, lang="en", min_confidence=0.7, max_tags=5)

    result = ok(Session(provider_config(huawei), token_secret(huawei)).call(request))

    (tag,) = result.tags
    assert tag.name == "person"  # i18n_tag in the requested language
    assert tag.confidence == pytest.approx(0.3751)  # "37.51" on 0-100
    assert tag.kind is TagKind.LABEL  # "Human" is not one of object/scene/concept
    assert tag.categories == ("Human", "Chinese characters for human")
    assert tag.names == {"en": "person", "zh": "Chinese character for person"}
    (box,) = tag.boxes  # pixels on the 640x480 image that was sent → 0..1
    assert box.left == pytest.approx(53.134917332575874 / 640)
    assert box.top == pytest.approx(254.21347984900842 / 480)
    assert box.width == pytest.approx(117.5866567171537 / 640)
    assert box.height == pytest.approx(133.32496056189905 / 480)
    assert box.confidence == pytest.approx(0.9238)

    iam, tagging = huawei.requests
    assert (iam.method, iam.path) == ("POST", "/v3/auth/tokens")
    assert iam.json["auth"]["identity"]["methods"] == ["password"]
    assert iam.json["auth"]["identity"]["password"]["user"]["domain"] == {"name": huawei.domain_name}
    assert iam.json["auth"]["scope"] == {"project": {"id": huawei.project_id}}
    assert (tagging.method, tagging.path) == ("POST", f"/v2/{huawei.project_id}/image/tagging")
    assert tagging.header("x-auth-token") == huawei.issued_tokens[0]
    assert tagging.header("content-type") == "application/json"
    assert base64.b64decode(tagging.json["image"]) == request.image.data
    assert "url" not in tagging.json
    assert tagging.json["language"] == "en"
    assert tagging.json["threshold"] == pytest.approx(70.0)
    assert tagging.json["limit"] == 5


def test_chinese_names_kinds_threshold_and_limit(huawei: HuaweiServer) -> None:
    request = cloud_request(width=100, height=50, lang="zh-CN", min_confidence=0.6, max_tags=2)

    result = ok(Session(provider_config(huawei), token_secret(huawei)).call(request))

    assert huawei.last.json["language"] == "zh"
    assert huawei.last.json["threshold"] == pytest.approx(60.0)
    assert huawei.last.json["limit"] == 2
    assert [(t.name, t.kind, t.confidence) for t in result.tags] == [
        ("人", TagKind.OBJECT, pytest.approx(0.925)),
        ("狗", TagKind.OBJECT, pytest.approx(0.8125)),
    ]
    person = result.tags[0]
    assert person.names == {"en": "person", "zh": "人"}
    assert person.categories == ("物体", "object")
    (box,) = person.boxes
    assert (box.left, box.top, box.width, box.height) == pytest.approx((0.1, 0.16, 0.2, 0.6))


def test_limits_are_clamped_to_the_documented_ranges(huawei: HuaweiServer) -> None:
    result = ok(
        Session(provider_config(huawei), token_secret(huawei)).call(
            cloud_request(max_tags=500, min_confidence=0.0)
        )
    )
    assert huawei.last.json["limit"] == 150
    assert huawei.last.json["threshold"] == 0
    assert {t.kind for t in result.tags} == {TagKind.OBJECT, TagKind.SCENE, TagKind.CONCEPT}


def test_url_mode_sends_a_presigned_url_and_boxes_follow_the_original(huawei: HuaweiServer) -> None:
    location = S3Location("photos", "2024/dog.jpg", "v7")
    presigned: list[tuple[S3Location, int]] = []

    def presign(where: S3Location, seconds: int) -> str:
        presigned.append((where, seconds))
        return "https://photos.s3.example.test/2024/dog.jpg?X-Amz-Signature=abc"

    config = provider_config(huawei, options={"use_url": True, "url_expiry_seconds": 120})
    # the original is 200x100; the prepared copy (not sent in URL mode) is 100x50
    request = cloud_request(width=100, height=50, s3=location, source_size=(200, 100))

    result = ok(Session(config, token_secret(huawei), presign=presign).call(request))

    assert presigned == [(location, 120)]
    assert huawei.last.json["url"] == "https://photos.s3.example.test/2024/dog.jpg?X-Amz-Signature=abc"
    assert "image" not in huawei.last.json
    box = result.tags[0].boxes[0]  # (10, 8, 20, 30) px on the 200x100 original
    assert (box.left, box.top, box.width, box.height) == pytest.approx((0.05, 0.08, 0.1, 0.3))


def test_url_mode_falls_back_to_base64_when_the_original_does_not_fit(huawei: HuaweiServer) -> None:
    config = provider_config(huawei, options={"use_url": True})
    request = cloud_request(fmt=ImageFormat.JPEG, s3=S3Location("b", "k"), source_size=(8000, 6000))

    ok(Session(config, token_secret(huawei), presign=lambda loc, s: "https://x.test/k").call(request))

    assert "url" not in huawei.last.json
    assert huawei.last.json["image"]


def test_project_id_learned_from_the_token_when_only_the_region_is_given(huawei: HuaweiServer) -> None:
    secret = token_secret(huawei)
    del secret["project_id"]

    ok(Session(provider_config(huawei), secret).call())

    iam, tagging = huawei.requests
    assert iam.json["auth"]["scope"] == {"project": {"name": huawei.region}}
    assert tagging.path == huawei.tagging_path


# --- IAM tokens ---------------------------------------------------------------------------------


def test_token_is_cached_across_calls(huawei: HuaweiServer) -> None:
    session = Session(provider_config(huawei), token_secret(huawei))

    outcomes = session.calls(cloud_request(), cloud_request())

    assert all(isinstance(o, TagResult) for o in outcomes)
    assert huawei.calls_to("/v3/auth/tokens") == 1
    assert huawei.calls_to(huawei.tagging_path) == 2
    tokens = {r.header("x-auth-token") for r in huawei.requests if r.path == huawei.tagging_path}
    assert tokens == {huawei.issued_tokens[0]}


def test_token_cache_is_shared_through_the_context_state(huawei: HuaweiServer) -> None:
    session = Session(provider_config(huawei), token_secret(huawei))
    ok(session.call())
    ok(session.call())  # a new provider instance and event loop, same process state
    assert huawei.calls_to("/v3/auth/tokens") == 1


def test_expired_token_is_refreshed_once_and_the_call_retried(huawei: HuaweiServer) -> None:
    session = Session(provider_config(huawei), token_secret(huawei))

    outcomes = session.calls(
        cloud_request(), cloud_request(), between=lambda provider: huawei.expire_tokens()
    )

    assert all(isinstance(o, TagResult) for o in outcomes)
    assert huawei.calls_to("/v3/auth/tokens") == 2
    tagging = [r for r in huawei.requests if r.path == huawei.tagging_path]
    first, second = huawei.issued_tokens
    assert [r.header("x-auth-token") for r in tagging] == [first, first, second]


def test_a_token_refused_again_after_refresh_is_an_auth_error(huawei: HuaweiServer) -> None:
    session = Session(provider_config(huawei), token_secret(huawei))
    refused = HuaweiServer.error("APIG.0307", "The token must be updated.")

    def refuse_twice(provider: HuaweiProvider) -> None:
        huawei.script(refused, refused, path=huawei.tagging_path)

    first, second = session.calls(cloud_request(), cloud_request(), between=refuse_twice)

    ok(first)
    error = failed(second)
    assert isinstance(error, errors.AuthError)
    assert error.provider_code == "APIG.0307"
    assert huawei.calls_to("/v3/auth/tokens") == 2  # refreshed once, not in a loop
    assert huawei.calls_to(huawei.tagging_path) == 3


def test_on_auth_error_drops_the_cached_token(huawei: HuaweiServer) -> None:
    session = Session(provider_config(huawei), token_secret(huawei))

    session.calls(cloud_request(), cloud_request(), between=lambda provider: provider.on_auth_error())

    assert huawei.calls_to("/v3/auth/tokens") == 2


def test_token_expiry_comes_from_the_iam_answer() -> None:
    with HuaweiServer(token_lifetime=timedelta(seconds=2)) as server:
        session = Session(
            provider_config(server, options={"token_refresh_margin_seconds": 0}), token_secret(server)
        )
        ok(session.call())
        time.sleep(2.2)
        ok(session.call())
        assert server.calls_to("/v3/auth/tokens") == 2


def test_wrong_password_is_an_auth_error_without_the_password(huawei: HuaweiServer) -> None:
    error = failed(Session(provider_config(huawei), token_secret(huawei, password="Wr0ng-Passw0rd")).call())

    assert isinstance(error, errors.AuthError)
    assert error.provider_code == 401
    assert "Wr0ng-Passw0rd" not in str(error)
    assert huawei.calls_to(huawei.tagging_path) == 0


def test_secret_without_credentials_is_a_configuration_error(huawei: HuaweiServer) -> None:
    error = failed(Session(provider_config(huawei), {"project_id": "p"}).call())
    assert isinstance(error, errors.AuthError)
    assert error.code == "auth_config"
    assert huawei.calls == 0


# --- AK/SK signing ------------------------------------------------------------------------------


def test_aksk_request_is_signed_and_verified_by_the_server(huawei: HuaweiServer) -> None:
    result = ok(Session(provider_config(huawei), aksk_secret(huawei)).call(cloud_request(max_tags=3)))

    assert [t.name for t in result.tags] == ["person", "dog", "park"]
    assert huawei.signature_failures == []
    assert huawei.calls_to("/v3/auth/tokens") == 0
    sent = huawei.last
    assert sent.header("x-auth-token") is None
    assert sent.header("x-project-id") == huawei.project_id
    authorization = sent.header("authorization") or ""
    assert authorization.startswith(f"SDK-HMAC-SHA256 Access={huawei.access_key}, SignedHeaders=")
    assert "SignedHeaders=content-type;host;x-project-id;x-sdk-date," in authorization
    assert huawei.secret_key not in authorization


def test_temporary_aksk_signs_the_security_token() -> None:
    with HuaweiServer(security_token="sts-token-value-0123456789") as server:
        secret = aksk_secret(server, security_token="sts-token-value-0123456789")
        ok(Session(provider_config(server), secret).call())
        assert server.signature_failures == []
        assert "x-security-token" in (server.last.header("authorization") or "")


def test_wrong_secret_key_is_refused_by_signature_check(huawei: HuaweiServer) -> None:
    error = failed(Session(provider_config(huawei), aksk_secret(huawei, secret_key="not-the-key-123")).call())

    assert isinstance(error, errors.AuthError)
    assert error.provider_code == "APIG.0303"
    assert huawei.signature_failures == ["signature mismatch"]
    assert "not-the-key-123" not in str(error)


def test_aksk_needs_a_project_id(huawei: HuaweiServer) -> None:
    secret = aksk_secret(huawei)
    del secret["project_id"]
    error = failed(Session(provider_config(huawei), secret).call())
    assert error.code == "auth_config"


# --- errors -------------------------------------------------------------------------------------

DOCUMENTED_ERRORS: list[tuple[str, type[errors.ProviderError], bool]] = [
    ("AIS.0002", errors.AuthError, False),
    ("AIS.0003", errors.TransientError, True),
    ("AIS.0004", errors.AuthError, False),
    ("AIS.0005", errors.QuotaError, False),
    ("AIS.0007", errors.QuotaError, False),
    ("AIS.0010", errors.ProviderBadInputError, False),
    ("AIS.0011", errors.ProviderBadInputError, False),
    ("AIS.0012", errors.ProviderBadInputError, False),
    ("AIS.0013", errors.ProviderBadInputError, False),
    ("AIS.0014", errors.ProviderBadInputError, False),
    ("AIS.0015", errors.ProviderBadInputError, False),
    ("AIS.0020", errors.ProviderBadInputError, False),
    ("AIS.0021", errors.ProviderBadInputError, False),
    ("AIS.0022", errors.ProviderBadInputError, False),
    ("AIS.0023", errors.ProviderBadInputError, False),
    ("AIS.0024", errors.TransientError, True),
    ("AIS.0025", errors.ProviderBadInputError, False),
    ("AIS.0026", errors.AuthError, False),
    ("AIS.0027", errors.QuotaError, False),
    ("AIS.0029", errors.TransientError, True),
    ("AIS.0031", errors.QuotaError, False),
    ("AIS.0032", errors.QuotaError, False),
    ("AIS.0501", errors.ProviderBadInputError, False),
    ("AIS.0502", errors.ProviderBadInputError, False),
    ("AIS.0503", errors.ProviderBadInputError, False),
    ("AIS.0504", errors.ProviderBadInputError, False),
    ("AIS.0505", errors.TransientError, True),
    ("AIS.0506", errors.TransientError, True),
    ("APIG.0101", errors.ProviderError, False),
    ("APIG.0201", errors.TransientError, True),
    ("APIG.0301", errors.AuthError, False),
    ("APIG.0303", errors.AuthError, False),
    ("APIG.0307", errors.AuthError, False),
    ("APIG.0308", errors.ThrottledError, True),
    ("ModelArts.0203", errors.AuthError, False),
    ("ModelArts.4101", errors.AuthError, False),
    ("ModelArts.4102", errors.AuthError, False),
    ("ModelArts.4103", errors.AuthError, False),
    ("ModelArts.4104", errors.ProviderBadInputError, False),
    ("ModelArts.4204", errors.QuotaError, False),
]


@pytest.mark.parametrize(("code", "expected", "retryable"), DOCUMENTED_ERRORS)
def test_documented_error_codes_are_mapped_by_code(
    huawei: HuaweiServer, code: str, expected: type[errors.ProviderError], retryable: bool
) -> None:
    # AIS errors arrive as HTTP 400 whatever they mean; the gateway's carry their own status
    huawei.script(HuaweiServer.error(code, f"message for {code}"), path=huawei.tagging_path)
    config = provider_config(huawei, max_attempts=1)

    error = failed(Session(config, aksk_secret(huawei)).call())

    assert type(error) is expected
    assert error.retryable is retryable
    assert error.provider_code == code
    assert error.provider == "huawei"
    assert f"message for {code}" in str(error)


def test_internal_error_as_http_400_is_retried_then_succeeds(huawei: HuaweiServer) -> None:
    huawei.script(HuaweiServer.error("AIS.0003", "Internal error"), path=huawei.tagging_path)

    result = ok(Session(provider_config(huawei, max_attempts=2), aksk_secret(huawei)).call())

    assert result.tags
    assert huawei.calls_to(huawei.tagging_path) == 2
    assert huawei.signature_failures == []  # each attempt is signed afresh


def test_unknown_code_falls_back_to_the_http_status(huawei: HuaweiServer) -> None:
    huawei.script(HuaweiServer.error("AIS.9999", "new", status=503), path=huawei.tagging_path)
    error = failed(Session(provider_config(huawei, max_attempts=1), aksk_secret(huawei)).call())
    assert isinstance(error, errors.TransientError)
    assert error.provider_code == "AIS.9999"


def test_error_keeps_the_request_id(huawei: HuaweiServer) -> None:
    huawei.script(
        Reply.json({"error_code": "AIS.0503", "error_msg": "damaged", "request_id": "req-42"}, 400),
        path=huawei.tagging_path,
    )
    error = failed(Session(provider_config(huawei, max_attempts=1), aksk_secret(huawei)).call())
    assert error.request_id == "req-42"


def test_unexpected_shape_is_a_bad_provider_response(huawei: HuaweiServer) -> None:
    huawei.script(Reply.json({"result": {"labels": []}}), path=huawei.tagging_path)
    error = failed(Session(provider_config(huawei), aksk_secret(huawei)).call())
    assert isinstance(error, errors.ProviderResponseError)


def test_iam_unreachable_is_transient() -> None:
    with HuaweiServer() as server:
        config = provider_config(
            server, max_attempts=1, options={"iam_endpoint": f"http://127.0.0.1:{closed_port()}"}
        )
        error = failed(Session(config, token_secret(server)).call())
        assert type(error) is errors.TransientError
        assert server.calls == 0


# --- secrets stay out of logs and errors ---------------------------------------------------------


def test_no_secret_in_logs_or_errors(huawei: HuaweiServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    outcomes: list[TagResult | errors.ProviderError] = []
    outcomes += Session(provider_config(huawei), token_secret(huawei)).calls(cloud_request(), cloud_request())
    outcomes.append(Session(provider_config(huawei), token_secret(huawei, password="Bad-Passw0rd-9")).call())
    huawei.script(
        HuaweiServer.error("APIG.0303", f"verify aksk signature fail for {huawei.secret_key}"),
        path=huawei.tagging_path,
    )
    outcomes.append(Session(provider_config(huawei, max_attempts=1), aksk_secret(huawei)).call())
    outcomes.append(
        Session(provider_config(huawei), aksk_secret(huawei, secret_key="Bad-SK-value-77")).call()
    )

    secrets = [huawei.password, huawei.secret_key, "Bad-Passw0rd-9", "Bad-SK-value-77", *huawei.issued_tokens]
    refusals = [o for o in outcomes if isinstance(o, errors.ProviderError)]
    assert len(refusals) == 3
    texts = [caplog.text, *(str(e) for e in refusals), *(repr(e) for e in refusals)]
    for secret in secrets:
        for text in texts:
            assert secret not in text


def test_pipeline_refreshes_and_logs_no_secret(
    huawei: HuaweiServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Through the Tagger (the path the Lambda takes): an expired token is refreshed, logs are clean."""
    caplog.set_level(logging.DEBUG)
    config = AutotagConfig(providers=(provider_config(huawei),))
    credentials = StaticCredentials({"huawei": token_secret(huawei)})
    source = cloud_request().source
    data = image_data(320, 240)
    source = type(source)(data=data, format=ImageFormat.JPEG, width=320, height=240, sha256="0" * 64)

    async def go() -> list[TagResult]:
        async with make_client() as http:
            tagger = Tagger(config, ProviderContext(http=http, credentials=credentials))
            first = await tagger.tag(source, TagOptions(), deadline=Deadline.after(10))
            huawei.expire_tokens()
            second = await tagger.tag(source, TagOptions(), deadline=Deadline.after(10))
            return [first, second]

    first, second = run(go)
    assert first.providers[0].status is ProviderOutcome.OK
    assert second.providers[0].status is ProviderOutcome.OK
    assert second.tags
    assert huawei.calls_to("/v3/auth/tokens") == 2
    for secret in [huawei.password, *huawei.issued_tokens]:
        assert secret not in caplog.text


def test_cli_tag_json_against_the_double(
    huawei: HuaweiServer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`autotag tag IMG --provider huawei --config cfg.toml --json`: the path a user takes."""
    from autotag.cli import main

    image = tmp_path / "dog.jpg"
    image.write_bytes(image_data(320, 240))
    config = tmp_path / "cfg.toml"
    config.write_text(
        "[[providers]]\n"
        'name = "huawei"\n'
        f'endpoint = "{huawei.url}"\n'
        f'options = {{ iam_endpoint = "{huawei.url}" }}\n'
    )
    monkeypatch.setenv("AUTOTAG_SECRET_HUAWEI", json.dumps(aksk_secret(huawei)))

    status = main(
        ["tag", str(image), "--provider", "huawei", "--config", str(config), "--json", "--lang", "zh"]
    )

    assert status == 0
    document = json.loads(capsys.readouterr().out)
    assert [t["name"] for t in document["tags"]][:2] == ["人", "狗"]
    assert document["tags"][0]["boxes"][0]["left"] == pytest.approx(10 / 320)
    assert huawei.signature_failures == []
