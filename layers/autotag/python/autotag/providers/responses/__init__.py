"""Each provider's documented response as pydantic models (one module per provider), and the
lenient field types they share.

Provider bodies are read defensively, as before: a list item that does not fit its model is
skipped (one odd label does not sink the others), an optional field of the wrong type reads as
absent, and only a body that misses what the provider documents as always there (e.g. Google's
``responses[0]``, Huawei's ``result.tags``) fails :func:`parse`, which raises our typed
:class:`~autotag.errors.ProviderResponseError` (code ``bad_provider_response``, retryable) with no
validation internals in its message. Models are built on first use (``defer_build``), and each
module is imported by its provider module only, which itself loads only when configured.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

from autotag.errors import ProviderResponseError

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class ResponseModel(BaseModel):
    """A provider's JSON object: unknown fields ignored, built on first use."""

    model_config = ConfigDict(extra="ignore", defer_build=True, frozen=True)


def _valid_items(value: Any, handler: ValidatorFunctionWrapHandler) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError("not an array")
    kept: list[Any] = []
    for item in value:
        try:
            kept.extend(handler([item]))
        except ValidationError:
            continue
    return kept


def _or_none(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except ValidationError:
        return None


def _numeric(value: Any) -> float | None:
    """A JSON number or numeric string as float; None for anything else (booleans and NaN included)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _valid_items_or_none(value: Any, handler: ValidatorFunctionWrapHandler) -> list[Any]:
    try:
        return _valid_items(value, handler)
    except ValueError:
        return []


ItemList = Annotated[list[T], WrapValidator(_valid_items)]
"""A JSON array of T (anything else does not fit); items that are not a valid T are skipped."""
Items = Annotated[list[T], WrapValidator(_valid_items_or_none)]
"""As :data:`ItemList`, but a missing or non-array value reads as empty."""
OrNone = Annotated[T | None, WrapValidator(_or_none)]
"""A T, or None when the value is absent or not a valid T."""

Text = OrNone[StrictStr]
Number = OrNone[StrictFloat]
"""A JSON number (booleans and numeric strings read as absent)."""
Integer = OrNone[StrictInt]
Numeric = Annotated[float | None, BeforeValidator(_numeric)]
"""A JSON number or a numeric string (some providers send "37.51")."""
NonBlank = Annotated[StrictStr, WrapValidator(lambda v, h: _non_blank(h(v)))]
"""A string with something besides white space in it (an item without one is skipped)."""


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("blank")
    return value


def parse(model: type[M], body: Any, *, provider: str, what: str, request_id: str | None = None) -> M:
    """`body` read as `model`; a body that does not fit is our typed, retryable response error."""
    try:
        return model.model_validate(body)
    except ValidationError:
        raise ProviderResponseError(what, provider=provider, request_id=request_id) from None


def numeric(value: Any) -> float | None:
    """:data:`Numeric` for a value read outside a model (a header)."""
    return _numeric(value)


def parse_response(
    model: type[M], response: httpx.Response, *, provider: str, what: str, request_id: str | None = None
) -> M:
    """The response's JSON body read as `model` (not JSON, or not fitting: our response error)."""
    try:
        body = response.json()
    except (ValueError, RecursionError):  # RecursionError: JSON nested past the parser's depth
        raise ProviderResponseError(
            f"response is not JSON (HTTP {response.status_code})", provider=provider, request_id=request_id
        ) from None
    return parse(model, body, provider=provider, what=what, request_id=request_id)


def parse_optional(model: type[M], response: httpx.Response) -> M | None:
    """The body read as `model`, or None when it is not JSON or does not fit (error bodies, whose
    absence falls back to the HTTP status)."""
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return None
    return read(model, body)


def read(model: type[M], body: Any) -> M | None:
    """`body` read as `model`, or None when it does not fit."""
    try:
        return model.model_validate(body)
    except ValidationError:
        return None
