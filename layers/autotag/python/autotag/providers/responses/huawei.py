"""Huawei Cloud: the Image Tagging V2 answer, its error body, and the IAM token answer."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator

from autotag.providers.responses import ItemList, Items, Numeric, OrNone, ResponseModel, Text


def _strings(value: Any) -> dict[str, str]:
    """A JSON object's non-blank string values, stripped (anything else reads as empty)."""
    if not isinstance(value, dict):
        return {}
    return {str(k): v.strip() for k, v in value.items() if isinstance(v, str) and v.strip()}


Strings = Annotated[dict[str, str], BeforeValidator(_strings)]


class Box(ResponseModel):
    """Pixels on the image Huawei saw."""

    top_left_x: float
    top_left_y: float
    width: float
    height: float


class Instance(ResponseModel):
    bounding_box: Box
    confidence: Numeric = None


class TagItem(ResponseModel):
    tag: Text = None
    i18n_tag: Strings = {}
    type: Text = None
    i18n_type: Strings = {}
    confidence: Numeric = None
    """A string on 0-100 ("37.51")."""
    instances: Items[Instance] = []


class TaggingResult(ResponseModel):
    tags: ItemList[TagItem]


class TaggingResponse(ResponseModel):
    result: TaggingResult


class ErrorBody(ResponseModel):
    """A service error: ``{"error_code": "AIS.0005", "error_msg": …, "request_id": …}``."""

    error_code: Text = None
    error_msg: Any = None
    request_id: Text = None


class IamError(ResponseModel):
    code: Any = None


class IamErrorBody(ResponseModel):
    """IAM's error: ``error_code`` at the top, or ``{"error": {"code": …}}``."""

    error_code: Any = None
    error: OrNone[IamError] = None


class TokenProject(ResponseModel):
    id: Text = None


class TokenInfo(ResponseModel):
    issued_at: Text = None
    expires_at: Text = None
    project: OrNone[TokenProject] = None


class TokenResponse(ResponseModel):
    token: OrNone[TokenInfo] = None
