"""CoreViz ``POST /api/ai/tag``: tags (objects with confidences, or plain strings, both documented),
a classification with its scores, and the error body."""

from __future__ import annotations

from typing import Self

from pydantic import StrictStr, model_validator

from autotag.providers.responses import Items, NonBlank, Numeric, OrNone, ResponseModel, Text

DOCUMENTED_FIELDS = frozenset({"tags", "classification", "all_scores"})


class TagObject(ResponseModel):
    """``{"tag"|"name"|"label": …, "confidence"|"score": …}``."""

    tag: Text = None
    name: Text = None
    label: Text = None
    confidence: Numeric = None
    score: Numeric = None

    @property
    def text(self) -> str | None:
        return next((v for v in (self.tag, self.name, self.label) if v is not None), None)

    @property
    def value(self) -> float | None:
        return self.confidence if "confidence" in self.model_fields_set else self.score


class ChoiceScore(ResponseModel):
    choice: StrictStr
    score: Numeric = None


class TagResponse(ResponseModel):
    tags: Items[StrictStr | TagObject] = []
    classification: OrNone[NonBlank] = None
    """The winning choice; a blank one reads as absent."""
    confidence: Numeric = None
    all_scores: Items[ChoiceScore] = []

    @model_validator(mode="after")
    def _documented(self) -> Self:
        if not DOCUMENTED_FIELDS & self.model_fields_set:
            raise ValueError("none of the documented fields")
        return self


class ErrorBody(ResponseModel):
    error: Text = None
    message: Text = None
