"""Google Cloud Vision ``images:annotate``: the answer (``AnnotateImageResponse`` per image) and
the error envelope (``{"error": {code, message, status, details: [ErrorInfo]}}``)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from autotag.providers.responses import Integer, Items, NonBlank, Number, OrNone, ResponseModel, Text

ERROR_INFO_TYPE = "google.rpc.ErrorInfo"


class Vertex(ResponseModel):
    # proto3 JSON leaves out zero coordinates: a missing x or y is 0
    x: float = 0.0
    y: float = 0.0


class BoundingPoly(ResponseModel):
    normalizedVertices: Items[Vertex] = []


class Label(ResponseModel):
    description: NonBlank
    score: Number = None
    locale: Text = None


class LocalizedObject(ResponseModel):
    name: NonBlank
    score: Number = None
    languageCode: Text = None
    boundingPoly: OrNone[BoundingPoly] = None


class Status(ResponseModel):
    """A ``google.rpc.Status``: a per-image error inside an HTTP 200."""

    code: Integer = None
    message: Text = None


class AnnotateImageResponse(ResponseModel):
    labelAnnotations: Items[Label] = []
    localizedObjectAnnotations: Items[LocalizedObject] = []
    error: OrNone[Status] = None


class AnnotateResponse(ResponseModel):
    responses: Annotated[list[AnnotateImageResponse], Field(min_length=1)]


class ErrorDetail(ResponseModel):
    type: Text = Field(default=None, alias="@type")
    reason: Text = None
    metadata: OrNone[dict[str, Any]] = None


class Error(ResponseModel):
    message: Text = None
    status: Text = None
    details: Items[ErrorDetail] = []

    def error_info(self) -> tuple[str | None, dict[str, str]]:
        """The ``ErrorInfo`` detail's reason and metadata."""
        for detail in self.details:
            if (detail.type or "").endswith(ERROR_INFO_TYPE):
                return detail.reason, {str(k): str(v) for k, v in (detail.metadata or {}).items()}
        return None, {}


class ErrorEnvelope(ResponseModel):
    error: OrNone[Error] = None
