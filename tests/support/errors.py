"""An instance of any error class of the catalog (autotag.errors), for tests that walk them all."""

from __future__ import annotations

from autotag.errors import (
    AllProvidersFailedError,
    AutotagError,
    MethodNotAllowedError,
    TagWriteRefusedError,
    TerminalProcessingError,
)
from autotag.models import TagResult


def example_error(cls: type[AutotagError]) -> AutotagError:
    """`cls` with message ``x`` and whatever else its constructor requires."""
    if cls is AllProvidersFailedError:
        return AllProvidersFailedError(TagResult())
    if cls is TerminalProcessingError:
        return TerminalProcessingError(None, AutotagError("x"))
    if cls is MethodNotAllowedError:
        return MethodNotAllowedError("x", allow=["GET"])
    if cls is TagWriteRefusedError:
        return TagWriteRefusedError("x", s3_code="AccessDenied")
    return cls("x")
