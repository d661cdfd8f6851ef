from __future__ import annotations

import pytest
from autotag.models import (
    BoundingBox,
    ProviderOutcome,
    ProviderStatus,
    Tag,
    TagKind,
    TagOptions,
    TagResult,
    tag_key,
)
from pydantic import ValidationError


def test_clamped_box_stays_inside_the_frame():
    box = BoundingBox.clamped(-0.1, 0.5, 0.5, 0.8, confidence=0.7)
    assert (box.left, box.top) == (0.0, 0.5)
    assert box.width == pytest.approx(0.4)
    assert box.height == pytest.approx(0.5)
    assert box.confidence == 0.7
    inside = BoundingBox.clamped(0.1, 0.2, 0.3, 0.4)
    assert (inside.left, inside.top, inside.width, inside.height) == pytest.approx((0.1, 0.2, 0.3, 0.4))


def test_fully_outside_box_collapses():
    box = BoundingBox.clamped(1.2, -0.5, 0.3, 0.2)
    assert (box.left, box.width) == (1.0, 0.0)
    assert (box.top, box.height) == (0.0, 0.0)


def test_box_from_pixels():
    box = BoundingBox.from_pixels(100, 50, 200, 100, image_width=400, image_height=200)
    assert (box.left, box.top, box.width, box.height) == pytest.approx((0.25, 0.25, 0.5, 0.5))
    overshoot = BoundingBox.from_pixels(300, 150, 200, 100, image_width=400, image_height=200)
    assert overshoot.width == pytest.approx(0.25)
    assert overshoot.height == pytest.approx(0.25)
    with pytest.raises(ValueError, match="positive"):
        BoundingBox.from_pixels(0, 0, 1, 1, image_width=0, image_height=10)


def test_box_values_must_be_units():
    with pytest.raises(ValidationError):
        BoundingBox(left=0, top=0, width=1.5, height=0.1)


def test_tag_normalization():
    tag = Tag(name="  Golden Retriever ", confidence=0.8, provider="p")
    assert tag.name == "Golden Retriever"
    assert tag.sources == ("p",)
    assert tag.kind is TagKind.LABEL
    assert tag.key == "golden retriever"
    assert tag_key("  GOLDEN\tretriever ") == tag.key
    with pytest.raises(ValidationError):
        Tag(name="   ", provider="p")
    with pytest.raises(ValidationError):
        Tag(name="x", confidence=1.2, provider="p")
    with pytest.raises(ValidationError):
        Tag(name="x", provider="p", unknown=1)  # type: ignore[call-arg]


def test_tags_are_frozen():
    tag = Tag(name="x", provider="p")
    with pytest.raises(ValidationError):
        tag.name = "y"  # type: ignore[misc]


def test_result_splits_statuses():
    result = TagResult(
        providers=(
            ProviderStatus(provider="a", status=ProviderOutcome.OK),
            ProviderStatus(provider="b", status=ProviderOutcome.FAILED, error_code="auth"),
            ProviderStatus(provider="c", status=ProviderOutcome.SKIPPED),
        )
    )
    assert [p.provider for p in result.succeeded] == ["a"]
    assert [p.provider for p in result.failed] == ["b"]


def test_result_round_trips_through_json():
    result = TagResult(
        tags=(Tag(name="x", confidence=0.5, provider="p", boxes=(BoundingBox.clamped(0, 0, 1, 1),)),),
        title="t",
    )
    assert TagResult.model_validate_json(result.model_dump_json()) == result


def test_options_validation_and_fingerprint():
    options = TagOptions(lang="de", max_tags=5)
    assert options.fingerprint() == {"lang": "de", "max_tags": 5}
    with pytest.raises(ValidationError):
        TagOptions(min_confidence=1.5)
    with pytest.raises(ValidationError):
        TagOptions(providers=[])
    with pytest.raises(ValidationError):
        TagOptions(colour="red")  # type: ignore[call-arg]
