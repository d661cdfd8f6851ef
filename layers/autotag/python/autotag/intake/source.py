"""Reading an image in any form the API and the CLI accept: bytes, base64, a data URL or a file path.

`load_image` reads the bytes and hands them to `autotag.intake.checks.inspect_image`.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from pathlib import Path

from autotag.config import ImageLimits
from autotag.errors import BadInputError, EmptyImageError, ImageTooLargeError, UnsupportedFormatError
from autotag.image import SourceImage, sniff_format
from autotag.intake.checks import inspect_image

ImageSource = bytes | bytearray | memoryview | str | os.PathLike[str]

_MAX_PATH_CHARS = 4096


def load_image(source: ImageSource, *, limits: ImageLimits | None = None) -> SourceImage:
    """Read and check an image given as bytes, a base64 string, a data URL or a file path.

    Raises a :class:`autotag.errors.BadInputError` subclass for anything that is not a usable image.
    """
    limits = limits or ImageLimits()
    data = _read_source(source, limits)
    return inspect_image(data, limits=limits)


def _read_source(source: ImageSource, limits: ImageLimits) -> bytes:
    if isinstance(source, bytes):
        return source
    if isinstance(source, bytearray | memoryview):
        return bytes(source)
    if isinstance(source, os.PathLike):
        return _read_file(Path(source), limits)
    if isinstance(source, str):
        return _read_text(source, limits)
    raise BadInputError(f"cannot read an image from a {type(source).__name__}", code="bad_image_source")


def _read_text(text: str, limits: ImageLimits) -> bytes:
    stripped = text.strip()
    if not stripped:
        raise EmptyImageError("image is empty (blank string)")
    if stripped[:5].lower() == "data:":
        return _decode_data_url(stripped, limits)
    if len(stripped) <= _MAX_PATH_CHARS and _is_file(stripped):
        return _read_file(Path(stripped), limits)
    decoded = _decode_base64(stripped, limits)
    # A short string that is not base64 of an image is most likely a path that does not exist.
    if decoded is not None and (sniff_format(decoded) is not None or len(stripped) > _MAX_PATH_CHARS):
        return decoded
    if len(stripped) <= _MAX_PATH_CHARS:
        raise BadInputError(f"file not found: {stripped}", code="file_not_found")
    raise BadInputError("image string is neither a file path, base64 nor a data URL", code="bad_base64")


def _is_file(candidate: str) -> bool:
    try:
        return Path(candidate).is_file()
    except (OSError, ValueError):
        return False


def _read_file(path: Path, limits: ImageLimits) -> bytes:
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise BadInputError(f"not a file: {path}", code="not_a_file")
        if size > limits.max_bytes:
            raise ImageTooLargeError(f"{path} is {size} bytes; the limit is {limits.max_bytes} bytes")
        return path.read_bytes()
    except FileNotFoundError:
        raise BadInputError(f"file not found: {path}", code="file_not_found") from None
    except PermissionError:
        raise BadInputError(f"permission denied: {path}", code="file_unreadable") from None
    except OSError as exc:
        raise BadInputError(f"cannot read {path}: {exc.strerror or exc}", code="file_unreadable") from None


def _decode_data_url(url: str, limits: ImageLimits) -> bytes:
    header, comma, payload = url.partition(",")
    if not comma:
        raise BadInputError("data URL has no ',' before its payload", code="bad_data_url")
    params = header[5:].split(";")
    media_type = params[0].strip().lower()
    if media_type and not media_type.startswith("image/"):
        raise UnsupportedFormatError(f"data URL media type is {media_type}, not an image")
    if "base64" not in (p.strip().lower() for p in params[1:]):
        raise BadInputError("data URL must be base64-encoded (';base64,')", code="bad_data_url")
    decoded = _decode_base64(payload, limits)
    if decoded is None:
        raise BadInputError("data URL payload is not valid base64", code="bad_base64")
    return decoded


_BASE64_JUNK = re.compile(r"\s+")


def _decode_base64(text: str, limits: ImageLimits) -> bytes | None:
    """Standard or URL-safe base64, padding optional, whitespace ignored; None if not base64."""
    compact = _BASE64_JUNK.sub("", text)
    if not compact:
        return b""
    if len(compact) * 3 // 4 > limits.max_bytes:
        raise ImageTooLargeError(
            f"base64 image decodes to about {len(compact) * 3 // 4} bytes; the limit is {limits.max_bytes}"
        )
    if "-" in compact or "_" in compact:
        compact = compact.replace("-", "+").replace("_", "/")
    compact += "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None
