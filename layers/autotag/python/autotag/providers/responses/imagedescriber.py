"""imagedescriber.app ``POST /api/v1/generate_tags``: ``{code, message, request_id, data: {tags:
{tags, title, description}, credits: {amount, remaining}}}``; an error is a ``code`` ≠ 0."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator

from autotag.providers.responses import Items, OrNone, ResponseModel


def _text(value: Any) -> str | None:
    """A string or number as trimmed text (the documents show ids and credits either way)."""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        text = str(value).strip()
        return text or None
    return None


ScalarText = Annotated[str | None, BeforeValidator(_text)]


class TagBlock(ResponseModel):
    tags: Items[ScalarText] = []
    title: ScalarText = None
    description: ScalarText = None


def _credit(value: object) -> int | float | str | None:
    """Credits as a number (the example shows them as strings, the table as numbers)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return value
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text or None
    return int(number) if number.is_integer() else number


Credit = Annotated[int | float | str | None, BeforeValidator(_credit)]


class Credits(ResponseModel):
    amount: Credit = None
    remaining: Credit = None


class Data(ResponseModel):
    tags: OrNone[TagBlock] = None
    credits: OrNone[Credits] = None


class GenerateTagsResponse(ResponseModel):
    code: Any = None
    message: ScalarText = None
    request_id: ScalarText = None
    data: OrNone[Data] = None
