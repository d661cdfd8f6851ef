"""The normalized tagging model every provider maps to, and the request options."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, field_validator, model_validator
from pydantic_core import PydanticCustomError

Confidence = Annotated[float, Field(ge=0.0, le=1.0)]
"""A confidence normalized to 0..1, whatever scale the provider uses."""

Unit = Annotated[float, Field(ge=0.0, le=1.0)]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TagKind(StrEnum):
    LABEL = "label"
    OBJECT = "object"
    SCENE = "scene"
    CONCEPT = "concept"
    MODERATION = "moderation"


class BoundingBox(Frozen):
    """A box relative to the image: left/top/width/height on 0..1."""

    left: Unit
    top: Unit
    width: Unit
    height: Unit
    confidence: Confidence | None = None

    @classmethod
    def clamped(
        cls, left: float, top: float, width: float, height: float, confidence: float | None = None
    ) -> BoundingBox:
        """Build a box from possibly out-of-range values (providers overshoot the frame)."""
        x0, y0 = _unit(left), _unit(top)
        x1, y1 = _unit(left + width), _unit(top + height)
        return cls(left=x0, top=y0, width=x1 - x0, height=y1 - y0, confidence=confidence)

    @classmethod
    def from_pixels(
        cls,
        left: float,
        top: float,
        width: float,
        height: float,
        image_width: int,
        image_height: int,
        confidence: float | None = None,
    ) -> BoundingBox:
        if image_width <= 0 or image_height <= 0:
            raise ValueError("image dimensions must be positive to normalize a pixel box")
        return cls.clamped(
            left / image_width, top / image_height, width / image_width, height / image_height, confidence
        )


def _unit(value: float) -> float:
    return min(1.0, max(0.0, float(value)))


def tag_key(name: str) -> str:
    """The identity of a tag across providers: case- and whitespace-insensitive."""
    return " ".join(name.casefold().split())


class Tag(Frozen):
    name: str = Field(min_length=1)
    confidence: Confidence | None = None
    provider: str
    kind: TagKind = TagKind.LABEL
    names: dict[str, str] = Field(default_factory=dict, description="Localized names by language code")
    categories: tuple[str, ...] = ()
    parents: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    boxes: tuple[BoundingBox, ...] = ()
    sources: tuple[str, ...] = Field(
        default=(), description="Every provider that produced this tag (set when results are merged)"
    )

    @field_validator("name")
    @classmethod
    def _strip(cls, value: str) -> str:
        stripped = value.strip()
        if not stripped:
            raise ValueError("tag name is blank")
        return stripped

    @model_validator(mode="after")
    def _default_sources(self) -> Tag:
        if not self.sources:
            object.__setattr__(self, "sources", (self.provider,))
        return self

    @property
    def key(self) -> str:
        return tag_key(self.name)


class ChoiceScore(Frozen):
    choice: str
    score: Confidence


class Classification(Frozen):
    label: str
    confidence: Confidence | None = None
    scores: tuple[ChoiceScore, ...] = ()
    provider: str


class ProviderOutcome(StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


class ProviderStatus(Frozen):
    provider: str
    status: ProviderOutcome
    latency_ms: float | None = None
    tag_count: int = 0
    error_code: str | None = None
    error: str | None = None
    retryable: bool | None = None
    details: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict, description="Provider facts worth keeping, e.g. credits remaining"
    )


class TagResult(Frozen):
    """What one or several providers said about one image, normalized."""

    tags: tuple[Tag, ...] = ()
    title: str | None = None
    description: str | None = None
    classification: Classification | None = None
    providers: tuple[ProviderStatus, ...] = ()

    @property
    def failed(self) -> tuple[ProviderStatus, ...]:
        return tuple(p for p in self.providers if p.status is ProviderOutcome.FAILED)

    @property
    def succeeded(self) -> tuple[ProviderStatus, ...]:
        return tuple(p for p in self.providers if p.status is ProviderOutcome.OK)


def result_fields(outcome: object) -> dict[str, Any]:
    """The fields of :class:`TagResult` as ``outcome`` holds them (a result, or a record made from one)."""
    return {name: getattr(outcome, name) for name in TagResult.model_fields}


def json_integer(value: object) -> object:
    """JSON Schema's integer: a number with no fractional part (``3`` or ``3.0``), never a string or
    a boolean; the lax int validation after this turns 3.0 into 3 and refuses 3.5."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


# Integer fields of strict request models use
#   Annotated[int, Strict(False), Field(<bounds>), BeforeValidator(json_integer)]
# (the bounds before the validator, or the schema shows ge/le rather than minimum/maximum).


class TagOptions(BaseModel):
    """Per-request options; unset fields fall back to each provider's configuration."""

    # Strict, as the published schemas say: "10" or true is not an integer, 1 is not a boolean.
    model_config = ConfigDict(extra="forbid", strict=True)

    providers: list[str] | None = Field(
        default=None, min_length=1, description="Providers to run (default: the configured default set)"
    )
    lang: str | None = Field(default=None, min_length=2, max_length=10, examples=["en"])
    min_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    max_tags: Annotated[int, Strict(False), Field(ge=0, le=1000), BeforeValidator(json_integer)] | None = None
    prompt: str | None = Field(default=None, max_length=2000)
    choices: list[str] | None = Field(default=None, min_length=1, max_length=100)
    single: bool | None = None

    def fingerprint(self) -> dict[str, object]:
        """The options that change a provider's answer (part of the content-hash cache key)."""
        return self.model_dump(exclude_none=True)
