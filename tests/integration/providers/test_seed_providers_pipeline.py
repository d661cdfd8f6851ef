"""The seed providers through the real pipeline: partial failure, and no secret in any log or error."""

from __future__ import annotations

import asyncio
import base64
import io
import logging

import pytest
from autotag.config import AutotagConfig, ProviderConfig
from autotag.errors import AllProvidersFailedError
from autotag.fanout import Tagger
from autotag.intake.source import load_image
from autotag.models import ProviderOutcome, TagOptions, TagResult
from autotag.providers.base import ProviderContext
from autotag.providers.http import make_client
from autotag.retry import Deadline
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from tests.integration.providers.seed_provider_kit import closed_port, image_bytes
from tests.support.fakes import StaticCredentials
from tests.support.provider_servers import (
    CoreVizServer,
    Faults,
    ImageDescriberServer,
    ImageKitServer,
    PixLabServer,
    Reply,
)

pytestmark = pytest.mark.integration

SECRETS = {
    "imagedescriber": {"api_key": "SECRET-imagedescriber-8b1f0e"},
    "coreviz": {"api_key": "SECRET-coreviz-4d2c77"},
    "pixlab": {"api_key": "SECRET-pixlab-1a9e3b"},
    "imagekit": {"private_key": "private_SECRET-imagekit-6f5d21"},
}
SECRET_VALUES = [value for secret in SECRETS.values() for value in secret.values()]


def run_tagger(
    providers: list[ProviderConfig],
    secrets: dict[str, dict[str, str]],
    *,
    image: bytes | None = None,
    require_success: bool = True,
) -> TagResult:
    config = AutotagConfig(providers=tuple(providers))
    source = load_image(image or image_bytes(320, 240))

    async def run() -> TagResult:
        async with make_client() as http:
            tagger = Tagger(config, ProviderContext(http=http, credentials=StaticCredentials(secrets)))
            return await tagger.tag(
                source, TagOptions(), deadline=Deadline.after(20), require_success=require_success
            )

    return asyncio.run(run())


def test_one_provider_unauthorized_the_other_still_tags():
    with (
        ImageDescriberServer(api_key="the-real-key") as describer,
        CoreVizServer(api_key="cv-key") as coreviz,
    ):
        result = run_tagger(
            [
                ProviderConfig(name="imagedescriber", endpoint=describer.url, max_attempts=1),
                ProviderConfig(name="coreviz", endpoint=coreviz.url),
            ],
            {"imagedescriber": {"api_key": "a-revoked-key"}, "coreviz": {"api_key": "cv-key"}},
        )
        # The pipeline refreshes credentials once after an auth error, then gives up.
        assert describer.calls == 2
        assert coreviz.calls == 1

    assert [(t.name, t.confidence, t.sources) for t in result.tags] == [
        ("person", 0.95, ("coreviz",)),
        ("outdoor", 0.87, ("coreviz",)),
        ("nature", 0.82, ("coreviz",)),
    ]
    statuses = {p.provider: p for p in result.providers}
    failed = statuses["imagedescriber"]
    assert failed.status is ProviderOutcome.FAILED
    assert failed.error_code == "auth"
    assert failed.retryable is False
    assert failed.error is not None
    assert "invalid API key" in failed.error
    assert "[1003]" in failed.error
    ok = statuses["coreviz"]
    assert ok.status is ProviderOutcome.OK
    assert ok.tag_count == 3
    assert ok.details["image_input"] == "data_url"
    assert result.failed == (failed,)


def test_four_seed_providers_merge_and_keep_their_details():
    with (
        ImageDescriberServer(api_key="k1", tags=("teddy bear", "toy")) as describer,
        CoreVizServer(api_key="k2", tags=[("Toy", 0.6), ("red", 0.7)]) as coreviz,
        PixLabServer(api_key="k3", tags=[("toy", 0.8)]) as pixlab,
        ImageKitServer(private_key="private_k4") as imagekit,
    ):
        result = run_tagger(
            [
                ProviderConfig(name="imagedescriber", endpoint=describer.url),
                ProviderConfig(name="coreviz", endpoint=coreviz.url),
                ProviderConfig(name="pixlab", endpoint=pixlab.url),
                ProviderConfig(
                    name="imagekit",
                    endpoint=imagekit.url,
                    options={"upload_endpoint": imagekit.url, "extensions": ["aws-auto-tagging"]},
                ),
            ],
            {
                "imagedescriber": {"api_key": "k1"},
                "coreviz": {"api_key": "k2"},
                "pixlab": {"api_key": "k3"},
                "imagekit": {"private_key": "private_k4"},
            },
        )
    assert all(p.status is ProviderOutcome.OK for p in result.providers)
    toy = next(t for t in result.tags if t.key == "toy")
    assert set(toy.sources) == {"imagedescriber", "coreviz", "pixlab", "imagekit"}
    assert toy.confidence == pytest.approx(0.9852)
    details = {p.provider: p.details for p in result.providers}
    assert details["imagedescriber"]["credits_remaining"] == 99
    assert details["imagekit"]["deleted"] is True
    assert result.title == "A cat at home"


@pytest.fixture
def captured_logs(caplog):
    """Everything logged, through caplog and through a Powertools JSON formatter on a stream."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LambdaPowertoolsFormatter())
    handler.setLevel(logging.DEBUG)
    watched = [logging.getLogger(name) for name in ("autotag", "httpx", "httpcore")]
    previous = [logger.level for logger in watched]
    for logger in watched:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    try:
        yield lambda: stream.getvalue() + "\n" + caplog.text
    finally:
        for logger, level in zip(watched, previous, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def secret_free_failure(providers: list[ProviderConfig]) -> str:
    """Run a failing tagging; return every error text it produced."""
    try:
        result = run_tagger(providers, SECRETS, require_success=True)
    except AllProvidersFailedError as error:
        texts = [str(error), repr(error), error.result.model_dump_json()]
        return "\n".join(texts)
    return result.model_dump_json()


def test_no_secret_in_logs_or_errors_across_error_paths(captured_logs):
    texts: list[str] = []

    def echo(provider: str) -> str:
        """A provider error message that echoes the credential it was sent."""
        return f"bad request from key {next(iter(SECRETS[provider].values()))}"

    with (
        ImageDescriberServer(api_key="other") as describer,
        CoreVizServer(api_key="other") as coreviz,
        PixLabServer(api_key="other") as pixlab,
        ImageKitServer(private_key="private_other") as imagekit,
    ):

        def configs(**overrides: object) -> list[ProviderConfig]:
            common = {"max_attempts": 2, **overrides}
            return [
                ProviderConfig(name="imagedescriber", endpoint=describer.url, **common),
                ProviderConfig(name="coreviz", endpoint=coreviz.url, **common),
                ProviderConfig(name="pixlab", endpoint=pixlab.url, **common),
                ProviderConfig(
                    name="imagekit",
                    endpoint=imagekit.url,
                    options={"upload_endpoint": imagekit.url, "poll_interval_seconds": 0.05},
                    **common,
                ),
            ]

        servers = (describer, coreviz, pixlab, imagekit)
        # 1. wrong keys everywhere (auth errors, with the credential refresh retry)
        texts.append(secret_free_failure(configs()))
        # 2. providers echoing our keys in their error messages
        describer.script(*[ImageDescriberServer.error(1005, echo("imagedescriber"), http_status=200)] * 4)
        coreviz.script(*[CoreVizServer.error(400, echo("coreviz"))] * 4)
        pixlab.script(*[PixLabServer.error(400, echo("pixlab"))] * 4)
        imagekit.script(*[ImageKitServer.error(400, echo("imagekit"))] * 4)
        texts.append(secret_free_failure(configs()))
        # 3. server errors, malformed bodies and throttling from seeded faults
        for server in servers:
            server.faults = Faults(
                error_rate=0.4, malformed_rate=0.3, throttle_rate=0.3, retry_after=0, seed=3
            )
        texts.append(secret_free_failure(configs()))
        # 4. timeouts
        for server in servers:
            server.reset()
            server.latency = 2.0
        texts.append(secret_free_failure(configs(timeout_seconds=0.3, max_attempts=1)))
        for server in servers:
            server.latency = 0.0

    # 5. connection refused
    dead = f"http://127.0.0.1:{closed_port()}"
    texts.append(
        secret_free_failure(
            [
                ProviderConfig(name="imagedescriber", endpoint=dead, max_attempts=1),
                ProviderConfig(name="coreviz", endpoint=dead, max_attempts=1),
                ProviderConfig(name="pixlab", endpoint=dead, max_attempts=1),
                ProviderConfig(
                    name="imagekit", endpoint=dead, max_attempts=1, options={"upload_endpoint": dead}
                ),
            ]
        )
    )

    logs = captured_logs()
    assert "provider failed" in logs  # the pipeline's warnings were captured
    assert "auth" in texts[0]
    assert "***" in texts[1]  # echoed keys were scrubbed, not dropped silently
    everything = logs + "\n".join(texts)
    for value in SECRET_VALUES:
        assert value not in everything
        assert value.encode().hex() not in everything
    # nor in the Basic credentials ImageKit sends (base64 of "key:")
    basic = base64.b64encode(f"{SECRETS['imagekit']['private_key']}:".encode()).decode()
    assert basic not in everything


def test_failed_provider_request_id_reaches_the_status():
    with ImageDescriberServer(api_key="k") as describer, CoreVizServer(api_key="k2") as coreviz:
        describer.script(Reply.json({"code": 2003, "message": "blocked", "request_id": "rid-55"}, 400))
        result = run_tagger(
            [
                ProviderConfig(name="imagedescriber", endpoint=describer.url),
                ProviderConfig(name="coreviz", endpoint=coreviz.url),
            ],
            {"imagedescriber": {"api_key": "k"}, "coreviz": {"api_key": "k2"}},
        )
    failed = next(p for p in result.providers if p.provider == "imagedescriber")
    assert failed.error_code == "content_blocked"
    assert "rid-55" in (failed.error or "")
