"""Rekognition adapter: against the AWS emulator (moto server over HTTP), botocore's Stubber with
the documented response shapes and error codes, and a local AWS JSON endpoint for moderation,
throttling, timeouts and connection failures."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from autotag import errors
from autotag.config import ProviderConfig
from autotag.image import ImageFormat, PreparedImage, S3Location, SourceImage
from autotag.models import TagKind, TagResult
from autotag.providers.base import ProviderContext, ProviderRequest
from autotag.providers.http import make_client
from autotag.providers.rekognition import RekognitionProvider
from botocore.stub import ANY, Stubber

from tests.integration.providers.seed_provider_kit import closed_port
from tests.support.aws import unique
from tests.support.fakes import StaticCredentials
from tests.support.provider_servers_cloud import (
    RekognitionServer,
    Reply,
    aws_json_error,
    cloud_request,
    failed,
    image_data,
    ok,
    run,
)

pytestmark = pytest.mark.integration

DOCUMENTED_LABELS: dict[str, Any] = {
    "Labels": [
        {
            "Name": "Person",
            "Confidence": 99.41,
            "Instances": [
                {
                    # runs past the left edge: clamped to the frame
                    "BoundingBox": {"Width": 0.3, "Height": 0.8, "Left": -0.05, "Top": 0.1},
                    "Confidence": 99.41,
                    "DominantColors": [
                        {
                            "Red": 120,
                            "Green": 137,
                            "Blue": 132,
                            "HexCode": "3A7432",
                            "SimplifiedColor": "green",
                            "CSSColor": "seagreen",
                            "PixelPercent": 40.1,
                        }
                    ],
                },
                {
                    "BoundingBox": {"Width": 0.2, "Height": 0.5, "Left": 0.9, "Top": 0.6},
                    "Confidence": 87.0,
                },
            ],
            "Parents": [],
            "Aliases": [{"Name": "Human"}],
            "Categories": [{"Name": "Person Description"}],
        },
        {
            "Name": "Mobile Phone",
            "Confidence": 92.5,
            "Instances": [],
            "Parents": [{"Name": "Electronics"}, {"Name": "Phone"}],
            "Aliases": [{"Name": "Cell Phone"}],
            "Categories": [{"Name": "Technology and Computing"}],
        },
    ],
    "LabelModelVersion": "3.0",
}


def provider(config: ProviderConfig | None = None, **context: Any) -> RekognitionProvider:
    """A provider whose client is only built on demand (by the Stubber or the first call)."""
    credentials = StaticCredentials({})
    return RekognitionProvider(
        config or ProviderConfig(name="rekognition"),
        ProviderContext(http=make_client(), credentials=credentials, **context),
    )


def tag(
    adapter: RekognitionProvider, request: ProviderRequest | None = None
) -> TagResult | errors.ProviderError:
    async def go() -> TagResult | errors.ProviderError:
        try:
            return await adapter.tag(request or cloud_request())
        except errors.ProviderError as error:
            return error

    return run(go)


def source_request(
    *,
    size: int | None = None,
    fmt: ImageFormat = ImageFormat.JPEG,
    s3: S3Location | None = None,
    **options: Any,
) -> ProviderRequest:
    """A request whose original is `size` bytes (the prepared copy stays small)."""
    base = cloud_request(s3=s3, **options)
    data = base.image.data if size is None else base.image.data + b"\0" * (size - base.image.size)
    source = SourceImage(
        data=data, format=fmt, width=640, height=480, sha256=hashlib.sha256(data).hexdigest()
    )
    prepared = PreparedImage(
        data=base.image.data, format=ImageFormat.JPEG, width=640, height=480, reencoded=True
    )
    return ProviderRequest(image=prepared, source=source, options=base.options, deadline=base.deadline, s3=s3)


# --- the AWS emulator (moto server over HTTP) -----------------------------------------------------


class SentRequests:
    """Records what botocore puts on the wire (a hook on the session's event system)."""

    def __init__(self, session: boto3.session.Session) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        session.events.register("before-send.rekognition", self._record)

    def _record(self, request: Any, **_: Any) -> None:
        self.bodies.append(json.loads(request.body))
        self.headers.append(
            {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        )


@pytest.fixture
def emulated(aws_emulator: Any) -> tuple[RekognitionProvider, SentRequests, Any]:
    session = boto3.session.Session(region_name="us-east-1")
    sent = SentRequests(session)
    adapter = provider(boto3_session=session, aws_endpoint_url=aws_emulator.endpoint)
    return adapter, sent, aws_emulator


def test_emulator_detect_labels_with_bytes(emulated: tuple[RekognitionProvider, SentRequests, Any]) -> None:
    adapter, sent, _ = emulated
    request = cloud_request(min_confidence=0.55, max_tags=20)

    result = ok(tag(adapter, request))

    (phone,) = result.tags  # moto answers its canned "Mobile Phone" label
    assert phone.name == "Mobile Phone"
    assert phone.confidence == pytest.approx(0.999364013671875)
    assert phone.parents == ("Phone",)
    assert phone.aliases == ("Cell Phone",)
    assert phone.categories == ("Technology and Computing",)
    assert phone.kind is TagKind.OBJECT
    (box,) = phone.boxes
    assert (box.left, box.top) == pytest.approx((0.3604024350643158, 0.09245597571134567))
    assert (box.width, box.height) == pytest.approx((0.26779675483703613, 0.8562285900115967))
    assert result.providers[0].details == {"label_model_version": "3.0"}

    (body,) = sent.bodies
    assert set(body["Image"]) == {"Bytes"}
    assert base64.b64decode(body["Image"]["Bytes"]) == request.image.data
    assert body["MinConfidence"] == pytest.approx(55.0)
    assert body["MaxLabels"] == 20
    (headers,) = sent.headers
    assert headers["x-amz-target"] == "RekognitionService.DetectLabels"
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")


def test_emulator_s3_object_with_version(emulated: tuple[RekognitionProvider, SentRequests, Any]) -> None:
    adapter, sent, emulator = emulated
    s3 = emulator.client("s3")
    bucket = unique("rekognition-src")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    data = image_data(640, 480)
    version = s3.put_object(Bucket=bucket, Key="photos/a.jpg", Body=data)["VersionId"]
    try:
        request = source_request(s3=S3Location(bucket, "photos/a.jpg", version))
        result = ok(tag(adapter, request))
        assert [t.name for t in result.tags] == ["Mobile Phone"]
        assert sent.bodies[-1]["Image"] == {
            "S3Object": {"Bucket": bucket, "Name": "photos/a.jpg", "Version": version}
        }
        assert "MinConfidence" not in sent.bodies[-1]
        assert "MaxLabels" not in sent.bodies[-1]
    finally:
        for item in s3.list_object_versions(Bucket=bucket).get("Versions", []):
            s3.delete_object(Bucket=bucket, Key=item["Key"], VersionId=item["VersionId"])
        s3.delete_bucket(Bucket=bucket)


@pytest.mark.parametrize(
    ("size", "fmt"),
    [
        (16 * 1024 * 1024, ImageFormat.JPEG),  # over Rekognition's 15 MB S3 limit
        (None, ImageFormat.WEBP),  # a format Rekognition does not read
    ],
)
def test_emulator_bytes_when_the_s3_original_does_not_fit(
    emulated: tuple[RekognitionProvider, SentRequests, Any], size: int | None, fmt: ImageFormat
) -> None:
    adapter, sent, _ = emulated
    request = source_request(size=size, fmt=fmt, s3=S3Location("bucket", "big.jpg", "v1"))
    ok(tag(adapter, request))
    assert set(sent.bodies[-1]["Image"]) == {"Bytes"}


def test_client_is_built_lazily_and_once() -> None:
    adapter = provider()
    assert adapter._client is None  # nothing built at construction
    first = adapter.client
    assert adapter.client is first
    assert first.meta.config.retries == {"mode": "standard", "total_max_attempts": 3}
    adapter.on_auth_error()
    assert adapter.client is not first


# --- botocore Stubber: documented shapes and every error code --------------------------------


def test_stubbed_documented_response() -> None:
    adapter = provider(ProviderConfig(name="rekognition", options={"use_s3": True}))
    request = cloud_request(min_confidence=0.8, max_tags=10)
    with Stubber(adapter.client) as stub:
        stub.add_response(
            "detect_labels",
            DOCUMENTED_LABELS,
            {"Image": {"Bytes": request.image.data}, "MinConfidence": 80.0, "MaxLabels": 10},
        )
        result = ok(tag(adapter, request))
        stub.assert_no_pending_responses()

    person, phone = result.tags
    assert person.name == "Person"
    assert person.confidence == pytest.approx(0.9941)
    assert person.aliases == ("Human",)
    assert person.categories == ("Person Description",)
    assert person.parents == ()
    first, second = person.boxes
    assert (first.left, first.top, first.width, first.height) == pytest.approx((0.0, 0.1, 0.25, 0.8))
    assert first.confidence == pytest.approx(0.9941)
    assert (second.left, second.width, second.top, second.height) == pytest.approx((0.9, 0.1, 0.6, 0.4))
    assert phone.parents == ("Electronics", "Phone")
    assert phone.aliases == ("Cell Phone",)
    assert phone.kind is TagKind.LABEL  # no instances
    assert phone.boxes == ()


def test_unreadable_s3_object_falls_back_to_bytes() -> None:
    adapter = provider()
    location = S3Location("other-region-bucket", "a.jpg", "v3")
    request = source_request(s3=location)
    with Stubber(adapter.client) as stub:
        stub.add_client_error(
            "detect_labels",
            "InvalidS3ObjectException",
            "Unable to get object metadata from S3. Check object key, region and/or access permissions.",
            400,
            expected_params={
                "Image": {"S3Object": {"Bucket": "other-region-bucket", "Name": "a.jpg", "Version": "v3"}}
            },
        )
        stub.add_response("detect_labels", DOCUMENTED_LABELS, {"Image": {"Bytes": request.image.data}})
        result = ok(tag(adapter, request))
        stub.assert_no_pending_responses()
    assert [t.name for t in result.tags] == ["Person", "Mobile Phone"]


CLIENT_ERRORS: list[tuple[str, int, type[errors.ProviderError], bool]] = [
    ("ThrottlingException", 400, errors.ThrottledError, True),
    ("ProvisionedThroughputExceededException", 400, errors.ThrottledError, True),
    ("LimitExceededException", 400, errors.ThrottledError, True),
    ("InternalServerError", 500, errors.TransientError, True),
    ("InvalidImageFormatException", 400, errors.ProviderBadInputError, False),
    ("ImageTooLargeException", 400, errors.ProviderBadInputError, False),
    ("InvalidParameterException", 400, errors.ProviderBadInputError, False),
    ("InvalidS3ObjectException", 400, errors.ProviderBadInputError, False),
    ("AccessDeniedException", 400, errors.AuthError, False),
    ("UnrecognizedClientException", 400, errors.AuthError, False),
    ("InvalidSignatureException", 400, errors.AuthError, False),
    ("ExpiredTokenException", 400, errors.AuthError, False),
    ("HumanLoopQuotaExceededException", 402, errors.QuotaError, False),
    ("SomethingNewException", 503, errors.TransientError, True),
    ("SomethingElseException", 400, errors.ProviderBadInputError, False),
]


@pytest.mark.parametrize(("code", "status", "expected", "retryable"), CLIENT_ERRORS)
def test_stubbed_error_codes(
    code: str, status: int, expected: type[errors.ProviderError], retryable: bool
) -> None:
    adapter = provider()
    with Stubber(adapter.client) as stub:
        stub.add_client_error(
            "detect_labels", code, f"{code} happened", status, expected_params={"Image": ANY}
        )
        error = failed(tag(adapter))
    assert type(error) is expected
    assert error.retryable is retryable
    assert error.provider_code == code
    assert f"{code} happened" in str(error)


def test_expired_token_rebuilds_the_client_on_refresh() -> None:
    adapter = provider()
    old = adapter.client
    with Stubber(old) as stub:
        stub.add_client_error(
            "detect_labels", "ExpiredTokenException", "The security token included in the request is expired"
        )
        assert isinstance(failed(tag(adapter)), errors.AuthError)
    adapter.on_auth_error()  # what the pipeline does before its one retry
    assert adapter.client is not old


def test_shape_without_labels_is_a_bad_provider_response() -> None:
    adapter = provider()
    with Stubber(adapter.client) as stub:
        stub.add_response("detect_labels", {"LabelModelVersion": "3.0"})
        assert isinstance(failed(tag(adapter)), errors.ProviderResponseError)


# --- a local AWS JSON endpoint: moderation, retries, timeouts, connection failures ----------------


@pytest.fixture
def rekognition_server() -> Iterator[RekognitionServer]:
    with RekognitionServer() as server:
        yield server


def http_provider(server_url: str, **fields: Any) -> RekognitionProvider:
    options = fields.pop("options", {})
    config = ProviderConfig(name="rekognition", endpoint=server_url, options=options, **fields)
    return provider(config, boto3_session=boto3.session.Session(region_name="us-east-1"))


def test_moderation_labels_as_kind_moderation(rekognition_server: RekognitionServer) -> None:
    adapter = http_provider(rekognition_server.url, options={"moderation": True})

    result = ok(tag(adapter, cloud_request(min_confidence=0.6)))

    assert sorted(rekognition_server.operations()) == ["DetectLabels", "DetectModerationLabels"]
    moderation = [
        r.json for r in rekognition_server.requests if "Moderation" in (r.header("x-amz-target") or "")
    ]
    assert moderation[0]["MinConfidence"] == pytest.approx(60.0)
    assert set(moderation[0]["Image"]) == {"Bytes"}
    by_name = {t.name: t for t in result.tags}
    assert by_name["Dog"].kind is TagKind.LABEL
    assert by_name["Dog"].parents == ("Animal", "Pet")
    assert by_name["Violence"].kind is TagKind.MODERATION
    assert by_name["Violence"].parents == ()
    assert by_name["Weapons"].parents == ("Violence",)
    assert by_name["Weapons"].confidence == pytest.approx(0.815)


def test_no_moderation_call_unless_asked(rekognition_server: RekognitionServer) -> None:
    ok(tag(http_provider(rekognition_server.url)))
    assert rekognition_server.operations() == ["DetectLabels"]


def test_standard_retry_mode_retries_throttling(rekognition_server: RekognitionServer) -> None:
    throttled = aws_json_error("ThrottlingException", "Rate exceeded")
    rekognition_server.script(throttled, throttled)

    result = ok(tag(http_provider(rekognition_server.url, max_attempts=3)))

    assert [t.name for t in result.tags] == ["Dog"]
    assert rekognition_server.calls == 3


def test_throttling_past_the_attempts_is_a_throttled_error(rekognition_server: RekognitionServer) -> None:
    throttled = aws_json_error("ProvisionedThroughputExceededException", "Provisioned rate exceeded")
    rekognition_server.script(throttled, throttled)

    error = failed(tag(http_provider(rekognition_server.url, max_attempts=2)))

    assert isinstance(error, errors.ThrottledError)
    assert error.provider_code == "ProvisionedThroughputExceededException"
    assert error.request_id
    assert rekognition_server.calls == 2


def test_internal_server_error_is_transient(rekognition_server: RekognitionServer) -> None:
    rekognition_server.script(aws_json_error("InternalServerError", "Internal error", 500))
    error = failed(tag(http_provider(rekognition_server.url, max_attempts=1)))
    assert type(error) is errors.TransientError
    assert error.provider_code == "InternalServerError"


def test_malformed_json(rekognition_server: RekognitionServer) -> None:
    rekognition_server.script(
        Reply(status=200, body='{"Labels": [', headers={"Content-Type": "application/x-amz-json-1.1"})
    )
    error = failed(tag(http_provider(rekognition_server.url, max_attempts=1)))
    assert isinstance(error, errors.ProviderResponseError)


def test_slow_response_past_the_timeout() -> None:
    with RekognitionServer(latency=3.0) as server:
        started = time.monotonic()
        error = failed(tag(http_provider(server.url, timeout_seconds=0.5, max_attempts=1)))
        assert time.monotonic() - started < 2.5
    assert isinstance(error, errors.ProviderTimeoutError)
    assert error.retryable


def test_connection_refused_is_transient() -> None:
    error = failed(tag(http_provider(f"http://127.0.0.1:{closed_port()}", max_attempts=1)))
    assert type(error) is errors.TransientError
    assert "127.0.0.1" not in str(error)


def test_no_credentials_in_logs_or_errors(
    rekognition_server: RekognitionServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    session = boto3.session.Session(
        aws_access_key_id="AKIATESTONLY0000001",
        aws_secret_access_key="test-secret-access-key-do-not-log",
        aws_session_token="test-session-token-do-not-log",
        region_name="us-east-1",
    )
    config = ProviderConfig(name="rekognition", endpoint=rekognition_server.url, max_attempts=1)
    adapter = provider(config, boto3_session=session)
    ok(tag(adapter))
    rekognition_server.script(
        aws_json_error(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    )
    error = failed(tag(adapter))
    assert isinstance(error, errors.AuthError)
    for text in (caplog.text, str(error), repr(error)):
        assert "test-secret-access-key-do-not-log" not in text
        assert "test-session-token-do-not-log" not in text


def test_cli_tag_json_against_the_emulator(
    aws_emulator: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """`autotag tag IMG --provider rekognition --json` with AWS pointed at the emulator."""
    from autotag.cli import main

    image = tmp_path / "phone.jpg"
    image.write_bytes(image_data(320, 240))

    status = main(["tag", str(image), "--provider", "rekognition", "--json"])

    assert status == 0
    document = json.loads(capsys.readouterr().out)
    assert [t["name"] for t in document["tags"]] == ["Mobile Phone"]
    assert document["tags"][0]["parents"] == ["Phone"]
