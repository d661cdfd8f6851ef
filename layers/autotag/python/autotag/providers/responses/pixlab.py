"""PixLab ``tagimg``: ``{"status": 200, "tags": [{"name", "confidence"}]}``, or ``status`` ≠ 200
with ``error`` (even on HTTP 200)."""

from __future__ import annotations

from autotag.providers.responses import Integer, ItemList, NonBlank, Numeric, OrNone, ResponseModel, Text


class TagObject(ResponseModel):
    name: NonBlank
    confidence: Numeric = None


class TagImgResponse(ResponseModel):
    status: Integer = None
    error: Text = None
    tags: OrNone[ItemList[NonBlank | TagObject]] = None
    """None when the body has no tags array."""
