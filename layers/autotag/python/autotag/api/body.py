"""The request body, read once before routing: a JSON object, or a `malformed_json` refusal.

Python's JSON reader raises on input that is valid by the JSON grammar but that it cannot hold
(nesting past the interpreter's recursion limit, integers of more than 4,300 digits); the validator
behind the resolver would then fail in ways no client can act on. Every such body is refused here,
with the documented code, before anything else reads it.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from autotag.errors import MalformedJsonError

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects accepted (the request schema needs 3)."""


_KINDS: dict[type, str] = {
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    type(None): "null",
}


def json_depth(document: Any) -> int:
    """How deeply arrays and objects nest in `document` (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(document, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if depth > MAX_JSON_DEPTH:
            break
        stack.extend((child, depth) for child in children)
    return deepest


def body_text(event: dict[str, Any]) -> str | None:
    """The body as text (base64 bodies decoded); None when there is none."""
    body = event.get("body")
    if not isinstance(body, str) or not body:
        return None
    if event.get("isBase64Encoded") is True:
        try:
            return base64.b64decode(body, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise MalformedJsonError("request body is not valid base64-encoded UTF-8 text") from None
    return body


def check_json_object(event: dict[str, Any]) -> None:
    """Raise :class:`MalformedJsonError` unless the body is a JSON object this API can read."""
    text = body_text(event)
    if text is None:
        raise MalformedJsonError("request body is empty; send a JSON object")
    try:
        document = json.loads(text)
    except RecursionError:
        raise MalformedJsonError(f"request body nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:
        # Also integers longer than the interpreter converts (its message names a setting of ours).
        reason = "a number in it is too long" if "digits" in str(exc) else "it is not valid JSON"
        raise MalformedJsonError(f"request body cannot be read: {reason}") from None
    if not isinstance(document, dict):
        kind = _KINDS.get(type(document), "another value")
        raise MalformedJsonError(f"request body must be a JSON object, not {kind}")
    if json_depth(document) > MAX_JSON_DEPTH:
        raise MalformedJsonError(f"request body nests deeper than {MAX_JSON_DEPTH} levels")
