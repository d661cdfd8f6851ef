"""ImageKit: the upload answer and the file details (``fileId``, ``AITags``, ``extensionStatus``),
and the error body (``{"message": …}``)."""

from __future__ import annotations

from typing import Any

from autotag.providers.responses import Items, Numeric, OrNone, ResponseModel, Text


class AITag(ResponseModel):
    name: Text = None
    confidence: Numeric = None
    """A percentage (e.g. 98.52)."""
    source: Text = None
    """The extension that found it (``google-auto-tagging``, ``aws-auto-tagging``)."""


class FileAnswer(ResponseModel):
    fileId: Text = None
    AITags: Items[AITag] = []
    extensionStatus: OrNone[dict[str, Any]] = None


class ErrorBody(ResponseModel):
    message: Text = None
