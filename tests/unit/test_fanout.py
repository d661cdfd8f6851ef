"""The provider fan-out with in-memory providers behind the Provider interface."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TypeAlias

import httpx
import pytest
from autotag.config import AutotagConfig, ProviderConfig
from autotag.errors import (
    AllProvidersFailedError,
    AuthError,
    ImageTooLargeError,
    ProviderError,
    QuotaError,
    ThrottledError,
    UnknownProviderError,
)
from autotag.fanout import Tagger, apply_policy, effective_options, merge_results, merge_tags
from autotag.image import ImageConstraints, ImageFormat
from autotag.intake.source import load_image
from autotag.models import BoundingBox, ProviderOutcome, Tag, TagOptions, TagResult
from autotag.providers.base import Capabilities, InputForm, Provider, ProviderContext, ProviderRequest
from autotag.retry import Deadline

from tests.support import images
from tests.support.clock import FakeClock
from tests.support.fakes import StaticCredentials

Outcome: TypeAlias = TagResult | ProviderError


class ScriptedProvider(Provider):
    """Answers each call with the next scripted outcome (the last one repeats)."""

    name = "scripted"
    constraints = ImageConstraints()
    capabilities = Capabilities(input_forms=(InputForm.BYTES,), needs_network=False, auth="none")

    def __init__(self, config: ProviderConfig, context: ProviderContext, script: Sequence[Outcome]) -> None:
        super().__init__(config, context)
        self.script = list(script)
        self.requests: list[ProviderRequest] = []
        self.auth_resets = 0

    async def tag(self, request: ProviderRequest) -> TagResult:
        self.requests.append(request)
        outcome = self.script[min(len(self.requests), len(self.script)) - 1]
        if isinstance(outcome, ProviderError):
            raise outcome
        return outcome

    def on_auth_error(self) -> None:
        self.auth_resets += 1


class TinyProvider(ScriptedProvider):
    """A provider whose limits no image can meet."""

    constraints = ImageConstraints(max_bytes=10, formats=frozenset({ImageFormat.JPEG}))


class FakeTagger(Tagger):
    """A Tagger whose provider instances come from a table instead of the registry."""

    def __init__(
        self, config: AutotagConfig, context: ProviderContext, scripts: dict[str, Sequence[Outcome]]
    ):
        super().__init__(config, context)
        self.instances: dict[str, ScriptedProvider] = {}
        for provider_config in config.providers:
            kind = TinyProvider if provider_config.name == "tiny" else ScriptedProvider
            self.instances[provider_config.key] = kind(provider_config, context, scripts[provider_config.key])

    def provider(self, key: str) -> Provider:
        if key not in self.instances:
            raise UnknownProviderError(f"provider {key!r} is not configured")
        return self.instances[key]


def result(provider: str, *tags: tuple[str, float | None], **extra: object) -> TagResult:
    return TagResult(tags=tuple(Tag(name=n, confidence=c, provider=provider) for n, c in tags), **extra)


@pytest.fixture
def context():
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(599)))
    return ProviderContext(http=http, credentials=StaticCredentials({}), clock=FakeClock(start=1000.0))


def make_tagger(context, scripts, **config_fields):
    providers = config_fields.pop("providers", None) or [
        ProviderConfig(name="fake", id=key) for key in scripts
    ]
    config = AutotagConfig(providers=tuple(providers), **config_fields)
    return FakeTagger(config, context, scripts)


def run(tagger: Tagger, options: TagOptions | None = None, **kwargs):
    source = load_image(images.jpeg_bytes(64, 48))
    return asyncio.run(tagger.tag(source, options, deadline=Deadline.after(30), **kwargs))


# --- merge and policy --------------------------------------------------------------------------


def test_same_tag_from_two_providers_merges_to_one_with_best_confidence_and_both_sources():
    merged = merge_tags(
        [
            Tag(name="Cat", confidence=0.7, provider="a", categories=("animal",), names={"de": "Katze"}),
            Tag(name="dog", confidence=0.5, provider="a"),
            Tag(name=" cat ", confidence=0.9, provider="b", categories=("pet",), names={"fr": "chat"}),
        ]
    )
    assert [t.name for t in merged] == ["cat", "dog"]
    cat = merged[0]
    assert cat.confidence == 0.9
    assert cat.provider == "b"
    assert cat.sources == ("a", "b")
    assert cat.categories == ("pet", "animal")
    assert cat.names == {"de": "Katze", "fr": "chat"}


def test_merge_keeps_boxes_from_both_and_prefers_any_confidence_over_none():
    box_a = BoundingBox(left=0, top=0, width=0.5, height=0.5)
    box_b = BoundingBox(left=0.5, top=0.5, width=0.5, height=0.5)
    merged = merge_tags(
        [
            Tag(name="car", confidence=None, provider="a", boxes=(box_a,)),
            Tag(name="car", confidence=0.2, provider="b", boxes=(box_b,)),
        ]
    )
    assert len(merged) == 1
    assert merged[0].confidence == 0.2
    assert set(merged[0].boxes) == {box_a, box_b}


def test_apply_policy_thresholds_ranks_and_caps():
    tags = [
        Tag(name="low", confidence=0.1, provider="p"),
        Tag(name="none", confidence=None, provider="p"),
        Tag(name="high", confidence=0.9, provider="p"),
        Tag(name="mid", confidence=0.5, provider="p"),
    ]
    assert [t.name for t in apply_policy(tags, min_confidence=0.3, max_tags=None)] == ["high", "mid", "none"]
    assert [t.name for t in apply_policy(tags, min_confidence=None, max_tags=2)] == ["high", "mid"]
    assert apply_policy(tags, min_confidence=None, max_tags=0) == []


def test_merge_results_takes_the_first_title_and_keeps_every_status(context):
    merged = merge_results([result("a", ("x", 0.5)), result("b", ("x", 0.6), title="A title")])
    assert merged.title == "A title"
    assert merged.tags[0].sources == ("a", "b")


def test_attribute_only_tags_come_after_content_tags():
    content = result("model", ("cat", 0.6), ("tabby", 0.3))
    attributes = result("basic", ("landscape", 1.0), ("brown", 0.5), ("cat", 0.2))
    merged = merge_results([content, attributes], attribute_providers={"basic"})
    # "cat" has a content source, so it stays with the content tags; confidence order within each.
    assert [t.name for t in merged.tags] == ["cat", "tabby", "landscape", "brown"]
    plain = merge_results([content, attributes])
    assert [t.name for t in plain.tags] == ["landscape", "cat", "brown", "tabby"]
    alone = merge_results([attributes], attribute_providers={"basic"})
    assert [t.name for t in alone.tags] == ["landscape", "brown", "cat"]


def test_effective_options_request_over_provider_over_global():
    config = AutotagConfig(lang="de")
    provider = ProviderConfig(name="basic", min_confidence=0.4, max_tags=5, lang="fr")
    assert effective_options(config, provider, TagOptions()).lang == "fr"
    options = effective_options(config, provider, TagOptions(lang="es", min_confidence=0.0, max_tags=0))
    assert (options.lang, options.min_confidence, options.max_tags) == ("es", 0.0, 0)
    bare = effective_options(config, ProviderConfig(name="basic"), TagOptions())
    assert (bare.lang, bare.min_confidence, bare.max_tags) == ("de", None, None)


# --- Tagger ----------------------------------------------------------------------------------------


def test_two_providers_run_and_merge(context):
    tagger = make_tagger(
        context,
        {"a": [result("a", ("cat", 0.8), ("dog", 0.3))], "b": [result("b", ("Cat", 0.95), ("tree", 0.6))]},
    )
    merged = run(tagger)
    assert {t.name: (t.confidence, t.sources) for t in merged.tags} == {
        "Cat": (0.95, ("a", "b")),
        "tree": (0.6, ("b",)),
        "dog": (0.3, ("a",)),
    }
    assert [(p.provider, p.status, p.tag_count) for p in merged.providers] == [
        ("a", ProviderOutcome.OK, 2),
        ("b", ProviderOutcome.OK, 2),
    ]


def test_provider_policy_is_applied_after_normalizing(context):
    scripts = {"a": [result("a", ("x", 0.9), ("y", 0.4), ("z", 0.2))]}
    providers = [ProviderConfig(name="fake", id="a", min_confidence=0.3, max_tags=1)]
    tagger = make_tagger(context, scripts, providers=providers)
    assert [t.name for t in run(tagger).tags] == ["x"]
    relaxed = TagOptions(min_confidence=0.0, max_tags=10)
    assert [t.name for t in run(tagger, relaxed).tags] == ["x", "y", "z"]


def test_auth_error_refreshes_once_then_fails_and_other_tags_are_kept(context):
    tagger = make_tagger(
        context, {"bad": [AuthError("token expired")], "good": [result("good", ("sky", 0.8))]}
    )
    merged = run(tagger)

    bad = tagger.instances["bad"]
    assert len(bad.requests) == 2  # the call, then one retry with fresh credentials
    assert bad.auth_resets == 1
    assert context.credentials.refreshes == ["bad"]
    assert [t.name for t in merged.tags] == ["sky"]
    failed = {p.provider: p for p in merged.failed}
    assert failed["bad"].error_code == "auth"
    assert failed["bad"].retryable is False
    assert failed["bad"].status is ProviderOutcome.FAILED
    assert [p.provider for p in merged.succeeded] == ["good"]


def test_auth_error_then_success_after_refresh(context):
    tagger = make_tagger(context, {"a": [AuthError("rotated"), result("a", ("ok", 0.5))]})
    merged = run(tagger)
    assert [t.name for t in merged.tags] == ["ok"]
    assert merged.providers[0].status is ProviderOutcome.OK


def test_missing_credentials_are_not_refreshed(context):
    tagger = make_tagger(context, {"a": [AuthError("no key", code="auth_config")], "b": [result("b")]})
    merged = run(tagger)
    assert len(tagger.instances["a"].requests) == 1
    assert context.credentials.refreshes == []
    assert merged.failed[0].error_code == "auth_config"


def test_all_failed_is_retryable_when_any_failure_is(context):
    tagger = make_tagger(context, {"a": [ThrottledError("slow down")], "b": [QuotaError("no credits")]})
    with pytest.raises(AllProvidersFailedError) as caught:
        run(tagger)
    assert caught.value.retryable is True
    assert caught.value.code == "throttled"
    assert {p.provider for p in caught.value.result.failed} == {"a", "b"}


def test_all_failed_is_terminal_when_no_failure_is_retryable(context):
    tagger = make_tagger(context, {"a": [QuotaError("no credits")]})
    with pytest.raises(AllProvidersFailedError) as caught:
        run(tagger)
    assert caught.value.retryable is False
    assert "no credits" in str(caught.value)


def test_failures_can_be_returned_instead_of_raised(context):
    tagger = make_tagger(context, {"a": [QuotaError("no credits")]})
    merged = run(tagger, require_success=False)
    assert merged.tags == ()
    assert merged.failed[0].error_code == "quota"


def test_image_that_fits_no_provider_raises_the_image_error(context):
    providers = [ProviderConfig(name="tiny", id="t")]
    tagger = make_tagger(context, {"t": [result("t", ("x", 1.0))]}, providers=providers)
    with pytest.raises(ImageTooLargeError):
        run(tagger)


def test_image_that_fits_one_provider_only_fails_just_that_one(context):
    providers = [ProviderConfig(name="tiny", id="t"), ProviderConfig(name="fake", id="f")]
    tagger = make_tagger(context, {"t": [result("t")], "f": [result("f", ("x", 1.0))]}, providers=providers)
    merged = run(tagger)
    assert [t.name for t in merged.tags] == ["x"]
    assert merged.failed[0].provider == "t"
    assert merged.failed[0].error_code == "image_too_large"
    assert tagger.instances["t"].requests == []


def test_selection_by_options_and_defaults(context):
    scripts = {"a": [result("a", ("one", 0.5))], "b": [result("b", ("two", 0.5))]}
    tagger = make_tagger(context, scripts, default_providers=("a",))
    assert [t.name for t in run(tagger).tags] == ["one"]
    assert [t.name for t in run(tagger, TagOptions(providers=["b"])).tags] == ["two"]
    with pytest.raises(UnknownProviderError):
        run(tagger, TagOptions(providers=["zzz"]))


def test_provider_receives_options_source_and_a_prepared_image(context):
    tagger = make_tagger(context, {"a": [result("a")]})
    run(tagger, TagOptions(lang="de", prompt="what is it?"))
    request = tagger.instances["a"].requests[0]
    assert request.options.lang == "de"
    assert request.options.prompt == "what is it?"
    assert request.source.width == 64
    assert request.image.reencoded is False  # a small JPEG fits the fake's open constraints
